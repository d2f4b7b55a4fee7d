//! The directories pycs go into, each opened once per run where a pyc is
//! written (or about to be compiled) and kept as a handle: writes go
//! through that handle, by name, so the directory written into is the very
//! one that was checked. Swapping it (or any directory above it) for a
//! symlink after the check cannot redirect a write. Freshness reads a pyc's
//! header by path, as compileall opens it, or through the directory's
//! handle where the thread found one open: opening and closing each
//! directory of an all-fresh run cost more than the path walks they save
//! (13% of the wall time on the corpus, against a handle per directory).
//!
//! A directory is checked for writing once: first as text and with the
//! symlinks of its existing part resolved (`Destinations::check`, before
//! anything is created), then on the open handle itself, whose path the
//! kernel reports (`/proc/self/fd`), against the destination root's. Missing
//! levels are created with `mkdirat` relative to the handle of the level
//! above, which was checked the same way, and opened without following a
//! symlink, so even a directory created by the run cannot be redirected.
//!
//! A directory found missing (asked when a pyc in it was, or one is about
//! to be compiled), or that this run created, holds no pyc this run did
//! not write: its pycs are missing without asking the kernel file by file.
//! A directory that exists is checked for writing the first time a pyc in
//! it is about to be compiled and, if it lies inside its root, swept of
//! the temp files of killed runs: `pyc`'s writes leave a temp only without
//! `O_TMPFILE`, and then only beside a missing pyc, so the next run to
//! reach that source compiles it and sweeps first; an all-fresh run reads
//! no listing.
//!
//! Each thread keeps the directory it used last, so the files it takes in
//! a row from one directory ask no lock; a thread that finds another
//! holding the directory's record reads by path instead of waiting.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use crate::destination::{Destinations, Escape};
use crate::pyc::{self, WriteError};
use crate::settings::lexical_absolute;

/// Open handles kept at most; past it, the handles not in use are closed
/// (and their directories checked again if written into later).
const MAX_OPEN: usize = 256;

pub struct PycDirs {
    /// Tells this run's records from another's in `LAST`.
    id: u64,
    destinations: Destinations,
    cwd: PathBuf,
    /// By the directory's path as the run writes it.
    records: Mutex<HashMap<PathBuf, Arc<Mutex<Record>>>>,
    /// The physical path of each destination root, by its textual one.
    physical_roots: Mutex<HashMap<PathBuf, PathBuf>>,
    /// Records added since handles not in use were last closed.
    added: AtomicUsize,
}

thread_local! {
    /// The directory this thread used last. A thread's files come in walk
    /// order, several from one directory in a row: asking again takes no
    /// lock (two threads in one directory made its record's lock the most
    /// contended of all-fresh runs, 1,100 futex calls on the corpus).
    static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
}

struct Last {
    /// The `PycDirs` it belongs to.
    run: u64,
    dir: PathBuf,
    /// Still the map's: records are never removed.
    record: Arc<Mutex<Record>>,
    /// What `lookup` found, where that holds for the rest of the run:
    /// reading by path is always right (only slower once the record knows
    /// more, which `missing` and `lookup_to_compile` then put here); a
    /// directory that was missing holds only what the run writes; a handle
    /// held here is never closed (only handles nobody holds are).
    found: Option<Lookup>,
}

#[derive(Default)]
struct Record {
    handle: Option<Arc<OwnedFd>>,
    /// Asked whether it exists, after a pyc in it was found missing.
    probed: bool,
    /// Swept of killed runs' temp files (or known to need no sweep).
    swept: bool,
    /// Holds no pyc this run did not write (found missing, or created by
    /// this run).
    empty: bool,
    /// Whether `handle` was checked for writing, and the verdict.
    checked: Option<Result<(), Escape>>,
}

impl Record {
    /// What every thread may take for the rest of the run, if anything: a
    /// directory that holds only what the run writes, or an open handle.
    fn known(&self) -> Option<Lookup> {
        if self.empty {
            Some(Lookup::Empty)
        } else {
            self.handle.clone().map(Lookup::Open)
        }
    }

