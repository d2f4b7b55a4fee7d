//! What happens to one file: compileall's checks before compiling, the pyc
//! paths, freshness, reading the source, compiling, and putting the pycs in
//! place. The engine calls `FileDecider::process_file` for each candidate,
//! on many threads at once; everything here is per file, but for the
//! backend (started on first need) and the directories already prepared.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::backend::cpython::{CpythonPool, PoolConfig};
use crate::backend::native::{self, NativeBackend};
use crate::backend::{Backend, CompileFailure, CompileJob, FailureKind};
use crate::cache::Cache;
use crate::destination::Destinations;
use crate::dfile::Dfile;
use crate::layout::Layout;
use crate::pyc::{self, InvalidationMode, Staleness, Stamp};
use crate::pycdir::{DirError, Lookup, PycDirs};
use crate::pyrepr::os_error_text;
use crate::report::{ErrorKind, FileReport, FileResult};
use crate::settings::{Settings, lexical_absolute, resolve_in_root};
use crate::source::SourceOnce;
use crate::target::{Compiler, Target};
use crate::watchdog::WatchedBackend;

/// Decides and does everything for one file at a time; shared by the
/// engine's threads.
pub struct FileDecider {
    settings: &'static Settings,
    target: &'static Target,
    layout: Layout,
    /// Started on first need, so an all-fresh run never starts Python.
    backend: OnceLock<Result<Box<dyn Backend>, String>>,
    /// The pyc directories, each opened once where written into; shared by the run's targets,
    /// whose pycs differ only in name (the cache tag).
    dirs: Arc<PycDirs>,
    /// `--cache-dir`: asked before the backend, which a hit never starts.
    cache: Option<&'static Cache>,
}

impl FileDecider {
    /// `dirs`: from [`FileDecider::pyc_dirs`] of any target of the run.
    pub fn new(
        settings: &'static Settings,
        target: &'static Target,
        cache: Option<&'static Cache>,
        dirs: Arc<PycDirs>,
    ) -> FileDecider {
        FileDecider {
            settings,
            target,
            backend: OnceLock::new(),
            dirs,
            layout: layout_of(settings, target),
            cache,
        }
    }

    /// The pyc directories of a run. Every target of a run writes into the
    /// same ones (its layout differs only in file names), so a directory
    /// created for one is known to hold no pyc of the others either.
    pub fn pyc_dirs(settings: &Settings, target: &Target) -> PycDirs {
        let layout = layout_of(settings, target);
        PycDirs::new(
            Destinations::new(layout.written_prefix(), settings.root.as_deref(), &settings.cwd),
            &settings.cwd,
        )
    }

    /// Everything for one file and this decider's target; `source` is
    /// shared with the run's other targets, which read it through the same
    /// value.
    pub fn process_file(&self, source: &SourceOnce<'_>, dir_arg: Option<&Path>) -> FileReport {
        let fullname = source.path();
        let mut report = FileReport {
            path: fullname.as_os_str().as_bytes().to_vec(),
            target: 0,
            warning: None,
            result: FileResult::Skipped,
        };
        report.result = match self.prepare(source, dir_arg, &mut report.warning) {
            Ok(Some(plan)) => self.build(plan, source),
            Ok(None) => FileResult::Skipped,
            Err(failed) => failed,
        };
        report
    }

