//! compileall's directory walk (`_walk_dir`): `Listing` events in order, names
//! sorted as Python `str`s, `__pycache__` skipped, symlinked directories
//! neither walked nor yielded, depth limited by `maxlevels`.
//!
//! Hand-rolled rather than `walkdir`: compileall's listing is all-or-nothing
//! (`os.listdir` fails whole, giving `Can't list`), a root that is a file must
//! print `Can't list`, and "is a directory" is `stat` of the joined path string
//! (so an over-long or unsearchable path yields a file candidate). walkdir's
//! per-entry errors and d_type-driven descent would each need undoing.
//!
//! Syscalls: per directory an `openat`, `getdents64` until it returns
//! nothing (twice for all but the largest) and a `close`; a `stat` only for
//! symlinks named `*.py` (or any, when every file is kept), for directories
//! at the depth limit, and when opening a subdirectory fails (to tell
//! `Can't list` from "not a directory").

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::dirents;
use crate::pyrepr::str_order;

/// Which files a walk keeps. compileall meets every file, but only a `.py`
/// one can print anything, unless `-d`/`-s`/`-p` are given: then each file
/// gets a dfile first, whose warning or error (3.13+) is printed for any
/// name. Most files of a tree are not sources (two thirds of the stdlib's),
/// so leaving them out saves most of a run's memory for its items.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    Sources,
    Everything,
}

/// One thing the walk found, in the order compileall would meet it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Listing '<dir>'...` (printed before the directory is read).
    Listing(PathBuf),
    /// `Can't list '<dir>'` (not a failure).
    CantList(PathBuf),
    /// A candidate file (anything that is not a directory by `os.path.isdir`:
    /// regular files, broken symlinks, FIFOs…); later stages filter it.
    File(PathBuf),
}

/// Walk `dir` like `compileall._walk_dir(dir, maxlevels)`, pushing events in
/// order. The path strings are built as `os.path.join` builds them (no
/// normalisation: `t/`, `t//`, `./t` are kept as given).
/// With `Keep::Sources`, only files named `*.py` are pushed. With more than
/// one thread, the directories are listed ahead in parallel (see
/// `list_ahead`); the events are the same.
pub fn walk_dir(dir: &Path, maxlevels: i64, keep: Keep, threads: usize, events: &mut Vec<Event>) {
    // An explicit stack: compileall recurses (and itself dies with
    // RecursionError near 990 levels); we must not overflow ours.
    let mut stack = Vec::new();
    let root = dir.as_os_str().as_bytes().to_vec();
    let mut listings = Listings {
        ahead: if threads > 1 {
            list_ahead(&root, maxlevels, keep, threads.min(MAX_LISTERS))
        } else {
            HashMap::new()
        },
        keep,
    };
    events.push(Event::Listing(to_path(&root)));
    stack.push(open_level(root, maxlevels, &mut listings, events));
    while let Some(level) = stack.last_mut() {
        let Some(entry) = level.entries.next() else {
            stack.pop();
            continue;
        };
        let wanted = keep == Keep::Everything || entry.name.ends_with(b".py");
        // A symlink is stat'ed only to tell a directory (skipped) from a
        // file: neither is pushed if the name is not wanted.
        if !wanted && matches!(entry.kind, Kind::Symlink | Kind::Other) {
            continue;
        }
        let fullname = path_join(&level.dir, &entry.name);
        let maxlevels = level.maxlevels;
        match visit(&fullname, entry.kind, maxlevels, &mut listings) {
            Visit::File if wanted => events.push(Event::File(to_path(&fullname))),
            Visit::File => {}
            Visit::Skip => {}
            Visit::Listed(listing) => {
                events.push(Event::Listing(to_path(&fullname)));
                stack.push(level_from(fullname, maxlevels - 1, listing, events));
            }
        }
    }
}

/// One directory being walked: its path string and its remaining entries.
struct Level {
    dir: Vec<u8>,
    entries: std::vec::IntoIter<Entry>,
    maxlevels: i64,
}

