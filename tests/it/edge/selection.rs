//! Which files a run takes: `-l`, `-r` and 1,000 levels, `-x`, `-i` lists,
//! paths that do not exist, one pyc reached twice.

use super::*;

fn levels_tree(s: &Scratch) -> PathBuf {
    let tree = s.empty_tree("r");
    write(&tree, b"a.py", b"a = 1\n");
    write(&tree, b"s1/b.py", b"b = 1\n");
    write(&tree, b"s1/s2/c.py", b"c = 1\n");
    write(&tree, b"s1/s2/s3/d.py", b"d = 1\n");
    write(&tree, b"z.py", b"z = 1\n");
    tree
}

#[test]
fn recursion_flags() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = levels_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-l", "r"]);
    assert!(!String::from_utf8_lossy(&p.oracle.stdout).contains("s1"));
    let p = f.check_str(&py, &tree, &s.work, &["-r", "1", "r"]);
    assert_oracle_printed(
        "-r 1",
        &p,
        "Listing 'r/s1'...\nCompiling 'r/s1/b.py'...\nCompiling 'r/z.py'",
    );
    // File arguments are compiled whatever the depth.
    for args in [
        &["-r", "0", "r", "r/s1/s2/s3/d.py"][..],
        &["-r", "-1", "r"],
        &["-l", "-r", "1", "r"],
        &["-r", "1", "-l", "r"],
        &["-l", "r/s1/s2/c.py", "r/s1"],
    ] {
        f.check_str(&py, &tree, &s.work, args);
    }
    f.finish();
}

/// `work/deep`, directories 1002 levels deep, with sources near the top and
/// around level 1000. Copying such a tree takes seconds, so it is built once
/// in place and only the `__pycache__` directories are removed between runs.
fn deep_tree(s: &Scratch) -> PathBuf {
    let tree = s.work.join("deep");
    let mut dir = tree.clone();
    fs::create_dir(&dir).expect("mkdir");
    for level in 1..=1002 {
        dir.push("d");
        // `a…` sorts before `d`, so each level's file is met before the descent.
        if level <= 2 || level >= 998 {
            write(
                &dir,
                format!("a{level}.py").as_bytes(),
                format!("level = {level}\n").as_bytes(),
            );
        } else {
            fs::create_dir(&dir).expect("mkdir");
        }
    }
    tree
}

/// Stock compileall cannot walk 1000 levels: its recursive generator hits
/// Python's recursion limit first (RecursionError traceback, exit 1, nothing
/// compiled). Within its reach (`-r 900`) the outputs must match exactly.
/// For the default depth (maxlevels = recursion limit = 1000) the reference
/// is the same compileall given a deeper stack (`sys.setrecursionlimit`)
/// and `-r 1000` explicitly: what compileall means, without the crash.
#[test]
fn directories_1000_levels_deep() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = deep_tree(&s);
    let py = python3();
    let mut runner = Runner::new(&py);
    runner.in_place = true;
    let args = os_args(&["-r", "900", "deep"]);
    let p = runner.both(&tree, &s.work, &args, &args);
    f.compare("-r 900", &p);
    assert_eq!(
        lines(&p.oracle).iter().filter(|l| l.starts_with("Listing")).count(),
        901
    );

    support::remove_pycaches(&s.work);
    let stock = support::compileall(&py, &s.work, &os_args(&["deep"]));
    assert!(
        String::from_utf8_lossy(&stock.stderr).contains("RecursionError"),
        "stock compileall was expected to hit the recursion limit here"
    );
    runner.oracle_head = vec![
        "-c".into(),
        "import runpy, sys; sys.setrecursionlimit(20000); \
         runpy.run_module('compileall', run_name='__main__', alter_sys=True)"
            .into(),
    ];
    let p = runner.both(&tree, &s.work, &os_args(&["-r", "1000", "deep"]), &os_args(&["deep"]));
    f.compare("default depth vs compileall -r 1000 with a deep stack", &p);
    assert_oracle_printed("deep", &p, "/a1000.py'...");
    assert!(!String::from_utf8_lossy(&p.oracle.stdout).contains("a1001.py"));
    f.finish();
}

// ---------------------------------------------------------------------------
// -x
// ---------------------------------------------------------------------------

