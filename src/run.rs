//! The pipeline: discover candidates in compileall's order, decide per file in
//! parallel (freshness, compile, write), and hand each result to the printer
//! in the order a sequential compileall would print it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::Instant;

use clap::Parser;

use crate::backend::cpython::{CpythonPool, PoolConfig};
use crate::backend::native::{self, CompileThreads, NativeBackend};
use crate::backend::{Backend, CompileFailure, CompileJob, FailureKind};
use crate::cli::Cli;
use crate::destination::{Destinations, Escape};
use crate::dfile::Dfile;
use crate::discover::{Event, walk_dir};
use crate::layout::Layout;
use crate::pyc::{self, InvalidationMode, Staleness, Stamp};
use crate::pyrepr::os_error_text;
use crate::report::{ErrorKind, FileReport, FileResult, Printer, fatal};
use crate::select::select;
use crate::settings::{Dests, Environment, Settings, lexical_absolute};
use crate::target::{Compiler, Target};

/// Set by the SIGINT handler; workers stop taking new files.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let env = Environment::read();
    // The interpreter starts while the tree is walked: neither needs the other.
    let (backend, wanted, python) = (cli.backend, cli.target, cli.python.clone());
    let probe = std::thread::spawn(move || select(backend, wanted, python.as_deref(), &Target::probe));
    let flist = cli.flist.clone();
    let file_list = flist.as_deref().map(read_file_list).transpose();
    let prewalk = match &file_list {
        Ok(list) if !cli.paths.is_empty() || cli.flist.is_some() => {
            let mut paths: Vec<PathBuf> = cli.paths.iter().map(PathBuf::from).collect();
            paths.extend(list.iter().flatten().cloned());
            Some(Prewalk::new(&paths, walk_limit(&cli)))
        }
        _ => None,
    };
    let target = match probe.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
        Ok(t) => t,
        Err(e) => {
            fatal(&e);
            return ExitCode::from(2);
        }
    };
    crate::pyrepr::set_target_version(target.minor_version());
    let file_list = match file_list {
        Ok(list) => list.unwrap_or_default(),
        Err(FileListError::NotUtf8) => {
            // compileall dies with UnicodeDecodeError here, compiling nothing.
            let list = flist.as_deref().unwrap_or_default();
            fatal(&format!("the file list {} is not UTF-8", list.to_string_lossy()));
            return ExitCode::from(1);
        }
        Err(FileListError::Unreadable) => {
            let s = settings_or_exit(cli, &env, &target, Vec::new());
            let Ok(settings) = s else {
                return ExitCode::from(2);
            };
            let mut printer = printer_for(&settings);
            printer.file_list_error(flist.as_deref().unwrap_or_default());
            return ExitCode::from(printer.finish(&target, started.elapsed(), false));
        }
    };
    let Ok(settings) = settings_or_exit(cli, &env, &target, file_list) else {
        return ExitCode::from(2);
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let mut printer = printer_for(&settings);
    let runner = Runner::new(&settings, &target);
    runner.run(&mut printer, prewalk);
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    let code = printer.finish(&target, started.elapsed(), interrupted);
    ExitCode::from(if interrupted { 130 } else { code })
}

/// How deep to walk before the target is known: the flags' depth, or
/// compileall's default for 3.9+ (the recursion limit, 1000). A smaller
/// final depth (3.8's 10) is applied to the walked items afterwards; a
/// larger one (a raised recursion limit) walks again.
fn walk_limit(cli: &Cli) -> i64 {
    cli.depth_flag().unwrap_or(1000)
}

fn settings_or_exit(cli: Cli, env: &Environment, target: &Target, list: Vec<PathBuf>) -> Result<Settings, ()> {
    Settings::new(cli, env, target, list).map_err(|e| fatal(&e))
}

fn printer_for(s: &Settings) -> Printer {
    Printer::new(s.quiet, s.format, s.check, s.progress, s.color)
}

