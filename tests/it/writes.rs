//! Where writes land, with someone else changing the tree meanwhile: a
//! checked directory swapped for a symlink to elsewhere must never receive
//! a pyc (nor anything else), and runs killed at random must leave no temp
//! file once one more run has passed.
//!
//! Both use the native backend (no interpreter start, so many runs fit in
//! a test), whose pycs the target interpreter judges where it is installed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{self, Rng, precompyle, pyenv, scratch, temp_files, verify_pycs};

/// A package of `files` small modules at `<dir>/tree/pkg`.
fn package(dir: &Path, files: usize) -> PathBuf {
    package_at(&dir.join("tree/pkg"), files)
}

/// A package of `files` small modules at `pkg`.
fn package_at(pkg: &Path, files: usize) -> PathBuf {
    let pkg = pkg.to_owned();
    std::fs::create_dir_all(&pkg).unwrap();
    for i in 0..files {
        let body: String = (0..40)
            .map(|line| format!("def f{line}(x):\n    return x * {i} + {line}\n"))
            .collect();
        std::fs::write(pkg.join(format!("m{i}.py")), body).unwrap();
    }
    pkg
}

fn native(args: &[&str], tree: &Path) -> Command {
    let mut cmd = precompyle();
    cmd.args(["-q", "--no-progress", "--backend", "native", "--target", "3.12"])
        .args(args)
        .arg(tree)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn everything_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| e.into_path())
        .collect()
}

/// Swap `dir` for a symlink to `outside` and back, as fast as possible,
/// until `stop`; counts the swaps.
fn swap_until(dir: PathBuf, outside: PathBuf, stop: Arc<AtomicBool>, swaps: Arc<AtomicUsize>) {
    let moved = dir.with_extension("moved");
    while !stop.load(Ordering::Relaxed) {
        if std::fs::create_dir_all(&dir).is_err() || std::fs::rename(&dir, &moved).is_err() {
            continue;
        }
        if std::os::unix::fs::symlink(&outside, &dir).is_ok() {
            swaps.fetch_add(1, Ordering::Relaxed);
            std::thread::yield_now();
            let _ = std::fs::remove_file(&dir);
        }
        // A run may have created the directory again meanwhile: keep that
        // one and its pycs, drop the moved one.
        if std::fs::rename(&moved, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&moved);
        }
    }
}