#[test]
fn exclude_regex() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = levels_tree(&s);
    write(&tree, b"s1/A.py", b"A = 1\n");
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-x", "s2", "r"]);
    // Excluded directories are still listed; only files are skipped.
    assert_oracle_printed("-x", &p, "Listing 'r/s1/s2'...\nListing 'r/s1/s2/s3'...");
    // Python `re` syntax: `\Z`, inline flags, and `[[:alpha:]]`, which
    // Python reads as a set of `[:alph` followed by `]` (no POSIX classes).
    for rx in ["^r/s1/b", "(?i)a\\.PY", "b\\.py|d\\.py", "a\\.py\\Z", "[[:alpha:]]"] {
        f.check_str(&py, &tree, &s.work, &["-x", rx, "r"]);
    }
    f.check_str(&py, &tree, &s.work, &["-x", "a", "r/a.py", "r/z.py"]);
    f.finish();
}

// ---------------------------------------------------------------------------
// -i and path arguments that do not exist
// ---------------------------------------------------------------------------

fn list_tree(s: &Scratch) -> PathBuf {
    let tree = s.empty_tree("l");
    write(&tree, b"a.py", b"a = 1\n");
    write(&tree, b"b.py", b"b = 1\n");
    write(&tree, b"c.py", b"c = 1\n");
    write(&tree, b"sub/s.py", b"s = 1\n");
    // An empty line, surrounding blanks, a missing file and a missing directory.
    write(
        &tree,
        b"lists/basic.txt",
        b"l/a.py\n\n  l/sub  \nl/missing.py\nmissing_dir/\n",
    );
    write(&tree, b"lists/no_final_newline.txt", b"l/a.py\n\nl/b.py");
    write(&tree, b"lists/crlf.txt", b"l/a.py\r\n\r\nl/sub\r\n");
    // str.strip() strips Unicode whitespace (VT, FS, NBSP, NEL, U+3000),
    // and text mode also ends a line at a lone \r.
    write(
        &tree,
        b"lists/python_lines.txt",
        b"\x0bl/a.py\x1c\n\xc2\xa0l/sub\xc2\x85\n\xe3\x80\x80l/missing.py\nl/b.py\rl/c.py\n",
    );
    write(&tree, b"lists/empty.txt", b"");
    write(&tree, b"lists/not_utf8.txt", b"l/a.py\nl/\xff.py\n");
    tree
}

#[test]
fn file_lists() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-i", "l/lists/basic.txt", "l/b.py"]);
    for needle in [
        "Listing ''...\nCan't list ''",
        "Can't list 'l/missing.py'",
        "Listing 'l/sub'...",
    ] {
        assert_oracle_printed("-i", &p, needle);
    }
    assert_eq!(p.oracle.status.code(), Some(0));
    f.check_str(&py, &tree, &s.work, &["-q", "-i", "l/lists/basic.txt"]);
    for list in ["no_final_newline", "crlf"] {
        let path = format!("l/lists/{list}.txt");
        f.check_str(&py, &tree, &s.work, &["-i", &path]);
    }
    // An empty list plus an argument (with no argument at all compileall
    // would compile sys.path instead).
    f.check_str(&py, &tree, &s.work, &["-i", "l/lists/empty.txt", "l/a.py"]);

    let mut stdin = Runner::new(&py);
    stdin.stdin = Some(b"l/a.py\n\nl/missing.py\n");
    let args = os_args(&["-i", "-", "l/b.py"]);
    f.compare("-i - (stdin)", &stdin.both(&tree, &s.work, &args, &args));
    f.finish();
}

/// compileall reads the list as Python text: lines end at `\n`, `\r\n` or a
/// lone `\r`, and `str.strip()` removes Unicode whitespace, not only ASCII.
#[test]
fn file_list_lines_are_python_text_lines() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-i", "l/lists/python_lines.txt"]);
    for needle in [
        "Compiling 'l/a.py'...",
        "Compiling 'l/sub/s.py'...",
        "Can't list 'l/missing.py'",
        "Compiling 'l/b.py'...\nCompiling 'l/c.py'...",
    ] {
        assert_oracle_printed("-i python lines", &p, needle);
    }
    f.finish();
}

