//! Sources nested deeper than CPython compiles, refused before serc sees
//! them. serc recurses (and, on some chains, takes cubic time) where
//! CPython gives up early with `MemoryError` (its parser's stack of 6,000
//! rule frames) or `RecursionError` (its AST passes' depth limit). Both are
//! measured in `scripts/nesting-limits.py`'s terms; see docs/backends.md.
//!
//! Two passes. [`nesting_bound`] (`guard/scan.rs`) reads the bytes once and
//! returns an upper bound on the depth (skipping runs of bytes with
//! `guard/bytes.rs`); almost every real file is far below any limit and
//! goes straight to serc. Only above [`Limits::fast_accept`] is the source parsed (by the
//! parser serc uses) and its depths measured exactly as CPython counts
//! them, from below (`guard/depths.rs`): a file is refused only when
//! CPython refuses it too, whatever the caller's stack depth.

// By path, so that the examples (`serc_floor`, `guard_scan`), which
// include this file by path, find them too.
#[path = "guard/bytes.rs"]
mod bytes;
#[path = "guard/depths.rs"]
mod depths;
#[path = "guard/scan.rs"]
mod scan;

use depths::measure;
pub(super) use scan::nesting_bound;
use serc::PythonVersion;

/// CPython's parser gives up when this many rule frames are active
/// (`MAXSTACK`, 3.12 and 3.13).
const PARSER_FRAMES: u32 = 6000;
/// Frames on the parser's stack before the first link of a chain, at the
/// least: 30 measured for `if not…:` at module level, 31 to 35 elsewhere.
/// Five fewer, so no statement form can start lower.
const PARSER_BASE: u32 = 25;

/// The limits of one target version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// Deepest nesting of statements and expressions CPython's AST passes
    /// accept when called with nothing on the stack below them.
    recursion: u32,
    /// Whether these are CPython's own measured limits (3.12, 3.13), or
    /// assumed for a release there is no interpreter here to measure.
    measured: bool,
    /// Template strings (`t"…"`) exist.
    templates: bool,
    /// The grammar serc parses with.
    grammar: ruff_python_ast::PythonVersion,
}

/// Why a source was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Excess {
    /// More parser frames than `MAXSTACK`: CPython's `MemoryError`.
    ParserStack,
    /// Deeper than the AST passes go: CPython's `RecursionError`.
    Recursion,
    /// More than 200 brackets (and f-string fields) open at once: CPython's
    /// tokenizer stops at the bracket at this offset of the text with
    /// `SyntaxError: too many nested parentheses`.
    Brackets { offset: usize },
}

/// A refusal, and whether CPython's verdict is known for this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    pub excess: Excess,
    pub measured: bool,
}

impl Limits {
    pub(super) fn of(version: PythonVersion) -> Limits {
        match version {
            // 3.12's AST optimizer and symtable stop at 3 x 1000 levels,
            // whatever `sys.getrecursionlimit()` says; 3.13's at its C
            // recursion limit, 10,000.
            PythonVersion::Py312 => Limits {
                recursion: 3000,
                measured: true,
                templates: false,
                grammar: ruff_python_ast::PythonVersion::PY312,
            },
            PythonVersion::Py313 => Limits {
                recursion: 10_000,
                measured: true,
                templates: false,
                grammar: ruff_python_ast::PythonVersion::PY313,
            },
            // Measured on no interpreter: 3.14 checks the C stack instead
            // of counting. 3.13's numbers keep serc within what it handles.
            PythonVersion::Py314 | PythonVersion::Py315 => Limits {
                recursion: 10_000,
                measured: false,
                templates: true,
                grammar: if version == PythonVersion::Py314 {
                    ruff_python_ast::PythonVersion::PY314
                } else {
                    ruff_python_ast::PythonVersion::PY315
                },
            },
        }
    }

    /// Below this bound neither limit can be reached (the parser's needs
    /// at least one counted byte per frame beyond its base).
    fn fast_accept(self) -> u32 {
        self.recursion.min(PARSER_FRAMES - PARSER_BASE)
    }
}

/// `Some` if CPython refuses `text` (the decoded source serc compiles) as
/// too deeply nested.
pub(super) fn check(text: &str, limits: Limits) -> Option<Refusal> {
    let scan = nesting_bound(text.as_bytes(), limits.templates);
    let refuse = |excess| {
        Some(Refusal {
            excess,
            measured: limits.measured,
        })
    };
    // A run of prefix operators nests without anything between, so it is
    // refused before the parser spends memory on it.
    if PARSER_BASE + scan.unary_run > PARSER_FRAMES {
        return refuse(Excess::ParserStack);
    }
    // The tokenizer's verdict, in every version: serc reports it too, but
    // only after parsing and measuring all of the nesting inside.
    if let Some(offset) = scan.bracket_excess {
        return Some(Refusal {
            excess: Excess::Brackets { offset },
            measured: true,
        });
    }
    if scan.bound <= limits.fast_accept() {
        return None;
    }
    let depths = measure(text, limits)?;
    if PARSER_BASE + depths.parser > PARSER_FRAMES {
        refuse(Excess::ParserStack)
    } else if depths.ast > limits.recursion {
        refuse(Excess::Recursion)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
