use std::os::unix::fs::symlink;

use super::*;

fn dirs(cwd: &Path, prefix: Option<&[u8]>) -> PycDirs {
    PycDirs::new(Destinations::new(prefix, None, cwd), cwd)
}

fn write(dir: &Writable, pyc: &Path, body: &[u8]) {
    pyc::write_at(dir.handle.as_fd(), pyc, &[0; 16], body, None, dir.empty).unwrap();
}

/// `src/__pycache__` symlinked to `outside`, both in a temp dir.
fn pycache_leading_outside() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, outside) = (tmp.path().join("src"), tmp.path().join("outside"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&outside).unwrap();
    symlink(&outside, src.join("__pycache__")).unwrap();
    (tmp, src, outside)
}

#[test]
fn a_missing_directory_is_created_once_and_its_pycs_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pkg");
    std::fs::create_dir(&src).unwrap();
    let d = dirs(tmp.path(), None);
    let cache = src.join("__pycache__");
    // Read by path until a pyc there is missing, which asks for the directory.
    assert!(matches!(d.lookup(&cache), Lookup::ByPath));
    d.missing(&cache);
    assert!(matches!(d.lookup(&cache), Lookup::Empty));
    let pyc = cache.join("m.cpython-312.pyc");
    let w = d.writable(&pyc, &src.join("m.py")).unwrap();
    assert!(w.empty, "created by the run");
    write(&w, &pyc, b"body");
    assert_eq!(std::fs::read(&pyc).unwrap().len(), 20);
    // Still known to hold only what the run wrote.
    assert!(matches!(d.lookup(&cache), Lookup::Empty));
}

/// Pycs are read by path until the directory is opened for a compile (or
/// a missing pyc), then through that handle.
#[test]
fn an_existing_directory_is_read_through_its_handle_once_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("__pycache__");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("m.cpython-312.pyc"), [7u8; 20]).unwrap();
    let d = dirs(tmp.path(), None);
    assert!(matches!(d.lookup(&cache), Lookup::ByPath));
    d.missing(&cache);
    let Lookup::Open(handle) = d.lookup(&cache) else {
        panic!("an existing directory opens")
    };
    let header = pyc::read_header_at(handle.as_fd(), OsStr::new("m.cpython-312.pyc")).unwrap();
    assert_eq!(header, [7u8; 16]);
    let w = d
        .writable(&cache.join("m.cpython-312.pyc"), &tmp.path().join("m.py"))
        .unwrap();
    assert!(!w.empty);
}

/// The directory is swapped for a symlink to elsewhere after it was
/// checked: the write still lands in the directory that was checked.
#[test]
fn a_directory_swapped_for_a_symlink_after_the_check_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, outside) = (tmp.path().join("src"), tmp.path().join("outside"));
    std::fs::create_dir_all(src.join("__pycache__")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let d = dirs(tmp.path(), None);
    let cache = src.join("__pycache__");
    let first = cache.join("a.cpython-312.pyc");
    let w = d.writable(&first, &src.join("a.py")).unwrap();
    write(&w, &first, b"a");
    std::fs::rename(&cache, src.join("moved")).unwrap();
    symlink(&outside, &cache).unwrap();
    let second = cache.join("b.cpython-312.pyc");
    let w = d.writable(&second, &src.join("b.py")).unwrap();
    write(&w, &second, b"b");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing outside");
    assert!(src.join("moved/b.cpython-312.pyc").exists());
}

