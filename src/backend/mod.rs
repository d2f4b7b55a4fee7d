//! Backends turn (source bytes, co_filename, optimize) into a marshalled code
//! object for the target chosen at start. They never decide paths and never
//! write files. Two exist: the target interpreter's own workers (`cpython`)
//! and serc in-process (`native`).

pub mod cpython;
pub mod native;

/// One compilation: `compile(source, filename, 'exec', dont_inherit=True,
/// optimize=optimize)` then `marshal.dumps`.
#[derive(Debug, Clone, Copy)]
pub struct CompileJob<'a> {
    pub source: &'a [u8],
    /// The file name compiled into `co_filename` (dfile, or the path as given),
    /// raw bytes; the interpreter sees them through surrogateescape.
    pub filename: &'a [u8],
    /// -1 means the interpreter's own level.
    pub optimize: i64,
}

/// What kind of failure, for the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// `compile()` raised (SyntaxError, ValueError, MemoryError, RecursionError…):
    /// compileall reports it as a PyCompileError.
    Compile,
    /// `marshal.dumps` raised (e.g. object too deeply nested): compileall dies
    /// with a traceback here; we report it and go on.
    Marshal,
    /// The worker process died while compiling this file.
    WorkerCrashed,
    /// The worker took longer than the timeout and was replaced.
    Timeout,
    /// The native backend cannot compile this file (an encoding or a
    /// construct serc does not support); the CPython backend can.
    Unsupported,
}

/// A file that did not compile. `message` is exactly the text compileall
/// prints after `*** ` (for PyCompileError: `err.msg` with non-encodable
/// characters backslash-escaped; it may end with a newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileFailure {
    pub kind: FailureKind,
    pub message: String,
}

pub trait Backend: Send + Sync {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure>;
}
