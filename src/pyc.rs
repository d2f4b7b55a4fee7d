//! The pyc file: its 16-byte header, the source hash, freshness, and (in
//! `write`) the atomic write that never leaves a partial file behind.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
    read_up_to_header(OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(pyc)?)
}

fn read_up_to_header(mut file: std::fs::File) -> io::Result<Vec<u8>> {
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

/// `read_header` of the entry `name` in the open directory `dir`.
pub fn read_header_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<Vec<u8>> {
    let name = CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let file = std::fs::File::from(open_at(
        dir,
        &name,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        0,
    )?);
    read_up_to_header(file)
}

/// `check_fresh` of the entry `name` in the open directory `dir`.
pub fn check_fresh_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, expected: &[u8; 16]) -> Result<(), Staleness> {
    freshness(read_header_at(dir, name), expected)
}

/// Read the first 16 bytes of `pyc` (through symlinks, like compileall) and
/// compare them with `expected`. A missing path component (ENOENT, ENOTDIR)
/// is `Missing`; any other error, such as a directory, is `Unreadable`.
pub fn check_fresh(pyc: &Path, expected: &[u8; 16]) -> Result<(), Staleness> {
    freshness(read_header(pyc), expected)
}

fn freshness(header: io::Result<Vec<u8>>, expected: &[u8; 16]) -> Result<(), Staleness> {
    match header {
        Ok(bytes) => compare_header(&bytes, expected),
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Err(Staleness::Missing),
        Err(_) => Err(Staleness::Unreadable),
    }
}

mod makedirs;
mod write;

pub use makedirs::create_dirs;

#[cfg(test)]
use write::{TempKind, temp_name, temp_writer, write_named};
pub use write::{
    WriteError, check_destination, check_destination_at, link_at, open_at, open_dir, open_dir_at, sweep_stale_temps,
    sweep_stale_temps_at, temp_path, write_at, write_atomic,
};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
