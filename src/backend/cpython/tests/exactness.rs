//! The pool's answers against each interpreter's own py_compile and
//! compileall, including the worker states that must not change them.

use super::*;

#[test]
fn matches_py_compile_on_every_interpreter() {
    let cases = cases();
    // One thread per interpreter: most of the time is spent in the children.
    std::thread::scope(|scope| {
        for (python, version) in interpreters() {
            let cases = &cases;
            scope.spawn(move || check_against_py_compile(&python, version, cases));
        }
    });
}

fn check_against_py_compile(python: &Path, version: (u32, u32), cases: &[Case]) {
    let dir = tempfile::tempdir().unwrap();
    write_cases(dir.path(), cases);
    let oracle = start_oracle(python, dir.path(), cases);
    let pool = start(python, version, 2, None);
    // Compile from several threads at once, as the run does.
    let got: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| scope.spawn(|| outcome(pool.compile(job(case)))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut expected = oracle_answers(oracle);
    if version >= (3, 13) {
        for (i, case) in cases.iter().enumerate() {
            // `-m py_compile` takes no dfile; those cases keep the in-process
            // oracle (their sources have no state-dependent strings).
            if case.filename == case.disk {
                expected[i] = fresh_py_compile(python, version, dir.path(), case);
            }
        }
    }
    for ((case, want), got) in cases.iter().zip(&expected).zip(&got) {
        let name = String::from_utf8_lossy(case.disk);
        assert_eq!(got, want, "{version:?} {name} optimize={}", case.optimize);
    }
}

/// 3.13+: what a fresh `python -m py_compile FILE` writes (the reference the
/// worker's state is made to match), or prints on stderr when it fails.
fn fresh_py_compile(python: &Path, version: (u32, u32), dir: &Path, case: &Case) -> (String, String) {
    let (flag, suffix) = match case.optimize {
        -1 | 0 => (None, String::new()),
        level => (Some(if level == 1 { "-O" } else { "-OO" }), format!(".opt-{level}")),
    };
    let output = Command::new(python)
        .args(flag)
        .args(["-m", "py_compile"])
        .arg(OsStr::from_bytes(case.disk))
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    if output.status.success() {
        let stem = &case.disk[..case.disk.len() - 3];
        let mut name = stem.to_vec();
        name.extend_from_slice(format!(".cpython-{}{}{suffix}.pyc", version.0, version.1).as_bytes());
        let pyc = std::fs::read(dir.join("__pycache__").join(OsStr::from_bytes(&name))).unwrap();
        ("code".to_owned(), hex(&pyc[16..]))
    } else if stderr.starts_with("Traceback") {
        // marshal.dumps raised; py_compile lets it through.
        let last = stderr.lines().last().unwrap_or_default();
        ("marshal".to_owned(), last.to_owned())
    } else {
        ("compile".to_owned(), stderr)
    }
}

/// The texts must be exactly what `python -m compileall` prints after `*** `.
#[test]
fn messages_match_compileall_stdout() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.filename == c.disk && c.disk != b"marshal.py")
        .collect();
    for (python, version) in interpreters() {
        let dir = tempfile::tempdir().unwrap();
        write_cases(dir.path(), &cases);
        let output = Command::new(&python)
            .args(["-m", "compileall"])
            .args(cases.iter().map(|c| OsStr::from_bytes(c.disk)))
            .current_dir(dir.path())
            .env("PYTHONIOENCODING", "utf-8")
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let pool = start(&python, version, 1, None);
        let mut failures = 0;
        for case in &cases {
            if let Err(failure) = pool.compile(job(case)) {
                failures += 1;
                let printed = format!("*** {}\n", failure.message);
                assert!(stdout.contains(&printed), "{version:?}: {printed:?} not in\n{stdout}");
            }
        }
        assert_eq!(stdout.matches("*** ").count(), failures, "{version:?}\n{stdout}");
    }
}

/// A `python` wrapper that sets the environment the way a user might: the
/// worker must honour PYTHONOPTIMIZE (so no -E/-I) and survive a
/// sitecustomize that prints to stdout before the worker script runs.
#[test]
fn honours_environment_and_survives_startup_prints() {
    let Some((python, version)) = newest() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("sitecustomize.py"), "print('noise from sitecustomize')\n").unwrap();
    let wrapper = shell_script(
        dir.path(),
        &format!(
            "PYTHONPATH='{}' PYTHONOPTIMIZE=2 PYTHONUNBUFFERED=1 exec '{}' \"$@\"",
            site.display(),
            python.display()
        ),
    );

    let rich = case(b"rich.py", RICH);
    write_cases(dir.path(), std::slice::from_ref(&rich));
    let as_level_2 = Case {
        optimize: 2,
        ..case(b"rich.py", RICH)
    };
    let expected = oracle(&python, dir.path(), &[as_level_2]);
    let pool = start(&wrapper, version, 1, None);
    assert_eq!(outcome(pool.compile(job(&rich))), expected[0]);
}

