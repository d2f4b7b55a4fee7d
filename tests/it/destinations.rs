//! Where pycs may go, and what happens when they cannot: hostile paths that
//! would take a pyc outside its destination root (refused, unlike
//! compileall), a destination that fills up (a small tmpfs) and a read-only
//! prefix. In every case the failing file is named, the run exits 1, every
//! other file is compiled, and no partial pyc or temp file is left.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{
    self, Tmpfs, compileall, precompyle, pycs_under, python3, run, scratch, stdout_lines, temp_files, verify_pycs_with,
};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn errors(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["errors"].as_array().expect("errors array")
}

fn ours(cwd: &Path, args: &[&OsStr]) -> Output {
    run(precompyle().current_dir(cwd).arg("--no-progress").args(args))
}

/// compileall with `sys.pycache_prefix` set after start-up (support.rs says why).
fn compileall_with_prefix(cwd: &Path, prefix: &Path, args: &[&OsStr]) -> Output {
    let mut cmd = Command::new(python3());
    support::clear_python_env(&mut cmd);
    cmd.current_dir(cwd)
        .arg("-c")
        .arg(support::COMPILEALL_WITH_PREFIX)
        .arg(prefix)
        .args(args);
    run(&mut cmd)
}

/// `w/pkg/__pycache__` is a symlink to `outside/`: compileall writes the pyc
/// there; precompyle refuses, names the file and compiles the rest. A
/// symlinked `__pycache__` that stays inside the directory is followed, as
/// by compileall, with the same bytes.
#[test]
fn symlinked_pycache_leading_outside_is_refused() {
    let s = scratch();
    let w = s.path().join("w");
    write(&w.join("t/pkg/m.py"), "m = 1\n");
    write(&w.join("t/ok.py"), "ok = 1\n");
    write(&w.join("t/inner/i.py"), "i = 1\n");
    std::fs::create_dir_all(w.join("outside")).unwrap();
    std::fs::create_dir_all(w.join("t/inner/.cache")).unwrap();
    std::os::unix::fs::symlink("../../outside", w.join("t/pkg/__pycache__")).unwrap();
    std::os::unix::fs::symlink(".cache", w.join("t/inner/__pycache__")).unwrap();

    let oracle = compileall(&python3(), &w, &[OsStr::new("-q"), OsStr::new("t")]);
    assert_eq!(oracle.status.code(), Some(0));
    let oracle_pycs = pycs_under(&w);
    assert!(
        oracle_pycs.contains_key(Path::new("outside/m.cpython-311.pyc")),
        "compileall writes through the link: {oracle_pycs:?}"
    );
    for pyc in oracle_pycs.keys() {
        std::fs::remove_file(w.join(pyc)).unwrap();
    }

    let out = ours(&w, &[OsStr::new("-q"), OsStr::new("t")]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0], "*** Error compiling 't/pkg/m.py'...");
    assert_eq!(
        lines[1],
        "refusing to write 't/pkg/__pycache__/m.cpython-311.pyc': a symlink would take it \
         outside its source's directory '/"
            .to_owned()
            + &w.join("t/pkg").to_string_lossy()[1..]
            + "'"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    let our_pycs = pycs_under(&w);
    let mut expected = oracle_pycs.clone();
    expected.remove(Path::new("outside/m.cpython-311.pyc"));
    assert_eq!(support::diff_pycs(&expected, &our_pycs), "");

    let report = json(&ours(
        &w,
        &[OsStr::new("--format"), OsStr::new("json"), OsStr::new("t")],
    ));
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0]["kind"], "outside-root");
    assert_eq!(errors[0]["path"], "t/pkg/m.py");
}

