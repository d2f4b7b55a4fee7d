//! Fault tests: precompyle must never leave a partial or wrong pyc. It writes
//! an unnamed file in the destination directory and links it into place
//! when complete, so whatever happens to it (SIGKILL at any point, a worker killed from outside, another
//! run writing the same tree, an importer reading while it writes) every
//! `.pyc` that exists must be one CPython's import system accepts.
//!
//! The judge is the target interpreter itself: `VERIFY_PYCS` checks each pyc
//! the way `SourceLoader.get_code` does (magic, flags 0, mtime and size of
//! the source, then `marshal.loads`), and the importer runs the real
//! `SourceFileLoader`. Random delays come from a seed printed on failure;
//! set `PRECOMPYLE_TEST_SEED` to replay one.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Rng, precompyle, scratch, stdout_lines, temp_files, verify_pycs};

/// Packages of the target's stdlib copied as the sample tree (~170 files).
const SAMPLE: &[&str] = &[
    "json",
    "email",
    "importlib",
    "concurrent",
    "asyncio",
    "xml",
    "logging",
    "http",
    "unittest",
];

/// Loops until the file `argv[2]` exists: gets every module's code through
/// the import system's own `SourceFileLoader` (which reads and trusts the
/// pyc when its header matches) and really imports the `json` and `email`
/// packages from the tree. Prints `FAIL ...` for any error, then
/// `ROUNDS <n>`.
const IMPORTER: &str = r#"
import importlib, importlib.machinery, os, sys
tree, stop = sys.argv[1], sys.argv[2]
assert sys.dont_write_bytecode
modules = []
for dirpath, dirnames, filenames in os.walk(tree):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    for name in filenames:
        if name.endswith(".py"):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, tree)[:-3].replace(os.sep, ".")
            if rel.endswith(".__init__"):
                rel = rel[: -len(".__init__")]
            modules.append((rel, path))
rounds = failures = 0
while not os.path.exists(stop) and failures < 20:
    rounds += 1
    for fullname, path in modules:
        try:
            importlib.machinery.SourceFileLoader(fullname, path).get_code(fullname)
        except Exception as err:
            failures += 1
            print("FAIL get_code %s: %r" % (path, err))
    for top in ("json", "email"):
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
        try:
            mod = importlib.import_module(top + (".parser" if top == "email" else ""))
            if not mod.__file__.startswith(tree):
                print("FAIL %s imported from %s, not the tree" % (top, mod.__file__))
                failures += 1
        except Exception as err:
            failures += 1
            print("FAIL import %s: %r" % (top, err))
print("ROUNDS %d" % rounds)
"#;

/// The real interpreter behind `python3` (not a pyenv shim), or `None`.
fn target_python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || path.is_empty() {
        eprintln!("SKIPPED: no python3 on PATH");
        return None;
    }
    Some(PathBuf::from(path))
}

/// The `SAMPLE` packages of `python`'s stdlib in `<dir>/lib`.
fn stdlib_sample(python: &Path, dir: &Path) -> PathBuf {
    support::stdlib_sample(python, dir, "lib", SAMPLE)
}

fn start(python: &Path, tree: &Path, extra: &[&str]) -> Child {
    precompyle()
        .arg("-q")
        .arg("--no-progress")
        .arg("--python")
        .arg(python)
        .args(extra)
        .arg(tree)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn precompyle")
}

