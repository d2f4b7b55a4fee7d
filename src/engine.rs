//! The parallel engine: files are claimed in compileall's order by a few
//! threads, each of which decides its file start to finish (the per-file
//! work is `file.rs`), and results are printed in that same order through a
//! reorder buffer.
//!
//! Threads are not scoped: under `--timeout`, a native compile that runs too
//! long is abandoned on its thread (see `watchdog.rs`), which must be able
//! to outlive the run. Each thread says when it is done; an abandoned one is
//! replaced and never heard from again.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::file::{FileDecider, compile_failed};
use crate::prewalk::{Item, ItemKind, Prewalk, walk};
use crate::report::{FileReport, FileResult, Printer};
use crate::settings::{Dests, Settings, lexical_absolute};
use crate::source::SourceOnce;
use crate::target::{Compiler, Target};
use crate::watchdog::{Slot, Watchdog, Watched, timeout_failure, watch_this_thread};

/// The stack of a native thread. serc's recursion over what the guard lets
/// through fits 2 MiB in every case measured, but its code paths are many:
/// reserve far more. Only touched pages cost memory.
const NATIVE_STACK: usize = 256 * 1024 * 1024;

/// Results travel in small batches: one channel message per file costs more
/// wake-ups than checking a fresh file does. A batch also goes when its
/// oldest result has waited this long: output stays live, at about two
/// wake-ups of the printer per thread and second (20 ms made the wake-ups
/// 0.6 syscalls per compiled file).
const BATCH_FILES: usize = 32;
const BATCH_AGE: Duration = Duration::from_millis(250);

pub struct Engine {
    /// The first target's settings: what all targets share (arguments,
    /// levels, prefix, `-j`); see `Settings::for_targets`.
    settings: &'static Settings,
    /// One per target, in the run's order: each decides a file for its own
    /// target.
    deciders: Arc<[FileDecider]>,
    /// How deep the walk goes: the deepest of the targets' (each applies
    /// its own to the files).
    maxlevels: i64,
    threads: usize,
    /// The stack each thread asks for (`None`: the default).
    stack: Option<usize>,
    /// `--timeout` for compiles on the engine's threads (native); the
    /// CPython backend enforces its own on its worker processes.
    watch: Option<Duration>,
}

/// One target of a run, with its own settings and compile cache.
pub struct RunTarget {
    pub settings: &'static Settings,
    pub target: &'static Target,
    pub cache: Option<&'static Cache>,
}

impl Engine {
    /// `targets` is never empty; the first one's settings are the run's.
    pub fn new(targets: &[RunTarget]) -> Engine {
        let settings = targets[0].settings;
        let any = |compiler| targets.iter().any(|t| t.target.compiler == compiler);
        // With Python workers, more threads than workers, so the Rust side
        // (reading, hashing, writing) never leaves a worker idle; native
        // threads compile themselves, on a big stack, watched under
        // `--timeout`.
        let threads = if any(Compiler::Cpython) {
            (settings.workers * 2).clamp(2, 64)
        } else {
            settings.workers.clamp(1, 64)
        };
        let native = any(Compiler::Native);
        Engine {
            settings,
            deciders: {
                let dirs = Arc::new(FileDecider::pyc_dirs(settings, targets[0].target));
                targets
                    .iter()
                    .map(|t| FileDecider::new(t.settings, t.target, t.cache, dirs.clone()))
                    .collect()
            },
            maxlevels: targets
                .iter()
                .map(|t| t.settings.maxlevels)
                .max()
                .unwrap_or(settings.maxlevels),
            threads,
            stack: native.then_some(NATIVE_STACK),
            watch: if native { settings.timeout } else { None },
        }
    }

    pub fn run(&self, printer: &mut Printer, prewalk: Option<Prewalk>) {
        match &self.settings.dests {
            Dests::Paths(paths) => {
                let maxlevels = self.maxlevels;
                let walked = match prewalk {
                    Some(walked) if walked.limit >= maxlevels => walked,
                    _ => Prewalk::new(paths, maxlevels, self.settings.dfile.keep(), self.settings.workers),
                };
                let items = walked.items(maxlevels);
                self.process(items, paths, printer);
            }
            Dests::SysPath(entries) => {
                for (i, entry) in entries.iter().enumerate() {
                    if entry.as_os_str().is_empty() || entry.as_os_str() == "." {
                        printer.skipping_current_directory();
                        continue;
                    }
                    let mut items = Vec::new();
                    walk(
                        entry,
                        0,
                        i,
                        self.settings.dfile.keep(),
                        self.settings.workers,
                        &mut items,
                    );
                    // compile_path stops at the first directory that fails.
                    if !self.process(items, entries, printer) {
                        break;
                    }
                }
            }
        }
    }

