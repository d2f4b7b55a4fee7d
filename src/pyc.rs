//! The pyc file: its 16-byte header, the source hash, freshness, and the
//! atomic write that never leaves a partial file behind.

use std::fs::{DirBuilder, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::IntoRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use siphasher::sip::{SipHasher13, SipHasher24};

/// `py_compile.PycInvalidationMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidationMode {
    Timestamp,
    CheckedHash,
    UncheckedHash,
}

impl InvalidationMode {
    /// The header's flags word: bit 0 = hash-based, bit 1 = check_source.
    fn flags(self) -> u32 {
        match self {
            InvalidationMode::Timestamp => 0,
            InvalidationMode::CheckedHash => 3,
            InvalidationMode::UncheckedHash => 1,
        }
    }
}

/// What identifies a source in a header: mtime + size, or its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Timestamp { mtime: u32, size: u32 },
    Hash([u8; 8]),
}

/// Which SipHash the target's `_imp.source_hash` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    /// 3.7–3.10
    SipHash24,
    /// 3.11+
    SipHash13,
}

/// The header fields CPython stores for a source of this `st_mtime` (seconds,
/// nanoseconds) and `st_size`: `int(st_mtime) & 0xFFFFFFFF` with CPython's
/// double rounding, and the size modulo 2**32.
pub fn timestamp_stamp(mtime_sec: i64, mtime_nsec: i64, size: u64) -> Stamp {
    // posixmodule's fill_time builds st_mtime as `sec + nsec * 1e-9` in
    // doubles, so ...999999881 ns already rounds up to the next second.
    let st_mtime = mtime_sec as f64 + mtime_nsec as f64 * 1e-9;
    // i128 holds every truncated value exactly; `as u32` keeps the low 32
    // bits of the two's complement, which is Python's `& 0xFFFFFFFF`.
    let mtime = st_mtime.trunc() as i128 as u32;
    Stamp::Timestamp {
        mtime,
        size: size as u32,
    }
}

/// `importlib.util.source_hash(source)` for a target with this magic.
pub fn source_hash(magic: [u8; 4], algo: HashAlgo, source: &[u8]) -> [u8; 8] {
    let k0 = u64::from(u32::from_le_bytes(magic));
    // `Hasher::write`, not `Hash::hash`: the latter would add a length prefix.
    let hash = match algo {
        HashAlgo::SipHash24 => {
            let mut hasher = SipHasher24::new_with_keys(k0, 0);
            hasher.write(source);
            hasher.finish()
        }
        HashAlgo::SipHash13 => {
            let mut hasher = SipHasher13::new_with_keys(k0, 0);
            hasher.write(source);
            hasher.finish()
        }
    };
    hash.to_le_bytes()
}

/// How many bytes the header takes (3.7 and later).
pub const HEADER_LEN: usize = 16;

/// The 16 header bytes.
pub fn header(magic: [u8; 4], mode: InvalidationMode, stamp: Stamp) -> [u8; HEADER_LEN] {
    debug_assert_eq!(
        mode == InvalidationMode::Timestamp,
        matches!(stamp, Stamp::Timestamp { .. }),
        "the stamp kind must match the invalidation mode"
    );
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&magic);
    bytes[4..8].copy_from_slice(&mode.flags().to_le_bytes());
    match stamp {
        Stamp::Timestamp { mtime, size } => {
            bytes[8..12].copy_from_slice(&mtime.to_le_bytes());
            bytes[12..16].copy_from_slice(&size.to_le_bytes());
        }
        Stamp::Hash(hash) => bytes[8..16].copy_from_slice(&hash),
    }
    bytes
}

/// Why an existing pyc is not what would be written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Staleness {
    Missing,
    /// Exists but could not be read, is shorter than 16 bytes, or is not a regular file.
    Unreadable,
    OtherMagic,
    ModeDiffers,
    MtimeDiffers,
    SizeDiffers,
    HashDiffers,
}

/// Compare an existing header with the one that would be written now.
/// Only the first 16 bytes of `existing` matter; it may be the whole file.
pub fn compare_header(existing: &[u8], expected: &[u8; 16]) -> Result<(), Staleness> {
    let Some(existing) = existing.get(..16) else {
        return Err(Staleness::Unreadable);
    };
    if existing[..4] != expected[..4] {
        return Err(Staleness::OtherMagic);
    }
    if existing[4..8] != expected[4..8] {
        return Err(Staleness::ModeDiffers);
    }
    let hash_based = expected[4] & 1 == 1;
    if hash_based {
        if existing[8..16] != expected[8..16] {
            return Err(Staleness::HashDiffers);
        }
    } else if existing[8..12] != expected[8..12] {
        return Err(Staleness::MtimeDiffers);
    } else if existing[12..16] != expected[12..16] {
        return Err(Staleness::SizeDiffers);
    }
    Ok(())
}

