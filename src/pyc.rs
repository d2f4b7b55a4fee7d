//! The pyc file: its 16-byte header, the source hash, freshness, and the
//! atomic write that never leaves a partial file behind.

use std::path::Path;

/// `py_compile.PycInvalidationMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidationMode {
    Timestamp,
    CheckedHash,
    UncheckedHash,
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
    todo!("{mtime_sec} {mtime_nsec} {size}")
}

/// `importlib.util.source_hash(source)` for a target with this magic.
pub fn source_hash(magic: [u8; 4], algo: HashAlgo, source: &[u8]) -> [u8; 8] {
    todo!("{magic:?} {algo:?} {}", source.len())
}

/// The 16 header bytes.
pub fn header(magic: [u8; 4], mode: InvalidationMode, stamp: Stamp) -> [u8; 16] {
    todo!("{magic:?} {mode:?} {stamp:?}")
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
pub fn compare_header(existing: &[u8], expected: &[u8; 16]) -> Result<(), Staleness> {
    todo!("{existing:?} {expected:?}")
}

/// Read the first 16 bytes of `pyc` (through symlinks, like compileall) and
/// compare them with `expected`.
pub fn check_fresh(pyc: &Path, expected: &[u8; 16]) -> Result<(), Staleness> {
    todo!("{pyc:?} {expected:?}")
}

/// A failure to put a pyc in place; `Display` is the text compileall prints
/// after `*** ` for the same failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// py_compile refuses to replace a symlink (even a dangling one).
    #[error("FileExistsError: {} is a symlink and will be changed into a regular file if import writes a byte-compiled file to it", .0.display())]
    Symlink(std::path::PathBuf),
    /// py_compile refuses to replace a directory, FIFO, …
    #[error("FileExistsError: {} is a non-regular file and will be changed into a regular one if import writes a byte-compiled file to it", .0.display())]
    NonRegular(std::path::PathBuf),
    /// An OS error on `path` (creating a directory, the temp file, renaming…);
    /// the text is Python's: `PermissionError: [Errno 13] Permission denied: '…'`.
    #[error("{}", crate::pyrepr::os_error_text(.source, Some(.path.as_os_str().as_encoded_bytes()), None))]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// py_compile's checks before compiling: `cfile` must not be a symlink nor an
/// existing non-regular file.
pub fn check_destination(cfile: &Path) -> Result<(), WriteError> {
    todo!("{cfile:?}")
}

/// Create `dir` and its missing parents with mode 0o777 & ~umask, like
/// `os.makedirs(dir, exist_ok=True)`; the error names the level that failed.
pub fn create_dirs(dir: &Path) -> Result<(), WriteError> {
    todo!("{dir:?}")
}

/// Write `header + body` to `cfile` atomically: a unique temp file in the same
/// directory created with O_EXCL and mode `(source_mode | 0o200) & 0o666`
/// (0o666 if unknown; the kernel applies the umask), then `rename`. On any
/// error the temp file is removed. Parent directories must exist.
pub fn write_atomic(cfile: &Path, header: &[u8; 16], body: &[u8], source_mode: Option<u32>) -> Result<(), WriteError> {
    todo!("{cfile:?} {header:?} {} {source_mode:?}", body.len())
}
