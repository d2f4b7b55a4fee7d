//! Putting pycs in place: relative to an open directory, so the directory
//! written into is the one that was checked, and so that nothing is ever
//! half-written or left behind.
//!
//! A pyc is written into an unnamed file (`O_TMPFILE`) and linked into
//! place only when complete; a pyc that is there already is removed just
//! before (Linux cannot link an unnamed file over a name). A run killed at
//! any point leaves the old pyc, no pyc, or the new one, and never a temp
//! file, so an all-fresh run need not look for any. Where the kernel or the
//! file system has no `O_TMPFILE`, a named temp file is written and renamed,
//! as CPython's `_write_atomic` does, after removing the pyc there: a temp
//! of ours then lies only beside a missing pyc, which the next run to reach
//! its source compiles, sweeping that directory first
//! (`sweep_stale_temps_at`, called by `pycdir`).
//!
//! Error texts are Python's for the same failure, and name the temp path
//! that `_write_atomic` would have used.

use std::ffi::{CStr, CString, OsStr};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

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
        Ok(meta) => destination_verdict(cfile, meta.file_type().is_symlink(), meta.file_type().is_file()),
        Err(_) => Ok(()),
    }
}

/// `check_destination` for the entry `cfile`'s name in the open directory `dir`.
pub fn check_destination_at(dir: BorrowedFd<'_>, cfile: &Path) -> Result<(), WriteError> {
    let Ok(name) = file_name(cfile) else {
        return Ok(());
    };
    let Some(kind) = crate::dirents::lstat_type(dir, &name) else {
        return Ok(());
    };
    destination_verdict(cfile, kind == libc::S_IFLNK, kind == libc::S_IFREG)
}

fn destination_verdict(cfile: &Path, symlink: bool, regular: bool) -> Result<(), WriteError> {
    if symlink {
        Err(WriteError::Symlink(cfile.to_owned()))
    } else if !regular {
        Err(WriteError::NonRegular(cfile.to_owned()))
    } else {
        Ok(())
    }
}

/// Write `header + body` to `cfile` atomically (see the module comment),
/// with mode `(source_mode | 0o200) & 0o666` (0o666 if unknown; the kernel
/// applies the umask). Parent directories must exist.
pub fn write_atomic(cfile: &Path, header: &[u8; 16], body: &[u8], source_mode: Option<u32>) -> Result<(), WriteError> {
    let dir = open_parent(cfile)?;
    write_at(dir.as_fd(), cfile, header, body, source_mode, false)
}

/// `write_atomic` into the open directory `dir`, which is `cfile`'s parent.
/// `missing`: the pyc is known not to exist, so there is nothing to remove
/// (if it turns out to exist after all, it is replaced).
pub fn write_at(
    dir: BorrowedFd<'_>,
    cfile: &Path,
    header: &[u8; 16],
    body: &[u8],
    source_mode: Option<u32>,
    missing: bool,
) -> Result<(), WriteError> {
    // importlib's _calc_mode adds owner-write; _write_atomic masks with 0o666.
    let mode = source_mode.map_or(0o666, |m| (m | 0o200) & 0o666);
    let name = file_name(cfile).map_err(|source| WriteError::Io {
        path: temp_name(cfile, TempKind::Write),
        source,
    })?;
    let unnamed = match open_unnamed(dir, mode) {
        Some(Ok(file)) => file,
        Some(Err(source)) => {
            return Err(WriteError::Io {
                path: temp_name(cfile, TempKind::Write),
                source,
            });
        }
        None => return write_named(dir, cfile, &name, header, body, mode, missing),
    };
    write_all(&unnamed, header, body).map_err(|source| WriteError::Write {
        path: temp_name(cfile, TempKind::Write),
        source,
    })?;
    let linked = link_in_place(dir, cfile, &name, !missing, TempKind::Write, |name| {
        link_unnamed(&unnamed, dir, name)
    })?;
    if linked.is_some() {
        // No way to link an unnamed file here after all: write it out (the
        // pyc is gone by now if there was one).
        drop(unnamed);
        return write_named(dir, cfile, &name, header, body, mode, true);
    }
    close(unnamed).map_err(|source| {
        // The pyc is in place but may not hold what was written.
        unlink_at(dir, &name);
        WriteError::Write {
            path: cfile.to_owned(),
            source,
        }
    })
}

