//! The compile cache (`--cache-dir`): what a compile gave, kept under a key
//! of everything that decides it, so a later run (another image build, a
//! new CI job, a re-created venv) takes the result instead of compiling.
//!
//! The key is BLAKE3 of the compiler's identity, the `co_filename`, the
//! optimization level and the source bytes. Only the marshalled code (or a
//! compile or marshal failure's text) is kept; the pyc header is computed
//! per write, so one entry serves every invalidation mode and mtime.
//!
//! Nothing is touched before the first lookup: an all-fresh run never opens
//! the cache. A cache that cannot be used is not an error: the run compiles
//! as without it and says why once.
//!
//! Trust: an entry's bytes end up in pycs that run as the user, so only a
//! cache directory owned by the running user is used, and only entries
//! owned by that user are read (see `start`).

mod entry;
mod evict;

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::backend::{CompileFailure, CompileJob};
use crate::pyc;
use crate::target::{Compiler, Target};
pub use entry::Key;

/// Entries live under this, so a future format can sit beside it.
const FORMAT_DIR: &str = "v1";
/// Where builds before `O_TMPFILE` entries wrote their temp files; still
/// swept of stale ones.
const TEMP_DIR: &str = "tmp";
/// No entry is this large (a pyc of a 50 MB source is ~30 MB): anything
/// bigger is not read.
const MAX_ENTRY: u64 = 1 << 30;

/// `--cache-dir` and `--cache-max-size`, settled.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub dir: PathBuf,
    /// Least-recently-used entries are removed at the end of a run that
    /// stored something, until the entries take at most this many bytes.
    pub max_size: u64,
    /// The `PYTHONHASHSEED` workers inherit (they get 0 without it): it
    /// decides the order of frozenset constants before 3.11.
    pub hash_seed: Option<OsString>,
}

/// What the cache did in a run, for the summary and JSON.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CacheReport {
    pub dir: String,
    pub hits: u64,
    pub misses: u64,
    pub stored: u64,
    pub stored_bytes: u64,
    /// Entries found damaged, foreign or for another key (then replaced).
    pub invalid: u64,
    pub evicted: u64,
    pub evicted_bytes: u64,
    /// Why the cache was not used, or used for reading only; each once.
    pub notices: Vec<String>,
}

impl CacheReport {
    /// Two caches' reports on the same directory (a run with several
    /// targets has one cache per target) as one.
    pub fn merge(mut self, other: CacheReport) -> CacheReport {
        self.hits += other.hits;
        self.misses += other.misses;
        self.stored += other.stored;
        self.stored_bytes += other.stored_bytes;
        self.invalid += other.invalid;
        self.evicted += other.evicted;
        self.evicted_bytes += other.evicted_bytes;
        for notice in other.notices {
            if !self.notices.contains(&notice) {
                self.notices.push(notice);
            }
        }
        self
    }
}

pub struct Cache {
    settings: CacheSettings,
    /// BLAKE3 of the compiler identity, the first thing each key hashes.
    identity: [u8; 32],
    /// Settled at the first lookup.
    state: OnceLock<State>,
    /// Cleared when a store fails: the rest of the run only reads.
    writable: AtomicBool,
    counts: Counts,
    notices: Mutex<Vec<String>>,
    /// The 256 fan-out directories, each opened once per run: entries are
    /// read and written by name through these handles.
    fanout: [OnceLock<OwnedFd>; 256],
}

#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    stored_bytes: AtomicU64,
    invalid: AtomicU64,
}

enum State {
    Unusable,
    Usable { entries: PathBuf, uid: u32 },
}