/// Why the `-i` list gave no paths.
enum FileListError {
    /// compileall prints `Error reading file list FILE` and exits 1.
    Unreadable,
    /// compileall (3.10+) dies with UnicodeDecodeError and exits 1.
    NotUtf8,
}

/// compileall's `-i`: the list is read as UTF-8 text with universal
/// newlines, and each line stripped of whitespace as `str.strip()` strips it;
/// an empty line stays as the argument `''`.
fn read_file_list(list: &std::ffi::OsStr) -> Result<Vec<PathBuf>, FileListError> {
    let mut data = Vec::new();
    let read = if list == "-" {
        std::io::stdin().lock().read_to_end(&mut data)
    } else {
        std::fs::File::open(list).and_then(|mut f| f.read_to_end(&mut data))
    };
    read.map_err(|_| FileListError::Unreadable)?;
    let text = std::str::from_utf8(&data).map_err(|_| FileListError::NotUtf8)?;
    Ok(python_text_lines(text)
        .map(|l| PathBuf::from(l.trim_matches(is_python_space)))
        .collect())
}

/// Lines as Python's text-mode iteration yields them: `\r\n`, `\r` and `\n`
/// all end a line.
fn python_text_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).map_or(rest.len(), |i| i);
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// `str.isspace()`: Unicode White_Space plus the ASCII separators
/// U+001C..U+001F that Python also counts.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// One thing to report, in compileall's order.
struct Item {
    kind: ItemKind,
    path: PathBuf,
    /// Levels below the argument it came from (0: the argument itself).
    depth: usize,
    /// Index of the FILE|DIR argument it was found under; `None` for a file
    /// argument.
    dir_arg: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Listing,
    CantList,
    File,
}

/// The FILE|DIR arguments walked before the target was known.
pub struct Prewalk {
    items: Vec<Item>,
    limit: i64,
}

impl Prewalk {
    fn new(paths: &[PathBuf], limit: i64) -> Prewalk {
        let mut items = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            if path.is_file() {
                items.push(Item {
                    kind: ItemKind::File,
                    path: path.clone(),
                    depth: 0,
                    dir_arg: None,
                });
            } else {
                walk(path, limit, i, &mut items);
            }
        }
        Prewalk { items, limit }
    }

    /// The items compileall would meet with `maxlevels`: directories listed
    /// down to that depth, files one level further.
    fn items(self, maxlevels: i64) -> Vec<Item> {
        if maxlevels >= self.limit {
            return self.items;
        }
        let max = usize::try_from(maxlevels.max(0)).unwrap_or(0);
        self.items
            .into_iter()
            .filter(|item| match item.kind {
                ItemKind::File => item.dir_arg.is_none() || item.depth <= max + 1,
                ItemKind::Listing | ItemKind::CantList => item.depth <= max,
            })
            .collect()
    }
}

/// compileall's walk of one directory argument, as items with their depth.
fn walk(dir: &Path, maxlevels: i64, arg: usize, items: &mut Vec<Item>) {
    let mut events = Vec::new();
    walk_dir(dir, maxlevels, &mut events);
    let root = dir.as_os_str().as_bytes();
    items.extend(events.into_iter().map(|event| {
        let (kind, path) = match event {
            Event::Listing(p) => (ItemKind::Listing, p),
            Event::CantList(p) => (ItemKind::CantList, p),
            Event::File(p) => (ItemKind::File, p),
        };
        let depth = depth_below(root, path.as_os_str().as_bytes());
        Item {
            kind,
            path,
            depth,
            dir_arg: Some(arg),
        }
    }));
}

/// How many names `os.path.join` added to `root` to build `path` (names
/// never contain `/`; the first join adds a `/` unless `root` ends with one).
fn depth_below(root: &[u8], path: &[u8]) -> usize {
    let added = &path[root.len().min(path.len())..];
    if added.is_empty() {
        return 0;
    }
    let added = added.strip_prefix(b"/").unwrap_or(added);
    1 + added.iter().filter(|&&b| b == b'/').count()
}