/// 3.13+: a job that imports a module (here the codec named by a coding
/// cookie) leaves the worker unlike a fresh `python -m py_compile`, so the
/// worker retires; ordinary files and compile errors do not retire it.
#[test]
fn worker_retires_after_a_job_that_imports() {
    let Some((python, version)) = newest().filter(|(_, version)| *version >= (3, 13)) else {
        eprintln!("SKIP: needs CPython >= 3.13");
        return;
    };
    let pool = start(&python, version, 1, None);
    let first = idle_python_pids(&pool);
    for (source, filename) in [(&b"x = 1\n"[..], &b"ok.py"[..]), (b"def f(:\n", b"bad.py")] {
        let _ = pool.compile(CompileJob {
            source,
            filename,
            optimize: -1,
        });
    }
    assert_eq!(idle_python_pids(&pool), first, "an ordinary job retired the worker");
    let koi8 = CompileJob {
        source: b"# -*- coding: koi8-r -*-\ns = '\xf0\xf2\xe9'\n",
        filename: b"koi8.py",
        optimize: -1,
    };
    assert!(pool.compile(koi8).is_ok());
    assert!(
        idle_python_pids(&pool).is_empty(),
        "the slot should be empty until next use"
    );
    assert!(is_gone(first[0]), "the retired worker was not reaped");
    assert!(pool.compile(koi8).is_ok());
    assert_ne!(idle_python_pids(&pool), first);
}

/// 3.13+: once a worker has parsed the identifier `h3`, the two equal
/// frozensets below are no longer one shared constant, so its bytes would
/// differ from a fresh `python -m py_compile` (found in networkx's tests).
/// The worker must hand the file to a fresh worker instead.
#[test]
fn history_dependent_file_is_redone_in_a_fresh_worker() {
    let Some((python, version)) = newest().filter(|(_, version)| *version >= (3, 13)) else {
        eprintln!("SKIP: needs CPython >= 3.13");
        return;
    };
    let shared_sets = case(
        b"shared_sets.py",
        "def f():\n    assert set(U) == {\"g0\", \"g1\", \"g2\", \"h3\", \"h4\"}\n    \
         assert len(U.edges()) == len(G.edges()) + len(H.edges()) + len(G) * len(H) * 2\n\
         def g():\n    assert set(U) == {\"g0\", \"g1\", \"g2\", \"h3\", \"h4\"}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    write_cases(dir.path(), std::slice::from_ref(&shared_sets));
    let expected = fresh_py_compile(&python, version, dir.path(), &shared_sets);

    let pool = start(&python, version, 1, None);
    let leak_h3 = CompileJob {
        source: b"h3 = 0\n",
        filename: b"a.py",
        optimize: -1,
    };
    assert!(pool.compile(leak_h3).is_ok());
    let dirty = idle_python_pids(&pool);
    assert!(
        pool.compile(CompileJob {
            source: b"x = {'a', 'b'}\n",
            ..leak_h3
        })
        .is_ok()
    );
    assert_eq!(idle_python_pids(&pool), dirty, "an ordinary file was redone");

    assert_eq!(outcome(pool.compile(job(&shared_sets))), expected);
    assert_ne!(idle_python_pids(&pool), dirty, "the file was not redone");
    assert!(is_gone(dirty[0]), "the dirty worker was not reaped");
}

/// Before 3.13: once a process has compiled `ä = 1`, the singleton string
/// "ä" stays interned, and marshal writes the constant "ä" of a later file
/// as interned where a fresh `python -m py_compile` does not (found in
/// html/entities.py, whose source is ASCII: `'\xe4'`). A worker retires
/// after a file with such a name; ordinary files do not retire it.
#[test]
fn a_worker_that_interned_a_latin1_character_retires() {
    let older: Vec<_> = interpreters()
        .into_iter()
        .filter(|(_, version)| *version < (3, 13))
        .collect();
    if older.is_empty() {
        eprintln!("SKIP: needs a CPython before 3.13");
        return;
    }
    let cases = [case(b"constant.py", "x = '\\xe4'\n")];
    for (python, version) in older {
        let dir = tempfile::tempdir().unwrap();
        write_cases(dir.path(), &cases);
        let expected = fresh_py_compile(&python, version, dir.path(), &cases[0]);
        let pool = start(&python, version, 1, None);
        let plain = CompileJob {
            source: b"y = 'plain'\n",
            filename: b"a.py",
            optimize: -1,
        };
        assert!(pool.compile(plain).is_ok());
        let first = idle_python_pids(&pool);
        assert!(pool.compile(plain).is_ok());
        assert_eq!(
            idle_python_pids(&pool),
            first,
            "{version:?}: an ordinary file retired the worker"
        );
        let intern = CompileJob {
            source: "\u{e4} = 1\n".as_bytes(),
            ..plain
        };
        assert!(pool.compile(intern).is_ok());
        assert!(
            is_gone(first[0]),
            "{version:?}: the worker that compiled `\u{e4} = 1` did not retire"
        );
        assert_eq!(
            outcome(pool.compile(job(&cases[0]))),
            expected,
            "{version:?}: {}",
            python.display()
        );
    }
}
