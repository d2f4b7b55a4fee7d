//! Unreadable files and directories, as a user that permissions apply to.

use super::*;

/// How to run both tools as a user that file permissions apply to.
struct Unprivileged {
    wrapper: Vec<OsString>,
    python: PathBuf,
    uid: u32,
}

/// Root ignores chmod 000, so as root both tools run as `nobody` through
/// `setpriv`. pyenv's interpreters live under /root, which `nobody` cannot
/// enter, so the interpreter is the first that `nobody` can start: the one
/// behind `python3`, else the system's. Both tools use the same one, so the
/// comparison holds whichever it is.
fn unprivileged() -> Result<Unprivileged, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(Unprivileged {
            wrapper: Vec::new(),
            python: python3(),
            uid: euid,
        });
    }
    let uid = 65534;
    let wrapper: Vec<OsString> = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        .iter()
        .map(OsString::from)
        .collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_precompyle"));
    let bin_runs = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !bin_runs {
        return Err(format!("`setpriv` missing, or uid {uid} cannot run {}", bin.display()));
    }
    // Ask both as root and as the user: some sandboxes quietly run another
    // interpreter when the user cannot reach the one asked for.
    let version = |wrapped: bool, python: &Path| {
        let mut cmd = if wrapped {
            Command::new(&wrapper[0])
        } else {
            Command::new(python)
        };
        if wrapped {
            cmd.args(&wrapper[1..]).arg(python);
        }
        let out = cmd
            .args(["-c", "import sys, compileall; print(sys.version, sys.prefix)"])
            .output();
        out.ok().filter(|o| o.status.success()).map(|o| o.stdout)
    };
    let candidates = [python3(), "/usr/bin/python3".into(), "/usr/local/bin/python3".into()];
    for python in candidates {
        let as_root = version(false, &python);
        if as_root.is_some() && as_root == version(true, &python) {
            return Ok(Unprivileged { wrapper, python, uid });
        }
    }
    Err(format!("no Python interpreter that uid {uid} can run"))
}

#[test]
fn unreadable_files_and_directories() {
    let mut f = Findings::default();
    let user = match unprivileged() {
        Ok(user) => user,
        Err(why) => {
            eprintln!("SKIPPED: unreadable_files_and_directories: {why}");
            return;
        }
    };
    eprintln!(
        "unreadable_files_and_directories: both tools run as uid {} with {}",
        user.uid,
        user.python.display()
    );
    let s = Scratch::new();
    chmod(&s.root, 0o755);
    let tree = s.empty_tree("perm");
    write(&tree, b"a.py", b"a = 1\n");
    write(&tree, b"unreadable.py", b"u = 1\n");
    write(&tree, b"noread_dir/b.py", b"b = 1\n");
    write(&tree, b"noexec_dir/e.py", b"e = 1\n");
    write(&tree, b"ro_dir/r.py", b"r = 1\n");
    write(&tree, b"ro_cache/c.py", b"c = 1\n");
    fs::create_dir(tree.join("ro_cache/__pycache__")).expect("mkdir");
    write(&tree, b"ok/z.py", b"z = 1\n");
    write(&tree, b"list.txt", b"perm/a.py\n");
    let restrict = |copy: &Path| {
        if !user.wrapper.is_empty() {
            let owner = format!("{0}:{0}", user.uid);
            let status = Command::new("chown").args(["-R", &owner]).arg(copy).status();
            assert!(status.is_ok_and(|s| s.success()), "chown -R {owner}");
        }
        chmod(&copy.join("unreadable.py"), 0o000);
        chmod(&copy.join("list.txt"), 0o000);
        chmod(&copy.join("noread_dir"), 0o000);
        chmod(&copy.join("noexec_dir"), 0o644);
        chmod(&copy.join("ro_dir"), 0o555);
        chmod(&copy.join("ro_cache/__pycache__"), 0o555);
    };

    let mut runner = Runner::new(&user.python);
    runner.wrapper = &user.wrapper;
    runner.prepare = Some(&restrict);
    let mut run = |args: &[&str]| {
        let p = runner.both(&tree, &s.work, &os_args(args), &os_args(args));
        let case = format!(
            "as uid {} with {} [{}]",
            user.uid,
            user.python.display(),
            args.join(" ")
        );
        f.compare(&case, &p);
        p
    };
    let p = run(&["perm"]);
    for needle in [
        "Can't list 'perm/noread_dir'",
        "Listing 'perm/noexec_dir'...",
        "*** PermissionError: [Errno 13] Permission denied: 'perm/unreadable.py'",
        "*** PermissionError: [Errno 13] Permission denied: 'perm/ro_dir/__pycache__'",
        "*** PermissionError: [Errno 13] Permission denied: 'perm/ro_cache/__pycache__/c.",
        "Compiling 'perm/ok/z.py'...",
    ] {
        assert_oracle_printed("unreadable", &p, needle);
    }
    run(&["-q", "perm"]);
    run(&["-qq", "perm"]);
    let p = run(&[
        "perm/unreadable.py",
        "perm/noread_dir",
        "perm/noexec_dir/e.py",
        "perm/a.py",
    ]);
    assert_oracle_printed("unreadable args", &p, "Permission denied: 'perm/unreadable.py'");
    let p = run(&["-i", "perm/list.txt", "perm/a.py"]);
    assert_oracle_printed("unreadable list", &p, "Error reading file list perm/list.txt");
    f.finish();
}