struct Runner<'a> {
    settings: &'a Settings,
    target: &'a Target,
    layout: Layout,
    /// Started on first need, so an all-fresh run never starts Python.
    backend: OnceLock<Result<Box<dyn Backend>, String>>,
    threads: usize,
    destinations: Destinations,
    /// Directories already written into: whether they lie inside their
    /// destination root (checked once each, before they are created).
    prepared: std::sync::Mutex<std::collections::HashMap<PathBuf, Result<(), Escape>>>,
}

impl<'a> Runner<'a> {
    fn new(settings: &'a Settings, target: &'a Target) -> Runner<'a> {
        let layout = Layout {
            cache_tag: target.cache_tag.clone(),
            version: target.minor_version(),
            prefix: settings.prefix.clone(),
            cwd: settings.cwd.as_os_str().as_bytes().to_vec(),
            legacy: settings.legacy,
        };
        let threads = match target.compiler {
            // More threads than Python workers, so the Rust side (reading,
            // hashing, writing) never leaves a worker idle.
            Compiler::Cpython => (settings.workers * 2).clamp(2, 64),
            // Each thread compiles itself.
            Compiler::Native => settings.workers.clamp(1, 64),
        };
        Runner {
            settings,
            target,
            backend: OnceLock::new(),
            threads,
            destinations: Destinations::new(layout.written_prefix(), settings.root.as_deref(), &settings.cwd),
            layout,
            prepared: Default::default(),
        }
    }

    fn run(&self, printer: &mut Printer, prewalk: Option<Prewalk>) {
        match &self.settings.dests {
            Dests::Paths(paths) => {
                let maxlevels = self.settings.maxlevels;
                let walked = match prewalk {
                    Some(walked) if walked.limit >= maxlevels => walked,
                    _ => Prewalk::new(paths, maxlevels),
                };
                let items = walked.items(maxlevels);
                self.process(&items, paths, printer);
            }
            Dests::SysPath(entries) => {
                for (i, entry) in entries.iter().enumerate() {
                    if entry.as_os_str().is_empty() || entry.as_os_str() == "." {
                        printer.skipping_current_directory();
                        continue;
                    }
                    let mut items = Vec::new();
                    walk(entry, 0, i, &mut items);
                    // compile_path stops at the first directory that fails.
                    if !self.process(&items, entries, printer) {
                        break;
                    }
                }
            }
        }
    }

    /// Decide every file in parallel; print in item order. Returns false if
    /// any file failed.
    fn process(&self, items: &[Item], args: &[PathBuf], printer: &mut Printer) -> bool {
        let files = items.iter().filter(|i| i.kind == ItemKind::File).count();
        printer.add_to_total(files as u64);
        let repeats = if args.len() > 1 {
            self.repeated_pycs(items)
        } else {
            vec![None; items.len()]
        };
        let done = Completion::new(items.len());
        let next_claim = AtomicUsize::new(0);
        // Results travel in small batches: one channel message per file costs
        // more wake-ups than checking a fresh file does.
        let (tx, rx) = mpsc::channel::<Vec<(usize, FileReport)>>();
        let any_repeats = repeats.iter().any(Option::is_some);
        let mut ok = true;
        std::thread::scope(|scope| {
            for _ in 0..self.threads.min(files.max(1)) {
                let tx = tx.clone();
                let (next_claim, done, repeats) = (&next_claim, &done, &repeats);
                let decide = move || {
                    let mut batch = Vec::new();
                    let mut last_send = Instant::now();
                    loop {
                        if INTERRUPTED.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next_claim.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        if item.kind != ItemKind::File {
                            continue;
                        }
                        let (path, dir_arg) = (&item.path, item.dir_arg);
                        let report = match repeats[i] {
                            // compileall meets this pyc a second time, finds it
                            // fresh and says nothing, unless the first attempt failed.
                            Some(first) if done.wait_succeeded(first) => FileReport {
                                path: path.as_os_str().as_bytes().to_vec(),
                                warning: None,
                                result: FileResult::Fresh,
                            },
                            _ => self.process_file(path, dir_arg.map(|a| args[a].as_path())),
                        };
                        if any_repeats {
                            done.finish(i, !matches!(report.result, FileResult::Failed { .. }));
                        }
                        batch.push((i, report));
                        if batch.len() >= 32 || last_send.elapsed() > std::time::Duration::from_millis(20) {
                            if tx.send(std::mem::take(&mut batch)).is_err() {
                                return;
                            }
                            last_send = Instant::now();
                        }
                    }
                    let _ = tx.send(batch);
                };
                scope.spawn(decide);
            }
            drop(tx);
            let mut pending = BTreeMap::new();
            let mut next_print = 0;
            let mut emit = |pending: &mut BTreeMap<usize, FileReport>, printer: &mut Printer| {
                while let Some(item) = items.get(next_print) {
                    match item.kind {
                        ItemKind::Listing => printer.listing(item.path.as_os_str().as_bytes()),
                        ItemKind::CantList => printer.cant_list(item.path.as_os_str().as_bytes()),
                        ItemKind::File => match pending.remove(&next_print) {
                            Some(report) => {
                                ok &= !matches!(report.result, FileResult::Failed { .. });
                                printer.file(report)
                            }
                            None => return,
                        },
                    }
                    next_print += 1;
                }
            };
            emit(&mut pending, printer);
            for batch in rx {
                pending.extend(batch);
                emit(&mut pending, printer);
            }
        });
        ok
    }

    /// For each file item, the earlier item that writes the same pyc file
    /// (the same path spelled `t/a.py` and `./t/a.py`, or reached through a
    /// symlinked directory). Only several arguments can produce these.
    fn repeated_pycs(&self, items: &[Item]) -> Vec<Option<usize>> {
        let mut first: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
        let mut physical_dirs: std::collections::HashMap<PathBuf, PathBuf> = std::collections::HashMap::new();
        let level = self.settings.opt_levels[0];
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if item.kind != ItemKind::File {
                    return None;
                }
                let path = &item.path;
                let runtime = self.runtime_path(path).ok()?;
                let pyc = self.pyc_path(&runtime, level).ok()?;
                let key = self.physical_pyc(&pyc, &mut physical_dirs);
                match first.entry(key) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(i);
                        None
                    }
                }
            })
            .collect()
    }

    /// The pyc's location with symlinked directories resolved where they
    /// exist on disk, and `.`/`..`/`//` folded.
    fn physical_pyc(&self, pyc: &Path, cache: &mut std::collections::HashMap<PathBuf, PathBuf>) -> PathBuf {
        let abs = lexical_absolute(pyc, &self.settings.cwd);
        let (Some(dir), Some(name)) = (pyc.parent(), pyc.file_name()) else {
            return abs;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let source_dir = if self.settings.prefix.is_none() && !self.settings.legacy {
            dir.parent()
        } else {
            Some(dir)
        };
        let Some(source_dir) = source_dir else { return abs };
        let source_dir = if source_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            source_dir
        };
        let physical = cache
            .entry(source_dir.to_owned())
            .or_insert_with(|| {
                std::fs::canonicalize(source_dir).unwrap_or_else(|_| lexical_absolute(source_dir, &self.settings.cwd))
            })
            .clone();
        let rest = dir.strip_prefix(source_dir).unwrap_or(Path::new(""));
        physical.join(rest).join(name)
    }

    fn process_file(&self, fullname: &Path, dir_arg: Option<&Path>) -> FileReport {
        let mut report = FileReport {
            path: fullname.as_os_str().as_bytes().to_vec(),
            warning: None,
            result: FileResult::Skipped,
        };
        report.result = match self.prepare(fullname, dir_arg, &mut report.warning) {
            Ok(Some(plan)) => self.build(plan),
            Ok(None) => FileResult::Skipped,
            Err(failed) => failed,
        };
        report
    }

    /// compile_file's checks before compiling, in its order (but for the
    /// suffix, see below): dfile, `-x`, `-e`, suffix, regular file, pyc paths.
    fn prepare<'p>(
        &self,
        fullname: &'p Path,
        dir_arg: Option<&Path>,
        warning: &mut Option<String>,
    ) -> Result<Option<Plan<'p>>, FileResult> {
        let s = self.settings;
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
        let Ok(meta) = std::fs::metadata(fullname) else {
            return Ok(None);
        };
        if !meta.is_file() {
            return Ok(None);
        }
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

    /// The path the file will have at run time: itself, or under `--root`
    /// the absolute path with the root removed.
    fn runtime_path(&self, path: &Path) -> Result<Vec<u8>, FileResult> {
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
    fn pyc_path(&self, runtime: &[u8], level: i64) -> Result<PathBuf, FileResult> {
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

    fn build(&self, plan: Plan<'_>) -> FileResult {
        let s = self.settings;
        let mut source: Option<(Vec<u8>, Stamp)> = None;
        if !s.force || s.check {
            let stamp = match self.stamp_before_compiling(&plan, &mut source) {
                Ok(stamp) => stamp,
                Err(e) => return read_failed(&plan, &e),
            };
            let expected = pyc::header(self.target.magic, s.mode, stamp);
            let stale: Vec<(PathBuf, Staleness)> = plan
                .pycs
                .iter()
                .filter_map(|(_, pyc)| pyc::check_fresh(pyc, &expected).err().map(|why| (pyc.clone(), why)))
                .collect();
            if stale.is_empty() {
                return FileResult::Fresh;
            }
            if s.check {
                return FileResult::Stale(stale);
            }
        }
        match self.compile_and_write(&plan, source) {
            Ok(()) => FileResult::Compiled,
            Err(failure) => failure,
        }
    }

    /// The header stamp the pyc must carry now. Timestamp mode needs only the
    /// stat; hash modes read the source, which is kept with its stamp for the
    /// compile.
    fn stamp_before_compiling(&self, plan: &Plan<'_>, source: &mut Option<(Vec<u8>, Stamp)>) -> std::io::Result<Stamp> {
        if self.settings.mode == InvalidationMode::Timestamp {
            return Ok(timestamp_of(&plan.meta));
        }
        let (bytes, stamp) = self.read_stamped(plan)?;
        *source = Some((bytes, stamp));
        Ok(stamp)
    }

    /// The source bytes and the stamp that describes exactly those bytes.
    fn read_stamped(&self, plan: &Plan<'_>) -> std::io::Result<(Vec<u8>, Stamp)> {
        if self.settings.mode != InvalidationMode::Timestamp {
            let (bytes, _) = read_source(plan.fullname)?;
            let hash = pyc::source_hash(self.target.magic, self.target.hash_algo, &bytes);
            return Ok((bytes, Stamp::Hash(hash)));
        }
        let (bytes, meta) = read_settled(plan.fullname)?;
        Ok((bytes, timestamp_of(&meta)))
    }

    fn compile_and_write(&self, plan: &Plan<'_>, source: Option<(Vec<u8>, Stamp)>) -> Result<(), FileResult> {
        let s = self.settings;
        let (source, stamp) = match source {
            Some(read) => read,
            None => self.read_stamped(plan).map_err(|e| read_failed(plan, &e))?,
        };
        let header = pyc::header(self.target.magic, s.mode, stamp);
        let backend = self.backend()?;
        let filename = plan.dfile.as_deref().unwrap_or(&plan.runtime);
        let mut previous: Option<(&Path, Vec<u8>)> = None;
        for (level, pyc_path) in &plan.pycs {
            pyc::check_destination(pyc_path).map_err(|e| failed(ErrorKind::Destination, e.to_string(), true))?;
            let body = backend
                .compile(CompileJob {
                    source: &source,
                    filename,
                    optimize: *level,
                })
                .map_err(compile_failed)?;
            self.prepare_dir(pyc_path, plan.fullname)?;
            let written = match &previous {
                Some((prev_path, prev_body))
                    if s.hardlink_dupes && *prev_body == body && *prev_path != pyc_path.as_path() =>
                {
                    pyc::link_atomic(prev_path, pyc_path)
                }
                _ => pyc::write_atomic(pyc_path, &header, &body, Some(plan.meta.mode())),
            };
            written.map_err(|e| write_failed(&e))?;
            previous = Some((pyc_path.as_path(), body));
        }
        Ok(())
    }

    /// Make the pyc's directory ready: refuse it if it lies outside its
    /// destination root (checked once per directory, before anything is
    /// created), create it as py_compile does, and on the first write into
    /// it remove the temp files killed runs left there.
    fn prepare_dir(&self, pyc_path: &Path, source: &Path) -> Result<(), FileResult> {
        let dir = pyc_path.parent().unwrap_or(Path::new(""));
        let known = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dir)
            .cloned();
        let first = known.is_none();
        let verdict = known.unwrap_or_else(|| {
            let verdict = self.destinations.check(pyc_path, source);
            let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
            prepared.entry(dir.to_owned()).or_insert(verdict).clone()
        });
        verdict.map_err(|e| failed(ErrorKind::OutsideRoot, e.to_string(), true))?;
        if dir.as_os_str().is_empty() {
            return Ok(());
        }
        pyc::create_dirs(dir).map_err(|e| write_failed(&e))?;
        if first {
            pyc::sweep_stale_temps(dir);
        }
        Ok(())
    }

    fn backend(&self) -> Result<&dyn Backend, FileResult> {
        let started = self.backend.get_or_init(|| self.start_backend());
        match started {
            Ok(backend) => Ok(backend.as_ref()),
            Err(e) => Err(failed(ErrorKind::WorkerCrashed, e.clone(), true)),
        }
    }

    fn start_backend(&self) -> Result<Box<dyn Backend>, String> {
        let target = self.target;
        match (target.compiler, &target.executable) {
            (Compiler::Cpython, Some(python)) => CpythonPool::start(PoolConfig {
                python: python.clone(),
                workers: self.settings.workers,
                timeout: self.settings.timeout,
                version: target.minor_version(),
            })
            .map(|pool| Box::new(pool) as Box<dyn Backend>)
            .map_err(|e| e.to_string()),
            (Compiler::Cpython, None) => Err("no interpreter to start workers from".to_owned()),
            (Compiler::Native, _) => native::version_for(target.minor_version())
                .map(|version| {
                    let native = std::sync::Arc::new(NativeBackend::new(version));
                    Box::new(CompileThreads::new(native, self.settings.timeout)) as Box<dyn Backend>
                })
                .ok_or_else(|| format!("the native backend has no compiler for {}", target.version_string())),
        }
    }
}