/// A source name whose pyc's name fits the 255-byte limit but whose
/// `_write_atomic` temp name (`NAME.pyc.140505590077744`) does not:
/// compileall fails the file, precompyle writes the pyc (its file has no
/// name until it is complete) with the bytes py_compile writes for that
/// source under a shorter cfile name (the name is not in the bytes). On a
/// file system without `O_TMPFILE` its named temp fails as compileall's.
#[test]
fn a_pyc_too_long_for_compilealls_temp_name_is_written() {
    let s = scratch();
    let name = format!("{}.py", "x".repeat(230));
    let (theirs, mine) = (s.path().join("theirs"), s.path().join("mine"));
    write(&theirs.join(&name), "x = 1\n");
    write(&mine.join(&name), "x = 1\n");

    let oracle = compileall(&python3(), s.path(), &[OsStr::new("-q"), theirs.as_os_str()]);
    assert_eq!(oracle.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&oracle.stdout);
    assert!(printed.contains("[Errno 36] File name too long"), "{printed}");
    assert!(pycs_under(&theirs).is_empty());

    let out = ours(
        s.path(),
        &[
            OsStr::new("-q"),
            OsStr::new("--backend"),
            OsStr::new("cpython"),
            mine.as_os_str(),
        ],
    );
    if !support::has_o_tmpfile(&mine) {
        assert_eq!(out.status.code(), Some(1));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains("[Errno 36] File name too long"), "{printed}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let written = pycs_under(&mine);
    let pyc = Path::new("__pycache__").join(format!("{}.cpython-311.pyc", "x".repeat(230)));
    assert_eq!(written.keys().collect::<Vec<_>>(), [&pyc]);

    let short = s.path().join("short.pyc");
    let mut cmd = Command::new(python3());
    support::clear_python_env(&mut cmd);
    cmd.args([
        "-c",
        "import py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[2], doraise=True)",
    ])
    .arg(mine.join(&name))
    .arg(&short);
    assert!(run(&mut cmd).status.success());
    assert!(
        written[&pyc] == std::fs::read(&short).unwrap(),
        "not py_compile's bytes"
    );
}

/// A file list whose path climbs with `..` past the root, under a prefix:
/// CPython's mirror `PREFIX/cwd/../../…/src/m.py` resolves outside the prefix
/// (pyc-format.md §2.3), and compileall writes the pyc next to the source.
/// precompyle refuses it; the other file of the list lands in the prefix
/// with compileall's bytes.
#[test]
fn prefix_mirror_escaping_by_dotdot_is_refused() {
    let s = scratch();
    let base = s.path().canonicalize().unwrap();
    let (w, prefix) = (base.join("w"), base.join("pfx"));
    write(&base.join("src/m.py"), "m = 1\n");
    write(&w.join("good.py"), "g = 1\n");
    std::fs::create_dir_all(&prefix).unwrap();
    // Enough `..` to climb from PREFIX/w (and so from w) to `/`.
    let depth = |p: &Path| p.components().count() - 1;
    let climb = "../".repeat(depth(&prefix) + depth(&w));
    let escaping = format!(
        "{climb}{}",
        base.join("src/m.py").to_string_lossy().trim_start_matches('/')
    );
    write(&w.join("list.txt"), &format!("{escaping}\ngood.py\n"));
    let args = [OsStr::new("-q"), OsStr::new("-i"), OsStr::new("list.txt")];

    let oracle = compileall_with_prefix(&w, &prefix, &args);
    assert_eq!(
        oracle.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&oracle.stderr)
    );
    let escaped = base.join("src/m.cpython-311.pyc");
    assert!(
        escaped.exists(),
        "compileall writes outside the prefix, next to the source"
    );
    let oracle_pycs = pycs_under(&prefix);
    std::fs::remove_file(&escaped).unwrap();
    std::fs::remove_dir_all(&prefix).unwrap();
    std::fs::create_dir_all(&prefix).unwrap();

    let mut cmd = precompyle();
    cmd.current_dir(&w).arg("--prefix").arg(&prefix).args(args);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0], format!("*** Error compiling '{escaping}'..."));
    assert!(
        lines[1].starts_with("refusing to write '")
            && lines[1].ends_with(&format!(
                "': it would land outside the pycache prefix '{}'",
                prefix.display()
            )),
        "{lines:?}"
    );
    assert!(!escaped.exists(), "nothing written next to the source");
    assert_eq!(support::diff_pycs(&oracle_pycs, &pycs_under(&prefix)), "");
    assert_eq!(pycs_under(&base).len(), 1, "only good.py's pyc, in the prefix");
}

/// A directory of the prefix mirror is a symlink to a directory outside it.
#[test]
fn symlink_inside_the_prefix_leading_outside_is_refused() {
    let s = scratch();
    let base = s.path().canonicalize().unwrap();
    let (w, prefix, outside) = (base.join("w"), base.join("pfx"), base.join("outside"));
    write(&w.join("a/m.py"), "m = 1\n");
    write(&w.join("b/n.py"), "n = 1\n");
    let mirror = prefix.join(w.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, mirror.join("a")).unwrap();

    let mut cmd = precompyle();
    cmd.current_dir(&w).arg("-q").arg("--prefix").arg(&prefix).arg(".");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0], "*** Error compiling './a/m.py'...");
    assert!(
        lines[1].contains("a symlink would take it outside the pycache prefix"),
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(mirror.join("b/n.cpython-311.pyc").exists());
}