    /// Open `dir` as this record's handle, or note it missing (what is in
    /// it later, this run wrote); `None` if it cannot be opened otherwise.
    fn open(&mut self, dir: &Path) -> Option<Lookup> {
        match pyc::open_dir(dir) {
            Ok(handle) => {
                let handle = Arc::new(handle);
                self.handle = Some(handle.clone());
                Some(Lookup::Open(handle))
            }
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                self.empty = true;
                Some(Lookup::Empty)
            }
            Err(_) => None,
        }
    }
}

/// A pyc directory as freshness sees it.
#[derive(Clone)]
pub enum Lookup {
    /// The directory holds no pyc this run did not write.
    Empty,
    Open(Arc<OwnedFd>),
    /// No handle is open (or none could be, or another thread holds the
    /// record): ask by path.
    ByPath,
}

/// A directory ready to be written into.
pub struct Writable {
    pub handle: Arc<OwnedFd>,
    /// It holds no pyc this run did not write.
    pub empty: bool,
}

/// Why a directory cannot be written into.
#[derive(Debug)]
pub enum DirError {
    Escape(Escape),
    Write(WriteError),
}

impl PycDirs {
    pub fn new(destinations: Destinations, cwd: &Path) -> PycDirs {
        static IDS: AtomicU64 = AtomicU64::new(0);
        PycDirs {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            destinations,
            cwd: cwd.to_owned(),
            records: Mutex::new(HashMap::new()),
            physical_roots: Mutex::new(HashMap::new()),
            added: Default::default(),
        }
    }

    /// The record of `dir`, and what `lookup` found there if it holds for good.
    fn record(&self, dir: &Path) -> (Arc<Mutex<Record>>, Option<Lookup>) {
        let last = LAST.with_borrow(|last| match last {
            Some(last) if last.run == self.id && last.dir.as_os_str() == dir.as_os_str() => {
                Some((last.record.clone(), last.found.clone()))
            }
            _ => None,
        });
        if let Some(known) = last {
            return known;
        }
        let record = self.record_in_map(dir);
        LAST.set(Some(Last {
            run: self.id,
            dir: dir.to_owned(),
            record: record.clone(),
            found: None,
        }));
        (record, None)
    }

    fn record_in_map(&self, dir: &Path) -> Arc<Mutex<Record>> {
        let mut records = lock(&self.records);
        if let Some(record) = records.get(dir) {
            return record.clone();
        }
        // Each record opens at most one handle.
        if self.added.fetch_add(1, Ordering::Relaxed) % MAX_OPEN == MAX_OPEN - 1 {
            for record in records.values() {
                if let Ok(mut r) = record.try_lock()
                    && r.handle.as_ref().is_some_and(|h| Arc::strong_count(h) == 1)
                {
                    r.handle = None;
                    r.checked = None;
                }
            }
        }
        records.entry(dir.to_owned()).or_default().clone()
    }

    /// The pyc directory `dir` for reading headers: its handle where one is
    /// open, else by path (following symlinks, as compileall's `open(cfile)`
    /// does). A pyc found missing by path is to be reported (`missing`).
    pub fn lookup(&self, dir: &Path) -> Lookup {
        let dir = non_empty(dir);
        let (record, found) = self.record(dir);
        if let Some(found) = found {
            return found;
        }
        let found = match record.try_lock() {
            Ok(r) => r.known().unwrap_or(Lookup::ByPath),
            // Another thread holds the record (opening the directory,
            // writing there): reading by path costs less than waiting.
            Err(TryLockError::WouldBlock) => return Lookup::ByPath,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().known().unwrap_or(Lookup::ByPath),
        };
        self.remember(&record, &found);
        found
    }