/// Which items are finished and whether they succeeded, for items that must
/// wait for an earlier one.
struct Completion {
    state: Vec<std::sync::atomic::AtomicU8>,
    lock: std::sync::Mutex<()>,
    changed: std::sync::Condvar,
}

impl Completion {
    const PENDING: u8 = 0;
    const SUCCEEDED: u8 = 1;
    const FAILED: u8 = 2;

    fn new(len: usize) -> Completion {
        Completion {
            state: (0..len)
                .map(|_| std::sync::atomic::AtomicU8::new(Self::PENDING))
                .collect(),
            lock: std::sync::Mutex::new(()),
            changed: std::sync::Condvar::new(),
        }
    }

    fn finish(&self, i: usize, succeeded: bool) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.state[i].store(if succeeded { Self::SUCCEEDED } else { Self::FAILED }, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Block until item `i` is finished (it was claimed earlier, so it is
    /// being worked on) and say whether it succeeded.
    fn wait_succeeded(&self, i: usize) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match self.state[i].load(Ordering::SeqCst) {
                Self::PENDING => guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner()),
                state => return state == Self::SUCCEEDED,
            }
        }
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

fn compile_failed(f: CompileFailure) -> FileResult {
    let kind = match f.kind {
        FailureKind::Compile => ErrorKind::Compile,
        FailureKind::Marshal => ErrorKind::Marshal,
        FailureKind::WorkerCrashed => ErrorKind::WorkerCrashed,
        FailureKind::Timeout => ErrorKind::Timeout,
        FailureKind::Unsupported => ErrorKind::Unsupported,
    };
    failed(kind, f.message, true)
}

fn timestamp_of(meta: &std::fs::Metadata) -> Stamp {
    pyc::timestamp_stamp(meta.mtime(), meta.mtime_nsec(), meta.size())
}

/// Read the whole source and the stat that describes exactly those bytes. If
/// the file changes while we read it (mtime or size differ before and after,
/// or the size is not what we read), read again: a header must never claim
/// that content it was not compiled from is fresh.
fn read_source(path: &Path) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    for _ in 0..3 {
        let mut file = std::fs::File::open(path)?;
        let before = file.metadata()?;
        let mut bytes = Vec::with_capacity(before.len() as usize);
        file.read_to_end(&mut bytes)?;
        let after = file.metadata()?;
        let same = before.mtime() == after.mtime()
            && before.mtime_nsec() == after.mtime_nsec()
            && before.size() == after.size()
            && after.size() == bytes.len() as u64;
        if same {
            return Ok((bytes, after));
        }
    }
    Err(std::io::Error::other("the source kept changing while it was read"))
}