    /// Decide every file in parallel; print in item order. Returns false if
    /// any file failed.
    fn process(&self, items: Vec<Item>, args: &[PathBuf], printer: &mut Printer) -> bool {
        let files = items.iter().filter(|i| i.kind == ItemKind::File).count();
        // What will be compiled or checked: other files are skipped by suffix.
        let candidates = items
            .iter()
            .filter(|i| i.kind == ItemKind::File && i.path.as_os_str().as_bytes().ends_with(b".py"))
            .count();
        printer.add_to_total((candidates * self.deciders.len()) as u64);
        let mut repeats = if args.len() > 1 {
            self.repeated_pycs(&items)
        } else {
            Vec::new()
        };
        if !repeats.iter().any(Option::is_some) {
            repeats = Vec::new();
        }
        let any_repeats = !repeats.is_empty();
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            any_repeats,
            done: Completion::new(if any_repeats {
                items.len() * self.deciders.len()
            } else {
                0
            }),
            repeats,
            items,
            args: args.to_vec(),
            next_claim: AtomicUsize::new(0),
            deciders: self.deciders.clone(),
            resume: Mutex::new(Vec::new()),
            resume_pending: AtomicBool::new(false),
            tx,
            stack: self.stack,
            threads: Mutex::new(Vec::new()),
            watchdog: std::sync::OnceLock::new(),
        });
        if let Some(limit) = self.watch {
            let on_abandon = {
                let shared = shared.clone();
                move |abandoned: Arc<Worker>| shared.abandoned(&abandoned, limit)
            };
            let _ = shared.watchdog.set(Watchdog::start(limit, on_abandon));
        }
        let mut live = 0;
        for _ in 0..self.threads.min(files.max(1)) {
            match shared.spawn() {
                Ok(()) => live += 1,
                // With no thread at all nothing would be decided: give up
                // as a failed thread start does anywhere in Rust.
                Err(error) if live == 0 => panic!("cannot start a thread: {error}"),
                Err(_) => break,
            }
        }
        let mut ok = true;
        // Reports by (item, target); printed in item order, each file's
        // targets in the run's order.
        let mut pending = BTreeMap::new();
        let (mut next_print, mut next_target) = (0, 0);
        let (items, targets) = (&shared.items, self.deciders.len());
        let mut emit = |pending: &mut BTreeMap<(usize, usize), FileReport>, printer: &mut Printer| {
            while let Some(item) = items.get(next_print) {
                match item.kind {
                    ItemKind::Listing => printer.listing(item.path.as_os_str().as_bytes()),
                    ItemKind::CantList => printer.cant_list(item.path.as_os_str().as_bytes()),
                    ItemKind::File => {
                        while next_target < targets {
                            let Some(report) = pending.remove(&(next_print, next_target)) else {
                                return;
                            };
                            ok &= !matches!(report.result, FileResult::Failed { .. });
                            printer.file(report);
                            next_target += 1;
                        }
                        next_target = 0;
                    }
                }
                next_print += 1;
            }
        };
        emit(&mut pending, printer);
        while live > 0 {
            match rx.recv() {
                Ok(Message::Reports(batch)) => {
                    pending.extend(batch.into_iter().map(|(i, report)| ((i, report.target), report)));
                    emit(&mut pending, printer);
                }
                Ok(Message::Done) => live -= 1,
                Err(_) => break,
            }
        }
        if let Some(watchdog) = shared.watchdog.get() {
            watchdog.stop();
        }
        // Abandoned threads are left to end on their own; the others have
        // sent their last message and are about to return.
        let threads = std::mem::take(&mut *shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for (worker, handle) in threads {
            if !worker.slot.abandoned()
                && let Err(panic) = handle.join()
            {
                std::panic::resume_unwind(panic);
            }
        }
        ok
    }

    /// For each file item, the earlier item that writes the same pyc file
    /// (the same path spelled `t/a.py` and `./t/a.py`, or reached through a
    /// symlinked directory). Only several arguments can produce these.
    fn repeated_pycs(&self, items: &[Item]) -> Vec<Option<usize>> {
        let mut first: HashMap<PathBuf, usize> = HashMap::new();
        let mut physical_dirs: HashMap<PathBuf, PathBuf> = HashMap::new();
        let level = self.settings.opt_levels[0];
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if item.kind != ItemKind::File {
                    return None;
                }
                let path = &item.path;
                // Targets differ only in the pyc's name: the first tells.
                let runtime = self.deciders[0].runtime_path(path).ok()?;
                let pyc = self.deciders[0].pyc_path(&runtime, level).ok()?;
                let key = self.physical_pyc(&pyc, &mut physical_dirs);
                match first.entry(key) {
                    Entry::Occupied(e) => Some(*e.get()),
                    Entry::Vacant(e) => {
                        e.insert(i);
                        None
                    }
                }
            })
            .collect()
    }

    /// The pyc's location with symlinked directories resolved where they
    /// exist on disk, and `.`/`..`/`//` folded.
    fn physical_pyc(&self, pyc: &Path, cache: &mut HashMap<PathBuf, PathBuf>) -> PathBuf {
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
}

