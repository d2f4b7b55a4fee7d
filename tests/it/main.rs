//! All integration tests, in one binary. Every test compares precompyle with
//! a real oracle: what the target CPython's own compileall/py_compile writes
//! and prints for the same tree at the same path.

mod support;

mod bazel;
mod cache;
mod changing;
mod check;
mod destinations;
mod edge;
mod faults;
mod hostile;
mod native;
mod parity;
mod pypy;
mod runtime;
mod targets;
mod warnings;
mod writes;