    /// compile_file's checks before compiling, in its order (but for the
    /// suffix, see below): dfile, `-x`, `-e`, suffix, regular file, pyc paths.
    fn prepare<'p>(
        &self,
        source: &SourceOnce<'p>,
        dir_arg: Option<&Path>,
        warning: &mut Option<String>,
    ) -> Result<Option<Plan<'p>>, FileResult> {
        let s = self.settings;
        let fullname = source.path();
        let runtime = self.runtime_path(fullname)?;
        let runtime_arg = dir_arg.map(|d| self.runtime_path(d)).transpose()?;
        let dfile = match s.dfile.dfile_for(&runtime, runtime_arg.as_deref()) {
            Dfile::Unset => None,
            Dfile::Set(d) => Some(d),
            // 3.13+ warns and still applies the prepend directory.
            Dfile::Warn { warning: text, dfile } => {
                *warning = Some(text);
                dfile
            }
            Dfile::Error(message) => return Err(failed(ErrorKind::Dfile, message, false)),
        };
        if let Some(rx) = &s.rx
            && rx.is_match(&fullname.to_string_lossy()[..]).unwrap_or(false)
        {
            return Ok(None);
        }
        if let Some(limit) = &s.limit_sl_dest
            && fullname.is_symlink()
            && !self.symlink_within(fullname, limit)
        {
            return Ok(None);
        }
        // The suffix test comes before the stat (compileall stats first): the
        // outcome is the same, and most files in a tree are not `.py`.
        if !fullname.as_os_str().as_bytes().ends_with(b".py") {
            return Ok(None);
        }
        let Some(meta) = source.stat().filter(|m| m.is_file()).cloned() else {
            return Ok(None);
        };
        let pycs = s
            .opt_levels
            .iter()
            .map(|&level| self.pyc_path(&runtime, level).map(|p| (level, p)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Plan {
            fullname,
            runtime,
            dfile,
            meta,
            pycs,
        }))
    }

    /// How deep below a directory argument this target's walk goes.
    pub fn maxlevels(&self) -> i64 {
        self.settings.maxlevels
    }

    /// The path the file will have at run time: itself, or under `--root`
    /// the absolute path with the root removed.
    pub fn runtime_path(&self, path: &Path) -> Result<Vec<u8>, FileResult> {
        let Some(root) = &self.settings.root else {
            return Ok(path.as_os_str().as_bytes().to_vec());
        };
        let abs = lexical_absolute(path, &self.settings.cwd);
        match abs.strip_prefix(root) {
            Ok(rest) => Ok([b"/", rest.as_os_str().as_bytes()].concat()),
            Err(_) => Err(failed(
                ErrorKind::OutsideRoot,
                format!("{} is not under --root {}", path.display(), root.display()),
                false,
            )),
        }
    }

    /// compileall's `-e`: the resolved file must lie strictly below the
    /// resolved limit.
    fn symlink_within(&self, path: &Path, limit: &Path) -> bool {
        let resolved = match &self.settings.root {
            Some(root) => match self.runtime_path(path) {
                Ok(runtime) => resolve_in_root(Path::new(OsStr::from_bytes(&runtime)), root),
                Err(_) => lexical_absolute(path, &self.settings.cwd),
            },
            None => {
                let abs = lexical_absolute(path, &self.settings.cwd);
                std::fs::canonicalize(&abs).unwrap_or(abs)
            }
        };
        resolved != limit && resolved.starts_with(limit)
    }

    /// Where the pyc for `runtime` at `level` is written.
    pub fn pyc_path(&self, runtime: &[u8], level: i64) -> Result<PathBuf, FileResult> {
        let suffix = Settings::optimization_suffix(level, self.target.optimize);
        let path = self
            .layout
            .cache_path(runtime, &suffix)
            .map_err(|e| failed(ErrorKind::Layout, e.to_string(), false))?;
        let Some(root) = &self.settings.root else {
            return Ok(path);
        };
        let written = root.join(path.strip_prefix("/").unwrap_or(&path));
        let under_root = lexical_absolute(&written, Path::new("/"));
        if !under_root.starts_with(root) {
            return Err(failed(
                ErrorKind::OutsideRoot,
                format!(
                    "refusing to write {}: outside --root {}",
                    under_root.display(),
                    root.display()
                ),
                false,
            ));
        }
        Ok(written)
    }

    fn build(&self, plan: Plan<'_>, read: &SourceOnce<'_>) -> FileResult {
        let s = self.settings;
        let mut source: Option<(&[u8], Stamp)> = None;
        // Which pycs are known not to exist (so nothing needs replacing).
        let mut missing = vec![false; plan.pycs.len()];
        if !s.force || s.check {
            let stamp = match self.stamp_before_compiling(&plan, read, &mut source) {
                Ok(stamp) => stamp,
                Err(e) => return read_failed(&plan, &e),
            };
            let expected = pyc::header(self.target.magic, s.mode, stamp);
            let mut stale = Vec::new();
            for ((_, pyc), missing) in plan.pycs.iter().zip(&mut missing) {
                if let Err(why) = self.check_fresh(pyc, &expected) {
                    *missing = why == Staleness::Missing;
                    stale.push((pyc.clone(), why));
                }
            }
            if stale.is_empty() {
                return FileResult::Fresh;
            }
            if s.check {
                return FileResult::Stale(stale);
            }
        }
        match self.compile_and_write(&plan, read, source, &missing) {
            Ok(()) => FileResult::Compiled,
            Err(failure) => failure,
        }
    }

    /// `pyc::check_fresh`, by path or through the handle of the pyc's
    /// directory where one is open.
    fn check_fresh(&self, pyc: &Path, expected: &[u8; 16]) -> Result<(), Staleness> {
        match self.dirs.lookup(parent_of(pyc)) {
            Lookup::Empty => Err(Staleness::Missing),
            Lookup::Open(dir) => pyc::check_fresh_at(dir.as_fd(), pyc.file_name().unwrap_or_default(), expected),
            Lookup::ByPath => {
                let verdict = pyc::check_fresh(pyc, expected);
                if verdict == Err(Staleness::Missing) {
                    self.dirs.missing(parent_of(pyc));
                }
                verdict
            }
        }
    }

    /// py_compile's refusal of a symlinked or non-regular pyc, before
    /// compiling. A pyc whose directory holds only what the run wrote needs
    /// no look (one that failed to open may still be a dangling symlink).
    /// The directory is checked for writing and, inside its root, swept of
    /// killed runs' temps the first time.
    fn check_destination(&self, pyc: &Path, source: &Path) -> Result<(), FileResult> {
        let checked = match self.dirs.lookup_to_compile(pyc, source) {
            Lookup::Empty => Ok(()),
            Lookup::Open(dir) => pyc::check_destination_at(dir.as_fd(), pyc),
            Lookup::ByPath => pyc::check_destination(pyc),
        };
        checked.map_err(|e| failed(ErrorKind::Destination, e.to_string(), true))
    }

    /// The header stamp the pyc must carry now. Timestamp mode needs only the
    /// stat; hash modes read the source, which is kept with its stamp for the
    /// compile.
    fn stamp_before_compiling<'s>(
        &self,
        plan: &Plan<'_>,
        read: &'s SourceOnce<'_>,
        source: &mut Option<(&'s [u8], Stamp)>,
    ) -> std::io::Result<Stamp> {
        if self.settings.mode == InvalidationMode::Timestamp {
            return Ok(timestamp_of(&plan.meta));
        }
        let (bytes, stamp) = self.read_stamped(read)?;
        *source = Some((bytes, stamp));
        Ok(stamp)
    }

    /// The source bytes and the stamp that describes exactly those bytes
    /// (a hash mode's hash is keyed by this target's magic number).
    fn read_stamped<'s>(&self, read: &'s SourceOnce<'_>) -> std::io::Result<(&'s [u8], Stamp)> {
        let timestamp = self.settings.mode == InvalidationMode::Timestamp;
        let (bytes, meta) = read.contents(timestamp)?;
        if timestamp {
            return Ok((bytes, timestamp_of(meta)));
        }
        let hash = pyc::source_hash(self.target.magic, self.target.hash_algo, bytes);
        Ok((bytes, Stamp::Hash(hash)))
    }

    fn compile_and_write(
        &self,
        plan: &Plan<'_>,
        read: &SourceOnce<'_>,
        source: Option<(&[u8], Stamp)>,
        missing: &[bool],
    ) -> Result<(), FileResult> {
        let s = self.settings;
        let (source, stamp) = match source {
            Some(read) => read,
            None => self.read_stamped(read).map_err(|e| read_failed(plan, &e))?,
        };
        let header = pyc::header(self.target.magic, s.mode, stamp);
        let filename = plan.dfile.as_deref().unwrap_or(&plan.runtime);
        let mut previous: Option<(&Path, Vec<u8>)> = None;
        for ((level, pyc_path), &missing) in plan.pycs.iter().zip(missing) {
            self.check_destination(pyc_path, plan.fullname)?;
            let body = self.compile(CompileJob {
                source,
                filename,
                optimize: *level,
            })?;
            let dir = self.dirs.writable(pyc_path, plan.fullname).map_err(|e| match e {
                DirError::Escape(escape) => failed(ErrorKind::OutsideRoot, escape.to_string(), true),
                DirError::Write(error) => write_failed(&error),
            })?;
            let written = match &previous {
                Some((prev_path, prev_body))
                    if s.hardlink_dupes && *prev_body == body && *prev_path != pyc_path.as_path() =>
                {
                    pyc::link_at(dir.handle.as_fd(), prev_path, pyc_path, missing || dir.empty)
                }
                _ => pyc::write_at(
                    dir.handle.as_fd(),
                    pyc_path,
                    &header,
                    &body,
                    Some(plan.meta.mode()),
                    missing || dir.empty,
                ),
            };
            written.map_err(|e| write_failed(&e))?;
            previous = Some((pyc_path.as_path(), body));
        }
        Ok(())
    }

    /// The backend's result for `job`, or the cache's when it has one.
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, FileResult> {
        let Some(cache) = self.cache else {
            return self.backend()?.compile(job).map_err(compile_failed);
        };
        let key = cache.key(&job);
        if let Some(kept) = cache.get(&key) {
            return kept.map_err(compile_failed);
        }
        let result = self.backend()?.compile(job);
        cache.put(&key, &result);
        result.map_err(compile_failed)
    }

    fn backend(&self) -> Result<&dyn Backend, FileResult> {
        let started = self.backend.get_or_init(|| self.start_backend());
        match started {
            Ok(backend) => Ok(backend.as_ref()),
            Err(e) => Err(failed(ErrorKind::WorkerCrashed, e.clone(), true)),
        }
    }

    fn start_backend(&self) -> Result<Box<dyn Backend>, String> {
        start_backend(self.target, self.settings.workers, self.settings.timeout)
    }
}