/// What the engine's threads share for one `process` call.
struct Shared {
    items: Vec<Item>,
    args: Vec<PathBuf>,
    /// For each item, the earlier item that writes the same pyc; empty
    /// when no item repeats an earlier one.
    repeats: Vec<Option<usize>>,
    any_repeats: bool,
    done: Completion,
    next_claim: AtomicUsize,
    deciders: Arc<[FileDecider]>,
    /// (item, target) where an abandoned thread's file stopped: its
    /// remaining targets are decided by the next thread to look.
    resume: Mutex<Vec<(usize, usize)>>,
    /// Whether `resume` may hold anything: threads look at it before each
    /// item, and it is almost always empty.
    resume_pending: AtomicBool,
    tx: Sender<Message>,
    stack: Option<usize>,
    /// Every thread started, to be joined unless abandoned.
    threads: Mutex<Vec<(Arc<Worker>, JoinHandle<()>)>>,
    watchdog: std::sync::OnceLock<Arc<Watchdog<Worker>>>,
}

enum Message {
    Reports(Vec<(usize, FileReport)>),
    /// A thread sent its last reports and ends (also when it panicked).
    Done,
}

/// One engine thread's state: the item it works on and the reports it has
/// not sent yet, which the watchdog sends for it if it is abandoned.
#[derive(Default)]
struct Worker {
    slot: Slot,
    /// The item and target being decided.
    current: AtomicUsize,
    current_target: AtomicUsize,
    batch: Mutex<Batch>,
}

struct Batch {
    reports: Vec<(usize, FileReport)>,
    since: Instant,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            reports: Vec::new(),
            since: Instant::now(),
        }
    }
}

impl Watched for Worker {
    fn slot(&self) -> &Slot {
        &self.slot
    }
}

impl Worker {
    fn batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends `Done` when its thread ends, however it ends, so the engine never
/// waits for a thread that died.
struct SaysDone<'a> {
    shared: &'a Shared,
    worker: &'a Worker,
}

impl Drop for SaysDone<'_> {
    fn drop(&mut self) {
        if self.worker.slot.abandoned() {
            return;
        }
        let last = std::mem::take(&mut self.worker.batch().reports);
        let _ = self.shared.tx.send(Message::Reports(last));
        let _ = self.shared.tx.send(Message::Done);
    }
}

impl Shared {
    fn spawn(self: &Arc<Shared>) -> std::io::Result<()> {
        let worker = Arc::new(Worker::default());
        let (shared, mine) = (self.clone(), worker.clone());
        let work = move || shared.decide(&mine);
        let builder = std::thread::Builder::new().name("precompyle".to_owned());
        let builder = match self.stack {
            Some(size) => builder.stack_size(size),
            None => builder,
        };
        // A system that refuses the reservation (strict overcommit, a
        // ulimit) fails the spawn before running anything: retry with the
        // default stack rather than decide nothing.
        let work = Arc::new(Mutex::new(Some(work)));
        let again = work.clone();
        let handle = builder.spawn(move || run_once(&work)).or_else(|_| {
            std::thread::Builder::new()
                .name("precompyle".to_owned())
                .spawn(move || run_once(&again))
        })?;
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((worker.clone(), handle));
        if let Some(watchdog) = self.watchdog.get() {
            watchdog.watch(worker);
        }
        Ok(())
    }