/// Up to the first 16 bytes of `pyc`, following symlinks as compileall's
/// `open(cfile, 'rb')` does. Fewer bytes means the file is shorter.
pub fn read_header(pyc: &Path) -> io::Result<Vec<u8>> {
    // O_NONBLOCK so that a FIFO at the pyc path reads as empty instead of
    // hanging (compileall itself blocks there forever).
    let mut file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(pyc)?;
    // A plain read loop: `read_to_end` would stat the file for a size hint,
    // one more syscall per pyc on the all-fresh path.
    let mut header = [0u8; 16];
    let mut filled = 0;
    while filled < header.len() {
        match file.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(header[..filled].to_vec())
}

/// Read the first 16 bytes of `pyc` (through symlinks, like compileall) and
/// compare them with `expected`. A missing path component (ENOENT, ENOTDIR)
/// is `Missing`; any other error, such as a directory, is `Unreadable`.
pub fn check_fresh(pyc: &Path, expected: &[u8; 16]) -> Result<(), Staleness> {
    match read_header(pyc) {
        Ok(bytes) => compare_header(&bytes, expected),
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Err(Staleness::Missing),
        Err(_) => Err(Staleness::Unreadable),
    }
}

/// A failure to put a pyc in place; `Display` is the text compileall prints
/// after `*** ` for the same failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// py_compile refuses to replace a symlink (even a dangling one).
    #[error("FileExistsError: {} is a symlink and will be changed into a regular file if import writes a byte-compiled file to it", .0.display())]
    Symlink(PathBuf),
    /// py_compile refuses to replace a directory, FIFO, …
    #[error("FileExistsError: {} is a non-regular file and will be changed into a regular one if import writes a byte-compiled file to it", .0.display())]
    NonRegular(PathBuf),
    /// An OS error on `path` (creating a directory or the temp file);
    /// the text is Python's: `PermissionError: [Errno 13] Permission denied: '…'`.
    #[error("{}", crate::pyrepr::os_error_text(.source, Some(.path.as_os_str().as_bytes()), None))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing or closing the temp file at `path` failed. Python raises these
    /// from the file descriptor, so its text names no file:
    /// `OSError: [Errno 27] File too large`.
    #[error("{}", crate::pyrepr::os_error_text(.source, None, None))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Renaming the temp file `from` onto the pyc `to` failed; Python's
    /// `os.replace` names both: `… Is a directory: 'x.pyc.123' -> 'x.pyc'`.
    #[error("{}", crate::pyrepr::os_error_text(.source, Some(.from.as_os_str().as_bytes()), Some(.to.as_os_str().as_bytes())))]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl WriteError {
    /// The OS error number, for the JSON report.
    pub fn errno(&self) -> Option<i32> {
        match self {
            WriteError::Symlink(_) | WriteError::NonRegular(_) => None,
            WriteError::Io { source, .. } | WriteError::Write { source, .. } | WriteError::Rename { source, .. } => {
                source.raw_os_error()
            }
        }
    }
}

/// py_compile's checks before compiling: `cfile` must not be a symlink nor an
/// existing non-regular file. A path that cannot be lstat'ed passes, as in
/// Python (`os.path.islink` and `exists` return False on any error).
pub fn check_destination(cfile: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(cfile) {
        Ok(meta) if meta.file_type().is_symlink() => Err(WriteError::Symlink(cfile.to_owned())),
        Ok(meta) if !meta.file_type().is_file() => Err(WriteError::NonRegular(cfile.to_owned())),
        _ => Ok(()),
    }
}

/// Create `dir` and its missing parents with mode 0o777 & ~umask, as
/// py_compile's `os.makedirs(dirname)` does, ignoring `FileExistsError` at
/// every level. The error names the level whose `mkdir` failed: the first
/// missing level below the deepest ancestor that `stat` finds.
pub fn create_dirs(dir: &Path) -> Result<(), WriteError> {
    // py_compile skips makedirs when dirname(cfile) is empty.
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match make_dirs(dir.as_os_str().as_bytes()) {
        Err((_, err)) if err.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err((path, source)) => Err(WriteError::Io { path, source }),
        Ok(()) => Ok(()),
    }
}

/// `os.makedirs(name, exist_ok=False)`, step for step, so that the same
/// level fails with the same error. Returns the failing level.
fn make_dirs(name: &[u8]) -> Result<(), (PathBuf, io::Error)> {
    let (mut head, mut tail) = split_path(name);
    if tail.is_empty() {
        (head, tail) = split_path(head);
    }
    if !head.is_empty() && !tail.is_empty() && !path_exists(head) {
        match make_dirs(head) {
            // "Defeats race condition when another thread created the path."
            Err((_, err)) if err.raw_os_error() == Some(libc::EEXIST) => {}
            Err(failure) => return Err(failure),
            Ok(()) => {}
        }
        if tail == b"." {
            return Ok(());
        }
    }
    let path = bytes_path(name);
    match DirBuilder::new().mode(0o777).create(&path) {
        Ok(()) => Ok(()),
        Err(err) => Err((path, err)),
    }
}