/// The backend that compiles for `target`: `workers` interpreter workers,
/// or native (watched when there is a `timeout`). Also the Bazel mode's.
pub fn start_backend(target: &Target, workers: usize, timeout: Option<Duration>) -> Result<Box<dyn Backend>, String> {
    match (target.compiler, &target.executable) {
        (Compiler::Cpython, Some(python)) => CpythonPool::start(PoolConfig {
            python: python.clone(),
            workers,
            timeout,
            version: target.minor_version(),
        })
        .map(|pool| Box::new(pool) as Box<dyn Backend>)
        .map_err(|e| e.to_string()),
        (Compiler::Cpython, None) => Err("no interpreter to start workers from".to_owned()),
        (Compiler::Native, _) => native::version_for(target.minor_version())
            .map(|version| {
                let native = NativeBackend::new(version);
                match timeout {
                    Some(limit) => Box::new(WatchedBackend::new(native, limit)) as Box<dyn Backend>,
                    None => Box::new(native),
                }
            })
            .ok_or_else(|| format!("the native backend has no compiler for {}", target.version_string())),
    }
}

fn layout_of(settings: &Settings, target: &Target) -> Layout {
    Layout {
        cache_tag: target.cache_tag.clone(),
        version: target.minor_version(),
        prefix: settings.prefix.clone(),
        cwd: settings.cwd.as_os_str().as_bytes().to_vec(),
        legacy: settings.legacy,
    }
}

