//! rules_python's precompiler command line and the JSON worker protocol,
//! without Bazel: one-shot runs against `py_compile.compile(src, pyc,
//! dfile=src_name, doraise=True, optimize=N, invalidation_mode=M)` with
//! PYTHONHASHSEED=0, and a worker spoken to over its pipes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::support::{self, precompyle, python3, run, scratch};

/// rules_python's own call, in the interpreter itself.
const PY_COMPILE: &str = "import sys, py_compile\n\
src, pyc, name, optimize, mode = sys.argv[1:]\n\
py_compile.compile(src, pyc, dfile=name, doraise=True, optimize=int(optimize),\n\
    invalidation_mode=py_compile.PycInvalidationMode[mode.upper()])\n";

fn sources(tree: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(tree)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "py"))
        .map(|e| e.into_path())
        .collect();
    found.sort();
    found
}

/// The triples for every source of `tree`: `src_name` is the path below
/// `tree` (as rules_python passes the short path), the pyc goes to `out`.
fn triples(tree: &Path, out: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for src in sources(tree) {
        let name = src.strip_prefix(tree).unwrap();
        args.extend([
            "--src".to_owned(),
            src.display().to_string(),
            "--src_name".to_owned(),
            name.display().to_string(),
            "--pyc".to_owned(),
            out.join(name).with_extension("pyc").display().to_string(),
        ]);
    }
    args
}

#[test]
fn one_shot_matches_py_compile_in_every_mode() {
    let python = python3();
    let s = scratch();
    let tree = support::stdlib_sample(&python, s.path(), "tree", &["json", "email"]);
    for (mode, optimize) in [("timestamp", "-1"), ("checked_hash", "0"), ("unchecked_hash", "2")] {
        let ours = s.path().join(format!("ours-{mode}"));
        let theirs = s.path().join(format!("theirs-{mode}"));
        // Through a flagfile, as Bazel passes long command lines.
        let flagfile = s.path().join(format!("{mode}.params"));
        let mut args = vec![
            "--invalidation_mode".to_owned(),
            mode.to_ascii_uppercase(),
            "--optimize".to_owned(),
            optimize.to_owned(),
            "--python_version".to_owned(),
            "3.11".to_owned(),
        ];
        args.extend(triples(&tree, &ours));
        std::fs::write(&flagfile, args.join("\n") + "\n").unwrap();
        let out = run(precompyle()
            .env("PRECOMPYLE_BACKEND", "cpython")
            .arg(format!("@{}", flagfile.display())));
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "nothing on stdout");
        for src in sources(&tree) {
            let name = src.strip_prefix(&tree).unwrap();
            let pyc = theirs.join(name).with_extension("pyc");
            let status = Command::new(&python)
                .env("PYTHONHASHSEED", "0")
                .args(["-c", PY_COMPILE])
                .arg(&src)
                .arg(&pyc)
                .arg(name)
                .args([optimize, mode])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let (ours, theirs) = (support::pycs_under(&ours), support::pycs_under(&theirs));
        assert_eq!(ours.len(), sources(&tree).len());
        assert_eq!(support::diff_pycs(&theirs, &ours), "", "{mode}");
    }
}

#[test]
fn one_shot_reports_a_syntax_error_and_exits_1() {
    let s = scratch();
    let src = s.path().join("bad.py");
    std::fs::write(&src, "def f(:\n    pass\n").unwrap();
    let pyc = s.path().join("out/bad.pyc");
    let out = run(precompyle()
        .env("PRECOMPYLE_BACKEND", "cpython")
        .args(["--python_version", "3.11", "--src"])
        .arg(&src)
        .args(["--src_name", "pkg/bad.py", "--pyc"])
        .arg(&pyc));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("File \"pkg/bad.py\", line 1"), "{stderr}");
    assert!(stderr.contains("SyntaxError: invalid syntax"), "{stderr}");
    assert!(!pyc.exists());
}