/// Give a complete file the name `name` with `link`, which fails with EEXIST
/// where the name is taken: after removing the pyc there when `remove`, and
/// again whenever another writer has put one there in between.
/// `Some(error)`: `link` failed otherwise, nothing was linked.
fn link_in_place(
    dir: BorrowedFd<'_>,
    cfile: &Path,
    name: &CStr,
    mut remove: bool,
    kind: TempKind,
    mut link: impl FnMut(&CStr) -> io::Result<()>,
) -> Result<Option<io::Error>, WriteError> {
    for _ in 0..100 {
        if remove {
            remove_pyc(dir, cfile, name, kind)?;
        }
        match link(name) {
            Ok(()) => return Ok(None),
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => remove = true,
            Err(err) => return Ok(Some(err)),
        }
    }
    Err(WriteError::Rename {
        from: temp_name(cfile, kind),
        to: cfile.to_owned(),
        source: io::Error::from_raw_os_error(libc::EEXIST),
    })
}

/// Remove the pyc `name` before a complete file takes its place. A failure
/// is reported as `_write_atomic` would report the step that fails the same
/// way for it: creating its temp file (a directory not writable, a name too
/// long), else the `os.replace` onto the pyc (a directory there, a sticky
/// directory).
fn remove_pyc(dir: BorrowedFd<'_>, cfile: &Path, name: &CStr, kind: TempKind) -> Result<(), WriteError> {
    // SAFETY: a valid fd and C string.
    match checked(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }) {
        Ok(()) => Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(source)
            if matches!(
                source.raw_os_error(),
                Some(libc::EACCES | libc::EROFS | libc::ENAMETOOLONG)
            ) =>
        {
            Err(WriteError::Io {
                path: temp_name(cfile, kind),
                source,
            })
        }
        Err(source) => Err(WriteError::Rename {
            from: temp_name(cfile, kind),
            to: cfile.to_owned(),
            source,
        }),
    }
}

/// The fallback without `O_TMPFILE`: a named temp file created with
/// O_CREAT|O_EXCL (which never follows a symlink planted at that name),
/// written, closed, renamed. The pyc there is removed before the temp name
/// exists, so the temp never lies beside a pyc (the price: a write that
/// then fails leaves no pyc, where `_write_atomic` keeps the old one).
pub(super) fn write_named(
    dir: BorrowedFd<'_>,
    cfile: &Path,
    name: &CStr,
    header: &[u8; 16],
    body: &[u8],
    mode: u32,
    missing: bool,
) -> Result<(), WriteError> {
    if !missing {
        remove_pyc(dir, cfile, name, TempKind::Write)?;
    }
    let (tmp, tmp_name, file) = create_temp(dir, cfile, mode)?;
    let written = write_all(&file, header, body).and_then(|()| close(file));
    if let Err(source) = written {
        unlink_at(dir, &tmp_name);
        return Err(WriteError::Write { path: tmp, source });
    }
    rename_into_place(dir, &tmp, &tmp_name, cfile, name)
}

fn rename_into_place(
    dir: BorrowedFd<'_>,
    tmp: &Path,
    tmp_name: &CStr,
    cfile: &Path,
    name: &CStr,
) -> Result<(), WriteError> {
    let fd = dir.as_raw_fd();
    // SAFETY: both names are valid C strings relative to the open `dir`.
    if let Err(source) = checked(unsafe { libc::renameat(fd, tmp_name.as_ptr(), fd, name.as_ptr()) }) {
        // As in _write_atomic, a failed unlink is ignored: the first error matters.
        unlink_at(dir, tmp_name);
        return Err(WriteError::Rename {
            from: tmp.to_owned(),
            to: cfile.to_owned(),
            source,
        });
    }
    Ok(())
}

/// Create a temp file for `cfile` in its directory `dir` under a free name,
/// with O_CREAT|O_EXCL. A name that exists (a leftover of a crashed run, or
/// anything else) is skipped rather than failing where Python's random id
/// would almost surely not have collided.
fn create_temp(dir: BorrowedFd<'_>, cfile: &Path, mode: u32) -> Result<(PathBuf, CString, OwnedFd), WriteError> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    let mut attempts = 0;
    loop {
        let tmp = temp_name(cfile, TempKind::Write);
        let tmp_name = file_name(&tmp).map_err(|source| WriteError::Io {
            path: tmp.clone(),
            source,
        })?;
        match open_at(dir, &tmp_name, flags, mode) {
            Ok(file) => return Ok((tmp, tmp_name, file)),
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) && attempts < 100 => attempts += 1,
            Err(source) => return Err(WriteError::Io { path: tmp, source }),
        }
    }
}