    /// Keep what was found for this thread's next file in `record`'s
    /// directory (`Last::found`).
    fn remember(&self, record: &Arc<Mutex<Record>>, found: &Lookup) {
        LAST.with_borrow_mut(|last| {
            if let Some(last) = last.as_mut().filter(|last| Arc::ptr_eq(&last.record, record)) {
                last.found = Some(found.clone());
            }
        });
    }

    /// A pyc in `dir`, read by path, is missing: the first time, ask whether
    /// the directory is. A missing directory holds only what the run writes
    /// from now on, so its other pycs need no look; one that is there is
    /// opened, and its pycs are read through the handle.
    pub fn missing(&self, dir: &Path) {
        let dir = non_empty(dir);
        let (record, _) = self.record(dir);
        let mut r = lock(&record);
        if let Some(known) = r.known() {
            // Another thread got here first: this one stops reading by path.
            drop(r);
            self.remember(&record, &known);
            return;
        }
        if r.probed {
            return;
        }
        r.probed = true;
        if let Some(found) = r.open(dir) {
            drop(r);
            self.remember(&record, &found);
        }
    }

    /// The directory of `pyc` (for `source`), about to be compiled for,
    /// opened if no handle is. The first time, one that exists is checked
    /// for writing and, if it passes, swept of the temp files of killed
    /// runs: such a temp lies beside a missing pyc, so a run that reaches
    /// its source comes here (even if the compile then fails). One outside
    /// the root is left as it is; `writable` refuses it.
    pub fn lookup_to_compile(&self, pyc: &Path, source: &Path) -> Lookup {
        let dir = non_empty(pyc.parent().unwrap_or(Path::new("")));
        let (record, _) = self.record(dir);
        let mut r = lock(&record);
        let Some(found) = r.known().or_else(|| r.open(dir)) else {
            return Lookup::ByPath;
        };
        if let Lookup::Open(handle) = &found
            && !r.swept
            && r.checked.is_none()
        {
            // A refusal stands until the handle is closed (MAX_OPEN); the
            // directory is swept once one passes.
            let verdict = self.check_open(handle, pyc, source);
            if verdict.is_ok() {
                pyc::sweep_stale_temps_at(handle.as_fd());
                r.swept = true;
            }
            r.checked = Some(verdict);
        }
        drop(r);
        self.remember(&record, &found);
        found
    }

