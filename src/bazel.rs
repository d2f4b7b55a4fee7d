//! Bazel: rules_python's precompiler command line, one-shot or as a
//! persistent worker (`bazel/worker.rs`).
//!
//! The command line is rules_python's `tools/precompiler/precompiler.py`'s:
//! `--invalidation_mode`, `--optimize N`, `--python_version X.Y` and
//! repeated `--src PATH --src_name NAME --pyc PATH` triples, possibly in an
//! `@flagfile` (one argument per line). Each triple becomes exactly what
//! `py_compile.compile(src, pyc, dfile=src_name, doraise=True, optimize=N,
//! invalidation_mode=MODE)` writes. These underscore spellings are not
//! compileall's or precompyle's (theirs have hyphens), so the mode is
//! chosen by their presence: see [`wanted`].
//!
//! Who compiles: native when serc reproduces `--python_version` (no
//! interpreter is started, which is what remote execution wants), else the
//! workers of `python3.X`. `PRECOMPYLE_BACKEND=cpython` and
//! `PRECOMPYLE_PYTHON` choose the interpreter's own workers instead.

mod worker;

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use crate::backend::native;
use crate::backend::{Backend, CompileJob};
use crate::cli::{self, BackendArg};
use crate::file::{start_backend, timestamp_of};
use crate::pyc::{self, InvalidationMode, Stamp};
use crate::select::select;
use crate::target::Target;

/// Whether the command line is rules_python's: a persistent worker's start,
/// or any of the precompiler's own options (also inside `@flagfile`s).
pub fn wanted(args: &[OsString]) -> bool {
    const OWN: [&str; 6] = [
        "--persistent_worker",
        "--src",
        "--src_name",
        "--pyc",
        "--python_version",
        "--invalidation_mode",
    ];
    let named = |arg: &[u8]| {
        OWN.iter()
            .any(|own| arg == own.as_bytes() || arg.starts_with(format!("{own}=").as_bytes()))
    };
    args.iter().any(|arg| {
        let bytes = arg.as_bytes();
        named(bytes)
            || bytes.strip_prefix(b"@").is_some_and(|file| {
                std::fs::read(std::ffi::OsStr::from_bytes(file))
                    .is_ok_and(|text| text.split(|&b| b == b'\n').any(named))
            })
    })
}

