//! `os.makedirs` as py_compile calls it, step for step, so that the same
//! level fails with the same error: for the directories that cannot be made
//! relative to a checked handle (see `pycdir.rs`).

use std::fs::DirBuilder;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::WriteError;

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