    /// The directory of `pyc` (the pyc path for `source`, both as the run
    /// writes them), checked to lie inside its destination root and
    /// created as py_compile's `os.makedirs` would. On the first write into
    /// a directory that existed (and passed), the temp files of killed runs
    /// are removed.
    pub fn writable(&self, pyc: &Path, source: &Path) -> Result<Writable, DirError> {
        let dir = non_empty(pyc.parent().unwrap_or(Path::new("")));
        let (record, _) = self.record(dir);
        let mut r = lock(&record);
        if let (Some(Ok(())), Some(handle)) = (&r.checked, &r.handle) {
            return Ok(Writable {
                handle: handle.clone(),
                empty: r.empty,
            });
        }
        if let Some(Err(escape)) = &r.checked {
            // Found for another pyc of this directory, maybe: name this one.
            return Err(DirError::Escape(Escape {
                pyc: pyc.to_owned(),
                ..escape.clone()
            }));
        }
        if let Err(escape) = self.destinations.check_text(pyc, source) {
            r.checked = Some(Err(escape.clone()));
            return Err(DirError::Escape(escape));
        }
        let root = self.destinations.root(source);
        let opened = match r.handle.take() {
            Some(handle) => Ok(handle),
            // Found missing (by `missing` or `lookup_to_compile`): no need to ask again.
            None if r.empty => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            None => pyc::open_dir(dir).map(Arc::new),
        };
        // Whether the handle still needs its check against the root: not
        // for levels `create` made below an ancestor it checked.
        let (handle, created, unchecked) = match opened {
            Ok(handle) => (handle, false, true),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                let (handle, checked) = self.create(dir, pyc, source, &root)?;
                (Arc::new(handle), true, !checked)
            }
            Err(_) => {
                // Not a directory, no permission…: py_compile's makedirs
                // gives the error Python would, or its temp file's open.
                self.create_by_path(dir, pyc, source)?;
                (Arc::new(open_or_fail_as_write(dir, pyc)?), false, true)
            }
        };
        if unchecked && !self.handle_inside(&handle, &[], &root, pyc, source) {
            let escape = self.escape(pyc, root);
            r.checked = Some(Err(escape.clone()));
            return Err(DirError::Escape(escape));
        }
        if !created && !r.swept {
            pyc::sweep_stale_temps_at(handle.as_fd());
        }
        r.swept = true;
        r.empty |= created;
        r.handle = Some(handle.clone());
        r.checked = Some(Ok(()));
        Ok(Writable { handle, empty: r.empty })
    }

    /// Create the missing levels of `dir` below its deepest existing
    /// ancestor, each with `mkdirat` in the level above and opened without
    /// following symlinks, after checking that ancestor's handle against
    /// `root` (then the new levels need no check of their own: true). A
    /// path that is not plain (`.`, `..`, `//`) is left to `os.makedirs`'s
    /// own steps, whose error names a level as Python would (false).
    fn create(&self, dir: &Path, pyc: &Path, source: &Path, root: &Path) -> Result<(OwnedFd, bool), DirError> {
        if !plain(dir) {
            self.create_by_path(dir, pyc, source)?;
            return Ok((open_or_fail_as_write(dir, pyc)?, false));
        }
        let mut missing: Vec<&OsStr> = Vec::new();
        let mut level = dir;
        let handle = loop {
            let parent = match level.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                Some(_) => Path::new("."),
                None => return Ok((pyc::open_dir(level).map_err(|source| io_error(level, source))?, false)),
            };
            missing.push(level.file_name().unwrap_or(OsStr::new(".")));
            match pyc::open_dir(parent) {
                Ok(handle) => break (handle, parent),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) && parent != Path::new(".") => level = parent,
                Err(_) => {
                    self.create_by_path(dir, pyc, source)?;
                    return Ok((open_or_fail_as_write(dir, pyc)?, false));
                }
            }
        };
        let (mut handle, ancestor_text) = handle;
        missing.reverse();
        let ancestor = physical_path(handle.as_fd());
        // Without a prefix the ancestor is usually the root itself, the
        // source's directory: its handle tells the root's physical path.
        let physical_root = match &ancestor {
            Some(path) if lexical_absolute(ancestor_text, &self.cwd) == root => lock(&self.physical_roots)
                .entry(root.to_owned())
                .or_insert_with(|| path.clone())
                .clone(),
            _ => self.physical_root(root),
        };
        let inside = match &ancestor {
            Some(_) => lies_under(ancestor.as_deref(), &missing, &physical_root),
            None => self.destinations.check(pyc, source).is_ok(),
        };
        if !inside {
            return Err(DirError::Escape(self.escape(pyc, root.to_owned())));
        }
        // The text of each level, for errors: `dir` less the levels below it.
        let mut text = dir.to_path_buf();
        let texts: Vec<PathBuf> = (0..missing.len())
            .map(|_| {
                let this = text.clone();
                text.pop();
                this
            })
            .collect();
        for (name, text) in missing.iter().zip(texts.iter().rev()) {
            let name = CString::new(name.as_bytes()).map_err(|_| io_error(text, io::ErrorKind::InvalidInput.into()))?;
            // SAFETY: a valid fd and C string.
            if unsafe { libc::mkdirat(handle.as_raw_fd(), name.as_ptr(), 0o777) } != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EEXIST) {
                    return Err(io_error(text, err));
                }
            }
            handle =
                pyc::open_dir_at(handle.as_fd(), &name, libc::O_NOFOLLOW).map_err(|source| io_error(text, source))?;
        }
        Ok((handle, ancestor.is_some()))
    }

    /// Whether the open `handle` of `pyc`'s directory may be written into:
    /// its path as text, then where the kernel reports the handle.
    fn check_open(&self, handle: &OwnedFd, pyc: &Path, source: &Path) -> Result<(), Escape> {
        self.destinations.check_text(pyc, source)?;
        let root = self.destinations.root(source);
        if self.handle_inside(handle, &[], &root, pyc, source) {
            Ok(())
        } else {
            Err(self.escape(pyc, root))
        }
    }

    /// The refusal of a directory that a symlink takes outside `root`.
    fn escape(&self, pyc: &Path, root: PathBuf) -> Escape {
        Escape {
            pyc: pyc.to_owned(),
            root,
            reason: self.destinations.symlink_reason(),
        }
    }

    /// Whether `handle` (and `below` it) lies inside `root`, by the path the
    /// kernel reports for it; where it reports none (no `/proc`), by the
    /// full check on the path, as before anything is created.
    fn handle_inside(&self, handle: &OwnedFd, below: &[&OsStr], root: &Path, pyc: &Path, source: &Path) -> bool {
        match physical_path(handle.as_fd()) {
            Some(path) => lies_under(Some(&path), below, &self.physical_root(root)),
            None => self.destinations.check(pyc, source).is_ok(),
        }
    }

    /// `os.makedirs` step by step on the path, after the full check (as
    /// text and with symlinks resolved) that nothing it creates lands
    /// outside the root.
    fn create_by_path(&self, dir: &Path, pyc: &Path, source: &Path) -> Result<(), DirError> {
        self.destinations.check(pyc, source).map_err(DirError::Escape)?;
        pyc::create_dirs(dir).map_err(DirError::Write)
    }

    /// The root as the kernel reaches it: the path of its open handle (one
    /// open and one readlink, where resolving the path would readlink each
    /// level), or for a root not made yet, its existing part resolved.
    fn physical_root(&self, root: &Path) -> PathBuf {
        lock(&self.physical_roots)
            .entry(root.to_owned())
            .or_insert_with(|| {
                pyc::open_dir(root)
                    .ok()
                    .and_then(|handle| physical_path(handle.as_fd()))
                    .unwrap_or_else(|| crate::destination::physical(&lexical_absolute(root, &self.cwd)))
            })
            .clone()
    }
}