/// A file that passed compileall's pre-checks and will be looked at.
struct Plan<'p> {
    fullname: &'p Path,
    runtime: Vec<u8>,
    dfile: Option<Vec<u8>>,
    meta: std::fs::Metadata,
    pycs: Vec<(i64, PathBuf)>,
}

impl Plan<'_> {
    fn fullname_bytes(&self) -> &[u8] {
        self.fullname.as_os_str().as_bytes()
    }
}

/// The source could not be read: compileall prints the OSError.
fn read_failed(plan: &Plan<'_>, error: &std::io::Error) -> FileResult {
    FileResult::Failed {
        kind: ErrorKind::ReadSource,
        message: os_error_text(error, Some(plan.fullname_bytes()), None),
        compiling_printed: true,
        errno: error.raw_os_error(),
    }
}

fn failed(kind: ErrorKind, message: String, compiling_printed: bool) -> FileResult {
    FileResult::Failed {
        kind,
        message,
        compiling_printed,
        errno: None,
    }
}

/// A write that failed: its text as Python prints it, with the OS error.
fn write_failed(error: &pyc::WriteError) -> FileResult {
    FileResult::Failed {
        kind: ErrorKind::Write,
        message: error.to_string(),
        compiling_printed: true,
        errno: error.errno(),
    }
}

pub fn compile_failed(f: CompileFailure) -> FileResult {
    let kind = match f.kind {
        FailureKind::Compile => ErrorKind::Compile,
        FailureKind::Marshal => ErrorKind::Marshal,
        FailureKind::WorkerCrashed => ErrorKind::WorkerCrashed,
        FailureKind::Timeout => ErrorKind::Timeout,
        FailureKind::Unsupported => ErrorKind::Unsupported,
    };
    failed(kind, f.message, true)
}

/// The timestamp stamp of a source with this stat.
pub fn timestamp_of(meta: &std::fs::Metadata) -> Stamp {
    pyc::timestamp_stamp(meta.mtime(), meta.mtime_nsec(), meta.size())
}

/// A pyc's directory as written (`.` for a bare name).
fn parent_of(pyc: &Path) -> &Path {
    match pyc.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}
