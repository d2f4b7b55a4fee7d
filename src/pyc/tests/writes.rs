//! Putting a pyc in place: new inodes, no temp beside a pyc, failures
//! worded as `_write_atomic`'s, modes under a umask, temp names and sweeps.

use super::*;

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_atomic_replaces_pyc_with_a_new_inode_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let cfile = dir.path().join("m.cpython-311.pyc");
    let head = header(MAGIC_311, InvalidationMode::Timestamp, timestamp_stamp(1, 0, 2));
    write_atomic(&cfile, &head, b"old", Some(0o644)).unwrap();
    std::fs::hard_link(&cfile, dir.path().join("dupe.pyc")).unwrap();
    let old_inode = std::fs::metadata(&cfile).unwrap().ino();
    write_atomic(&cfile, &head, b"new body", Some(0o644)).unwrap();
    assert_ne!(
        std::fs::metadata(&cfile).unwrap().ino(),
        old_inode,
        "replaced, not rewritten in place [V3.11 §3.3]"
    );
    assert_eq!(std::fs::read(&cfile).unwrap(), [&head[..], b"new body"].concat());
    assert_eq!(
        std::fs::read(dir.path().join("dupe.pyc")).unwrap(),
        [&head[..], b"old"].concat()
    );
    assert_eq!(dir_entries(dir.path()), ["dupe.pyc", "m.cpython-311.pyc"]);
}

/// One way of replacing a pyc, given the round's number.
type Replace<'a> = Box<dyn Fn(usize) + 'a>;

/// What another thread saw listing a directory while a pyc in it was
/// replaced again and again.
#[derive(Default)]
struct Seen {
    listings: usize,
    /// Listings with a temp file of the pyc in them.
    temp: usize,
    /// Of those, the ones where the pyc was there too.
    temp_beside: usize,
}

/// Replaces `cfile` (in `dir`) by `replace` `rounds` times, and on until
/// another thread has listed `dir` at least 1,000 times meanwhile.
fn replace_while_listing(dir: &Path, cfile: &Path, rounds: usize, replace: &dyn Fn(usize)) -> Seen {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let listed = std::sync::Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, listed, dir) = (stop.clone(), listed.clone(), dir.to_owned());
        let name = cfile.file_name().unwrap().to_string_lossy().into_owned();
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) {
                // One getdents64 for a directory this small: a snapshot
                // taken under the directory's lock.
                let names = dir_entries(&dir);
                let temp = names.iter().any(|n| n.starts_with(&format!("{name}.")));
                seen.listings += 1;
                seen.temp += usize::from(temp);
                seen.temp_beside += usize::from(temp && names.contains(&name));
                listed.store(seen.listings, Ordering::Relaxed);
            }
            seen
        })
    };
    let mut round = 0;
    while round < rounds || listed.load(Ordering::Relaxed) < 1_000 {
        replace(round);
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap()
}

/// Replacing a pyc never shows a temp file beside it: with `O_TMPFILE`
/// none at all (the unnamed file is linked after the old pyc is removed;
/// `--hardlink-dupes` links after removing too), and the named fallback's
/// temp only while the pyc is missing. So a kill at any point leaves no temp
/// next to a pyc that later runs would find fresh and never sweep.
#[test]
fn a_replaced_pyc_never_has_a_temp_file_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfile = dir.path().join("m.cpython-312.pyc");
    let dupe = dir.path().join("m.cpython-312.opt-1.pyc");
    let handle = open_dir(dir.path()).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&handle);
    let body = |round: usize| format!("body {round}").into_bytes();
    write_at(fd, &cfile, &[0; 16], b"first", None, true).unwrap();
    write_at(fd, &dupe, &[0; 16], b"first", None, true).unwrap();
    let name = CString::new("m.cpython-312.pyc").unwrap();
    let cases: [(&str, &Path, Replace<'_>); 3] = [
        (
            "unnamed",
            &cfile,
            Box::new(|r| write_at(fd, &cfile, &[0; 16], &body(r), None, false).unwrap()),
        ),
        (
            "named",
            &cfile,
            Box::new(|r| write_named(fd, &cfile, &name, &[0; 16], &body(r), 0o644, false).unwrap()),
        ),
        ("link", &dupe, Box::new(|_| link_at(fd, &cfile, &dupe, false).unwrap())),
    ];
    for (what, target, replace) in cases {
        let seen = replace_while_listing(dir.path(), target, 3_000, &*replace);
        assert_eq!(
            seen.temp_beside, 0,
            "{what}: a temp beside the pyc in {} of {} listings",
            seen.temp_beside, seen.listings
        );
        if what != "named" {
            assert_eq!(
                seen.temp, 0,
                "{what}: a temp file in {} of {} listings",
                seen.temp, seen.listings
            );
        }
    }
    assert_eq!(std::fs::read(&dupe).unwrap(), std::fs::read(&cfile).unwrap());
    assert_eq!(
        std::fs::metadata(&dupe).unwrap().ino(),
        std::fs::metadata(&cfile).unwrap().ino()
    );
    assert_eq!(
        dir_entries(dir.path()),
        ["m.cpython-312.opt-1.pyc", "m.cpython-312.pyc"]
    );
}

