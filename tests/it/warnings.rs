//! Compiler warnings: with the CPython backend, stderr carries exactly the
//! warnings the target's own `python -m compileall` prints for the same
//! files (text, file name, line, source line, order), and nothing else.
//!
//! The fixture holds one file per kind of compile-time warning of 3.8–3.15;
//! which of them an interpreter prints (and as which class) is its business:
//! the test only asks that both tools print the same.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::support;

/// (file name, source): each triggers one compile-time warning on some
/// version, or a warning compileall does not show.
const FIXTURE: &[(&str, &str)] = &[
    // SyntaxWarning from 3.12, DeprecationWarning (hidden) before.
    ("escape.py", "pattern = \"\\d+\"\nother = b\"\\q\"\n"),
    ("is_literal.py", "def f(x):\n    return x is 1 or x is not 'a'\n"),
    ("assert_tuple.py", "def f(x):\n    assert (x, 'message')\n"),
    ("not_callable.py", "def f():\n    return [(1, 2) (3, 4)]\n"),
    ("not_subscriptable.py", "def f():\n    return [1 [2], 'a' [1]]\n"),
    ("not_indexable.py", "def f(i):\n    return [1, 2] ['a']\n"),
    // DeprecationWarning from 3.12 while folding constants: compileall shows
    // none (pandas' tests/computation/test_eval.py on 3.12.1).
    ("bool_invert.py", "flip = ~True\n"),
    ("number_keyword.py", "x = [0x1for x in 'ab']\ny = 1if True else 2\n"),
    ("two_in_one.py", "a = '\\d'\n\n\ndef g(y):\n    return y is ()\n"),
    // SyntaxWarning from 3.14 (PEP 765): control flow leaving `finally`.
    (
        "finally_exit.py",
        "def f(items):\n    for x in items:\n        try:\n            pass\n        finally:\n            continue\n    try:\n        pass\n    finally:\n        return 1\n",
    ),
    ("quiet.py", "value = 1 + 2\n"),
];

fn fixture(root: &Path) -> PathBuf {
    let tree = root.join("warn");
    std::fs::create_dir_all(&tree).unwrap();
    for (name, source) in FIXTURE {
        std::fs::write(tree.join(name), source).unwrap();
    }
    tree
}

/// stderr's warnings by file, each file's in order (files compiled in
/// parallel may interleave), without precompyle's summary line. A warning
/// is its `FILE:LINE: Class: message` line and the lines after it.
fn warnings_by_file(stderr: &[u8]) -> BTreeMap<String, Vec<String>> {
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(stderr).lines() {
        if line.starts_with("precompyle: ") {
            continue;
        }
        if !line.starts_with(' ') {
            // "warn/x.py:2: SyntaxWarning: …" starts a warning of warn/x.py.
            current = Some(line.split(':').next().unwrap_or(line).to_owned());
        }
        let file = current.clone().unwrap_or_default();
        by_file.entry(file).or_default().push(line.to_owned());
    }
    by_file
}

fn interpreters() -> Vec<PathBuf> {
    let mut found = vec![support::python3()];
    found.extend(
        ["3.8", "3.9", "3.10", "3.12", "3.13"]
            .into_iter()
            .filter_map(support::pyenv),
    );
    found.extend(["3.14", "3.15"].map(support::debian_python));
    found
}

#[test]
fn warnings_are_compilealls() {
    let scratch = support::scratch();
    let tree = fixture(scratch.path());
    let mut printed = 0;
    for (python, jobs) in interpreters().into_iter().flat_map(|p| [(p.clone(), 1), (p, 0)]) {
        let work = support::scratch();
        let jobs_arg = format!("-j{jobs}");
        let got = support::parity(
            &python,
            &tree,
            work.path(),
            &[OsStr::new("-q"), OsStr::new("warn")],
            &[
                OsStr::new("-q"),
                OsStr::new(&jobs_arg),
                OsStr::new("--backend"),
                OsStr::new("cpython"),
                OsStr::new("warn"),
            ],
            &[],
        );
        let theirs = warnings_by_file(&got.oracle.stderr);
        assert_eq!(
            warnings_by_file(&got.ours.stderr),
            theirs,
            "{} -j{jobs}",
            python.display()
        );
        printed += theirs.values().map(Vec::len).sum::<usize>();
    }
    assert!(
        printed > 0,
        "no interpreter printed any warning: the fixture tests nothing"
    );
}
