//! Reading a source so that the stamp in its pyc's header describes exactly
//! the bytes that were compiled: a header must never claim that content it
//! was not compiled from is fresh.
//!
//! Per read: `open`, one `read` of the size the stat gave plus a byte (a
//! short read of a regular file is its end), `fstat`, `close`. The stat
//! taken before (by the caller, on the path) and the `fstat` after must
//! agree on the file (device, inode), its mtime and its size, and the size
//! must be what was read; otherwise the file changed meanwhile and is read
//! again.

use std::cell::OnceCell;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The whole of `path` and the stat that describes exactly those bytes;
/// `before` is a stat of `path` taken before the call.
pub fn read(path: &Path, before: &Metadata) -> io::Result<(Vec<u8>, Metadata)> {
    let mut before = before.clone();
    for _ in 0..3 {
        let mut file = std::fs::File::open(path)?;
        let mut bytes = Vec::new();
        read_all(&mut file, before.len(), &mut bytes)?;
        let after = file.metadata()?;
        if same_content(&before, &after) && after.len() == bytes.len() as u64 {
            return Ok((bytes, after));
        }
        before = after;
    }
    Err(io::Error::other("the source kept changing while it was read"))
}

/// Read to the end, expecting `size` bytes: one `read` when the file is
/// that size, without `read_to_end`'s extra calls (a stat for the size hint,
/// a probe read at the end).
fn read_all(file: &mut std::fs::File, size: u64, bytes: &mut Vec<u8>) -> io::Result<()> {
    let mut want = usize::try_from(size).unwrap_or(usize::MAX / 2).saturating_add(1);
    loop {
        let start = bytes.len();
        bytes.resize(start + want, 0);
        let got = loop {
            match file.read(&mut bytes[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let got = match got {
            Ok(n) => n,
            Err(e) => {
                bytes.truncate(start);
                return Err(e);
            }
        };
        bytes.truncate(start + got);
        // A short read of a regular file is its end; a file that grew past
        // the stat's size is read on, and the fstat after tells.
        if got < want {
            return Ok(());
        }
        want = want.max(64 * 1024);
    }
}

fn same_content(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev()
        && a.ino() == b.ino()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.size() == b.size()
}

/// `read` for a timestamp pyc, whose header keeps only whole seconds of the
/// mtime: a source modified in the current second could change again
/// within that second, keeping its size, and CPython would take our pyc as
/// fresh for content it was not compiled from. So such a source is read
/// again once the clock has left its mtime's second: any later change then
/// carries a later second, which the header does not match. (Costs at most
/// about a second, once, for sources written just before the run.)
pub fn read_settled(path: &Path, before: &Metadata) -> io::Result<(Vec<u8>, Metadata)> {
    // File times come from the kernel's coarse clock, which may lag the
    // real one by a tick: leave a margin past the second boundary.
    const MARGIN: Duration = Duration::from_millis(20);
    let mut before = before.clone();
    for _ in 0..4 {
        let read = read(path, &before)?;
        let Ok(second) = u64::try_from(read.1.mtime()) else {
            return Ok(read);
        };
        let settled = UNIX_EPOCH + Duration::from_secs(second + 1) + MARGIN;
        match settled.duration_since(SystemTime::now()) {
            // A source "from the future" (a clock behind the file system's)
            // cannot be waited out: keep what was read.
            Ok(wait) if wait <= Duration::from_secs(2) => std::thread::sleep(wait),
            _ => return Ok(read),
        }
        before = read.1;
    }
    Err(io::Error::other("the source kept changing while it was read"))
}

/// One candidate file's stat and contents, for every target of a run: each
/// is taken once, when the first target needs it, and lent to the others.
pub struct SourceOnce<'p> {
    path: &'p Path,
    stat: OnceCell<Option<Metadata>>,
    contents: OnceCell<io::Result<(Vec<u8>, Metadata)>>,
}

impl<'p> SourceOnce<'p> {
    pub fn new(path: &'p Path) -> SourceOnce<'p> {
        SourceOnce {
            path,
            stat: OnceCell::new(),
            contents: OnceCell::new(),
        }
    }

    pub fn path(&self) -> &'p Path {
        self.path
    }

    /// `stat` of the path (following symlinks); `None` if it fails, which
    /// compileall takes as "not a file".
    pub fn stat(&self) -> Option<&Metadata> {
        self.stat.get_or_init(|| std::fs::metadata(self.path).ok()).as_ref()
    }

    /// The bytes and the stat that describes exactly them: [`read_settled`]
    /// when `settled` (timestamp pycs), else [`read`]. Every target of a run
    /// asks with the same `settled` (one invalidation mode per run).
    pub fn contents(&self, settled: bool) -> io::Result<(&[u8], &Metadata)> {
        let read = self.contents.get_or_init(|| {
            let before = self.stat().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            if settled {
                read_settled(self.path, before)
            } else {
                read(self.path, before)
            }
        });
        match read {
            Ok((bytes, meta)) => Ok((bytes, meta)),
            Err(error) => Err(copy_error(error)),
        }
    }
}

/// The same error again, for the next target (`io::Error` is not `Clone`).
fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_exactly_the_file_whatever_the_stat_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.py");
        for size in [0usize, 1, 4095, 4096, 70_000, 300_000] {
            let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &content).unwrap();
            let before = std::fs::metadata(&path).unwrap();
            let (bytes, after) = read(&path, &before).unwrap();
            assert_eq!(bytes, content, "{size}");
            assert_eq!(after.len(), size as u64);
        }
    }

    #[test]
    fn a_file_changed_since_the_stat_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.py");
        std::fs::write(&path, "old = 1\n").unwrap();
        let before = std::fs::metadata(&path).unwrap();
        // Grown, and replaced by another inode: both must be noticed.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"new = 2\n")
            .unwrap();
        let (bytes, after) = read(&path, &before).unwrap();
        assert_eq!(bytes, b"old = 1\nnew = 2\n");
        assert_eq!(after.len(), bytes.len() as u64);
        let other = dir.path().join("other.py");
        std::fs::write(&other, "x = 3\n").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let (bytes, after) = read(&path, &before).unwrap();
        assert_eq!(bytes, b"x = 3\n");
        assert_ne!(after.ino(), before.ino());
    }
}