/// A name from `os.listdir`, with what `readdir` said about it.
struct Entry {
    name: Vec<u8>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    Symlink,
    /// Regular file, FIFO, socket, device, or a type that could not be read.
    Other,
}

/// What compileall does with one name.
enum Visit {
    File,
    Skip,
    /// A directory to descend into, already read (or failed to read).
    Listed(std::io::Result<Vec<Entry>>),
}

/// `Listing` has been pushed for `dir`; read it and start its level.
fn open_level(dir: Vec<u8>, maxlevels: i64, listings: &mut Listings, events: &mut Vec<Event>) -> Level {
    let listing = listings.list(&dir);
    level_from(dir, maxlevels, listing, events)
}

fn level_from(dir: Vec<u8>, maxlevels: i64, listing: std::io::Result<Vec<Entry>>, events: &mut Vec<Event>) -> Level {
    let entries = listing.unwrap_or_else(|_| {
        events.push(Event::CantList(to_path(&dir)));
        Vec::new()
    });
    Level {
        dir,
        entries: entries.into_iter(),
        maxlevels,
    }
}

/// compileall's per-name decision: `not isdir` → file; else recurse when
/// `maxlevels > 0` and not a symlink. `isdir` follows symlinks and is false
/// whenever `stat` fails.
fn visit(fullname: &[u8], kind: Kind, maxlevels: i64, listings: &mut Listings) -> Visit {
    match kind {
        Kind::Other => Visit::File,
        Kind::Symlink if stat_is_dir(fullname) => Visit::Skip,
        Kind::Symlink => Visit::File,
        Kind::Dir if maxlevels <= 0 => {
            if stat_is_dir(fullname) {
                Visit::Skip
            } else {
                Visit::File
            }
        }
        Kind::Dir => match listings.list(fullname) {
            Ok(entries) => Visit::Listed(Ok(entries)),
            // Unreadable but a directory: `Listing` then `Can't list`.
            Err(err) if stat_is_dir(fullname) => Visit::Listed(Err(err)),
            // stat fails too (ENAMETOOLONG, unsearchable parent): not isdir.
            Err(_) => Visit::File,
        },
    }
}

/// Threads listing ahead at most: past a few, the kernel's locks on the
/// directories, not the threads, set the pace.
const MAX_LISTERS: usize = 8;

/// What one directory's `os.listdir` gave.
type Listing = std::io::Result<Vec<Entry>>;

/// The listings a walk reads: taken from those listed ahead, or read now.
struct Listings {
    ahead: HashMap<Vec<u8>, Listing>,
    keep: Keep,
}

impl Listings {
    fn list(&mut self, dir: &[u8]) -> Listing {
        self.ahead.remove(dir).unwrap_or_else(|| list_dir(dir, self.keep))
    }
}

