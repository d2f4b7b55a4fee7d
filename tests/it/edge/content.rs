//! Source content: errors, encodings, line endings, deep expressions; a
//! marshal failure that must not stop the run.

use super::*;

/// `fixtures/edge/content` plus what git cannot hold: sources inside
/// `__pycache__` (never compiled by a walk), a FIFO named `.py`, and a
/// 12-level nest (compileall's default depth is 10 on 3.8, the recursion
/// limit from 3.9).
fn content_tree(s: &Scratch) -> PathBuf {
    let tree = s.fixture_tree("content", "content");
    write(&tree, b"__pycache__/cached_source.py", b"x = 1\n");
    write(&tree, b"__pycache__/syntax_error.py", b"def f(:\n");
    write(&tree, b"x.py/__pycache__/inner_cache.py", b"y = 2\n");
    mkfifo(&tree.join("fifo.py"));
    let mut dir = tree.join("nest");
    for level in 1..=12 {
        dir.push("n");
        write(
            &dir,
            format!("level{level}.py").as_bytes(),
            format!("level = {level}\n").as_bytes(),
        );
    }
    tree
}

#[test]
fn content_cases_match_compileall_311() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = content_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["content"]);
    // Each case really is one for this interpreter (3.11.7's wording).
    for needle in [
        "***   File \"content/syntax_error.py\", line 1",
        "*** Sorry: IndentationError: expected an indented block",
        "*** Sorry: TabError:",
        "*** SyntaxError: source code string cannot contain null bytes",
        "SyntaxError: unknown encoding: foobar",
        "SyntaxError: encoding problem: iso-8859-1 with BOM",
        "SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xe9",
        "SyntaxError: too many nested parentheses",
        "*** Sorry: MemoryError: \n",
        "*** Sorry: RecursionError: maximum recursion depth exceeded during compilation",
        "Compiling 'content/latin1_cookie.py'...\nCompiling",
        "Compiling 'content/bom.py'...\nCompiling",
        "Compiling 'content/crlf.py'...\nCompiling",
        "Listing 'content/x.py'...",
    ] {
        assert_oracle_printed("content", &p, needle);
    }
    assert!(!String::from_utf8_lossy(&p.oracle.stdout).contains("__pycache__"));
    assert_eq!(p.oracle.status.code(), Some(1));

    let p = f.check_str(&py, &tree, &s.work, &["-q", "content"]);
    assert_oracle_printed("-q", &p, "*** Error compiling 'content/null_byte.py'...\nSyntaxError");
    let p = f.check_str(&py, &tree, &s.work, &["-qq", "content"]);
    assert!(p.oracle.stdout.is_empty(), "-qq prints nothing");
    assert_eq!(p.oracle.status.code(), Some(1));
    f.finish();
}

/// The same sources named on the command line go through `compile_file`
/// directly (or `compile_dir` for whatever is not a regular file).
#[test]
fn content_cases_as_file_arguments_311() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = content_tree(&s);
    let py = python3();
    let args = [
        "content/syntax_error.py",
        "content/indentation_error.py",
        "content/null_byte.py",
        "content/crlf.py",
        "content/script.pyw",
        "content/UPPER.PY",
        "content/noext",
        "content/fifo.py",
        "content/x.py",
        "content/__pycache__",
        "content/latin1_cookie.py",
    ];
    for quiet in [None, Some("-q"), Some("-qq")] {
        let mut all: Vec<&str> = quiet.into_iter().collect();
        all.extend(args);
        let p = f.check_str(&py, &tree, &s.work, &all);
        if quiet.is_none() {
            // A FIFO is not a file, so compileall tries to list it.
            assert_oracle_printed("args", &p, "Can't list 'content/fifo.py'");
            // A __pycache__ named on the command line is walked.
            assert_oracle_printed("args", &p, "Compiling 'content/__pycache__/cached_source.py'...");
        }
    }
    f.finish();
}

#[test]
fn content_cases_across_versions() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = content_tree(&s);
    let mut ran = 0;
    for minor in MINORS {
        let Some(py) = support::pyenv(minor) else {
            continue;
        };
        f.check_str(&py, &tree, &s.work, &["content"]);
        ran += 1;
    }
    if ran == 0 {
        eprintln!("SKIPPED: content_cases_across_versions: no pyenv interpreter found");
    }
    f.finish();
}

/// `marshal.dumps` fails on this code object ("object too deeply nested").
/// compileall does not catch that: it dies with a traceback and exit 1, and
/// files after it are never compiled. precompyle deliberately reports the
/// file and goes on (documented on `backend::FailureKind::Marshal`), so the
/// expected output is compileall's output for the tree without that file,
/// with the file's `Compiling` line and one `*** … object too deeply nested
/// to marshal` line where compileall would have been.
#[test]
fn marshal_failure_is_reported_and_the_run_goes_on() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let py = python3();
    fs::create_dir(s.src.join("full")).expect("mkdir");
    fs::create_dir(s.src.join("without")).expect("mkdir");
    let full = s.root.join("src/full/marshal");
    support::copy_tree(&fixture_dir("marshal"), &full);
    let without = s.root.join("src/without/marshal");
    support::copy_tree(&fixture_dir("marshal"), &without);
    fs::remove_file(without.join("deep_lambda.py")).expect("rm");

    let rest = f.check_str(&py, &without, &s.work, &["marshal"]);
    let p = support::parity(&py, &full, &s.work, &os_args(&["marshal"]), &os_args(&["marshal"]), &[]);
    let crash = String::from_utf8_lossy(&p.oracle.stderr);
    assert!(
        crash.contains("ValueError: object too deeply nested to marshal"),
        "the oracle should die in marshal; stderr:\n{crash}"
    );
    let compiling = "Compiling 'marshal/deep_lambda.py'...".to_owned();
    assert_eq!(lines(&p.oracle).iter().filter(|l| **l == compiling).count(), 1);

    let mut expected = lines(&rest.oracle);
    let after_a = expected
        .iter()
        .position(|l| l == "Compiling 'marshal/a.py'...")
        .expect("a.py compiled")
        + 1;
    let ours = lines(&p.ours);
    let reported = ours.get(after_a + 1).cloned().unwrap_or_default();
    assert!(
        reported.starts_with("*** ") && reported.contains("object too deeply nested to marshal"),
        "precompyle should report the marshal failure after {compiling:?}; got {reported:?}\n{}",
        line_diff(&expected, &ours)
    );
    expected.insert(after_a, compiling);
    expected.insert(after_a + 1, reported);
    assert!(ours == expected, "{}", line_diff(&expected, &ours));
    assert_eq!(p.ours.status.code(), Some(1), "a failed file means exit 1");
    let pycs = support::diff_pycs(&rest.oracle_pycs, &p.our_pycs);
    assert!(
        pycs.is_empty(),
        "pycs differ from compileall's without deep_lambda.py:\n{pycs}"
    );
    f.finish();
}
