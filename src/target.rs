//! The target interpreter.