/// Every directory a walk of `root` lists, listed by `threads` threads at
/// once, by path. Listing is most of a walk's time, all of it in
/// syscalls, and compileall's order does not depend on which directory is
/// read first: the walk then takes each listing from here, in order.
/// Directories are listed when the walk would list them: below `root` down
/// to `maxlevels`, not through symlinks.
fn list_ahead(root: &[u8], maxlevels: i64, keep: Keep, threads: usize) -> HashMap<Vec<u8>, Listing> {
    let queue = Queue {
        state: Mutex::new(QueueState {
            todo: vec![(root.to_vec(), maxlevels)],
            busy: 0,
            waiting: 0,
        }),
        changed: Condvar::new(),
    };
    let lister = || {
        let mut listed = Vec::new();
        while let Some((dir, maxlevels)) = queue.next() {
            let listing = list_dir(&dir, keep);
            let subdirs = match &listing {
                Ok(entries) if maxlevels > 0 => entries
                    .iter()
                    .filter(|e| matches!(e.kind, Kind::Dir))
                    .map(|e| (path_join(&dir, &e.name), maxlevels - 1))
                    .collect(),
                _ => Vec::new(),
            };
            queue.done(subdirs);
            listed.push((dir, listing));
        }
        listed
    };
    std::thread::scope(|scope| {
        let lister = &lister;
        // A helper that cannot start leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, lister).ok())
            .collect();
        let mut all: HashMap<Vec<u8>, Listing> = lister().into_iter().collect();
        for helper in helpers {
            all.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        all
    })
}

/// Directories still to list, shared by `list_ahead`'s threads.
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

struct QueueState {
    /// (directory, the maxlevels of its level).
    todo: Vec<(Vec<u8>, i64)>,
    /// Directories being listed: their subdirectories are still to come.
    busy: usize,
    /// Threads waiting for either: only then is a wake-up worth a syscall.
    waiting: usize,
}

impl Queue {
    /// The next directory to list; `None` once all are listed.
    fn next(&self) -> Option<(Vec<u8>, i64)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(next) = state.todo.pop() {
                state.busy += 1;
                return Some(next);
            }
            if state.busy == 0 {
                return None;
            }
            state.waiting += 1;
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
    }

    /// A directory is listed; `subdirs` are to be listed too.
    fn done(&self, subdirs: Vec<(Vec<u8>, i64)>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.busy -= 1;
        let wake = state.waiting > 0 && (!subdirs.is_empty() || state.busy == 0);
        state.todo.extend(subdirs);
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }
}

/// `os.listdir(dir)` minus `__pycache__`, sorted as Python sorts `str`s. Any
/// error while reading fails the whole listing, as `os.listdir` raises.
/// With `Keep::Sources`, names the walk would skip (anything but
/// directories and `*.py`) are left out.
fn list_dir(dir: &[u8], keep: Keep) -> Listing {
    let handle = dirents::open_for_listing(dir)?;
    let mut entries = Vec::new();
    dirents::for_each_entry(handle.as_fd(), |name, d_type| {
        let bytes = name.to_bytes();
        if matches!(bytes, b"." | b".." | b"__pycache__") {
            return;
        }
        // Only a directory can matter whatever its name (`DT_UNKNOWN` may be one).
        if keep == Keep::Sources && !bytes.ends_with(b".py") && !matches!(d_type, dirents::DT_DIR | dirents::DT_UNKNOWN)
        {
            return;
        }
        // An lstat only where the filesystem gives no type, as `DirEntry.is_dir()`.
        let d_type = match d_type {
            dirents::DT_UNKNOWN => dirents::type_of(handle.as_fd(), name).unwrap_or(dirents::DT_UNKNOWN),
            known => known,
        };
        let kind = match d_type {
            dirents::DT_DIR => Kind::Dir,
            dirents::DT_LNK => Kind::Symlink,
            _ => Kind::Other,
        };
        entries.push(Entry {
            name: bytes.to_vec(),
            kind,
        });
    })?;
    entries.sort_unstable_by(|a, b| str_order(&a.name, &b.name));
    Ok(entries)
}

/// `os.path.isdir`: stat (following symlinks) succeeds and says directory.
fn stat_is_dir(path: &[u8]) -> bool {
    fs::metadata(Path::new(OsStr::from_bytes(path))).is_ok_and(|m| m.is_dir())
}

/// `os.path.join(dir, name)` for a name from `listdir` (never absolute).
fn path_join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut joined = Vec::with_capacity(dir.len() + 1 + name.len());
    joined.extend_from_slice(dir);
    if !dir.is_empty() && !dir.ends_with(b"/") {
        joined.push(b'/');
    }
    joined.extend_from_slice(name);
    joined
}

