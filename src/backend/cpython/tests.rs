//! Pool tests against the real interpreters: every pyenv CPython ≥ 3.8 found
//! under ~/.pyenv/versions is an oracle (its own py_compile and compileall).
//! Tests skip, saying so, when no interpreter is installed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::protocol::SLEEP_FIRST;
use super::*;

/// Target interpreters on this machine, oldest first.
fn interpreters() -> Vec<(PathBuf, (u32, u32))> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let root = Path::new(&home).join(".pyenv/versions");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let mut parts = name.split('.').map(str::parse::<u32>);
            let version = (parts.next()?.ok()?, parts.next()?.ok()?);
            let python = entry.path().join("bin/python3");
            (version.0 == 3 && version.1 >= 8 && python.exists()).then_some((python, version))
        })
        .collect();
    found.sort_by_key(|(_, version)| *version);
    if found.is_empty() {
        eprintln!("SKIP: no CPython >= 3.8 under {}", root.display());
    }
    found
}

fn start(python: &Path, version: (u32, u32), workers: usize, timeout: Option<Duration>) -> CpythonPool {
    let config = PoolConfig {
        python: python.to_owned(),
        workers,
        timeout,
        version,
    };
    CpythonPool::start(config).unwrap_or_else(|err| panic!("{err}"))
}

struct Case {
    /// Where the source is written (relative to the test's temp dir).
    disk: &'static [u8],
    /// The job's filename (py_compile's dfile).
    filename: &'static [u8],
    source: Vec<u8>,
    optimize: i64,
}

fn case(disk: &'static [u8], source: impl Into<Vec<u8>>) -> Case {
    Case {
        disk,
        filename: disk,
        source: source.into(),
        optimize: -1,
    }
}

const RICH: &str = "\"\"\"Module doc.\"\"\"\nimport os\n\ndef f(a, *, b=2):\n    \"f doc\"\n    assert a, 'no a'\n    return [i * b for i in range(a)] + [f'{a!r:>{b}}', 'h\\u00e9']\n\nclass C:\n    class D:\n        x: int = 1\n    async def g(self):\n        async with self as s:\n            yield s\n";

/// Sources chosen to hit each row of pyc-format.md §4.5; the expected bytes and
/// texts are not written here: each interpreter's py_compile gives them.
fn cases() -> Vec<Case> {
    let mut cases = vec![
        case(b"ok.py", "x = 1\n"),
        case(b"rich.py", RICH),
        case(
            b"crlf_bom.py",
            &b"\xef\xbb\xbf# -*- coding: utf-8 -*-\r\ns = '\xc3\xa9'\r\n"[..],
        ),
        case(b"latin1.py", &b"# coding: latin-1\ns = '\xe9'\n"[..]),
        case(
            b"nested_qualname.py",
            "class HelpFormatter:\n    class _Section:\n        pass\n",
        ),
        case(b"syntax.py", "def f(:\n"),
        case(b"indent.py", "if x:\npass\n"),
        case(b"tab.py", "if x:\n\tpass\n        pass\n"),
        case(b"nul.py", "x = 1\0\n"),
        case(b"enc.py", "# coding: foobar\nx = 1\n"),
        case(b"badutf8.py", &b"x = '\xff'\n"[..]),
        case(b"bomlatin.py", &b"\xef\xbb\xbf# coding: latin-1\nx = 1\n"[..]),
        case(b"deepunary.py", "-".repeat(20_000) + "1\n"),
        case(b"binchain.py", format!("x = {}1\n", "1+".repeat(20_000))),
        case(b"parens.py", format!("x = {}{}\n", "(".repeat(201), ")".repeat(201))),
        case(b"marshal.py", format!("f = {}1\n", "lambda: ".repeat(1000))),
        case(b"warn.py", "x = \"\\d\"\n"),
        case(b"caf\xc3\xa9\xff.py", "def f(:\n"),
    ];
    for optimize in [0, 1, 2] {
        cases.push(Case {
            optimize,
            ..case(b"rich.py", RICH)
        });
    }
    for (disk, source) in [(&b"dfile_ok.py"[..], RICH), (b"dfile_bad.py", "def f(:\n")] {
        cases.push(Case {
            filename: b"/dest/pkg/mod.py",
            ..case(disk, source)
        });
    }
    cases
}