fn finish(python: &Path, tree: &Path, extra: &[&str]) -> Output {
    start(python, tree, extra).wait_with_output().expect("wait precompyle")
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `--check` must find everything fresh.
fn assert_fresh(python: &Path, tree: &Path, context: &str) {
    let out = finish(python, tree, &["--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{context}: --check not clean: {}",
        describe(&out)
    );
}

/// Direct children of `pid` (its compile workers), from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    found
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

fn sigkill(pid: u32) {
    // SAFETY: plain kill(2) on a pid this test started (or its child).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

#[test]
fn sigkill_at_random_points_leaves_only_complete_pycs() {
    let Some(python) = target_python() else { return };
    let started = Instant::now();
    let dir = scratch();
    let tree = stdlib_sample(&python, dir.path());
    let mut rng = Rng::from_env();
    let seed = rng.seed();

    // How long an undisturbed run takes, so kills spread over all of it.
    let clock = Instant::now();
    let out = finish(&python, &tree, &[]);
    let full_run = clock.elapsed();
    assert!(out.status.success(), "baseline run: {}", describe(&out));

    // The long suite (scripts/stress.sh) sets more.
    let kills: usize = std::env::var("PRECOMPYLE_FAULT_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let (mut checked, mut orphans, mut landed) = (0, 0, 0);
    let mut full_run = full_run;
    for round in 0..kills * 3 {
        if landed == kills {
            break;
        }
        // Half the rounds start from nothing, half overwrite with -f.
        let extra: &[&str] = if round % 2 == 0 {
            support::remove_pycaches(&tree);
            &[]
        } else {
            &["-f"]
        };
        let delay = rng.below(full_run);
        let mut child = start(&python, &tree, extra);
        std::thread::sleep(delay);
        let workers = children(child.id());
        let _ = child.kill(); // SIGKILL
        let status = child.wait().expect("reap precompyle");
        // A kill after the run ended finds a finished process: not counted,
        // and runs are evidently shorter than the estimate (which a busy
        // machine inflates), so shrink it.
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL) {
            landed += 1;
        } else {
            full_run = full_run * 3 / 4;
        }
        let verdict = verify_pycs(&python, &tree);
        checked += verdict.checked;
        assert!(
            verdict.bad.is_empty(),
            "seed {seed}, round {round}, SIGKILL after {delay:?} ({status}): bad pycs:\n{}",
            verdict.bad.join("\n")
        );
        // Orphaned workers read EOF on their request pipe and must exit.
        let deadline = Instant::now() + Duration::from_secs(5);
        while workers.iter().any(|&w| running(w)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        orphans += workers.iter().filter(|&&w| running(w)).count();
    }
    let temps = temp_files(&tree);
    assert!(
        landed >= kills / 2,
        "seed {seed}: only {landed} kills landed before the run ended"
    );

    let out = finish(&python, &tree, &[]);
    assert!(
        out.status.success(),
        "seed {seed}: run after the kills: {}",
        describe(&out)
    );
    let verdict = verify_pycs(&python, &tree);
    assert!(
        verdict.bad.is_empty(),
        "seed {seed}: after the final run:\n{}",
        verdict.bad.join("\n")
    );
    assert_fresh(&python, &tree, &format!("seed {seed}, after the kills"));
    let temps_after = temp_files(&tree);
    eprintln!(
        "REPORT sigkill: seed {seed}, {landed} of {kills} kills landed (kill window {full_run:?}), {checked} pycs checked, \
         0 bad, {} temp files left by the kills: {:?}, {} after the final run, {orphans} workers outlived the pool by 5 s, \
         final run checked {} pycs, {:?}",
        temps.len(),
        temps.iter().take(5).collect::<Vec<_>>(),
        temps_after.len(),
        verdict.checked,
        started.elapsed()
    );
    assert_eq!(
        orphans, 0,
        "seed {seed}: workers still running 5 s after their pool was killed"
    );
    assert!(
        temps_after.is_empty(),
        "seed {seed}: the final run left the kills' temp files: {temps_after:?}"
    );
}

/// The files `-q` reported with `*** Error compiling '<path>'...`.
fn failed_files(out: &Output) -> Vec<String> {
    stdout_lines(out)
        .iter()
        .filter_map(|l| {
            l.strip_prefix("*** Error compiling '")?
                .strip_suffix("'...")
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_killed_worker_fails_only_its_file() {
    let Some(python) = target_python() else { return };
    let started = Instant::now();
    let dir = scratch();
    let tree = stdlib_sample(&python, dir.path());
    let mut rng = Rng::from_env();
    let seed = rng.seed();

    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        support::remove_pycaches(&tree);
        let child = start(&python, &tree, &["-j", "2"]);
        // Wait until the pool is serving (a first pyc exists), then kill one
        // worker a little later, well before the run ends.
        let deadline = Instant::now() + Duration::from_secs(20);
        while crate::support::pycs_under(&tree).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(rng.below(Duration::from_millis(100)));
        let workers = children(child.id());
        assert!(
            !workers.is_empty(),
            "seed {seed}: no workers found; did the run end already?"
        );
        let victim = workers[(rng.next() % workers.len() as u64) as usize];
        sigkill(victim);
        let out = child.wait_with_output().expect("wait precompyle");
        let context = format!("seed {seed}, round {round}, killed worker {victim}: {}", describe(&out));

        assert_eq!(out.status.code(), Some(1), "{context}");
        let failed = failed_files(&out);
        assert_eq!(failed.len(), 1, "exactly the one file in flight fails; {context}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("signal 9") && text.contains("SIGKILL"),
            "message names the signal; {context}"
        );
        let verdict = verify_pycs(&python, &tree);
        assert!(
            verdict.bad.is_empty(),
            "{context}\nbad pycs:\n{}",
            verdict.bad.join("\n")
        );
        let sources = walkdir::WalkDir::new(&tree)
            .into_iter()
            .flatten()
            .filter(|e| e.path().extension() == Some(OsStr::new("py")))
            .count();
        assert_eq!(verdict.checked, sources - 1, "every other file has its pyc; {context}");

        // --check names the failed file; a plain rerun then makes all fresh.
        let check = finish(&python, &tree, &["--check"]);
        assert_eq!(check.status.code(), Some(1), "{context}\n--check: {}", describe(&check));
        assert!(
            String::from_utf8_lossy(&check.stdout).contains(&format!("'{}'", failed[0])),
            "{context}\n--check: {}",
            describe(&check)
        );
        let rerun = finish(&python, &tree, &[]);
        assert!(rerun.status.success(), "{context}\nrerun: {}", describe(&rerun));
        assert_fresh(&python, &tree, &context);
        assert!(
            temp_files(&tree).is_empty(),
            "{context}: temp files {:?}",
            temp_files(&tree)
        );
    }
    eprintln!(
        "REPORT worker kill: seed {seed}, {ROUNDS} workers killed, {:?}",
        started.elapsed()
    );
}

#[test]
fn concurrent_runs_and_an_importer_see_only_complete_pycs() {
    let Some(python) = target_python() else { return };
    let started = Instant::now();
    let dir = scratch();
    let tree = stdlib_sample(&python, dir.path());

    // Two forced runs on the same tree at once, several times.
    const PAIRS: usize = 3;
    let mut checked = 0;
    for pair in 0..PAIRS {
        let first = start(&python, &tree, &["-f"]);
        let second = start(&python, &tree, &["-f"]);
        for (which, child) in [("first", first), ("second", second)] {
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success(), "pair {pair}, {which} run: {}", describe(&out));
        }
        let verdict = verify_pycs(&python, &tree);
        checked += verdict.checked;
        assert!(
            verdict.bad.is_empty(),
            "pair {pair}: bad pycs:\n{}",
            verdict.bad.join("\n")
        );
        assert_fresh(&python, &tree, &format!("pair {pair}"));
        let temps = temp_files(&tree);
        assert!(
            temps.is_empty(),
            "pair {pair}: both runs ended normally yet left {temps:?}"
        );
    }

    // An importer reading pycs while forced runs rewrite them.
    let stop = dir.path().join("stop");
    let mut cmd = Command::new(&python);
    crate::support::clear_python_env(&mut cmd);
    let importer = cmd
        .env("PYTHONPATH", &tree)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("-c")
        .arg(IMPORTER)
        .arg(&tree)
        .arg(&stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn importer");
    const WRITES: usize = 4;
    for write in 0..WRITES {
        let out = finish(&python, &tree, &["-f"]);
        assert!(
            out.status.success(),
            "forced run {write} beside the importer: {}",
            describe(&out)
        );
    }
    std::fs::write(&stop, b"").expect("stop file");
    let out = importer.wait_with_output().expect("importer");
    let lines = stdout_lines(&out);
    let failures: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        out.status.success() && failures.is_empty(),
        "the importer failed while precompyle wrote: {}",
        describe(&out)
    );
    let rounds: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("ROUNDS ")?.parse().ok())
        .unwrap_or(0);
    // Otherwise the importer never overlapped the writes and proved nothing.
    assert!(rounds >= 3, "the importer ran only {rounds} rounds: {}", describe(&out));
    eprintln!(
        "REPORT concurrency: {PAIRS} pairs of concurrent -f runs, {checked} pycs checked, 0 bad, 0 temp files; \
         importer: {rounds} rounds over {WRITES} forced runs, 0 failures; {:?}",
        started.elapsed()
    );
}