fn to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyrepr::oracle::{hex, interpreter, run};
    use crate::pyrepr::repr_path;
    use std::ffi::CString;
    use std::os::unix::fs::symlink;

    fn touch(root: &Path, rel: &[u8]) {
        let path = root.join(OsStr::from_bytes(rel));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x = 1\n").unwrap();
    }

    /// A tree with every kind of entry compileall treats specially.
    fn build_tree(root: &Path) {
        let t = root.join("t");
        for rel in [
            &b".hidden.py"[..],
            b"Upper/u.py",
            b"lower/l.py",
            "é.py".as_bytes(),
            b"bad\xffname.py",
            b"a\xff.py",
            "a\u{e000}.py".as_bytes(),
            b"notes.txt",
            b"x.py/inner.py",
            b"__pycache__/c.py",
            b"sub/s.py",
            b"sub/__pycache__/s.cpython-311.pyc",
            b"sub/deeper/deepest/z.py",
            b"sub/deeper/y.py",
            b"q'uote\"s\n.py",
        ] {
            touch(&t, rel);
        }
        fs::create_dir_all(t.join("empty")).unwrap();
        symlink("sub/s.py", t.join("link.py")).unwrap();
        symlink("sub", t.join("linkdir")).unwrap();
        symlink("nowhere", t.join("broken.py")).unwrap();
        symlink("loop", t.join("loop")).unwrap();
        let fifo = CString::new(t.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        touch(root, b"file.py");
    }

    /// Directories whose joined path passes PATH_MAX: compileall's `isdir`
    /// fails there (ENAMETOOLONG), so the directory is yielded as a file.
    fn build_long_path_tree(root: &Path) {
        let name = CString::new(vec![b'n'; 250]).unwrap();
        let top = CString::new(root.join("long").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and descriptors obtained from openat.
        unsafe {
            assert_eq!(libc::mkdir(top.as_ptr(), 0o755), 0);
            let mut fd = libc::open(top.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            for _ in 0..20 {
                assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0);
                let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
                libc::close(fd);
                fd = next;
            }
            let file = CString::new("leaf.py").unwrap();
            libc::close(libc::openat(fd, file.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644));
            libc::close(fd);
        }
    }

    /// Our events in the oracle's line format: printed lines as UTF-8 hex,
    /// yielded names as path-byte hex.
    fn as_oracle_lines(events: &[Event]) -> Vec<String> {
        let bytes = |p: &PathBuf| p.as_os_str().as_bytes().to_vec();
        events
            .iter()
            .map(|event| match event {
                Event::Listing(d) => format!("P {}", hex(format!("Listing {}...", repr_path(&bytes(d))).as_bytes())),
                Event::CantList(d) => format!("P {}", hex(format!("Can't list {}", repr_path(&bytes(d))).as_bytes())),
                Event::File(f) => format!("F {}", hex(&bytes(f))),
            })
            .collect()
    }

    /// Runs the interpreter's own `_walk_dir` on each (dir, maxlevels), with
    /// its `print` captured so printed lines and yields keep their order.
    const WALK_SCRIPT: &str = r#"
import os, sys, compileall
out = []
compileall.print = lambda *a, **k: out.append('P ' + ' '.join(map(str, a)).encode('utf-8').hex())
for line in sys.stdin.read().split('\n')[:-1]:
    d, n = line.split(' ')
    for item in compileall._walk_dir(os.fsdecode(bytes.fromhex(d)), maxlevels=int(n)):
        f = item[0] if isinstance(item, tuple) else item
        out.append('F ' + os.fsencode(f).hex())
    out.append('END')
print('\n'.join(out))
"#;

    /// Walks `cwd/dir` (absolute, so the process cwd does not matter) with
    /// both us and the interpreter, and compares the event streams.
    fn compare_with(version: &str, cwd: &Path, cases: &[(&[u8], i64)]) {
        let Some(exe) = interpreter(version) else {
            return;
        };
        let roots: Vec<Vec<u8>> = cases
            .iter()
            .map(|(d, _)| [cwd.as_os_str().as_bytes(), b"/", d].concat())
            .collect();
        let stdin: String = roots
            .iter()
            .zip(cases)
            .map(|(d, (_, n))| format!("{} {n}\n", hex(d)))
            .collect();
        let out = run(&exe, cwd, WALK_SCRIPT, &stdin);
        let lines: Vec<&str> = out.lines().collect();
        let mut theirs = lines.split(|l| *l == "END");
        for (root, &(dir, maxlevels)) in roots.iter().zip(cases) {
            let expected = theirs.next().unwrap();
            assert!(!expected.is_empty());
            // Keeping sources only drops the other files' lines, nothing else.
            let sources: Vec<&str> = expected
                .iter()
                .copied()
                .filter(|line| !line.starts_with("F ") || line.ends_with(&hex(b".py")))
                .collect();
            for (keep, expected) in [(Keep::Everything, expected), (Keep::Sources, &sources[..])] {
                // Listed ahead by several threads or not, the same events.
                for threads in [1, 3] {
                    let mut events = Vec::new();
                    walk_dir(&to_path(root), maxlevels, keep, threads, &mut events);
                    assert_eq!(
                        as_oracle_lines(&events),
                        expected,
                        "{version}: dir {:?} maxlevels {maxlevels}, {keep:?}, {threads} threads",
                        String::from_utf8_lossy(dir)
                    );
                }
            }
        }
    }

    const TREE_CASES: &[(&[u8], i64)] = &[
        (b"t", 1000),
        (b"t", 10),
        (b"t", 2),
        (b"t", 1),
        (b"t", 0),
        (b"t", -1),
        (b"t/", 1000),
        (b"t//", 1000),
        (b"./t", 1000),
        (b"t/linkdir", 1000),
        (b"t/x.py", 1000),
        (b"nonexist", 1000),
        (b"file.py", 1000),
        (b"t/fifo", 3),
        (b"long", 1000),
        (b"long", 16),
        (b"long", 15),
    ];

    #[test]
    fn walk_matches_compileall_every_version() {
        let tmp = tempfile::tempdir().unwrap();
        build_tree(tmp.path());
        build_long_path_tree(tmp.path());
        for version in ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"] {
            compare_with(version, tmp.path(), TREE_CASES);
        }
    }

    #[test]
    fn empty_dir_string_cannot_be_listed() {
        // compileall: `Listing ''...` then `Can't list ''` (pyc-format.md 4.1, -i).
        let mut events = Vec::new();
        walk_dir(Path::new(""), 5, Keep::Everything, 1, &mut events);
        assert_eq!(
            events,
            [Event::Listing(PathBuf::new()), Event::CantList(PathBuf::new())]
        );
    }

    #[test]
    fn deep_tree_matches_compileall() {
        // 900 levels: as deep as CPython's own recursive walk gets (it dies
        // with RecursionError near 990).
        let tmp = tempfile::tempdir().unwrap();
        let mut rel = b"d".to_vec();
        for _ in 1..900 {
            rel.extend_from_slice(b"/d");
        }
        rel.extend_from_slice(b"/a.py");
        touch(tmp.path(), &rel);
        compare_with("3.11", tmp.path(), &[(b"d", 1000), (b"d", 500)]);
    }

    #[test]
    fn very_deep_tree_does_not_overflow_the_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let depth = 1500;
        let mut rel = b"d".to_vec();
        for _ in 1..depth {
            rel.extend_from_slice(b"/d");
        }
        touch(tmp.path(), &[rel.as_slice(), b"/a.py"].concat());
        let root = tmp.path().join("d");
        // Run on a small stack so recursion per level would fail.
        let events = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut events = Vec::new();
                walk_dir(&root, 10_000, Keep::Everything, 2, &mut events);
                events
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(events.iter().filter(|e| matches!(e, Event::Listing(_))).count(), depth);
        let last = tmp.path().join(OsStr::from_bytes(&rel)).join("a.py");
        assert_eq!(events.last(), Some(&Event::File(last)));
    }
}