impl Cache {
    pub fn new(settings: CacheSettings, target: &Target) -> Cache {
        let identity = *blake3::hash(&identity(target, settings.hash_seed.as_deref())).as_bytes();
        Cache {
            settings,
            identity,
            state: OnceLock::new(),
            writable: AtomicBool::new(true),
            counts: Counts::default(),
            notices: Mutex::new(Vec::new()),
            fanout: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The key of one compile: what decides its result.
    pub fn key(&self, job: &CompileJob<'_>) -> Key {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.identity);
        hasher.update(&(job.filename.len() as u64).to_le_bytes());
        hasher.update(job.filename);
        hasher.update(&job.optimize.to_le_bytes());
        hasher.update(&(job.source.len() as u64).to_le_bytes());
        hasher.update(job.source);
        Key(*hasher.finalize().as_bytes())
    }

    /// The kept result for `key`, if there is an intact one.
    pub fn get(&self, key: &Key) -> Option<Result<Vec<u8>, CompileFailure>> {
        let State::Usable { entries, uid } = self.state() else {
            return None;
        };
        let found = self.read(entries, key, *uid);
        let counter = if found.is_some() {
            &self.counts.hits
        } else {
            &self.counts.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keep `result` under `key`, if it is worth keeping and the cache takes
    /// writes.
    pub fn put(&self, key: &Key, result: &Result<Vec<u8>, CompileFailure>) {
        let State::Usable { entries, .. } = self.state() else {
            return;
        };
        if !entry::cacheable(result) || !self.writable.load(Ordering::Relaxed) {
            return;
        }
        let bytes = entry::encode(key, result);
        match self.store(entries, key, &bytes) {
            Ok(()) => {
                self.counts.stored.fetch_add(1, Ordering::Relaxed);
                self.counts
                    .stored_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                // One notice, then no more tries this run.
                if self.writable.swap(false, Ordering::Relaxed) {
                    self.notice(store_failure_notice(&self.settings.dir, &error));
                }
            }
        }
    }

    /// Evict what is over the size limit and say what the cache did; None if
    /// the run never looked (everything was fresh, or nothing compiled).
    pub fn finish(&self) -> Option<CacheReport> {
        let state = self.state.get()?;
        let mut report = CacheReport {
            dir: self.settings.dir.display().to_string(),
            hits: self.counts.hits.load(Ordering::Relaxed),
            misses: self.counts.misses.load(Ordering::Relaxed),
            stored: self.counts.stored.load(Ordering::Relaxed),
            stored_bytes: self.counts.stored_bytes.load(Ordering::Relaxed),
            invalid: self.counts.invalid.load(Ordering::Relaxed),
            ..CacheReport::default()
        };
        if let State::Usable { entries, .. } = state
            && report.stored > 0
        {
            let evicted = evict::to_size(entries, self.settings.max_size);
            report.evicted = evicted.entries;
            report.evicted_bytes = evicted.bytes;
        }
        report.notices = std::mem::take(&mut *self.notices.lock().unwrap_or_else(|e| e.into_inner()));
        Some(report)
    }

    fn state(&self) -> &State {
        self.state.get_or_init(|| self.start())
    }

    /// At the first lookup: make or check the directory. A directory owned
    /// by someone else is not used at all: whoever owns it could put any
    /// bytecode in it for us to write into pycs. A symlinked directory is
    /// followed (caches are often moved to a larger disk that way); the
    /// owner check applies to where it leads.
    fn start(&self) -> State {
        let dir = &self.settings.dir;
        if let Err(error) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            self.notice(format!("{}: {error}: compiling without it", dir.display()));
            return State::Unusable;
        }
        let uid = unsafe { libc::geteuid() };
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                self.notice(format!("{} is not a directory: compiling without it", dir.display()));
                return State::Unusable;
            }
            Ok(meta) if meta.uid() != uid => {
                self.notice(format!(
                    "{} belongs to uid {}, not to this user (uid {uid}): not used, since its owner could \
                     put any bytecode in it",
                    dir.display(),
                    meta.uid()
                ));
                return State::Unusable;
            }
            Ok(_) => {}
            Err(error) => {
                self.notice(format!("{}: {error}: compiling without it", dir.display()));
                return State::Unusable;
            }
        }
        let entries = dir.join(FORMAT_DIR);
        let made = std::fs::create_dir(&entries).or_else(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        });
        let writable = made.is_ok() && is_writable(&entries);
        if !entries.is_dir() {
            self.notice(format!("{} cannot be set up: compiling without it", dir.display()));
            return State::Unusable;
        }
        if !writable {
            self.writable.store(false, Ordering::Relaxed);
            self.notice(format!("{} is read-only: used for reading only", dir.display()));
        }
        State::Usable { entries, uid }
    }