/// An unnamed regular file in `dir`, or `None` where the kernel or the
/// file system has no `O_TMPFILE` (remembered, so it is asked once).
fn open_unnamed(dir: BorrowedFd<'_>, mode: u32) -> Option<io::Result<OwnedFd>> {
    static UNSUPPORTED: AtomicU8 = AtomicU8::new(0);
    if UNSUPPORTED.load(Ordering::Relaxed) != 0 {
        return None;
    }
    match open_at(dir, c".", libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC, mode) {
        Ok(file) => Some(Ok(file)),
        // No O_TMPFILE in the kernel (EISDIR: it took O_DIRECTORY alone) or
        // the file system: the named fallback. Not remembered for
        // EOPNOTSUPP, which depends on the file system of `dir`.
        Err(err) if matches!(err.raw_os_error(), Some(libc::EISDIR | libc::EINVAL)) => {
            UNSUPPORTED.store(1, Ordering::Relaxed);
            None
        }
        Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => None,
        Err(err) => Some(Err(err)),
    }
}

/// Give the unnamed `file` the name `name` in `dir`. `AT_EMPTY_PATH` needs
/// CAP_DAC_READ_SEARCH on older kernels; the `/proc/self/fd` link works for
/// anyone (open(2), O_TMPFILE). Which one works is remembered.
fn link_unnamed(file: &OwnedFd, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    const UNKNOWN: u8 = 0;
    const EMPTY_PATH: u8 = 1;
    const PROC: u8 = 2;
    static WAY: AtomicU8 = AtomicU8::new(UNKNOWN);
    let empty_path = || {
        // SAFETY: valid fds and C strings; AT_EMPTY_PATH links `file` itself.
        let status = unsafe {
            libc::linkat(
                file.as_raw_fd(),
                c"".as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        checked(status)
    };
    let proc = || {
        let link = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("no NUL");
        // SAFETY: valid C strings and fds.
        let status = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                link.as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        checked(status)
    };
    match WAY.load(Ordering::Relaxed) {
        EMPTY_PATH => empty_path(),
        PROC => proc(),
        _ => match empty_path() {
            Ok(()) => {
                WAY.store(EMPTY_PATH, Ordering::Relaxed);
                Ok(())
            }
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) => {
                let linked = proc();
                if linked.is_ok() {
                    WAY.store(PROC, Ordering::Relaxed);
                }
                linked
            }
            Err(err) => Err(err),
        },
    }
}

/// Header and body in one `writev` (more only if the kernel writes less).
fn write_all(file: &OwnedFd, header: &[u8], body: &[u8]) -> io::Result<()> {
    let mut parts = [IoSlice::new(header), IoSlice::new(body)];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices outlive the call.
        let written = unsafe {
            libc::writev(
                file.as_raw_fd(),
                parts.as_ptr().cast::<libc::iovec>(),
                parts.len().min(libc::c_int::MAX as usize) as libc::c_int,
            )
        };
        match written {
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => IoSlice::advance_slices(&mut parts, n as usize),
        }
    }
    Ok(())
}

/// A libc call's status as a `Result`: 0 is success, anything else `errno`.
fn checked(status: libc::c_int) -> io::Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Close and report a failed close, as Python's `FileIO.close` does (NFS,
/// for one, reports write errors only there).
fn close(file: OwnedFd) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just released by `into_raw_fd`, so this is its only owner.
    checked(unsafe { libc::close(fd) })
}

fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) {
    // SAFETY: a valid fd and C string.
    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
}

