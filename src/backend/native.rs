//! The native backend: serc, a CPython bytecode compiler written in Rust,
//! compiles in this process. No interpreter is started; each serc release
//! reproduces one pinned CPython patch release per minor version.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ruff_python_parser::{LexicalErrorType, ParseErrorType};
use serc::{CompileError, CompileOptions, OptimizationLevel, PythonVersion, SourceDecodeError};

use super::{Backend, CompileFailure, CompileJob, FailureKind};

/// `sys.get_int_max_str_digits()` of an interpreter started without
/// `PYTHONINTMAXSTRDIGITS` or `-X int_max_str_digits`: the limit compileall
/// compiles under. Naming it lets serc decide the diagnostics that depend on it.
const DEFAULT_INT_MAX_STR_DIGITS: u32 = 4300;

/// The minor versions serc compiles for, with the exact CPython release each one reproduces.
pub fn supported() -> impl Iterator<Item = (PythonVersion, serc::CpythonTarget)> {
    [
        PythonVersion::Py312,
        PythonVersion::Py313,
        PythonVersion::Py314,
        PythonVersion::Py315,
    ]
    .into_iter()
    .map(|v| (v, v.target()))
}

/// The serc release compiled in: `Cargo.toml` pins it exactly (a unit test
/// keeps the two equal).
pub const SERC_VERSION: &str = "0.1.10";

/// What the native backend reproduces, for `--version`:
/// `serc 0.1.10: CPython 3.12.14, 3.13.15, 3.14.5, 3.15.0rc2`.
pub fn describe() -> String {
    let releases: Vec<&str> = supported()
        .map(|(_, target)| target.tag.trim_start_matches('v'))
        .collect();
    format!("serc {SERC_VERSION}: CPython {}", releases.join(", "))
}

/// serc's name for a minor version, if it compiles for it.
pub fn version_for(minor: (u32, u32)) -> Option<PythonVersion> {
    supported()
        .find(|(_, t)| (u32::from(t.version.0), u32::from(t.version.1)) == minor)
        .map(|(v, _)| v)
}

mod guard;
mod marshal_depth;

/// Sources from this size on take tens of MB to compile (a 446 KB sympy
/// benchmark file peaks at 39 MB above the run's own memory).
const LARGE_SOURCE: usize = 128 * 1024;

/// Give back to the system what this thread's compiles freed. mimalloc
/// keeps freed pages for reuse, so the peak of every large compile stayed
/// with the run: on five copies of the corpus native peaked at 89–94 MB,
/// 79–84 MB with this after each large source (after every source from
/// 16 KB on: 71–76 MB, for 5 s more system time).
fn return_freed_memory() {
    // SAFETY: mimalloc's own call, valid on any thread at any time; with
    // another global allocator (the unit tests) its heap is empty.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

pub struct NativeBackend {
    /// Options for `-o 0`, `-o 1`, `-o 2`, built once.
    options: [CompileOptions; 3],
    /// How deep CPython nests before it refuses, for this version.
    limits: guard::Limits,
    version: PythonVersion,
}

impl NativeBackend {
    pub fn new(version: PythonVersion) -> NativeBackend {
        silence_caught_panics();
        let with = |optimization_level| CompileOptions {
            python_version: version,
            optimization_level,
            ..CompileOptions::default()
        };
        NativeBackend {
            options: [
                with(OptimizationLevel::Zero),
                with(OptimizationLevel::One),
                with(OptimizationLevel::Two),
            ],
            limits: guard::Limits::of(version),
            version,
        }
    }
}

impl Backend for NativeBackend {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        // -1 is "the interpreter's own level"; a plain interpreter runs at 0.
        let options = &self.options[job.optimize.clamp(0, 2) as usize];
        let filename = Path::new(OsStr::from_bytes(job.filename));
        // A panic inside serc is a bug in serc about this one file: report
        // it as such and go on with the others. Unwind-safe in fact: serc
        // only reads the options and returns everything it builds.
        // Allocations inside come from the thread's arena; the messages
        // and the pyc, which outlive the compile, are made after it.
        let compiled = crate::arena::scope(|| {
            catch_silently(|| {
                // serc overflows its stack or runs for minutes on sources
                // nested past CPython's limits: refuse those as CPython does.
                // Undecodable sources are serc's to report.
                let refusal = serc::decode_source(job.source)
                    .ok()
                    .and_then(|text| guard::check(&text, self.limits));
                if let Some(refusal) = refusal {
                    return Err(Stopped::Refused(refusal));
                }
                serc::compile_bytes_with_path_options_and_integer_limits(
                    job.source,
                    filename,
                    options,
                    DEFAULT_INT_MAX_STR_DIGITS,
                    Some(DEFAULT_INT_MAX_STR_DIGITS),
                )
                .map_err(Stopped::Error)
            })
        })
        .map_err(|panic| CompileFailure {
            kind: FailureKind::Unsupported,
            message: format!(
                "native backend crashed on this file ({}); use --backend cpython\n",
                panic_text(&*panic)
            ),
        })?;
        if job.source.len() >= LARGE_SOURCE {
            return_freed_memory();
        }
        let module = compiled.map_err(|stopped| match stopped {
            Stopped::Refused(refusal) => too_deep(refusal, job, self.version),
            Stopped::Error(error) => failure(&error, job),
        })?;
        // The pyc form, not `marshal()`: py_compile marshals a code object
        // nothing else holds, so the root carries no reference flag. The
        // header is ours to write; only the body is returned.
        let mut pyc = module.to_timestamp_pyc(0, 0);
        pyc.drain(..crate::pyc::HEADER_LEN);
        loadable(&pyc)?;
        Ok(pyc)
    }
}