    /// A thread's life: claim the next item, decide it for each target,
    /// queue the reports.
    fn decide(&self, worker: &Arc<Worker>) {
        let _done = SaysDone { shared: self, worker };
        if self.watchdog.get().is_some() {
            watch_this_thread(worker.clone());
        }
        loop {
            if crate::run::interrupted() {
                break;
            }
            let resumed = if self.resume_pending.load(Ordering::Acquire) {
                let mut resume = self.resume.lock().unwrap_or_else(PoisonError::into_inner);
                let next = resume.pop();
                self.resume_pending.store(!resume.is_empty(), Ordering::Release);
                next
            } else {
                None
            };
            let (i, first_target) = match resumed {
                Some(at) => at,
                None => (self.next_claim.fetch_add(1, Ordering::Relaxed), 0),
            };
            let Some(item) = self.items.get(i) else { break };
            if item.kind != ItemKind::File {
                continue;
            }
            worker.current.store(i, Ordering::Relaxed);
            let source = SourceOnce::new(&item.path);
            for (k, decider) in self.deciders.iter().enumerate().skip(first_target) {
                worker.current_target.store(k, Ordering::Relaxed);
                let report = self.decide_one(i, k, decider, &source);
                if !self.queue(worker, i, report) {
                    return;
                }
            }
        }
    }

    /// Item `i` for target `k`; the report says which target it is for.
    fn decide_one(&self, i: usize, k: usize, decider: &FileDecider, source: &SourceOnce<'_>) -> FileReport {
        let item = &self.items[i];
        let skipped = |result| FileReport {
            path: item.path.as_os_str().as_bytes().to_vec(),
            target: k,
            warning: None,
            result,
        };
        if !item.within(decider.maxlevels()) {
            return skipped(FileResult::Skipped);
        }
        match self.repeats.get(i).copied().flatten() {
            // compileall meets this pyc a second time, finds it fresh and
            // says nothing, unless the first attempt failed.
            Some(first) if self.done.wait_succeeded(self.slot(first, k)) => skipped(FileResult::Fresh),
            _ => FileReport {
                target: k,
                ..decider.process_file(source, item.dir_arg().map(|a| self.args[a].as_path()))
            },
        }
    }

    /// Where (item, target) is in `done`.
    fn slot(&self, i: usize, k: usize) -> usize {
        i * self.deciders.len() + k
    }

    /// Put a report in the thread's batch, sending the batch when it is
    /// full or old. False when the thread must end: it was abandoned (the
    /// watchdog reported this file and sent the batch) or nobody listens.
    fn queue(&self, worker: &Worker, i: usize, report: FileReport) -> bool {
        let k = report.target;
        let mut batch = worker.batch();
        if worker.slot.abandoned() {
            return false;
        }
        if self.any_repeats {
            self.done
                .finish(self.slot(i, k), !matches!(report.result, FileResult::Failed { .. }));
        }
        batch.reports.push((i, report));
        if batch.reports.len() >= BATCH_FILES || batch.since.elapsed() > BATCH_AGE {
            let full = std::mem::take(&mut *batch);
            drop(batch);
            if self.tx.send(Message::Reports(full.reports)).is_err() {
                return false;
            }
        }
        true
    }

    /// The watchdog gave up on `worker`'s compile: report its file as timed
    /// out for that target, send the reports it held, leave the file's
    /// other targets to the next thread, and put a new thread in its place.
    fn abandoned(self: &Arc<Shared>, worker: &Worker, limit: Duration) {
        let i = worker.current.load(Ordering::Relaxed);
        let k = worker.current_target.load(Ordering::Relaxed);
        let mut reports = std::mem::take(&mut worker.batch().reports);
        let path = self.items[i].path.as_os_str().as_bytes().to_vec();
        reports.push((
            i,
            FileReport {
                path,
                target: k,
                warning: None,
                result: compile_failed(timeout_failure(limit)),
            },
        ));
        if self.any_repeats {
            self.done.finish(self.slot(i, k), false);
        }
        if k + 1 < self.deciders.len() {
            let mut resume = self.resume.lock().unwrap_or_else(PoisonError::into_inner);
            resume.push((i, k + 1));
            self.resume_pending.store(true, Ordering::Release);
        }
        let _ = self.tx.send(Message::Reports(reports));
        if self.spawn().is_err() {
            // The run goes on with one thread fewer.
            let _ = self.tx.send(Message::Done);
        }
    }
}

fn run_once(work: &Mutex<Option<impl FnOnce()>>) {
    let taken = work.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(work) = taken {
        work();
    }
}

/// Which items are finished and whether they succeeded, for items that must
/// wait for an earlier one.
struct Completion {
    state: Vec<AtomicU8>,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Completion {
    const PENDING: u8 = 0;
    const SUCCEEDED: u8 = 1;
    const FAILED: u8 = 2;

    fn new(len: usize) -> Completion {
        Completion {
            state: (0..len).map(|_| AtomicU8::new(Self::PENDING)).collect(),
            lock: Mutex::new(()),
            changed: Condvar::new(),
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