    fn read(&self, entries: &Path, key: &Key, uid: u32) -> Option<Result<Vec<u8>, CompileFailure>> {
        let dir = self.fanout_dir(entries, key, false).ok()?;
        let name = entry_file_name(key);
        let fd = pyc::open_at(dir, &name, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0).ok()?;
        let mut file = File::from(fd);
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.uid() != uid || meta.len() > MAX_ENTRY {
            self.counts.invalid.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).ok()?;
        match entry::decode(key, &bytes) {
            Ok(result) => {
                if self.writable.load(Ordering::Relaxed) {
                    touch(&file);
                }
                Some(result)
            }
            Err(_) => {
                self.counts.invalid.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Link the complete entry into place (`O_TMPFILE`, else a temp name
    /// renamed): a reader sees the whole entry or none, and a kill leaves no
    /// file behind. An entry already there (another run stored the same
    /// bytes, or it was damaged) is replaced.
    fn store(&self, entries: &Path, key: &Key, bytes: &[u8]) -> io::Result<()> {
        let dir = self.fanout_dir(entries, key, true)?;
        let (head, body) = bytes.split_at(16);
        let head: &[u8; 16] = head.try_into().expect("split at 16");
        pyc::write_at(dir, &entries.join(entry_name(key)), head, body, Some(0o644), true).map_err(|error| {
            match error.errno() {
                Some(errno) => io::Error::from_raw_os_error(errno),
                None => io::Error::other(error.to_string()),
            }
        })
    }

    /// The handle of `key`'s fan-out directory, opened (and with `create`,
    /// made) at its first use in the run.
    fn fanout_dir(&self, entries: &Path, key: &Key, create: bool) -> io::Result<BorrowedFd<'_>> {
        let slot = &self.fanout[usize::from(key.0[0])];
        if let Some(fd) = slot.get() {
            return Ok(fd.as_fd());
        }
        let path = entries.join(fanout_name(key));
        let fd = match pyc::open_dir(&path) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                make_dir(&path)?;
                pyc::open_dir(&path)?
            }
            other => other?,
        };
        Ok(slot.get_or_init(|| fd).as_fd())
    }

    fn notice(&self, text: String) {
        self.notices.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }
}

/// What decides a compile's bytes besides its inputs: precompyle's own
/// version (its workers and checks), and the compiler. For the CPython
/// backend: the implementation, its full `sys.version` (release and
/// build), magic number, default optimization level, the worker script and
/// the hash seed; for native: serc's release and the CPython release it
/// reproduces.
fn identity(target: &Target, hash_seed: Option<&std::ffi::OsStr>) -> Vec<u8> {
    let mut text = format!("precompyle {}\n", env!("CARGO_PKG_VERSION")).into_bytes();
    match target.compiler {
        Compiler::Native => {
            let release = crate::backend::native::version_for(target.minor_version()).map(|v| v.target().tag);
            text.extend(format!("native: serc {} {release:?}\n", crate::backend::native::SERC_VERSION).bytes());
        }
        Compiler::Cpython => {
            text.extend(
                format!(
                    "cpython: {} {:?} magic {:02x?} optimize {}\n",
                    target.implementation, target.build, target.magic, target.optimize
                )
                .bytes(),
            );
            text.extend_from_slice(b"PYTHONHASHSEED=");
            text.extend_from_slice(hash_seed.map_or(&b"0 (precompyle's)"[..], |seed| seed.as_bytes()));
            text.push(b'\n');
            text.extend_from_slice(blake3::hash(crate::backend::cpython::worker_script().as_bytes()).as_bytes());
        }
    }
    text
}

/// `ab/cdef…`: 256 fan-out directories keep each one small.
fn entry_name(key: &Key) -> PathBuf {
    Path::new(&fanout_name(key)).join(file_name_in_fanout(key))
}

/// `ab`: the key's first byte names its fan-out directory.
fn fanout_name(key: &Key) -> String {
    format!("{:02x}", key.0[0])
}

/// `cdef…`: the rest of the key names the entry in that directory.
fn file_name_in_fanout(key: &Key) -> String {
    key.hex().split_off(2)
}

fn entry_file_name(key: &Key) -> CString {
    CString::new(file_name_in_fanout(key)).expect("hex has no NUL")
}

fn make_dir(path: &Path) -> io::Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn is_writable(path: &Path) -> bool {
    let Ok(text) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(text.as_ptr(), libc::W_OK) == 0 }
}

/// Mark an entry as used now, for least-recently-used eviction (access
/// times are unreliable: noatime, relatime).
fn touch(file: &File) {
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_NOW,
    };
    let times = [now, now];
    // SAFETY: an open descriptor and two valid timespecs. A failure only
    // makes the entry look older.
    unsafe {
        libc::futimens(file.as_raw_fd(), times.as_ptr());
    }
}

fn store_failure_notice(dir: &Path, error: &io::Error) -> String {
    let why = match error.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => "is full",
        Some(libc::EROFS | libc::EACCES | libc::EPERM) => "is read-only",
        _ => "cannot be written",
    };
    format!(
        "{} {why} ({error}): nothing more stored this run, entries still read",
        dir.display()
    )
}

#[cfg(test)]
mod tests;