/// What the interpreter's own py_compile gives for each case: the pyc body,
/// or the text compileall would print after `*** `.
const ORACLE: &str = r#"
import json, os, py_compile, sys
out = []
for i, (path, dfile, opt) in enumerate(json.load(sys.stdin)):
    file, dfile = os.fsdecode(bytes.fromhex(path)), os.fsdecode(bytes.fromhex(dfile))
    cfile = 'oracle-%d.pyc' % i
    try:
        py_compile.compile(file, cfile, dfile, doraise=True, optimize=opt)
    except py_compile.PyCompileError as err:
        out.append(['compile', err.msg.encode('utf-8', 'backslashreplace').decode('utf-8')])
    except ValueError as err:  # marshal.dumps; compileall dies here
        out.append(['marshal', '%s: %s' % (type(err).__name__, err)])
    else:
        with open(cfile, 'rb') as f:
            out.append(['code', f.read()[16:].hex()])
json.dump(out, sys.stdout)
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_cases(dir: &Path, cases: &[Case]) {
    for case in cases {
        std::fs::write(dir.join(OsStr::from_bytes(case.disk)), &case.source).unwrap();
    }
}

/// Starts the oracle; [`oracle_answers`] collects its result, so that it runs
/// while the pool works.
fn start_oracle(python: &Path, dir: &Path, cases: &[Case]) -> std::process::Child {
    let jobs: Vec<_> = cases
        .iter()
        .map(|c| serde_json::json!([hex(c.disk), hex(c.filename), c.optimize]))
        .collect();
    let mut child = Command::new(python)
        .args(["-c", ORACLE])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &jobs).unwrap();
    child
}