/// `precompyle [rules_python's precompiler arguments]`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let compilers = Arc::new(Compilers::default());
    if args.iter().any(|a| a == "--persistent_worker") {
        return worker::serve(compilers);
    }
    let (code, output) = compilers.run(&args, None, true);
    eprint!("{output}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// One request: what rules_python's precompiler was asked.
#[derive(Debug, PartialEq, Eq)]
pub struct Job {
    pub mode: InvalidationMode,
    pub optimize: i64,
    pub version: Option<(u32, u32)>,
    /// (source, co_filename, pyc).
    pub files: Vec<(PathBuf, Vec<u8>, PathBuf)>,
}

/// Parse the precompiler's arguments, `@flagfile`s expanded (relative to
/// `base`, the sandbox of a worker request).
pub fn parse(args: &[String], base: Option<&Path>) -> Result<Job, String> {
    let args = expand_flagfiles(args, base)?;
    let (mut mode, mut optimize, mut version) = (InvalidationMode::Timestamp, -1, None);
    let (mut srcs, mut names, mut pycs) = (Vec::new(), Vec::new(), Vec::new());
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--invalidation_mode" => mode = parse_mode(&value()?)?,
            "--optimize" => {
                let text = value()?;
                optimize = text
                    .parse()
                    .map_err(|_| format!("--optimize: not a number: {text:?}"))?;
            }
            "--python_version" => {
                let text = value()?;
                let parsed = text
                    .split_once('.')
                    .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
                version = Some(parsed.ok_or_else(|| format!("--python_version: expected X.Y, got {text:?}"))?);
            }
            "--src" => srcs.push(in_sandbox(base, &value()?)),
            "--src_name" => names.push(value()?.into_bytes()),
            "--pyc" => pycs.push(in_sandbox(base, &value()?)),
            // The Python precompiler's own knobs: nothing to do here.
            "--persistent_worker" => {}
            "--log_level" | "--worker_impl" => {
                value()?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if srcs.len() != names.len() || names.len() != pycs.len() {
        return Err(format!(
            "mismatched number of --src ({}), --src_name ({}) and --pyc ({}) arguments",
            srcs.len(),
            names.len(),
            pycs.len()
        ));
    }
    let files = srcs
        .into_iter()
        .zip(names)
        .zip(pycs)
        .map(|((src, name), pyc)| (src, name, pyc))
        .collect();
    Ok(Job {
        mode,
        optimize,
        version,
        files,
    })
}

fn parse_mode(text: &str) -> Result<InvalidationMode, String> {
    match text.to_ascii_uppercase().as_str() {
        "TIMESTAMP" => Ok(InvalidationMode::Timestamp),
        "CHECKED_HASH" => Ok(InvalidationMode::CheckedHash),
        "UNCHECKED_HASH" => Ok(InvalidationMode::UncheckedHash),
        _ => Err(format!("Unknown PycInvalidationMode: {text}")),
    }
}

fn in_sandbox(base: Option<&Path>, path: &str) -> PathBuf {
    match base {
        Some(base) => base.join(path),
        None => PathBuf::from(path),
    }
}

/// `@file` arguments replaced by the file's lines (argparse's
/// `fromfile_prefix_chars='@'`: one argument per line, nested files too).
fn expand_flagfiles(args: &[String], base: Option<&Path>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for arg in args {
        let Some(file) = arg.strip_prefix('@') else {
            out.push(arg.clone());
            continue;
        };
        let path = in_sandbox(base, file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        out.extend(expand_flagfiles(&lines, base)?);
    }
    Ok(out)
}

/// The backends of a run or a worker's life, one per Python version asked
/// for, each started on first need and kept warm.
#[derive(Default)]
pub struct Compilers {
    started: Mutex<HashMap<Version, Arc<Started>>>,
}

/// `--python_version`, if given.
type Version = Option<(u32, u32)>;

struct Started {
    target: Target,
    backend: Box<dyn Backend>,
}

impl Compilers {
    /// Do one request: (exit code, text for the action's output). A
    /// one-shot run starts no more interpreter workers than it has files.
    pub fn run(&self, args: &[String], sandbox: Option<&Path>, one_shot: bool) -> (i32, String) {
        let job = match parse(args, sandbox) {
            Ok(job) => job,
            Err(message) => return (2, format!("precompyle: error: {message}\n")),
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = if one_shot {
            cores.min(job.files.len()).max(1)
        } else {
            cores
        };
        let started = match self.for_version(job.version, workers) {
            Ok(started) => started,
            Err(message) => return (2, format!("precompyle: error: {message}\n")),
        };
        let mut output = String::new();
        let mut code = 0;
        for (src, name, pyc) in &job.files {
            if let Err(message) = compile_one(&started, &job, src, name, pyc) {
                output.push_str(&message);
                code = 1;
            }
        }
        (code, output)
    }

    fn for_version(&self, version: Version, workers: usize) -> Result<Arc<Started>, String> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = started.get(&version) {
            return Ok(found.clone());
        }
        let new = Arc::new(start(version, workers)?);
        started.insert(version, new.clone());
        Ok(new)
    }
}

/// Native when serc reproduces the version and nothing asks for an
/// interpreter; else the interpreter's workers (`select.rs`'s rule).
fn start(version: Version, workers: usize) -> Result<Started, String> {
    let python = std::env::var_os(cli::env::PYTHON).map(PathBuf::from);
    let backend = match std::env::var(cli::env::BACKEND).as_deref() {
        Ok("cpython") => BackendArg::Cpython,
        Ok("native") => BackendArg::Native,
        Ok("auto") | Err(_) if python.is_none() && version.and_then(native::version_for).is_some() => {
            BackendArg::Native
        }
        Ok("auto") | Err(_) => BackendArg::Cpython,
        Ok(other) => {
            return Err(format!(
                "{}={other}: expected auto, native or cpython",
                cli::env::BACKEND
            ));
        }
    };
    let target = select(backend, version, python.as_deref(), None, &Target::probe).map_err(|e| e.to_string())?;
    let backend = start_backend(&target, workers, None)?;
    Ok(Started { target, backend })
}

/// py_compile.compile(src, pyc, dfile=name, doraise=True, optimize, mode):
/// refuse a symlinked or special pyc, read, compile, make the directory,
/// write atomically. The error text is what py_compile raises.
fn compile_one(started: &Started, job: &Job, src: &Path, name: &[u8], pyc: &Path) -> Result<(), String> {
    let target = &started.target;
    pyc::check_destination(pyc).map_err(|e| format!("{e}\n"))?;
    let unreadable = |e: std::io::Error| format!("{}: {e}\n", src.display());
    let source = std::fs::read(src).map_err(unreadable)?;
    let meta = std::fs::metadata(src).map_err(unreadable)?;
    let stamp = match job.mode {
        InvalidationMode::Timestamp => timestamp_of(&meta),
        _ => Stamp::Hash(pyc::source_hash(target.magic, target.hash_algo, &source)),
    };
    let body = started
        .backend
        .compile(CompileJob {
            source: &source,
            filename: name,
            optimize: job.optimize,
        })
        .map_err(|failure| {
            let mut text = format!("Error compiling {}:\n{}", src.display(), failure.message);
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        })?;
    if let Some(dir) = pyc.parent().filter(|d| !d.as_os_str().is_empty()) {
        pyc::create_dirs(dir).map_err(|e| format!("{e}\n"))?;
    }
    let header = pyc::header(target.magic, job.mode, stamp);
    pyc::write_atomic(pyc, &header, &body, Some(meta.mode())).map_err(|e| format!("{e}\n"))
}

#[cfg(test)]
mod tests;
