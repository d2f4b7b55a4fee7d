//! PyPy (Debian's `pypy3`, PyPy 7.3 / Python 3.9) as a target of the
//! interpreter-worker backend: pycs at its cache tag with its magic and
//! headers, `--check` and freshness, and `pypy3 -v` loading them.
//!
//! Bytes: PyPy's marshal flags a string as interned depending on what the
//! compiling process has loaded and compiled before, so `pypy3 -m
//! compileall`, `-j` and `py_compile` disagree among themselves. What is
//! compared with compileall is the header and the code object (`==` after
//! `marshal.loads`, which compares bytecode, constants, names and line
//! tables); the count of byte-identical files is reported.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, precompyle, run, scratch};

fn pypy() -> Option<PathBuf> {
    let found = Command::new("pypy3")
        .arg("-c")
        .arg("pass")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: no pypy3 on PATH (apt-get install pypy3)");
    }
    found.then(|| PathBuf::from("pypy3"))
}

/// pypy3 compares the pycs of two trees: "N same-bytes M same-code D different".
const COMPARE: &str = r#"
import marshal, os, sys
a, b = sys.argv[1], sys.argv[2]
same = code = different = 0
for d, _, files in os.walk(a):
    for f in files:
        x = open(os.path.join(d, f), "rb").read()
        y = open(os.path.join(b, os.path.relpath(os.path.join(d, f), a)), "rb").read()
        if x == y:
            same += 1
        elif x[:16] == y[:16] and marshal.loads(x[16:]) == marshal.loads(y[16:]):
            code += 1
        else:
            different += 1
            print("differs:", os.path.join(d, f), file=sys.stderr)
print(same, code, different)
"#;

fn write_pycs(pycs: &BTreeMap<PathBuf, Vec<u8>>, root: &Path) {
    for (rel, bytes) in pycs {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// `[same bytes, same code, different]` between `theirs` and `ours`, as
/// pypy3 sees them; asserts none is different.
fn compare(
    pypy: &Path,
    theirs: &BTreeMap<PathBuf, Vec<u8>>,
    ours: &BTreeMap<PathBuf, Vec<u8>>,
    dir: &Path,
) -> Vec<usize> {
    let (theirs_dir, ours_dir) = (dir.join("theirs"), dir.join("ours"));
    for d in [&theirs_dir, &ours_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
    write_pycs(theirs, &theirs_dir);
    write_pycs(ours, &ours_dir);
    let out = run(Command::new(pypy)
        .arg("-c")
        .arg(COMPARE)
        .arg(&theirs_dir)
        .arg(&ours_dir));
    let counts = String::from_utf8_lossy(&out.stdout);
    let counts: Vec<usize> = counts.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.len(), 3, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(counts[2], 0, "{}", String::from_utf8_lossy(&out.stderr));
    counts
}

#[test]
fn pypy_pycs_are_compilealls_code_and_load() {
    let Some(pypy) = pypy() else { return };
    let s = scratch();
    let tree = support::stdlib_sample(&pypy, s.path(), "tree", &["json", "email", "asyncio"]);
    let work = s.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let args = [OsStr::new("-q"), OsStr::new("tree")];
    let p = support::parity(&pypy, &tree, &work, &args, &args, &[]);
    assert!(p.ours.status.success(), "{}", String::from_utf8_lossy(&p.ours.stderr));
    assert_eq!(
        p.our_pycs.keys().collect::<Vec<_>>(),
        p.oracle_pycs.keys().collect::<Vec<_>>(),
        "the same pyc paths"
    );
    assert!(p.our_pycs.keys().all(|k| k.to_string_lossy().ends_with(".pypy39.pyc")));
    let counts = compare(&pypy, &p.oracle_pycs, &p.our_pycs, s.path());

    // The pycs are fresh by precompyle's own check, and PyPy loads them.
    let check = run(precompyle()
        .current_dir(&work)
        .arg("--python")
        .arg(&pypy)
        .args(["--check", "tree"]));
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let loaded = run(Command::new(&pypy)
        .current_dir(&work)
        .env("PYTHONPATH", &work)
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .args(["-v", "-c", "import tree.json.tool, tree.email.message, tree.asyncio"]));
    let log = String::from_utf8_lossy(&loaded.stderr);
    let matched: std::collections::BTreeSet<&str> = log.lines().filter(|l| l.contains(".pypy39.pyc matches")).collect();
    let matched = matched.len();
    assert!(
        log.contains("tree/json/__pycache__/tool.pypy39.pyc matches"),
        "pypy3 -v did not load our pyc:\n{log}"
    );
    eprintln!(
        "REPORT pypy: {} pycs; {} byte-identical to pypy3 -m compileall, {} equal as code objects, 0 different; \
         pypy3 -v loaded {matched}",
        p.our_pycs.len(),
        counts[0],
        counts[1]
    );
}

/// PyPy and CPython in one run (`--python pypy3 --python python3`): each
/// target's pycs as its own compileall's (PyPy: headers and code objects;
/// CPython: bytes), and the lines say which target each is for.
#[test]
fn pypy_and_cpython_in_one_run() {
    let Some(pypy) = pypy() else { return };
    let python3 = support::python3();
    let s = scratch();
    let tree = support::stdlib_sample(&pypy, s.path(), "tree", &["json", "email"]);
    let work = s.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let (pypy_args, ours) = (
        [OsStr::new("-q"), OsStr::new("tree")],
        [OsStr::new("--python"), python3.as_os_str(), OsStr::new("tree")],
    );
    let p = support::parity(&pypy, &tree, &work, &pypy_args, &ours, &[]);
    assert!(p.ours.status.success(), "{}", String::from_utf8_lossy(&p.ours.stderr));
    let is_pypy = |k: &&PathBuf| k.to_string_lossy().ends_with(".pypy39.pyc");
    let (our_pypy, our_cpython): (BTreeMap<_, _>, BTreeMap<_, _>) =
        p.our_pycs.into_iter().partition(|(k, _)| is_pypy(&k));
    assert_eq!(
        our_pypy.keys().collect::<Vec<_>>(),
        p.oracle_pycs.keys().collect::<Vec<_>>()
    );
    let counts = compare(&pypy, &p.oracle_pycs, &our_pypy, s.path());

    let stdout = String::from_utf8_lossy(&p.ours.stdout);
    assert!(stdout.contains("[pypy39] Compiling 'tree/json/tool.py'..."), "{stdout}");
    assert!(
        stdout.contains("[cpython-311] Compiling 'tree/json/tool.py'..."),
        "{stdout}"
    );

    // python3's compileall over the same tree at the same path.
    support::remove_pycaches(&work.join("tree"));
    let oracle = support::compileall(&python3, &work, &[OsStr::new("-q"), OsStr::new("tree")]);
    assert!(oracle.status.success());
    let theirs = support::pycs_under(&work);
    assert_eq!(support::diff_pycs(&theirs, &our_cpython), "");
    eprintln!(
        "REPORT pypy + python3 in one run: pypy39 {} pycs ({} byte-identical, {} equal as code objects), \
         cpython-311 {} of {} byte-identical",
        our_pypy.len(),
        counts[0],
        counts[1],
        our_cpython.len(),
        theirs.len()
    );
}
