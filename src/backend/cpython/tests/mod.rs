//! Pool tests against the real interpreters: every pyenv CPython ≥ 3.8 found
//! under ~/.pyenv/versions is an oracle (its own py_compile and compileall).
//! Tests skip, saying so, when no interpreter is installed.
//!
//! `exactness`: the pool's answers against each interpreter's own
//! py_compile and compileall, also after the worker states that would change
//! them (retire, redo); `lifecycle`: workers killed, timed out, replaced and
//! reaped, the environment they start in, and the handshake.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::protocol::SLEEP_FIRST;
use super::*;

mod exactness;
mod lifecycle;

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