/// `posixpath.split`: head keeps no trailing slashes unless it is all slashes.
fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    let cut = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (mut head, tail) = path.split_at(cut);
    if head.iter().any(|&b| b != b'/') {
        while let [rest @ .., b'/'] = head {
            head = rest;
        }
    }
    (head, tail)
}

/// `os.path.exists`: `stat` (following links) succeeds; any error is false.
fn path_exists(path: &[u8]) -> bool {
    std::fs::metadata(bytes_path(path)).is_ok()
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(bytes.to_vec()))
}

/// Write `header + body` to `cfile` atomically: a unique temp file in the same
/// directory created with O_EXCL and mode `(source_mode | 0o200) & 0o666`
/// (0o666 if unknown; the kernel applies the umask), then `rename`. On any
/// error the temp file is removed. Parent directories must exist.
pub fn write_atomic(cfile: &Path, header: &[u8; 16], body: &[u8], source_mode: Option<u32>) -> Result<(), WriteError> {
    // importlib's _calc_mode adds owner-write; _write_atomic masks with 0o666.
    let mode = source_mode.map_or(0o666, |m| (m | 0o200) & 0o666);
    let (tmp, file) = create_temp(cfile, mode)?;
    let result = write_and_close(file, header, body)
        .map_err(|source| WriteError::Write {
            path: tmp.clone(),
            source,
        })
        .and_then(|()| {
            std::fs::rename(&tmp, cfile).map_err(|source| WriteError::Rename {
                from: tmp.clone(),
                to: cfile.to_owned(),
                source,
            })
        });
    if result.is_err() {
        // As in _write_atomic, a failed unlink is ignored: the first error matters.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a temp file is for: the letter in its name.
#[derive(Clone, Copy)]
enum TempKind {
    Write = b'p' as isize,
    Link = b'l' as isize,
}

/// `<cfile>.<pid, 7 digits><p|l><counter, 7 digits>`: fifteen characters,
/// like the object address CPython's `_write_atomic` appends (so a too-long
/// name fails at the same length). The letter sets it apart from CPython's
/// all-digit names, and the pid lets a later run tell that its writer died
/// (see `sweep_stale_temps`). Linux pids fit in 7 digits (at most 2^22).
fn temp_name(cfile: &Path, kind: TempKind) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id() % 10_000_000;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000_000;
    let mut name = cfile.as_os_str().to_owned();
    name.push(format!(".{pid:07}{}{count:07}", kind as u8 as char));
    PathBuf::from(name)
}

/// The writer's pid if `name` is one of our temp names for a pyc.
fn temp_writer(name: &[u8]) -> Option<u32> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let (stem, suffix) = (&name[..dot], &name[dot + 1..]);
    let valid = suffix.len() == 15
        && stem.ends_with(b".pyc")
        && matches!(suffix[7], b'p' | b'l')
        && suffix[..7].iter().chain(&suffix[8..]).all(u8::is_ascii_digit);
    valid.then(|| std::str::from_utf8(&suffix[..7]).ok()?.parse().ok())?
}

/// Remove the temp files in `dir` whose writer no longer runs: what a
/// SIGKILL (or a power cut) between create and rename leaves behind.
/// A temp file of a live process, this one included, is never touched, nor
/// anything that is not one of our temp names. Returns how many went.
/// A writer in another pid namespace sharing the directory looks dead: its
/// rename then fails and it reports the write as failed; nothing is lost.
pub fn sweep_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let own = std::process::id();
    entries
        .flatten()
        .filter(|entry| temp_writer(entry.file_name().as_bytes()).is_some_and(|pid| pid != own && !process_alive(pid)))
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Open a fresh temp name with O_CREAT|O_EXCL|O_WRONLY, which never
/// follows a symlink planted at that name.
fn create_temp(cfile: &Path, mode: u32) -> Result<(PathBuf, File), WriteError> {
    let mut attempts = 0;
    loop {
        let tmp = temp_name(cfile, TempKind::Write);
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // A leftover from a crashed run (or anything else) holds this
            // name: take another rather than fail where Python's random id
            // would almost surely not have collided.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(source) => return Err(WriteError::Io { path: tmp, source }),
        }
    }
}

/// Write everything, then close and report a failed close, as Python's
/// `FileIO.close` does (NFS, for one, reports write errors only there).
fn write_and_close(mut file: File, header: &[u8; 16], body: &[u8]) -> io::Result<()> {
    file.write_all(header)?;
    file.write_all(body)?;
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just released by `into_raw_fd`, so this is its only owner.
    if unsafe { libc::close(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `--hardlink-dupes`: make `cfile` a hard link to `existing` (the previous
/// optimization level's identical pyc) by linking a temp name and renaming
/// it over `cfile`, so `cfile` is never missing, unlike compileall's
/// unlink-then-link.
pub fn link_atomic(existing: &Path, cfile: &Path) -> Result<(), WriteError> {
    let tmp = temp_name(cfile, TempKind::Link);
    std::fs::hard_link(existing, &tmp).map_err(|source| WriteError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, cfile).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::Rename {
            from: tmp.clone(),
            to: cfile.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