/// `read_source` for a timestamp pyc, whose header keeps only whole seconds
/// of the mtime: a source modified in the current second could change again
/// within that second, keeping its size, and CPython would take our pyc as
/// fresh for content it was not compiled from. So such a source is read
/// again once the clock has left its mtime's second: any later change then
/// carries a later second, which the header does not match. (Costs at most
/// about a second, once, for sources written just before the run.)
fn read_settled(path: &Path) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    // File times come from the kernel's coarse clock, which may lag the
    // real one by a tick: leave a margin past the second boundary.
    const MARGIN: std::time::Duration = std::time::Duration::from_millis(20);
    for _ in 0..4 {
        let read = read_source(path)?;
        let Ok(second) = u64::try_from(read.1.mtime()) else {
            return Ok(read);
        };
        let settled = std::time::UNIX_EPOCH + std::time::Duration::from_secs(second + 1) + MARGIN;
        match settled.duration_since(std::time::SystemTime::now()) {
            // A source "from the future" (a clock behind the file system's)
            // cannot be waited out: keep what was read.
            Ok(wait) if wait <= std::time::Duration::from_secs(2) => std::thread::sleep(wait),
            _ => return Ok(read),
        }
    }
    Err(std::io::Error::other("the source kept changing while it was read"))
}

/// Resolve `path` (absolute, run-time) as if `root` were `/`: absolute
/// symlink targets are looked up inside the root, and `..` never climbs out
/// of it. Used for `-e` under `--root`, where the staged tree's links name
/// run-time paths.
pub fn resolve_in_root(path: &Path, root: &Path) -> PathBuf {
    let mut todo: Vec<Vec<u8>> = components(path.as_os_str().as_bytes());
    todo.reverse();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(part);
        let host = root.join(PathBuf::from(OsString::from_vec(done.join(&b'/'))));
        let Ok(target) = std::fs::read_link(&host) else {
            continue;
        };
        hops += 1;
        if hops > 40 {
            break;
        }
        done.pop();
        let target = target.as_os_str().as_bytes();
        if target.starts_with(b"/") {
            done.clear();
        }
        let mut parts = components(target);
        parts.reverse();
        todo.extend(parts);
    }
    let mut out = b"/".to_vec();
    out.extend(done.join(&b'/'));
    root.join(
        PathBuf::from(OsString::from_vec(out))
            .strip_prefix("/")
            .unwrap_or(Path::new("")),
    )
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}