/// `openat(dir, name, flags, mode)`.
pub fn open_at(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: a valid fd and C string; the mode is read only with O_CREAT/O_TMPFILE.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A path's last component as a C string (for the `*at` calls).
fn file_name(path: &Path) -> io::Result<CString> {
    let name = path.file_name().unwrap_or(OsStr::new("."));
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `cfile`'s directory, opened as a handle for the `*at` calls; a failure
/// names the temp file, as `_write_atomic`'s failing open does.
fn open_parent(cfile: &Path) -> Result<OwnedFd, WriteError> {
    let dir = match cfile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    open_dir(dir).map_err(|source| WriteError::Io {
        path: temp_name(cfile, TempKind::Write),
        source,
    })
}

/// Open a directory as a handle for the `*at` calls, following symlinks as
/// any path use would: readable, so it can be swept, or (without read
/// permission) `O_PATH`, which only serves the `*at` calls.
pub fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: AT_FDCWD is valid for the *at calls; it resolves the path as open(2) would.
    let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    open_dir_at(cwd, &path, 0)
}

/// `open_dir` of `name` in `parent`, with extra `flags` (O_NOFOLLOW).
pub fn open_dir_at(parent: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_DIRECTORY | libc::O_CLOEXEC;
    match open_at(parent, name, flags | libc::O_RDONLY, 0) {
        Err(err) if err.raw_os_error() == Some(libc::EACCES) => open_at(parent, name, flags | libc::O_PATH, 0),
        other => other,
    }
}

/// `--hardlink-dupes`: make `cfile` a hard link to `existing` (the previous
/// optimization level's identical pyc, in the same directory `dir`), after
/// removing a `cfile` that is there unless it is known `missing`, as
/// compileall unlinks it first.
pub fn link_at(dir: BorrowedFd<'_>, existing: &Path, cfile: &Path, missing: bool) -> Result<(), WriteError> {
    let name = file_name(cfile).map_err(|source| WriteError::Io {
        path: temp_name(cfile, TempKind::Link),
        source,
    })?;
    let from = file_name(existing).map_err(|source| WriteError::Io {
        path: existing.to_owned(),
        source,
    })?;
    // SAFETY: valid fd and C strings; no flags: `from` is a regular file.
    let link =
        |to: &CStr| checked(unsafe { libc::linkat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr(), 0) });
    match link_in_place(dir, cfile, &name, !missing, TempKind::Link, link)? {
        None => Ok(()),
        Some(source) => Err(WriteError::Io {
            path: temp_name(cfile, TempKind::Link),
            source,
        }),
    }
}

/// This process's id, asked once (temp names carry it).
fn own_pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// What a temp file is for: the letter in its name.
#[derive(Clone, Copy)]
pub(super) enum TempKind {
    Write = b'p' as isize,
    Link = b'l' as isize,
}

/// `<cfile>.<pid, 7 digits><p|l><counter, 7 digits>`: fifteen characters,
/// like the object address CPython's `_write_atomic` appends (so a too-long
/// name fails at the same length). The letter sets it apart from CPython's
/// all-digit names, and the pid lets a later run tell that its writer died
/// (see `sweep_stale_temps`). Linux pids fit in 7 digits (at most 2^22).
pub(super) fn temp_name(cfile: &Path, kind: TempKind) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = own_pid() % 10_000_000;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000_000;
    let mut name = cfile.as_os_str().to_owned();
    name.push(format!(".{pid:07}{}{count:07}", kind as u8 as char));
    PathBuf::from(name)
}

/// The temp path `write_atomic` would use for `cfile`, for errors about a
/// directory it could not have opened either.
pub fn temp_path(cfile: &Path) -> PathBuf {
    temp_name(cfile, TempKind::Write)
}

/// The writer's pid if `name` is one of our temp names for a pyc.
pub(super) fn temp_writer(name: &[u8]) -> Option<u32> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let (stem, suffix) = (&name[..dot], &name[dot + 1..]);
    let valid = suffix.len() == 15
        && stem.ends_with(b".pyc")
        && matches!(suffix[7], b'p' | b'l')
        && suffix[..7].iter().chain(&suffix[8..]).all(u8::is_ascii_digit);
    valid.then(|| std::str::from_utf8(&suffix[..7]).ok()?.parse().ok())?
}

/// Remove the temp files in `dir` whose writer no longer runs: what a
/// SIGKILL (or a power cut) between linking a temp name and the rename, or
/// during a named fallback write, leaves behind. A temp file of a live
/// process, this one included, is never touched, nor anything that is not
/// one of our temp names. Returns how many went. A writer in another pid
/// namespace sharing the directory looks dead: its rename then fails and it
/// reports the write as failed; nothing is lost.
pub fn sweep_stale_temps_at(dir: BorrowedFd<'_>) -> usize {
    let own = own_pid();
    let mut stale = Vec::new();
    // Read from the handle's current position: once per handle. One opened
    // without read permission lists nothing; a failed read ends the list.
    let _ = crate::dirents::for_each_entry(dir, |name, _| {
        if temp_writer(name.to_bytes()).is_some_and(|pid| pid != own && !process_alive(pid)) {
            stale.push(name.to_owned());
        }
    });
    stale
        .iter()
        // SAFETY: a valid fd and C string.
        .filter(|name| unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } == 0)
        .count()
}

/// `sweep_stale_temps_at` for a directory given by path.
pub fn sweep_stale_temps(dir: &Path) -> usize {
    open_dir(dir).map_or(0, |fd| sweep_stale_temps_at(fd.as_fd()))
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