const PY_WRITE_ATOMIC: &str = r#"
import sys
from importlib._bootstrap_external import _write_atomic
for path in sys.argv[1:]:
    try:
        _write_atomic(path, b"data", 0o644)
        print("ok")
    except OSError as e:
        print(type(e).__name__ + ": " + str(e))
"#;

/// Rename onto a directory and open in a missing or non-directory parent:
/// the error text matches `_write_atomic`'s and the temp file is gone.
#[test]
fn write_atomic_failures_match_python_and_remove_the_temp() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir_all(p("full.pyc")).unwrap();
    std::fs::write(p("full.pyc/keep"), "").unwrap();
    std::fs::create_dir(p("empty.pyc")).unwrap();
    std::fs::write(p("file"), "").unwrap();
    let cases = ["full.pyc", "empty.pyc", "nodir/x.pyc", "file/x.pyc"];
    let ours: Vec<String> = cases
        .iter()
        .map(|c| match write_atomic(&p(c), &[0; 16], b"", None) {
            Ok(()) => "ok".to_owned(),
            Err(err) => {
                match &err {
                    WriteError::Rename { from, to, .. } => {
                        assert!(from.starts_with(dir.path()) && to == &p(c))
                    }
                    WriteError::Io { path, .. } => {
                        assert!(path.as_os_str().len() == p(c).as_os_str().len() + 16)
                    }
                    other => panic!("{c}: unexpected {other:?}"),
                }
                normalize_temp(&err.to_string(), &p(c))
            }
        })
        .collect();
    assert!(ours[0].starts_with("IsADirectoryError: [Errno 21]"), "{}", ours[0]);
    assert_eq!(
        dir_entries(dir.path()),
        ["empty.pyc", "file", "full.pyc"],
        "temp files removed"
    );
    assert_eq!(dir_entries(&p("full.pyc")), ["keep"]);
    for python in interpreters() {
        let args: Vec<OsString> = cases.iter().map(|c| p(c).into()).collect();
        let theirs = run_python(&python, PY_WRITE_ATOMIC, &args);
        let theirs: Vec<String> = theirs
            .lines()
            .zip(cases)
            .map(|(l, c)| normalize_temp(l, &p(c)))
            .collect();
        assert_eq!(ours, theirs, "{}", python.display());
    }
}

/// A failing write(2): RLIMIT_FSIZE = 0 with SIGXFSZ ignored (Python ignores
/// it at start-up) gives EFBIG, which Python reports without a file name.
#[test]
fn write_atomic_write_failure_names_no_file_and_removes_the_temp() {
    let dir = tempfile::tempdir().unwrap();
    let ours = run_child("fsize", dir.path(), "", &[]);
    assert_eq!(
        ours,
        ["write error 27", "OSError: [Errno 27] File too large", "left: []"]
    );
    for python in interpreters() {
        let script = format!(
            "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))\n{PY_WRITE_ATOMIC}"
        );
        let theirs = run_python(&python, &script, &[dir.path().join("x.pyc").into()]);
        assert_eq!(ours[1], theirs.trim_end(), "{}", python.display());
    }
}

pub(super) fn child_write_over_fsize_limit(dir: &Path) {
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    match write_atomic(&dir.join("x.pyc"), &[0; 16], b"body", None) {
        Err(err @ WriteError::Write { .. }) => {
            let WriteError::Write { source, .. } = &err else {
                unreachable!()
            };
            println!("@@ write error {}", source.raw_os_error().unwrap());
            println!("@@ {err}");
        }
        other => println!("@@ unexpected {other:?}"),
    }
    println!("@@ left: {:?}", dir_entries(dir));
}

/// §3.3: (umask, [(source mode, pyc mode)]) as observed with CPython 3.11.
#[rustfmt::skip]
const MODE_TABLE: [(u32, [(u32, u32); 8]); 3] = [
    (0o022, [(0o644, 0o644), (0o444, 0o644), (0o755, 0o644), (0o600, 0o600), (0o4755, 0o644), (0o2775, 0o644), (0o1777, 0o644), (0o000, 0o200)]),
    (0o000, [(0o644, 0o644), (0o444, 0o644), (0o755, 0o644), (0o600, 0o600), (0o4755, 0o644), (0o2775, 0o664), (0o1777, 0o666), (0o000, 0o200)]),
    (0o077, [(0o644, 0o600), (0o444, 0o600), (0o755, 0o600), (0o600, 0o600), (0o4755, 0o600), (0o2775, 0o600), (0o1777, 0o600), (0o000, 0o200)]),
];

const PY_MODES_UNDER_UMASK: &str = r#"
import os, py_compile, sys
os.umask(int(sys.argv[1], 8))
d = sys.argv[2]
os.makedirs(os.path.join(d, "made", "deeper"))
print(oct(os.stat(os.path.join(d, "made")).st_mode & 0o7777))
for src in sorted(f for f in os.listdir(d) if f.endswith(".py")):
    cfile = os.path.join(d, src + "c")
    py_compile.compile(os.path.join(d, src), cfile, doraise=True)
    print(src, oct(os.stat(cfile).st_mode & 0o7777))