/// A list that cannot be read: `Error reading file list FILE` (unless -qq),
/// exit 1, nothing compiled, not even the other arguments. A directory is
/// unreadable as a list even for root.
#[test]
fn unreadable_file_list() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let cases: [&[&str]; 4] = [
        &["-i", "l/lists", "l/a.py"],
        &["-q", "-i", "l/lists", "l/a.py"],
        &["-qq", "-i", "l/lists", "l/a.py"],
        &["-i", "l/nonexistent.txt", "l/a.py"],
    ];
    for args in cases {
        let p = f.check_str(&py, &tree, &s.work, args);
        assert_eq!(p.oracle.status.code(), Some(1));
        assert!(p.oracle_pycs.is_empty());
        if args[0] != "-qq" {
            let list = args[args.len() - 2];
            assert_oracle_printed("-i unreadable", &p, &format!("Error reading file list {list}"));
        }
    }
    f.finish();
}

/// A list that is not UTF-8: compileall (3.10+) reads it as UTF-8 and dies
/// with UnicodeDecodeError before compiling anything (exit 1).
#[test]
fn file_list_not_utf8() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-i", "l/lists/not_utf8.txt", "l/b.py"]);
    assert!(String::from_utf8_lossy(&p.oracle.stderr).contains("UnicodeDecodeError"));
    f.finish();
}

#[test]
fn nonexistent_paths() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = s.empty_tree("e");
    write(&tree, b"a.py", b"a = 1\n");
    for sub in ["s1", "s2", "s3"] {
        write(&tree, format!("{sub}/s.py").as_bytes(), b"s = 1\n");
    }
    let py = python3();
    // Spellings of existing paths (`//`, `./`, trailing `/`) are kept as
    // given; each names different files, so no pyc is reached twice.
    let args = [
        "nope",
        "e/a.py",
        "nope/x.py",
        "e/missing.py",
        "",
        "e//s1",
        "./e/s2/",
        "e/s3/",
        "e/a.py/",
    ];
    let p = f.check_str(&py, &tree, &s.work, &args);
    for needle in [
        "Listing 'nope'...\nCan't list 'nope'",
        "Can't list 'nope/x.py'",
        "Can't list ''",
        "Compiling 'e//s1/s.py'...",
        "Compiling './e/s2/s.py'...",
        "Compiling 'e/s3/s.py'...",
        "Can't list 'e/a.py/'",
    ] {
        assert_oracle_printed("nonexistent", &p, needle);
    }
    assert_eq!(p.oracle.status.code(), Some(0), "`Can't list` is not a failure");
    let mut quiet = vec!["-q"];
    quiet.extend(args);
    let p = f.check_str(&py, &tree, &s.work, &quiet);
    assert_oracle_printed("-q nonexistent", &p, "Can't list 'nope'");
    quiet[0] = "-qq";
    let p = f.check_str(&py, &tree, &s.work, &quiet);
    assert!(p.oracle.stdout.is_empty());
    f.finish();
}

/// compileall works sequentially, so a pyc it wrote earlier in the same run
/// is fresh when the same source comes up again under another spelling (a
/// repeated argument, `./` or `//`, a symlinked directory): the second time
/// it prints nothing, and the pyc keeps the first spelling as co_filename.
#[test]
fn same_pyc_reached_twice_in_one_run() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = s.empty_tree("twice");
    write(&tree, b"t/a.py", b"a = 1\n");
    write(&tree, b"t/sub/s.py", b"s = 1\n");
    link(&tree, b"tlink", "t");
    let py = python3();
    for args in [
        &["twice/t/a.py", "twice/t/a.py"][..],
        &["./twice/t/a.py", "twice/t/a.py"],
        &["twice/t//sub", "twice/t"],
        &["twice/tlink", "twice/t"],
    ] {
        let p = f.check_str(&py, &tree, &s.work, args);
        let compiled = lines(&p.oracle).iter().filter(|l| l.starts_with("Compiling")).count();
        let expected = if args[0].ends_with("a.py") { 1 } else { 2 };
        assert_eq!(compiled, expected, "compileall compiles each pyc once: {args:?}");
    }
    f.finish();
}