fn oracle_answers(child: std::process::Child) -> Vec<(String, String)> {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the oracle failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn oracle(python: &Path, dir: &Path, cases: &[Case]) -> Vec<(String, String)> {
    oracle_answers(start_oracle(python, dir, cases))
}

fn outcome(result: Result<Vec<u8>, CompileFailure>) -> (String, String) {
    match result {
        Ok(code) => ("code".to_owned(), hex(&code)),
        Err(CompileFailure {
            kind: FailureKind::Compile,
            message,
        }) => ("compile".to_owned(), message),
        Err(CompileFailure {
            kind: FailureKind::Marshal,
            message,
        }) => ("marshal".to_owned(), message),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn job(case: &Case) -> CompileJob<'_> {
    CompileJob {
        source: &case.source,
        filename: case.filename,
        optimize: case.optimize,
    }
}

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

fn newest() -> Option<(PathBuf, (u32, u32))> {
    interpreters().pop()
}

/// `dir/python`: an executable shell script running `line`, to start in
/// the interpreter's place.
fn shell_script(dir: &Path, line: &str) -> PathBuf {
    let path = dir.join("python");
    std::fs::write(&path, format!("#!/bin/sh\n{line}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

fn idle_python_pids(pool: &CpythonPool) -> Vec<u32> {
    pool.lock_idle().iter().flatten().map(Worker::python_pid).collect()
}

fn is_gone(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence; a zombie still "exists".
    unsafe { libc::kill(pid as libc::pid_t, 0) != 0 }
}

#[test]
fn killed_worker_fails_one_file_and_is_replaced() {
    let Some((python, version)) = newest() else {
        return;
    };
    let pool = start(&python, version, 1, None);
    let pid = idle_python_pids(&pool)[0];
    let slow = CompileJob {
        source: b"x = 1\n",
        filename: b"5",
        optimize: -1,
    };
    let failure = std::thread::scope(|scope| {
        let compiling = scope.spawn(|| pool.compile_job(&slow, SLEEP_FIRST));
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: plain kill(2) of the worker this test started.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
        compiling.join().unwrap().unwrap_err()
    });
    assert_eq!(failure.kind, FailureKind::WorkerCrashed);
    assert!(failure.message.contains("signal 9 (SIGKILL)"), "{}", failure.message);
    assert!(is_gone(pid), "the dead worker was not reaped");
    // The next file gets a fresh worker.
    let ok = CompileJob {
        filename: b"ok.py",
        ..slow
    };
    assert!(pool.compile(ok).is_ok());
    assert_ne!(idle_python_pids(&pool), [pid]);
}

#[test]
fn slow_file_times_out_and_worker_is_replaced() {
    let Some((python, version)) = newest() else {
        return;
    };
    let pool = start(&python, version, 1, Some(Duration::from_millis(300)));
    let pid = idle_python_pids(&pool)[0];
    let slow = CompileJob {
        source: b"x = 1\n",
        filename: b"30",
        optimize: -1,
    };
    let started = Instant::now();
    let failure = pool.compile_job(&slow, SLEEP_FIRST).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(failure.message.contains("0.3s"), "{}", failure.message);
    assert!(is_gone(pid), "the timed-out worker was not reaped");
    // A file that takes less than the limit still works, in a new worker.
    let quick = CompileJob {
        filename: b"0.05",
        ..slow
    };
    assert!(pool.compile_job(&quick, SLEEP_FIRST).is_ok());
}

#[test]
fn drop_reaps_every_worker() {
    let Some((python, version)) = newest() else {
        return;
    };
    let pool = start(&python, version, 3, None);
    let pids = idle_python_pids(&pool);
    assert_eq!(pids.len(), 3);
    drop(pool);
    for pid in pids {
        assert!(is_gone(pid), "worker {pid} is still there (zombie?)");
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

#[test]
fn wrong_version_fails_the_handshake() {
    let Some((python, (major, minor))) = newest() else {
        return;
    };
    let config = PoolConfig {
        python: python.clone(),
        workers: 1,
        timeout: None,
        version: (major, minor + 1),
    };
    let err = CpythonPool::start(config).err().expect("version mismatch accepted");
    assert!(matches!(err, PoolError::Handshake { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("expected {major}.{}", minor + 1)),
        "{err}"
    );
}

#[test]
fn not_a_python_fails_the_handshake() {
    let config = PoolConfig {
        python: PathBuf::from("false"),
        workers: 2,
        timeout: None,
        version: (3, 11),
    };
    let err = CpythonPool::start(config).err().expect("`false` accepted as python");
    assert!(err.to_string().contains("exited with status 1"), "{err}");
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

/// A stand-in for `worker.py`: answers the handshake as 3.11, then answers
/// a source `pieces` with a 200,000-byte payload written in three parts
/// with pauses between (the header split, then more than a pipe holds), and
/// any other source with one byte of payload followed by two bytes no
/// answer announced.
const FAKE_WORKER: &str = r#"
import os, sys, time
requests, answers = sys.stdin.buffer, sys.stdout.buffer
def frame(job, status, payload):
    return job.to_bytes(8, "little") + bytes((status,)) + len(payload).to_bytes(8, "little") + payload
answers.write(b"\0precompyle-worker\0" + frame(0, 3, b"3.11.0 %d" % os.getpid()))
answers.flush()
while True:
    head = requests.read(32)
    if len(head) < 32:
        break
    job = int.from_bytes(head[0:8], "little")
    requests.read(int.from_bytes(head[16:24], "little"))
    source = requests.read(int.from_bytes(head[24:32], "little"))
    if source == b"pieces":
        whole = frame(job, 0, bytes(i % 251 for i in range(200000)))
        for part in (whole[:5], whole[5:1017], whole[1017:]):
            answers.write(part)
            answers.flush()
            time.sleep(0.05)
    else:
        answers.write(frame(job, 0, b"x") + b"yz")
        answers.flush()
"#;

/// Answers are read whole however the worker's writes split them, and
/// bytes after an answer (the stream out of step) fail that file and that
/// worker only: the next job gets a fresh one.
#[test]
fn answers_in_pieces_are_read_whole_and_trailing_bytes_fail_the_file() {
    let Some((python, _)) = newest() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake_worker.py");
    std::fs::write(&fake, FAKE_WORKER).unwrap();
    let wrapper = shell_script(dir.path(), &format!("exec '{}' '{}'", python.display(), fake.display()));
    let pool = start(&wrapper, (3, 11), 1, Some(Duration::from_secs(20)));
    let compile = |source: &[u8]| {
        pool.compile(CompileJob {
            source,
            filename: b"f.py",
            optimize: -1,
        })
    };

    let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(compile(b"pieces").expect("an answer in pieces"), expected);
    let first_pid = idle_python_pids(&pool);

    let failure = compile(b"x = 1\n").expect_err("trailing bytes accepted");
    assert_eq!(failure.kind, FailureKind::WorkerCrashed, "{}", failure.message);
    assert!(
        failure.message.contains("2 bytes after an answer of 1"),
        "{}",
        failure.message
    );

    assert_eq!(compile(b"pieces").expect("a fresh worker"), expected);
    assert_ne!(idle_python_pids(&pool), first_pid, "the worker was replaced");
}