/// Open `dir` after `os.makedirs` said it is there; where it cannot be
/// opened, the error is the one `_write_atomic`'s open of `pyc`'s temp file
/// gives (ENOTDIR for a file in its place, EACCES…).
fn open_or_fail_as_write(dir: &Path, pyc: &Path) -> Result<OwnedFd, DirError> {
    pyc::open_dir(dir).map_err(|source| io_error(&pyc::temp_path(pyc), source))
}

fn io_error(path: &Path, source: io::Error) -> DirError {
    DirError::Write(WriteError::Io {
        path: path.to_owned(),
        source,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn non_empty(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// No `.`/`..` levels and no doubled or trailing slash: `Path::parent`
/// then takes off exactly what `posixpath.split` does.
fn plain(dir: &Path) -> bool {
    let bytes = dir.as_os_str().as_bytes();
    !bytes.windows(2).any(|w| w == b"//")
        && !bytes.ends_with(b"/")
        && dir
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::RootDir))
}

/// The path the kernel reports for an open handle; `None` without `/proc`
/// (then only the textual and pre-creation checks stand).
fn physical_path(handle: BorrowedFd<'_>) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", handle.as_raw_fd())).ok()
}

/// Whether `physical` joined with `below` lies inside `root` (or is it).
/// Unknown (`None`) passes: callers check by path then.
fn lies_under(physical: Option<&Path>, below: &[&OsStr], root: &Path) -> bool {
    let Some(physical) = physical else {
        return true;
    };
    let mut path = physical.to_path_buf();
    path.extend(below);
    path.starts_with(root)
}

#[cfg(test)]
mod tests;