/// A directory a run writes into is swapped for a symlink pointing outside
/// the tree, back and forth, while runs write into it (without and with a
/// pycache prefix): nothing ever appears outside. The runs may refuse a
/// directory they find swapped; they may not follow it.
#[test]
fn a_directory_swapped_for_a_symlink_mid_run_never_redirects_a_write() {
    let started = Instant::now();
    let dir = scratch();
    let pkg = package(dir.path(), 300);
    let tree = dir.path().join("tree");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let prefix = dir.path().join("pfx");
    // The directory each mode writes into: __pycache__, or the mirror of
    // the package under the prefix.
    let mirrored = prefix.join(pkg.strip_prefix("/").unwrap());
    let min_swaps: usize = std::env::var("PRECOMPYLE_SWAP_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let (mut runs, mut refused, mut total_swaps) = (0, 0, 0);
    for target in [pkg.join("__pycache__"), mirrored.clone()] {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicUsize::new(0));
        let swapper = {
            let (target, outside, stop, swaps) = (target.clone(), outside.clone(), stop.clone(), swaps.clone());
            std::thread::spawn(move || swap_until(target, outside, stop, swaps))
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut mode_runs = 0;
        while (swaps.load(Ordering::Relaxed) < min_swaps || mode_runs < 5) && Instant::now() < deadline {
            let mut cmd = native(&["-f"], &tree);
            if target == mirrored {
                cmd.env("PYTHONPYCACHEPREFIX", &prefix);
            }
            let out: Output = cmd.output().expect("run precompyle");
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "run {runs}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            refused += String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("refusing to write"))
                .count();
            mode_runs += 1;
            let found = everything_under(&outside);
            assert!(
                found.is_empty(),
                "after {mode_runs} runs into {}: {found:?}",
                target.display()
            );
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        let swapped = swaps.load(Ordering::Relaxed);
        assert!(swapped >= min_swaps, "only {swapped} swaps in 120 s");
        runs += mode_runs;
        total_swaps += swapped;
    }
    assert!(everything_under(&outside).is_empty());
    eprintln!(
        "REPORT symlink swaps: {total_swaps} swaps during {runs} forced runs (300 files each, with and \
         without a prefix), {refused} writes refused, 0 entries outside; {:?}",
        started.elapsed()
    );
}

/// Runs killed at random points leave no temp file behind once one more
/// run has passed, although that run finds most pycs fresh and lists no
/// directory whose pycs are all fresh; where the file system has
/// `O_TMPFILE`, no kill leaves a temp file at all. Kills rotate over cold
/// runs, forced runs and runs that find every pyc stale (another
/// invalidation mode); every pyc left is one CPython accepts.
#[test]
fn random_kills_leave_no_temp_file_after_one_more_run() {
    let started = Instant::now();
    let dir = scratch();
    let tree = dir.path().join("tree");
    let packages: Vec<PathBuf> = (0..8).map(|p| package_at(&tree.join(format!("p{p}")), 50)).collect();
    let unnamed_files = support::has_o_tmpfile(&packages[0]);
    let kills: usize = std::env::var("PRECOMPYLE_FAULT_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let clock = Instant::now();
    let out = native(&[], &tree).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut window = clock.elapsed();
    let mut rng = Rng::from_env();
    let first_seed = rng.seed();
    let (mut landed, mut temps_seen) = (0, 0);
    for round in 0..kills * 4 {
        if landed == kills {
            break;
        }
        // Which package loses its pycs before a cold run.
        let cold = &packages[(rng.next() % packages.len() as u64) as usize];
        // Timestamp pycs are stale for a checked-hash run and the other way
        // round; the final run writes timestamp pycs.
        let mode = if round % 6 < 3 { "checked-hash" } else { "timestamp" };
        // A cold run is given only the package it finds without pycs.
        let (kind, args, path): (&str, Vec<&str>, &Path) = match round % 3 {
            0 => {
                let _ = std::fs::remove_dir_all(cold.join("__pycache__"));
                ("cold", vec![], cold)
            }
            1 => ("forced", vec!["-f"], &tree),
            _ => ("stale", vec!["--invalidation-mode", mode], &tree),
        };
        let before: HashSet<PathBuf> = temp_files(&tree).into_iter().collect();
        // The window is a whole tree's run; a cold run has one package.
        let share = if kind == "cold" { packages.len() as f64 } else { 1.0 };
        let delay = rng.below(window.div_f64(share));
        let child = native(&args, path).spawn().unwrap();
        if support::kill_after(child, delay) {
            landed += 1;
        } else if kind != "cold" {
            window = window * 3 / 4;
        }
        let new: Vec<PathBuf> = temp_files(&tree).into_iter().filter(|t| !before.contains(t)).collect();
        temps_seen += new.len();
        assert!(
            new.is_empty() || !unnamed_files,
            "seed {first_seed}, round {round}: a killed {kind} run left temp files: {new:?}"
        );
    }
    assert!(landed >= kills / 2, "seed {first_seed}: only {landed} kills landed");
    let out = native(&[], &tree).output().unwrap();
    assert!(out.status.success(), "seed {first_seed}: {out:?}");
    let left = temp_files(&tree);
    assert!(left.is_empty(), "seed {first_seed}: left behind: {left:?}");
    let checked = match pyenv("3.12") {
        Some(python) => {
            let verdict = verify_pycs(&python, &tree);
            assert!(verdict.bad.is_empty(), "seed {first_seed}: {:?}", verdict.bad);
            verdict.checked
        }
        None => 0,
    };
    eprintln!(
        "REPORT native kills: seed {first_seed}, {landed} of {kills} kills landed (cold, forced, stale in turn), \
         {temps_seen} temp files seen right after the kills (summed over rounds), 0 after one more run, \
         {checked} pycs accepted by 3.12; O_TMPFILE: {unnamed_files}; {:?}",
        started.elapsed()
    );
}

/// A killed run's temp file (the named fallback, or an older precompyle's)
/// lies beside a pyc that is missing or stale: the next run that reaches
/// that source sweeps the directory before compiling it, even when the
/// compile then fails. A directory whose pycs are all fresh is not listed.
#[test]
fn a_dead_writers_temp_goes_with_the_next_compile_in_its_directory() {
    let dir = scratch();
    let tree = dir.path().join("tree");
    let stale = package_at(&tree.join("stale"), 2);
    let broken = package_at(&tree.join("broken"), 1);
    let fresh = package_at(&tree.join("fresh"), 1);
    let out = native(&[], &tree).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Above the largest pid Linux gives (2^22): a writer that is surely gone.
    let dead = 9_999_999;
    let temp = |pkg: &Path, module: &str| pkg.join(format!("__pycache__/{module}.cpython-312.pyc.{dead:07}p0000001"));
    // m0's source changes (its pyc is now stale); m1's pyc stays fresh.
    std::fs::write(stale.join("m0.py"), "x = 1\n").unwrap();
    std::fs::write(temp(&stale, "m0"), b"partial").unwrap();
    // A source that no longer compiles, its pyc gone.
    std::fs::write(broken.join("m0.py"), "def (\n").unwrap();
    std::fs::remove_file(broken.join("__pycache__/m0.cpython-312.pyc")).unwrap();
    std::fs::write(temp(&broken, "m0"), b"partial").unwrap();
    // Planted: no write leaves a temp beside a pyc that is there.
    std::fs::write(temp(&fresh, "m0"), b"partial").unwrap();
    let out = native(&[], &tree).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("broken/m0.py"), "{out:?}");
    assert_eq!(temp_files(&tree), [temp(&fresh, "m0")]);
}