/// A worker and its pipes.
struct Worker {
    child: Child,
    responses: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Worker {
    fn start() -> Worker {
        let mut child = precompyle()
            .arg("--persistent_worker")
            .env("PRECOMPYLE_BACKEND", "native")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, responses) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON on stdout: {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Worker { child, responses }
    }

    fn send(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn response(&self) -> serde_json::Value {
        self.responses
            .recv_timeout(Duration::from_secs(60))
            .expect("a response within 60 s")
    }

    fn no_more_responses(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success());
        assert_eq!(
            self.responses.try_iter().collect::<Vec<_>>(),
            Vec::<serde_json::Value>::new()
        );
    }
}

fn request(id: i64, args: &[String]) -> String {
    serde_json::json!({"arguments": args, "requestId": id, "inputs": []}).to_string()
}

fn compile_args(src: &Path, name: &str, pyc: &Path) -> Vec<String> {
    [
        "--python_version",
        "3.12",
        "--invalidation_mode",
        "checked_hash",
        "--src",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        src.display().to_string(),
        "--src_name".to_owned(),
        name.to_owned(),
        "--pyc".to_owned(),
    ])
    .chain([pyc.display().to_string()])
    .collect()
}

#[test]
fn the_worker_protocol() {
    let s = scratch();
    let small = s.path().join("small.py");
    std::fs::write(&small, "x = 1\n").unwrap();
    let out = s.path().join("out");
    let pyc = |n: &str| out.join(n);
    let mut worker = Worker::start();

    // Two singleplex requests back to back (Bazel 4), with an unknown field.
    let a = request(0, &compile_args(&small, "a.py", &pyc("a.pyc")));
    let b = serde_json::json!({"arguments": compile_args(&small, "b.py", &pyc("b.pyc")), "verbosity": 10, "futureField": {"x": [1]}});
    worker.send(&format!("{a}{b}"));
    for _ in 0..2 {
        let r = worker.response();
        assert_eq!(
            (r["exitCode"].as_i64(), r["requestId"].as_i64()),
            (Some(0), Some(0)),
            "{r}"
        );
    }
    assert!(pyc("a.pyc").exists() && pyc("b.pyc").exists());

    // One per line (Bazel 5+).
    worker.send(&format!(
        "{}\n",
        request(0, &compile_args(&small, "c.py", &pyc("c.pyc")))
    ));
    assert_eq!(worker.response()["exitCode"], 0);

    // Malformed JSON: an error response, and the worker goes on.
    worker.send("{\"requestId\": 7, \"arguments\": [}\nnot json\n");
    for _ in 0..2 {
        let r = worker.response();
        assert_eq!(r["exitCode"], 2, "{r}");
        assert!(r["output"].as_str().unwrap().contains("malformed work request"), "{r}");
    }

    // A missing source: that request fails, naming the file.
    let missing = s.path().join("missing.py");
    worker.send(&request(0, &compile_args(&missing, "m.py", &pyc("m.pyc"))));
    let r = worker.response();
    assert_eq!(r["exitCode"], 1, "{r}");
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("missing.py: No such file or directory"),
        "{r}"
    );

    // Multiplex: a slow request, then a quick one, answered quick first.
    let stdlib = support::stdlib_dir(&python3());
    let mut slow = vec!["--python_version".to_owned(), "3.12".to_owned()];
    for i in 0..40 {
        slow.extend([
            "--src".to_owned(),
            stdlib.join("typing.py").display().to_string(),
            "--src_name".to_owned(),
            format!("typing{i}.py"),
            "--pyc".to_owned(),
            pyc(&format!("slow/typing{i}.pyc")).display().to_string(),
        ]);
    }
    worker.send(&format!(
        "{}\n{}\n",
        request(1, &slow),
        request(2, &compile_args(&small, "q.py", &pyc("q.pyc")))
    ));
    let first = worker.response();
    let second = worker.response();
    assert_eq!(
        (first["requestId"].as_i64(), second["requestId"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (first["exitCode"].as_i64(), second["exitCode"].as_i64()),
        (Some(0), Some(0))
    );

    // Cancel a slow request: one response, wasCancelled.
    worker.send(&format!(
        "{}\n{}\n",
        request(3, &slow),
        serde_json::json!({"requestId": 3, "cancel": true})
    ));
    let r = worker.response();
    assert_eq!(
        (r["requestId"].as_i64(), r["wasCancelled"].as_bool()),
        (Some(3), Some(true)),
        "{r}"
    );
    // A cancel for a request already answered is ignored.
    worker.send(&format!("{}\n", serde_json::json!({"requestId": 2, "cancel": true})));
    worker.no_more_responses();
}