from importlib._bootstrap_external import _calc_mode, _write_atomic
cfile = os.path.join(d, "nosource.pyc")
_write_atomic(cfile, b"", _calc_mode(os.path.join(d, "no-such-source.py")))
print("unknown", oct(os.stat(cfile).st_mode & 0o7777))
"#;

fn sources_with_modes(dir: &Path, modes: &[(u32, u32)]) {
    for (mode, _) in modes {
        let source = dir.join(format!("m{mode:o}.py"));
        std::fs::write(&source, "x = 1\n").unwrap();
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

pub(super) fn child_write_under_umask(dir: &Path, umask: u32) {
    unsafe { libc::umask(umask as libc::mode_t) };
    create_dirs(&dir.join("made/deeper")).unwrap();
    println!("@@ {:#o}", std::fs::metadata(dir.join("made")).unwrap().mode() & 0o7777);
    let mut sources: Vec<String> = dir_entries(dir).into_iter().filter(|n| n.ends_with(".py")).collect();
    sources.sort();
    for source in sources {
        let cfile = dir.join(format!("{source}c"));
        let mode = std::fs::metadata(dir.join(&source)).unwrap().mode();
        write_atomic(&cfile, &[0; 16], b"", Some(mode)).unwrap();
        println!("@@ {source} {:#o}", std::fs::metadata(&cfile).unwrap().mode() & 0o7777);
    }
    write_atomic(&dir.join("nosource.pyc"), &[0; 16], b"", None).unwrap();
    let unknown = std::fs::metadata(dir.join("nosource.pyc")).unwrap().mode() & 0o7777;
    println!("@@ unknown {unknown:#o}");
}

#[test]
fn write_atomic_and_create_dirs_modes_follow_the_umask() {
    for (umask, table) in MODE_TABLE {
        let dir = tempfile::tempdir().unwrap();
        sources_with_modes(dir.path(), &table);
        let ours = run_child("umask", dir.path(), &format!("{umask:o}"), &[]);
        assert_eq!(
            ours[0],
            format!("{:#o}", 0o777 & !umask),
            "directory mode under umask {umask:03o}"
        );
        let mut want: Vec<String> = table.iter().map(|(src, pyc)| format!("m{src:o}.py {pyc:#o}")).collect();
        want.sort();
        assert_eq!(ours[1..=8], want, "pyc modes under umask {umask:03o}");
        assert_eq!(
            ours[9],
            format!("unknown {:#o}", 0o666 & !umask),
            "no source mode: 0o666"
        );
        for python in interpreters() {
            let live = tempfile::tempdir().unwrap();
            sources_with_modes(live.path(), &table);
            let theirs = run_python(
                &python,
                PY_MODES_UNDER_UMASK,
                &[format!("{umask:o}").into(), live.path().into()],
            );
            assert_eq!(
                ours,
                theirs.lines().collect::<Vec<_>>(),
                "{} umask {umask:03o}",
                python.display()
            );
        }
    }
}

#[test]
fn temp_names_carry_their_writer() {
    let name = temp_name(Path::new("d/m.cpython-311.pyc"), TempKind::Write);
    let text = name.to_str().unwrap();
    // Same length as CPython's `<cfile>.<id(path)>` (15 digits on x86-64).
    assert_eq!(text.len(), "d/m.cpython-311.pyc".len() + 16);
    assert_eq!(
        temp_writer(name.file_name().unwrap().as_bytes()),
        Some(std::process::id())
    );
    let cases: &[(&str, Option<u32>)] = &[
        ("m.cpython-311.pyc.0012345p0000007", Some(12345)),
        ("m.cpython-311.opt-1.pyc.4194304l9999999", Some(4194304)),
        ("m.pyc.0000001p0000000", Some(1)),
        // CPython's own temp name (an object address): never ours.
        ("m.cpython-311.pyc.140234567891234", None),
        ("m.py.0012345p0000007", None),
        ("m.cpython-311.pyc.0012345x0000007", None),
        ("m.cpython-311.pyc.0012345p000007", None),
        ("m.cpython-311.pyc", None),
    ];
    for &(name, writer) in cases {
        assert_eq!(temp_writer(name.as_bytes()), writer, "{name}");
    }
}

#[test]
fn sweep_removes_only_temps_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let own = std::process::id();
    let names = [
        format!("a.cpython-311.pyc.{dead:07}p0000001"),
        format!("b.cpython-311.pyc.{dead:07}l0000002"),
        format!("c.cpython-311.pyc.{own:07}p0000003"),
        "d.cpython-311.pyc.140234567891234".to_owned(),
        format!("e.py.{dead:07}p0000004"),
        "f.cpython-311.pyc".to_owned(),
    ];
    for name in &names {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }
    assert_eq!(sweep_stale_temps(dir.path()), 2);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, names[2..].to_vec());
}