/// Why a compile gave no module, told apart inside the arena and worded
/// outside it.
enum Stopped {
    Refused(guard::Refusal),
    Error(CompileError),
}

thread_local! {
    /// Set while a compile runs under `catch_silently` on this thread.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `work`, turning a panic into an `Err` that prints nothing: a panic
/// in serc is the file's error, and only the printer prints.
fn catch_silently<T>(work: impl FnOnce() -> T) -> std::thread::Result<T> {
    let outer = CATCHING.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    CATCHING.set(outer);
    result
}

/// Keep the default panic hook from printing panics that `catch_silently`
/// catches; every other panic prints as before.
fn silence_caught_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.get() {
                previous(info);
            }
        }));
    });
}

/// Refuses a body CPython could neither have written nor load: serc nests
/// code objects without marshal's limit. The message is what `marshal.dumps`
/// raises there, as the CPython backend reports it.
fn loadable(body: &[u8]) -> Result<(), CompileFailure> {
    match marshal_depth::check(body) {
        Ok(()) => Ok(()),
        Err(marshal_depth::Unloadable::TooDeep) => Err(CompileFailure {
            kind: FailureKind::Marshal,
            message: "ValueError: object too deeply nested to marshal".to_owned(),
        }),
        Err(marshal_depth::Unloadable::Malformed { offset, what }) => Err(CompileFailure {
            kind: FailureKind::Unsupported,
            message: format!(
                "native backend produced unreadable marshal data ({what} at byte {offset}); \
                 use --backend cpython\n"
            ),
        }),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// serc's and CPython's text for a 100th indentation level.
const TOO_DEEP_INDENTATION: &str = "too many levels of indentation";

/// A serc error as compileall would print it after `*** `, as far as serc
/// says: the `File "…", line N` block for errors in the source, a plain
/// line for what serc itself cannot do.
fn failure(error: &CompileError, job: CompileJob<'_>) -> CompileFailure {
    let syntax_error = |message: &str| CompileFailure {
        kind: FailureKind::Compile,
        message: syntax_error_block(job, range_of(error), message),
    };
    match error {
        CompileError::Parse(parse) => match indentation_message(&parse.error) {
            Some(message) => CompileFailure {
                kind: FailureKind::Compile,
                message: indentation_error_line(job, error, message),
            },
            None => syntax_error(&parse.error.to_string()),
        },
        // CPython's tokenizer raises this one as an IndentationError.
        CompileError::InvalidSyntax { message, .. } if message == TOO_DEEP_INDENTATION => CompileFailure {
            kind: FailureKind::Compile,
            message: indentation_error_line(job, error, TOO_DEEP_INDENTATION),
        },
        CompileError::InvalidPattern { message, .. }
        | CompileError::InvalidSyntax { message, .. }
        | CompileError::InvalidDocstring { message, .. } => syntax_error(message),
        CompileError::InvalidIdentifier(_) => syntax_error(&error.to_string()),
        CompileError::Decode(SourceDecodeError::NullByte) => {
            syntax_error("source code string cannot contain null bytes")
        }
        CompileError::Decode(decode @ SourceDecodeError::UnsupportedEncoding(_)) => CompileFailure {
            kind: FailureKind::Unsupported,
            message: format!("native backend: {decode}; compile this file with --backend cpython\n"),
        },
        CompileError::Decode(decode) => syntax_error(&format!("(unicode error) {decode}")),
        CompileError::IntegerStringConversionLimit { .. } => CompileFailure {
            kind: FailureKind::Compile,
            message: format!("{error}\n"),
        },
        _ => CompileFailure {
            kind: FailureKind::Unsupported,
            message: format!("native backend cannot compile this file: {error}; use --backend cpython\n"),
        },
    }
}

/// What py_compile prints for CPython's own refusal (`Sorry: TYPE: TEXT`,
/// 3.12 and 3.13 alike; the tokenizer's bracket limit as a SyntaxError
/// block); for a release with no measured limits, that serc is not asked,
/// without claiming what CPython would say.
fn too_deep(refusal: guard::Refusal, job: CompileJob<'_>, version: PythonVersion) -> CompileFailure {
    let cpython = match refusal.excess {
        guard::Excess::Brackets { offset } => {
            return CompileFailure {
                kind: FailureKind::Compile,
                message: syntax_error_block(job, Some((offset, offset + 1)), "too many nested parentheses"),
            };
        }
        guard::Excess::ParserStack => "MemoryError: Parser stack overflowed - Python source too complex to parse",
        guard::Excess::Recursion => "RecursionError: maximum recursion depth exceeded during compilation",
    };
    if refusal.measured {
        return CompileFailure {
            kind: FailureKind::Compile,
            message: format!("Sorry: {cpython}"),
        };
    }
    let (major, minor, _) = version.target().version;
    CompileFailure {
        kind: FailureKind::Unsupported,
        message: format!(
            "native backend: source nested deeper than CPython 3.13 compiles (there: {cpython}); \
             {major}.{minor}'s limit is not known natively, use --backend cpython\n"
        ),
    }
}

/// CPython's text for the parser errors that are IndentationErrors there.
fn indentation_message(error: &ParseErrorType) -> Option<&'static str> {
    match error {
        ParseErrorType::UnexpectedIndentation => Some("unexpected indent"),
        ParseErrorType::Lexical(LexicalErrorType::IndentationError) => {
            Some("unindent does not match any outer indentation level")
        }
        ParseErrorType::OtherError(text) if text.starts_with("Expected an indented block") => {
            Some("expected an indented block")
        }
        _ => None,
    }
}

/// Where in the decoded source serc's error lies, as byte offsets.
fn range_of(error: &CompileError) -> Option<(usize, usize)> {
    error
        .range()
        .map(|range| (usize::from(range.start()), usize::from(range.end())))
}

/// py_compile reports an IndentationError (3.8-3.13 alike) as one line:
/// `Sorry: IndentationError: MESSAGE (BASENAME, line N)`.
fn indentation_error_line(job: CompileJob<'_>, error: &CompileError, message: &str) -> String {
    let name = String::from_utf8_lossy(job.filename);
    let basename = name.rsplit('/').next().unwrap_or(&name);
    let line = error
        .range()
        .zip(serc::decode_source(job.source).ok())
        .map_or(1, |(range, text)| line_number(&text, usize::from(range.start())));
    format!("Sorry: IndentationError: {message} ({basename}, line {line})")
}

fn line_number(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// `  File "NAME", line N` / the line / carets / `SyntaxError: MESSAGE`, the
/// shape `traceback.format_exception_only` gives a SyntaxError.
fn syntax_error_block(job: CompileJob<'_>, range: Option<(usize, usize)>, message: &str) -> String {
    let name = String::from_utf8_lossy(job.filename);
    // Without a position CPython prints the last line alone (null bytes).
    let Some((start, end)) = range else {
        return format!("SyntaxError: {message}\n");
    };
    // serc's ranges index the decoded, newline-normalised source.
    let Ok(text) = serc::decode_source(job.source) else {
        return format!("SyntaxError: {message}\n");
    };
    let start = start.min(text.len());
    let end = end.clamp(start, text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_number = line_number(&text, start);
    let line = &text[line_start..line_end];
    let indent = line.len() - line.trim_start().len();
    let column = text[line_start + indent.min(start - line_start)..start].chars().count();
    let width = text[start..end.min(line_end)].chars().count().max(1);
    format!(
        "  File \"{name}\", line {line_number}\n    {}\n    {}{}\nSyntaxError: {message}\n",
        line.trim(),
        " ".repeat(column),
        "^".repeat(width)
    )
}

#[cfg(test)]
mod tests;
