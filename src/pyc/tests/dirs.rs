//! py_compile's destination checks and `os.makedirs`'s errors, level by
//! level, as root and as an unprivileged user.

use super::*;

const PY_COMPILE_DESTINATIONS: &str = r#"
import py_compile, sys
for cfile in sys.argv[2:]:
    try:
        py_compile.compile(sys.argv[1], cfile, doraise=True)
        print("ok")
    except FileExistsError as e:
        print("FileExistsError: " + str(e))
    except OSError as e:
        print("ok")  # failed later than the destination checks
"#;

#[test]
fn check_destination_matches_py_compile() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("a.py"), "x = 1\n").unwrap();
    std::fs::write(p("reg.pyc"), "old").unwrap();
    std::fs::create_dir(p("dir.pyc")).unwrap();
    symlink("nowhere", p("dangling.pyc")).unwrap();
    symlink("reg.pyc", p("link.pyc")).unwrap();
    let fifo = std::ffi::CString::new(p("fifo.pyc").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let names = [
        "dangling.pyc",
        "link.pyc",
        "dir.pyc",
        "fifo.pyc",
        "reg.pyc",
        "missing.pyc",
        "reg.pyc/x.pyc",
    ];
    let ours: Vec<String> = names
        .iter()
        .map(|n| check_destination(&p(n)).map_or_else(|e| e.to_string(), |()| "ok".to_owned()))
        .collect();
    assert_eq!(
        ours[0],
        format!(
            "FileExistsError: {} is a symlink and will be changed into a regular file if import writes a byte-compiled file to it",
            p("dangling.pyc").display()
        )
    );
    for python in interpreters() {
        let args: Vec<OsString> = std::iter::once("a.py").chain(names).map(|n| p(n).into()).collect();
        let theirs = run_python(&python, PY_COMPILE_DESTINATIONS, &args);
        assert_eq!(ours, theirs.lines().collect::<Vec<_>>(), "{}", python.display());
    }
}

/// A tree where some path components are not directories.
fn make_obstacle_tree(root: &Path) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("f"), "not a directory").unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();
    symlink("d", root.join("ldir")).unwrap();
}

const CREATE_DIR_CASES: [&str; 12] = [
    "d/new/__pycache__",
    "d/a/b/c",
    "d",
    "f",
    "f/__pycache__",
    "f/sub/deep/__pycache__",
    "f/.",
    "dangling/__pycache__",
    "ldir/x/y",
    "d/n2/./__pycache__",
    "d/n3/../__pycache__",
    "d//n4//x",
];

/// `ok` or `<errno> <failing path relative to root>`.
pub(super) fn create_dirs_outcome(root: &Path, dir: &str) -> String {
    match create_dirs(&root.join(dir)) {
        Ok(()) => "ok".to_owned(),
        Err(WriteError::Io { path, source }) => {
            // Byte-wise, so that `f/.` or `d//x` are not normalised away.
            let rel = &path.as_os_str().as_bytes()[root.as_os_str().len() + 1..];
            format!("{} {}", source.raw_os_error().unwrap(), String::from_utf8_lossy(rel))
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// py_compile.compile into `<dir>/x.pyc`; an error on the temp file means
/// the directories were made and is reported as ok.
const PY_COMPILE_MAKEDIRS: &str = r#"
import os, py_compile, sys
root = sys.argv[1]
for d in sys.argv[3:]:
    cfile = os.path.join(root, d, "x.pyc")
    try:
        py_compile.compile(sys.argv[2], cfile, doraise=True)
        print("ok")
    except OSError as e:
        if e.filename.startswith(cfile + "."):
            print("ok")
        else:
            print(e.errno, e.filename[len(root) + 1:])
"#;

/// Directories (relative, with modes) under `root`, to compare two trees.
fn listing(root: &Path) -> Vec<String> {
    let mut all: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_dir())
        .map(|e| {
            format!(
                "{} {:o}",
                e.path().strip_prefix(root).unwrap().display(),
                e.metadata().unwrap().mode()
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn create_dirs_fails_at_the_level_py_compile_names() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("a.py");
    std::fs::write(&source, "x = 1\n").unwrap();
    let ours_root = dir.path().join("ours");
    make_obstacle_tree(&ours_root);
    let ours: Vec<String> = CREATE_DIR_CASES
        .iter()
        .map(|d| create_dirs_outcome(&ours_root, d))
        .collect();
    for (n, python) in interpreters().iter().enumerate() {
        let root = dir.path().join(format!("py{n}"));
        make_obstacle_tree(&root);
        let args: Vec<OsString> = [root.as_os_str(), source.as_os_str()]
            .into_iter()
            .map(OsString::from)
            .chain(CREATE_DIR_CASES.map(OsString::from))
            .collect();
        let theirs = run_python(python, PY_COMPILE_MAKEDIRS, &args);
        assert_eq!(ours, theirs.lines().collect::<Vec<_>>(), "{}", python.display());
        assert_eq!(listing(&ours_root), listing(&root), "{}", python.display());
    }
}

/// Read-only and unsearchable directories: only an unprivileged process sees
/// EACCES, so both sides run as uid 65534 through `setpriv`.
#[test]
fn create_dirs_permission_errors_match_python_as_nobody() {
    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(nobody[0])
            .args(&nobody[1..])
            .args([py, "-c", "pass"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python.filter(|_| unsafe { libc::geteuid() } == 0) else {
        eprintln!("SKIP: needs root, setpriv and a python3 that uid 65534 can run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let source = dir.path().join("a.py");
    std::fs::write(&source, "x = 1\n").unwrap();
    let cases = [
        "ro/__pycache__",
        "ro/sub/__pycache__",
        "nx/sub/__pycache__",
        "ok/new/__pycache__",
    ];
    let mut outcomes = Vec::new();
    for side in ["ours", "py"] {
        let root = dir.path().join(side);
        for (sub, mode) in [
            ("", 0o777),
            ("ro", 0o555),
            ("nx/sub", 0o777),
            ("nx", 0o600),
            ("ok", 0o777),
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
            std::fs::set_permissions(root.join(sub), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        outcomes.push(if side == "ours" {
            run_child("create_dirs", &root, &cases.join("\n"), &nobody)
        } else {
            let mut cmd = Command::new(nobody[0]);
            cmd.args(&nobody[1..])
                .args([python, "-c", PY_COMPILE_MAKEDIRS])
                .arg(&root)
                .arg(&source)
                .args(cases);
            String::from_utf8(cmd.output().unwrap().stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        });
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0][1], "13 ro/sub", "the level named is the first missing one");
}
