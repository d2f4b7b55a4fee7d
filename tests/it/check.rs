//! `--check`, freshness and `--format json`: what precompyle adds to
//! compileall. The oracles are CPython's own: the import system's validation
//! rules (pyc-format.md §5) and py_compile's bytes.

use std::path::Path;
use std::process::{Command, Output};

use crate::support;

fn precompyle(work: &Path, args: &[&str]) -> Output {
    support::run(
        support::precompyle()
            .current_dir(work)
            .arg("--python")
            .arg(support::python3())
            .args(args),
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tree(work: &Path) {
    std::fs::create_dir_all(work.join("t/sub")).unwrap();
    std::fs::write(work.join("t/a.py"), "a = 1\n").unwrap();
    std::fs::write(work.join("t/sub/b.py"), "b = 2\n").unwrap();
}

/// Set a file's mtime to a fixed second, like `touch -d @secs`.
fn set_mtime(path: &Path, secs: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn check_lists_missing_then_nothing_after_a_compile() {
    let work = support::scratch();
    let work = work.path();
    tree(work);
    let out = precompyle(work, &["--check", "t"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("missing: 't/__pycache__/a.cpython-311.pyc' for 't/a.py'"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("missing: 't/sub/__pycache__/b.cpython-311.pyc' for 't/sub/b.py'"));
    assert!(support::pycs_under(work).is_empty(), "--check wrote files");
    assert_eq!(precompyle(work, &["-q", "t"]).status.code(), Some(0));
    let out = precompyle(work, &["--check", "t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
}

/// Each reason matches a rule by which CPython's import system rejects the
/// pyc (bad magic, flags, mtime, size, hash).
#[test]
fn check_names_the_reason() {
    let work = support::scratch();
    let work = work.path();
    tree(work);
    set_mtime(&work.join("t/a.py"), 1_700_000_000);
    assert_eq!(precompyle(work, &["-q", "t"]).status.code(), Some(0));
    let check = |args: &[&str]| stdout(&precompyle(work, &[&["--check"], args, &["t"]].concat()));

    assert!(
        check(&["--invalidation-mode", "checked-hash"]).contains("mode differs: 't/__pycache__/a.cpython-311.pyc'")
    );
    std::fs::write(work.join("t/a.py"), "a = 3\n").unwrap();
    set_mtime(&work.join("t/a.py"), 1_700_000_000);
    assert_eq!(
        check(&[]),
        "",
        "same mtime and size: the import system would accept it too"
    );
    std::fs::write(work.join("t/a.py"), "a = 33\n").unwrap();
    set_mtime(&work.join("t/a.py"), 1_700_000_000);
    assert!(check(&[]).contains("size differs: 't/__pycache__/a.cpython-311.pyc'"));
    set_mtime(&work.join("t/a.py"), 1_700_000_001);
    assert!(check(&[]).contains("mtime differs: 't/__pycache__/a.cpython-311.pyc'"));

    let pyc = work.join("t/sub/__pycache__/b.cpython-311.pyc");
    let mut bytes = std::fs::read(&pyc).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&pyc, &bytes).unwrap();
    assert!(check(&[]).contains("other magic: 't/sub/__pycache__/b.cpython-311.pyc'"));

    assert_eq!(
        precompyle(work, &["-q", "--invalidation-mode", "checked-hash", "t"])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(work.join("t/a.py"), "a = 44\n").unwrap();
    set_mtime(&work.join("t/a.py"), 1_700_000_001);
    assert!(
        check(&["--invalidation-mode", "checked-hash"]).contains("hash differs: 't/__pycache__/a.cpython-311.pyc'")
    );
}

/// compileall ignores the size; precompyle recompiles a same-mtime edit of
/// another size, and the result is what py_compile writes for the new source.
#[test]
fn same_mtime_edit_is_recompiled_to_py_compile_bytes() {
    let work = support::scratch();
    let work = work.path();
    tree(work);
    set_mtime(&work.join("t/a.py"), 1_700_000_000);
    assert_eq!(precompyle(work, &["-q", "t"]).status.code(), Some(0));
    std::fs::write(work.join("t/a.py"), "a = 'edited'\n").unwrap();
    set_mtime(&work.join("t/a.py"), 1_700_000_000);
    let out = precompyle(work, &["t"]);
    assert!(stdout(&out).contains("Compiling 't/a.py'..."), "{}", stdout(&out));
    let ours = std::fs::read(work.join("t/__pycache__/a.cpython-311.pyc")).unwrap();
    let status = Command::new(support::python3())
        .current_dir(work)
        .args([
            "-c",
            "import py_compile; py_compile.compile('t/a.py', cfile='oracle.pyc', doraise=True)",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ours, std::fs::read(work.join("oracle.pyc")).unwrap());
}

#[test]
fn fresh_hash_pycs_are_skipped() {
    let work = support::scratch();
    let work = work.path();
    tree(work);
    let args = ["--invalidation-mode", "unchecked-hash", "t"];
    assert!(stdout(&precompyle(work, &args)).contains("Compiling"));
    let again = precompyle(work, &args);
    assert_eq!(stdout(&again), "Listing 't'...\nListing 't/sub'...\n");
}

#[test]
fn json_reports_counts_and_errors() {
    let work = support::scratch();
    let work = work.path();
    tree(work);
    std::fs::write(work.join("t/bad.py"), "def f(:\n").unwrap();
    let out = precompyle(work, &["--format", "json", "t"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["counts"]["compiled"], 2);
    assert_eq!(doc["counts"]["failed"], 1);
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["target"]["cache_tag"], "cpython-311");
    let error = &doc["errors"][0];
    assert_eq!(error["path"], "t/bad.py");
    assert_eq!(error["kind"], "compile");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("SyntaxError: invalid syntax")
    );

    let out = precompyle(work, &["--format", "json", "--check", "-f", "t"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["counts"]["stale"], 1, "only bad.py has no pyc: {doc}");
    assert_eq!(doc["stale"][0]["reason"], "missing");
}

#[test]
fn usage_errors_exit_2() {
    let work = support::scratch();
    for args in [
        &["--hardlink-dupes", "-o", "1", "t"][..],
        &["-d", "x", "-s", "y", "t"],
        &["-j", "-1", "t"],
        &["--bogus"],
    ] {
        let out = precompyle(work.path(), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every kind of failure a CI system may act on has its own JSON `kind`,
/// and the text compileall would print for it: one tree with a syntax
/// error, a too-deep marshal, a directory at the pyc path, a symlinked
/// `__pycache__` leading out of its directory and a file that compiles
/// longer than `--timeout` (run alone); then, natively, an encoding serc
/// lacks and a file serc compiles longer than `--timeout`.
#[test]
fn json_names_the_kind_of_every_failure() {
    let work = support::scratch();
    let work = work.path();
    let t = work.join("t");
    std::fs::create_dir_all(t.join("dest/__pycache__/c.cpython-311.pyc")).unwrap();
    std::fs::write(t.join("dest/c.py"), "c = 1\n").unwrap();
    std::fs::write(t.join("syntax.py"), "x = (\n").unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/edge/marshal");
    std::fs::copy(fixtures.join("deep_lambda.py"), t.join("deep_lambda.py")).unwrap();
    std::fs::create_dir_all(t.join("esc")).unwrap();
    std::fs::create_dir_all(work.join("elsewhere")).unwrap();
    std::fs::write(t.join("esc/m.py"), "m = 1\n").unwrap();
    std::os::unix::fs::symlink("../../elsewhere", t.join("esc/__pycache__")).unwrap();
    // ~5 MB: several seconds of CPython's compiler even on a quiet machine
    // (8,000 lines compiled in under 1 s on one).
    let slow: String = (0..20_000)
        .map(|i| {
            format!(
                "x_{i} = [{}]\n",
                (0..40).map(|k| (i + k).to_string()).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    std::fs::create_dir_all(work.join("s")).unwrap();
    std::fs::write(work.join("s/slow.py"), slow).unwrap();
    std::fs::write(t.join("ok.py"), "ok = 1\n").unwrap();

    let out = precompyle(work, &["--format", "json", "t"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let kinds: std::collections::BTreeMap<String, (String, String)> = doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
            (text("path"), (text("kind"), text("message")))
        })
        .collect();
    let expect = |path: &str, kind: &str, message_start: &str| {
        let (got_kind, message) = kinds
            .get(path)
            .unwrap_or_else(|| panic!("no error for {path}: {kinds:?}"));
        assert_eq!(got_kind, kind, "{path}: {message}");
        assert!(message.starts_with(message_start), "{path}: {message}");
    };
    expect("t/syntax.py", "compile", "  File \"t/syntax.py\", line 1");
    expect(
        "t/deep_lambda.py",
        "marshal",
        "ValueError: object too deeply nested to marshal",
    );
    expect("t/dest/c.py", "destination", "FileExistsError: ");
    expect(
        "t/esc/m.py",
        "outside-root",
        "refusing to write 't/esc/__pycache__/m.cpython-311.pyc'",
    );
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_eq!(doc["counts"]["compiled"], 1, "only ok.py compiled");

    // On its own: a loaded machine may take a second for the others too.
    let out = precompyle(work, &["--format", "json", "--timeout", "1", "s"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["kind"], "timeout", "{doc}");
    assert_eq!(doc["errors"][0]["path"], "s/slow.py");

    let unsupported = work.join("u");
    std::fs::create_dir_all(&unsupported).unwrap();
    std::fs::write(unsupported.join("cyr.py"), b"# coding: iso-8859-5\nx = '\xd0'\n").unwrap();
    let out = support::run(support::precompyle().current_dir(work).args([
        "--format",
        "json",
        "--backend",
        "native",
        "--target",
        "3.12",
        "u",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["kind"], "unsupported", "{doc}");
    assert_eq!(doc["errors"][0]["path"], "u/cyr.py");

    // serc needs seconds for 2,992 `not`s, which CPython 3.12 compiles: the
    // native compile is abandoned at the timeout and the run ends.
    std::fs::create_dir_all(work.join("n")).unwrap();
    std::fs::write(work.join("n/nots.py"), format!("x = {}a\n", "not ".repeat(2992))).unwrap();
    let native = ["--format", "json", "--backend", "native", "--target", "3.12"];
    let out = support::run(
        support::precompyle()
            .current_dir(work)
            .args(native)
            .args(["--timeout", "1", "n"]),
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["kind"], "timeout", "{doc}");
    assert_eq!(doc["errors"][0]["path"], "n/nots.py");
}