/// A directory that resolves outside its root when first opened is refused
/// on its handle, whatever the path said when checked.
#[test]
fn a_directory_whose_handle_lies_outside_is_refused() {
    let (tmp, src, outside) = pycache_leading_outside();
    let d = dirs(tmp.path(), None);
    let pyc = src.join("__pycache__/m.cpython-312.pyc");
    match d.writable(&pyc, &src.join("m.py")) {
        Err(DirError::Escape(e)) => assert_eq!(e.reason, "a symlink would take it outside its source's directory"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn a_directory_outside_the_root_is_not_swept() {
    let (tmp, src, outside) = pycache_leading_outside();
    let dead = outside.join("m.cpython-312.pyc.9999999p0000001");
    std::fs::write(&dead, b"partial").unwrap();
    let d = dirs(tmp.path(), None);
    let (pyc, source) = (src.join("__pycache__/m.cpython-312.pyc"), src.join("m.py"));
    d.lookup_to_compile(&pyc, &source);
    assert!(dead.exists(), "a compile's look swept outside the root");
    let (other_pyc, other_source) = (src.join("__pycache__/n.cpython-312.pyc"), src.join("n.py"));
    match d.writable(&other_pyc, &other_source) {
        Err(DirError::Escape(e)) => assert_eq!(e.pyc, other_pyc, "the refusal names the pyc refused"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    assert!(dead.exists(), "the refused write swept outside the root");
    let other = dirs(tmp.path(), None);
    assert!(matches!(other.writable(&pyc, &source), Err(DirError::Escape(_))));
    assert!(dead.exists(), "a write without a look swept outside the root");
}

/// A refusal lasts while the directory's handle is open; once it is closed
/// (more than `MAX_OPEN` directories) and the directory found back inside
/// the root, the next compile's look checks it again, and sweeps it then.
#[test]
fn a_directory_refused_then_found_inside_is_swept() {
    let (tmp, src, _) = pycache_leading_outside();
    let cache = src.join("__pycache__");
    let d = dirs(tmp.path(), None);
    let (pyc, source) = (cache.join("m.cpython-312.pyc"), src.join("m.py"));
    d.lookup_to_compile(&pyc, &source);
    assert!(matches!(d.writable(&pyc, &source), Err(DirError::Escape(_))));

    std::fs::remove_file(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let dead = cache.join("m.cpython-312.pyc.9999999p0000001");
    std::fs::write(&dead, b"partial").unwrap();
    d.lookup_to_compile(&pyc, &source);
    assert!(dead.exists(), "the refusal stands while its handle is open");
    for i in 0..MAX_OPEN {
        d.lookup(&tmp.path().join(format!("other{i}")));
    }
    d.lookup_to_compile(&pyc, &source);
    assert!(!dead.exists(), "checked again and swept once the handle was closed");
    assert!(d.writable(&pyc, &source).is_ok());
}

#[test]
fn prefix_levels_are_created_below_the_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("pfx");
    std::fs::create_dir(&prefix).unwrap();
    let d = dirs(tmp.path(), Some(prefix.as_os_str().as_bytes()));
    let dir = prefix.join("a/b/c");
    let pyc = dir.join("m.cpython-312.pyc");
    let w = d.writable(&pyc, Path::new("/a/b/c/m.py")).unwrap();
    assert!(w.empty);
    write(&w, &pyc, b"x");
    assert!(pyc.exists());
    // A level that cannot be made is named as os.makedirs names it.
    let blocked = prefix.join("file");
    std::fs::write(&blocked, "").unwrap();
    let pyc = blocked.join("d/m.cpython-312.pyc");
    match d.writable(&pyc, Path::new("/file/d/m.py")) {
        Err(DirError::Write(e)) => assert!(e.to_string().starts_with("NotADirectoryError"), "{e}"),
        other => panic!("expected a write error, got {:?}", other.err()),
    }
}

/// What a thread remembers of its last directory belongs to that run: a
/// later run on the same thread asks again.
#[test]
fn a_later_run_on_the_same_thread_looks_again() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("__pycache__");
    let first = dirs(tmp.path(), None);
    first.missing(&cache);
    assert!(matches!(first.lookup(&cache), Lookup::Empty));
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("m.cpython-312.pyc"), [7u8; 20]).unwrap();
    // The first run still knows the directory as missing when it started.
    assert!(matches!(first.lookup(&cache), Lookup::Empty));
    let second = dirs(tmp.path(), None);
    second.missing(&cache);
    assert!(matches!(second.lookup(&cache), Lookup::Open(_)));
}

/// What one thread learns of a directory (missing, or open) reaches
/// another that read it by path: after its own next missing pyc there, it
/// asks neither the kernel nor the lock again.
#[test]
fn what_one_thread_finds_reaches_a_thread_reading_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = tmp.path().join("gone/__pycache__");
    let there = tmp.path().join("__pycache__");
    std::fs::create_dir(&there).unwrap();
    let d = dirs(tmp.path(), None);
    for (dir, expect_open) in [(&missing_dir, false), (&there, true)] {
        std::thread::scope(|scope| {
            let (to_b, from_a) = std::sync::mpsc::channel::<()>();
            let (to_a, from_b) = std::sync::mpsc::channel::<()>();
            let d = &d;
            scope.spawn(move || {
                assert!(matches!(d.lookup(dir), Lookup::ByPath));
                to_b.send(()).unwrap();
                from_b.recv().unwrap();
                // Still by path, as remembered; its own missing pyc then
                // takes what the other thread found.
                assert!(matches!(d.lookup(dir), Lookup::ByPath));
                d.missing(dir);
                let found = d.lookup(dir);
                assert_eq!(matches!(found, Lookup::Open(_)), expect_open, "{}", dir.display());
                assert_eq!(matches!(found, Lookup::Empty), !expect_open, "{}", dir.display());
            });
            scope.spawn(move || {
                from_a.recv().unwrap();
                d.missing(dir);
                to_a.send(()).unwrap();
            });
        });
    }
    // A directory created after it was found missing stays missing to the run.
    std::fs::create_dir_all(&missing_dir).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| assert!(matches!(d.lookup(&missing_dir), Lookup::Empty)));
    });
}

/// A directory not yet opened is opened for a compile and swept once; a
/// missing one is found missing, for every thread.
#[test]
fn a_compile_opens_and_sweeps_its_directory_once() {
    let tmp = tempfile::tempdir().unwrap();
    let there = tmp.path().join("__pycache__");
    std::fs::create_dir(&there).unwrap();
    let dead = there.join("m.cpython-312.pyc.9999999p0000001");
    std::fs::write(&dead, b"partial").unwrap();
    let d = dirs(tmp.path(), None);
    let (pyc, source) = (there.join("m.cpython-312.pyc"), tmp.path().join("m.py"));
    assert!(matches!(d.lookup(&there), Lookup::ByPath));
    assert!(matches!(d.lookup_to_compile(&pyc, &source), Lookup::Open(_)));
    assert!(!dead.exists(), "swept");
    std::fs::write(&dead, b"partial").unwrap();
    assert!(matches!(d.lookup_to_compile(&pyc, &source), Lookup::Open(_)));
    assert!(dead.exists(), "swept once a run");
    let gone = tmp.path().join("gone/__pycache__");
    let gone_pyc = gone.join("m.cpython-312.pyc");
    assert!(matches!(
        d.lookup_to_compile(&gone_pyc, &tmp.path().join("gone/m.py")),
        Lookup::Empty
    ));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            assert!(matches!(d.lookup(&gone), Lookup::Empty));
            assert!(matches!(d.lookup(&there), Lookup::Open(_)));
        });
    });
}
