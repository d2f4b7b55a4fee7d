//! Symlinked sources, directories and `__pycache__`s, broken and looping
//! links, with and without `-e`.

use super::*;

/// `w/t` with symlinks to files (inside, up, absolute outside, chained, to a
/// non-.py file), to a directory, a broken one, a symlinked `__pycache__`,
/// pyc paths that are a symlink / a directory, and `__pycache__` as a file.
/// `w/tlink` points at `t`; `w/loopdir/loop.py` points at itself.
fn symlink_tree(s: &Scratch) -> PathBuf {
    let elsewhere = s.root.join("elsewhere");
    write(&elsewhere, b"o.py", b"o = 1\n");
    let tree = s.empty_tree("w");
    write(&tree, b"t/a.py", b"a = 1\n");
    write(&tree, b"t/sub/s.py", b"s = 1\n");
    write(&tree, b"t/notes.txt", b"n = 1\n");
    write(&tree, b"outside.py", b"out = 1\n");
    link(&tree, b"t/link_in.py", "sub/s.py");
    link(&tree, b"t/link_chain.py", "link_in.py");
    link(&tree, b"t/link_up.py", "../outside.py");
    link(&tree, b"t/link_abs.py", elsewhere.join("o.py"));
    link(&tree, b"t/from_txt.py", "notes.txt");
    link(&tree, b"t/to_txt.txt", "a.py");
    link(&tree, b"t/link_dir", "sub");
    link(&tree, b"t/broken.py", "missing.py");
    link(&tree, b"t/sub/link_sibling.py", "../a.py");
    link(&tree, b"t/sub/link_up2.py", "../../outside.py");
    write(&tree, b"t/cachelink/m.py", b"m = 1\n");
    // Within its directory: one that leads outside is refused (destinations.rs).
    fs::create_dir(tree.join("t/cachelink/.cache")).expect("mkdir");
    link(&tree, b"t/cachelink/__pycache__", ".cache");
    write(&tree, b"t/cfile_link/c.py", b"c = 1\n");
    fs::create_dir(tree.join("t/cfile_link/__pycache__")).expect("mkdir");
    link(&tree, b"t/cfile_link/__pycache__/c.cpython-311.pyc", "nowhere.pyc");
    write(&tree, b"t/cfile_dir/d.py", b"d = 1\n");
    fs::create_dir_all(tree.join("t/cfile_dir/__pycache__/d.cpython-311.pyc")).expect("mkdir");
    write(&tree, b"t/pycache_file/f.py", b"f = 1\n");
    write(&tree, b"t/pycache_file/__pycache__", b"not a directory");
    link(&tree, b"tlink", "t");
    fs::create_dir(tree.join("loopdir")).expect("mkdir");
    link(&tree, b"loopdir/loop.py", "loop.py");
    tree
}

#[test]
fn symlinks() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = symlink_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["w/t"]);
    for needle in [
        "Compiling 'w/t/link_in.py'...",
        "Compiling 'w/t/link_abs.py'...",
        "Compiling 'w/t/from_txt.py'...",
        "Compiling 'w/t/cachelink/m.py'...",
        "is a symlink and will be changed",
        "is a non-regular file and will be changed",
    ] {
        assert_oracle_printed("symlinks", &p, needle);
    }
    let out = String::from_utf8_lossy(&p.oracle.stdout);
    assert!(!out.contains("link_dir") && !out.contains("broken"), "{out}");

    // Symlinked directory, broken symlink, self-loop and linked files as arguments.
    let p = f.check_str(
        &py,
        &tree,
        &s.work,
        &["w/tlink", "w/t/broken.py", "w/loopdir", "w/loopdir/loop.py"],
    );
    assert_oracle_printed("symlink args", &p, "Listing 'w/tlink/sub'...");
    assert_oracle_printed("symlink args", &p, "Can't list 'w/t/broken.py'");
    // Separately: `w/tlink/sub` above and `w/t/link_dir` are the same pycs
    // (see same_pyc_reached_twice_in_one_run).
    f.check_str(&py, &tree, &s.work, &["w/t/link_dir"]);
    f.check_str(
        &py,
        &tree,
        &s.work,
        &["w/t/link_in.py", "w/t/link_abs.py", "w/t/link_chain.py"],
    );
    f.check_str(&py, &tree, &s.work, &["-x", "link", "w/t"]);
    f.check_str(&py, &tree, &s.work, &["-l", "w/tlink"]);
    f.finish();
}

/// `-e DIR`: a file that is itself a symlink is compiled only if its
/// resolved path lies strictly below the resolved DIR.
#[test]
fn symlinks_with_limit_dir() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = symlink_tree(&s);
    let py = python3();
    let elsewhere = s.root.join("elsewhere");
    let elsewhere = elsewhere.to_str().expect("UTF-8 temp dir");
    let p = f.check_str(&py, &tree, &s.work, &["-e", "w/t", "w/t"]);
    let out = String::from_utf8_lossy(&p.oracle.stdout);
    assert!(
        out.contains("Compiling 'w/t/link_in.py'") && !out.contains("link_abs") && !out.contains("link_up"),
        "{out}"
    );
    for limit in ["w/t/sub", "w", "w/tlink", elsewhere, ""] {
        f.check_str(&py, &tree, &s.work, &["-e", limit, "w/t"]);
    }
    // Symlinks named on the command line, and a walk through a linked directory.
    f.check_str(
        &py,
        &tree,
        &s.work,
        &[
            "-e",
            "w/t",
            "w/t/link_abs.py",
            "w/t/link_up.py",
            "w/t/link_in.py",
            "w/t/broken.py",
        ],
    );
    f.check_str(&py, &tree, &s.work, &["-e", "w/t", "w/tlink"]);
    // The absolute form of the limit, with a trailing slash.
    let abs = format!("{}/", s.work.join("w/t").display());
    f.check_str(&py, &tree, &s.work, &["-e", &abs, "w/t"]);
    f.finish();
}