/// The prefix is a 96 KiB tmpfs and fills up: every file that does not fit
/// fails with compileall's `OSError: [Errno 28]` text and JSON `errno_name`
/// ENOSPC; every pyc that exists is complete (compileall 3.11 itself can
/// leave a truncated one here: `FileIO.write` writes short and
/// `_write_atomic` does not check); no temp file stays; once there is room,
/// one more run completes the tree.
#[test]
fn destination_that_fills_up_leaves_only_complete_pycs() {
    let s = scratch();
    let base = s.path().canonicalize().unwrap();
    let tree = support::stdlib_sample(&python3(), &base, "lib", &["email", "json"]);
    let sources = walkdir::WalkDir::new(&tree)
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension() == Some(OsStr::new("py")))
        .count();
    let prefix = base.join("pfx");
    let Some(tmpfs) = Tmpfs::mount(&prefix, 96) else {
        return;
    };
    let run_ours = |format: &[&str]| {
        let mut cmd = precompyle();
        cmd.current_dir(&base)
            .args(["-q", "--no-progress", "--prefix"])
            .arg(&prefix)
            .args(format)
            .arg("lib");
        run(&mut cmd)
    };

    let out = run_ours(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = stdout_lines(&out);
    let failed = lines
        .iter()
        .filter(|l| l.starts_with("*** Error compiling 'lib/"))
        .count();
    assert!(failed > 0, "the tmpfs did not fill up: {lines:?}");
    for pair in lines.chunks(2) {
        assert!(pair[0].starts_with("*** Error compiling 'lib/"), "{pair:?}");
        assert_eq!(pair[1], "OSError: [Errno 28] No space left on device", "{pair:?}");
    }
    let verdict = verify_pycs_with(&python3(), &prefix, Some(&prefix));
    assert!(verdict.bad.is_empty(), "{:?}", verdict.bad);
    assert_eq!(
        verdict.checked + failed,
        sources,
        "every file either compiled or failed"
    );
    assert_eq!(temp_files(&prefix), Vec::<PathBuf>::new());

    let report = json(&run_ours(&["--format", "json"]));
    let errors = errors(&report);
    assert!(!errors.is_empty());
    for error in errors {
        assert_eq!(error["kind"], "write", "{error}");
        assert_eq!(error["errno_name"], "ENOSPC", "{error}");
        assert_eq!(error["errno"], 28, "{error}");
    }

    let status = Command::new("mount")
        .args(["-o", "remount,size=4m"])
        .arg(&tmpfs.0)
        .status();
    assert!(status.is_ok_and(|s| s.success()), "remount");
    let out = run_ours(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let verdict = verify_pycs_with(&python3(), &prefix, Some(&prefix));
    assert!(verdict.bad.is_empty(), "{:?}", verdict.bad);
    assert_eq!(verdict.checked, sources);
}

/// A read-only prefix, as an unprivileged user (root ignores the mode):
/// the same lines as compileall, exit 1, nothing written.
#[test]
fn read_only_prefix_matches_compileall() {
    let s = scratch();
    let base = s.path().canonicalize().unwrap();
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    write(&base.join("t/a.py"), "a = 1\n");
    write(&base.join("t/sub/b.py"), "b = 1\n");
    let prefix = base.join("pfx");
    std::fs::create_dir_all(&prefix).unwrap();
    let Some(system_python) = support::python_for_nobody() else {
        return;
    };
    let status = Command::new("chown").args(["-R", "65534:65534"]).arg(&base).status();
    assert!(status.is_ok_and(|s| s.success()), "chown");
    std::fs::set_permissions(&prefix, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let mut oracle = support::as_nobody(system_python);
    oracle
        .arg("-c")
        .arg(support::COMPILEALL_WITH_PREFIX)
        .arg(&prefix)
        .arg("t")
        .current_dir(&base);
    let oracle = run(&mut oracle);
    let mut cmd = support::as_nobody(env!("CARGO_BIN_EXE_precompyle"));
    cmd.arg("--python")
        .arg(system_python)
        .arg("--no-progress")
        .arg("--prefix")
        .arg(&prefix)
        .arg("t")
        .current_dir(&base);
    let out = run(&mut cmd);
    assert_eq!(oracle.status.code(), Some(1));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_lines(&out), stdout_lines(&oracle));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("*** PermissionError: [Errno 13] Permission denied: "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read_dir(&prefix).unwrap().count(), 0, "nothing written");
}
