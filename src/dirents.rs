//! A directory's entries read with `getdents64` itself. `opendir` would add
//! an `fstat` per directory (glibc sizes its buffer by `st_blksize`), and a
//! walk of python3's stdlib and site-packages opens 5,300 directories, an
//! all-fresh run 2,950 `__pycache__` more.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `d_type` of an entry whose type the filesystem does not record.
pub const DT_UNKNOWN: u8 = libc::DT_UNKNOWN;
pub const DT_DIR: u8 = libc::DT_DIR;
pub const DT_LNK: u8 = libc::DT_LNK;

/// Opens the directory at `path` for reading its entries, with `opendir`'s
/// flags: a path that is not a directory, or cannot be read, is an error.
pub fn open_for_listing(path: &[u8]) -> io::Result<OwnedFd> {
    let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a valid C string; AT_FDCWD resolves it as open(2) would.
    let fd = unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Calls `each` with the name and `d_type` of every entry of `dir` (`.` and
/// `..` included), read from the handle's current position. A read that
/// fails midway is an error, after `each` saw the entries before it.
pub fn for_each_entry(dir: BorrowedFd<'_>, mut each: impl FnMut(&CStr, u8)) -> io::Result<()> {
    // `struct linux_dirent64`: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    const RECLEN_AT: usize = 16;
    const TYPE_AT: usize = 18;
    const NAME_AT: usize = 19;
    // 32 KiB, as glibc's readdir: all but the largest directories in one
    // call. Not zeroed (that showed in profiles of all-fresh runs): only
    // the bytes the kernel fills are read.
    let mut buf = Box::<[u64]>::new_uninit_slice(4096);
    loop {
        // SAFETY: the buffer is valid for its length in bytes.
        let got = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr().cast::<u8>(),
                buf.len() * 8,
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        if got == 0 {
            return Ok(());
        }
        // SAFETY: the kernel filled `got` bytes of the buffer.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), got as usize) };
        let mut at = 0;
        while at + NAME_AT < bytes.len() {
            let reclen = usize::from(u16::from_ne_bytes([bytes[at + RECLEN_AT], bytes[at + RECLEN_AT + 1]]));
            if reclen == 0 {
                return Ok(());
            }
            let record = &bytes[at + NAME_AT..(at + reclen).min(bytes.len())];
            if let Ok(name) = CStr::from_bytes_until_nul(record) {
                each(name, bytes[at + TYPE_AT]);
            }
            at += reclen;
        }
    }
}

/// Whether `name` in `dir` is a directory or a symlink, by `lstat`, for an
/// entry whose `d_type` is `DT_UNKNOWN`; `None` when it cannot be stat'ed.
pub fn type_of(dir: BorrowedFd<'_>, name: &CStr) -> Option<u8> {
    Some(match lstat_type(dir, name)? {
        libc::S_IFDIR => DT_DIR,
        libc::S_IFLNK => DT_LNK,
        _ => libc::DT_REG,
    })
}

/// The file type bits (`st_mode & S_IFMT`) of `name` in `dir`, not
/// following a symlink; `None` when it cannot be stat'ed.
pub fn lstat_type(dir: BorrowedFd<'_>, name: &CStr) -> Option<libc::mode_t> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, C string and output buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstatat succeeded and filled it.
    Some(unsafe { st.assume_init() }.st_mode & libc::S_IFMT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn names(path: &std::path::Path) -> io::Result<Vec<(String, u8)>> {
        use std::os::unix::ffi::OsStrExt;
        let fd = open_for_listing(path.as_os_str().as_bytes())?;
        let mut found = Vec::new();
        for_each_entry(fd.as_fd(), |name, kind| {
            found.push((name.to_string_lossy().into_owned(), kind));
        })?;
        found.sort();
        Ok(found)
    }

    /// The entries `std::fs::read_dir` gives, with the types it reports,
    /// for a directory of more names than one read takes.
    #[test]
    fn lists_what_read_dir_lists() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3000 {
            std::fs::write(dir.path().join(format!("file-with-a-long-name-{i:05}.py")), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("sub", dir.path().join("link")).unwrap();
        let mut expected: Vec<(String, u8)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                let kind = if t.is_dir() {
                    DT_DIR
                } else if t.is_symlink() {
                    DT_LNK
                } else {
                    libc::DT_REG
                };
                (e.file_name().to_string_lossy().into_owned(), kind)
            })
            .collect();
        expected.push((".".to_owned(), DT_DIR));
        expected.push(("..".to_owned(), DT_DIR));
        expected.sort();
        assert_eq!(names(dir.path()).unwrap(), expected);
    }

    #[test]
    fn a_file_or_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "").unwrap();
        assert_eq!(
            names(&dir.path().join("f")).unwrap_err().raw_os_error(),
            Some(libc::ENOTDIR)
        );
        assert_eq!(
            names(&dir.path().join("missing")).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn type_of_tells_directories_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("f"), "").unwrap();
        std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let of = |name: &str| type_of(fd.as_fd(), &CString::new(name).unwrap());
        assert_eq!(of("d"), Some(DT_DIR));
        assert_eq!(of("l"), Some(DT_LNK));
        assert_eq!(of("f"), Some(libc::DT_REG));
        assert_eq!(of("missing"), None);
    }
}
