//! The native backend end to end: with no Python on PATH at all, pycs land
//! where the target's compileall puts them, load in that interpreter, and
//! equal its own code objects; the backend rule picks what `--help` says.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{self, compileall, copy_tree, pycs_under, run, scratch, stdlib_sample};

/// precompyle with an empty PATH and no interpreter named anywhere: any
/// attempt to start Python fails.
pub fn without_python(cwd: &Path) -> Command {
    let mut cmd = support::precompyle();
    cmd.env("PATH", "").env_remove("PRECOMPYLE_PYTHON").current_dir(cwd);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Loads every pyc of `theirs` and the pyc at the same path under `ours` in
/// `python`, and names the ones that differ: `header`, `shape` (the tree of
/// nested code objects by qualified name, or `co_filename`), or `code` (`!=`:
/// bytecode, constants, names, positions or exception table).
fn compare_code_objects(python: &Path, ours: &Path, theirs: &Path) -> Vec<String> {
    let script = "import sys, marshal, pathlib\n\
        ours, theirs = map(pathlib.Path, sys.argv[1:3])\n\
        def shape(c):\n\
        \x20   return (c.co_qualname, c.co_filename, [shape(k) for k in c.co_consts if hasattr(k, 'co_code')])\n\
        for pyc in sorted(theirs.rglob('*.pyc')):\n\
        \x20   a, b = (ours / pyc.relative_to(theirs)).read_bytes(), pyc.read_bytes()\n\
        \x20   x, y = marshal.loads(a[16:]), marshal.loads(b[16:])\n\
        \x20   what = 'header' if a[:16] != b[:16] else 'shape' if shape(x) != shape(y) else 'code' if x != y else ''\n\
        \x20   if what:\n\
        \x20       print(what, pyc.relative_to(theirs))\n";
    let out = run(Command::new(python).args(["-c", script]).arg(ours).arg(theirs));
    assert!(
        out.status.success(),
        "comparing in {}: {}",
        python.display(),
        stderr(&out)
    );
    support::stdout_lines(&out)
}

/// The edge fixtures and a stdlib sample compiled natively for 3.13 with
/// PATH emptied, against 3.13.0's compileall on a copy at the same relative
/// path: the same pyc paths (but one), the same exit code, equal code objects.
#[test]
fn native_without_python_matches_compileall() {
    let Some(python) = support::pyenv("3.13") else { return };
    let dir = scratch();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    for root in [&ours, &theirs] {
        std::fs::create_dir(root).unwrap();
        copy_tree(Path::new("fixtures/edge/content"), &root.join("edge"));
        stdlib_sample(&python, root, "lib", &["json", "email", "importlib"]);
    }
    let oracle = compileall(&python, &theirs, &[OsStr::new("-q"), OsStr::new(".")]);
    let out = run(without_python(&ours).args(["-q", "--backend", "native", "--target", "3.13", "."]));
    assert_eq!(out.status.code(), oracle.status.code(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cpython 3.13.15, cpython-313, native backend"),
        "{}",
        stderr(&out)
    );

    // The guard refuses what CPython's parser gives up on, in its words, so
    // the pycs are the same.
    let deep = "*** Error compiling './edge/deep_unary.py'...\n\
        Sorry: MemoryError: Parser stack overflowed - Python source too complex to parse\n";
    assert!(text(&oracle.stdout).contains(deep), "{}", text(&oracle.stdout));
    assert!(text(&out.stdout).contains(deep), "{}", text(&out.stdout));
    let (ours_pycs, theirs_pycs) = (pycs_under(&ours), pycs_under(&theirs));
    assert_eq!(
        ours_pycs.keys().collect::<Vec<_>>(),
        theirs_pycs.keys().collect::<Vec<_>>()
    );
    assert!(theirs_pycs.len() > 50, "only {} pycs", theirs_pycs.len());
    // The edge fixtures compile to equal code objects. Some stdlib modules
    // use code generation that changed between 3.13.0 and serc's 3.13.15
    // (docs/exactness.md's differential check sorts those out), so for them the
    // header and the shape must match and every pyc must load.
    let differ = compare_code_objects(&python, &ours, &theirs);
    let unexpected: Vec<&String> = differ.iter().filter(|line| !(line.starts_with("code lib/"))).collect();
    assert!(unexpected.is_empty(), "differences from 3.13.0's pycs: {unexpected:#?}");

    // A second run finds everything fresh, still without Python.
    let again = run(without_python(&ours).args(["--backend", "native", "--target", "3.13", "."]));
    assert_eq!(again.status.code(), oracle.status.code());
    assert!(stderr(&again).contains(" 0 compiled, "), "{}", stderr(&again));
}

/// `auto` compiles natively when no interpreter of the target version is
/// found, and says so; `native` without `--target` and without Python,
/// or for a version serc lacks, is a start-up error naming the fix.
#[test]
fn backend_rule_without_python() {
    let dir = scratch();
    std::fs::write(dir.path().join("m.py"), "x = 1\n").unwrap();
    let auto = run(without_python(dir.path()).args(["--target", "3.14", "m.py"]));
    assert_eq!(auto.status.code(), Some(0), "{}", stderr(&auto));
    assert!(stderr(&auto).contains("native backend"), "{}", stderr(&auto));
    assert!(dir.path().join("__pycache__/m.cpython-314.pyc").is_file());

    for (args, expected) in [
        (&["--backend", "native", "m.py"][..], "--target"),
        (
            &["--backend", "native", "--target", "3.11", "m.py"][..],
            "3.12, 3.13, 3.14, 3.15",
        ),
        (&["--target", "3.11", "m.py"][..], "3.12, 3.13, 3.14, 3.15"),
        (&["--backend", "cpython", "--target", "3.12", "m.py"][..], "python3"),
        (&["m.py"][..], "give --target"),
    ] {
        let out = run(without_python(dir.path()).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
}

/// With `--backend cpython` and a target of another version than the
/// interpreter, precompyle refuses instead of writing the wrong magic.
#[test]
fn cpython_backend_checks_the_target_version() {
    let dir = scratch();
    std::fs::write(dir.path().join("m.py"), "x = 1\n").unwrap();
    let out = run(support::precompyle()
        .current_dir(dir.path())
        .args(["--backend", "cpython", "--python"])
        .arg(support::python3())
        .args(["--target", "3.12", "m.py"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not the --target 3.12"), "{}", stderr(&out));
}

/// 1,000 nested `lambda`s nest deeper than marshal writes or reads: serc
/// would write a pyc that fails at import, and compileall dies in
/// `marshal.dumps`. Natively the file is refused with the last line of
/// compileall's traceback, JSON kind `marshal`, nothing is written for it,
/// and the other files get compileall's pycs (compiled without it).
#[test]
fn code_too_deep_for_marshal_is_refused_natively() {
    let Some(python) = support::pyenv("3.13") else { return };
    let dir = scratch();
    let (ours, full, without) = (
        dir.path().join("ours"),
        dir.path().join("full"),
        dir.path().join("without"),
    );
    for root in [&ours, &full, &without] {
        std::fs::create_dir(root).unwrap();
        copy_tree(Path::new("fixtures/edge/marshal"), &root.join("m"));
    }
    std::fs::remove_file(without.join("m/deep_lambda.py")).unwrap();
    let crash = compileall(&python, &full, &[OsStr::new("-q"), OsStr::new("m")]);
    let last = text(&crash.stderr).lines().last().unwrap_or_default().to_owned();
    assert_eq!(last, "ValueError: object too deeply nested to marshal");
    let oracle = compileall(&python, &without, &[OsStr::new("-q"), OsStr::new("m")]);
    assert_eq!(oracle.status.code(), Some(0));

    let native = ["--backend", "native", "--target", "3.13"];
    let out = run(without_python(&ours).args(native).args(["-q", "m"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        text(&out.stdout),
        format!("*** Error compiling 'm/deep_lambda.py'...\n{last}\n")
    );
    assert_eq!(pycs_under(&ours), pycs_under(&without));
    std::fs::remove_dir_all(ours.join("m/__pycache__")).unwrap();
    let out = run(without_python(&ours).args(native).args(["--format", "json", "m"]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["errors"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["errors"][0]["kind"], "marshal", "{doc}");
    assert_eq!(doc["errors"][0]["path"], "m/deep_lambda.py", "{doc}");
}
