//! `--cache-dir` against the oracle: with an empty cache and with a warm
//! one, the pycs and the lines printed are compileall's, for every
//! invalidation mode and with a prefix; a warm cache starts no worker, even
//! for a tree with a syntax error; damaged entries, two runs at once, a
//! read-only and a full cache change nothing in the output.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{self, Tmpfs, diff_pycs, precompyle, pycs_under, python3, run, scratch, stdout_lines};

/// json, email and a file with a syntax error: real code and a cached
/// failure.
fn sample(python: &Path, dir: &Path) -> PathBuf {
    let tree = support::stdlib_sample(python, dir, "tree", &["json", "email"]);
    std::fs::write(tree.join("broken.py"), "def f(:\n    pass\n").unwrap();
    tree
}

/// How many `.py` files `tree` holds: each is one compile per level.
fn sources(tree: &Path) -> u64 {
    walkdir::WalkDir::new(tree)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension() == Some(OsStr::new("py")))
        .count() as u64
}

/// "N hits, M misses, S stored" from the cache's summary line.
fn cache_counts(out: &Output) -> (u64, u64, u64) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("precompyle: cache "))
        .unwrap_or_else(|| panic!("no cache line in: {stderr}"));
    let number = |word: &str| -> u64 {
        let before = line[..line.find(word).unwrap_or_else(|| panic!("{word} in {line}"))].trim_end();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    (number(" hits"), number(" misses"), number(" stored"))
}

/// Files in the cache that are not entries (named by their key: 62 hex
/// digits in a fan-out directory): a partial entry left behind would be one.
fn not_entries(cache: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(cache.join("v1"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name.len() != 62 || !name.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|e| e.into_path())
        .collect()
}

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    prefix: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "timestamp",
        args: &[],
        env: &[],
        prefix: false,
    },
    Case {
        name: "checked-hash",
        args: &["--invalidation-mode", "checked-hash"],
        env: &[],
        prefix: false,
    },
    Case {
        name: "unchecked-hash, -o 0 -o 2",
        args: &["--invalidation-mode", "unchecked-hash", "-o", "0", "-o", "2"],
        env: &[],
        prefix: false,
    },
    Case {
        name: "SOURCE_DATE_EPOCH, -d",
        args: &["-d", "/app"],
        env: &[("SOURCE_DATE_EPOCH", "1700000000")],
        prefix: false,
    },
    Case {
        name: "prefix",
        args: &[],
        env: &[],
        prefix: true,
    },
];

/// Each case twice over one cache (empty, then warm), each time compared
/// with compileall on a fresh copy of the tree at the same path.
#[test]
fn empty_and_warm_cache_match_compileall() {
    let python = python3();
    let s = scratch();
    let tree = sample(&python, s.path());
    let n = sources(&tree);
    check_cases(&python, &tree, s.path(), CASES, &[], |case| {
        // Each level is one compile, but broken.py fails at its first.
        let levels = if case.args.contains(&"-o") { 2 } else { 1 };
        Some(levels * (n - 1) + 1)
    });
}

/// The whole corpus (python3's stdlib + site-packages, 11,659 files), for
/// the acceptance numbers: compileall's bytes from an empty and from a warm
/// cache, with and without a prefix and in hash mode, and native's the
/// same with and without the cache. About 10 minutes:
/// `cargo test --release --test it cache_parity_whole_corpus -- --ignored --nocapture`.
#[test]
#[ignore]
fn cache_parity_whole_corpus() {
    let python = python3();
    let s = scratch();
    let tree = s.path().join("tree");
    support::copy_tree(&support::stdlib_dir(&python), &tree);
    support::remove_pycaches(&tree);
    let cases: Vec<&Case> = CASES.iter().filter(|c| c.name != "unchecked-hash, -o 0 -o 2").collect();
    for case in cases {
        let started = std::time::Instant::now();
        check_cases(&python, &tree, s.path(), std::slice::from_ref(case), &["-j0"], |_| None);
        eprintln!(
            "cache_parity_whole_corpus [{}]: empty and warm identical to compileall ({:.1}s)",
            case.name,
            started.elapsed().as_secs_f64()
        );
    }
    let started = std::time::Instant::now();
    let (pycs, _) = native_without_then_with_cache(&tree, &s.path().join("cache-native"), "3.12");
    eprintln!(
        "cache_parity_whole_corpus [native 3.12]: {pycs} pycs, empty and warm identical to no cache ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
}

/// Native on `tree` for `target` without a cache, then with `cache` empty,
/// then warm: the lines and pycs of the cached runs must be those of the
/// first. Returns the pycs written and the three outputs.
fn native_without_then_with_cache(tree: &Path, cache: &Path, target: &str) -> (usize, Vec<Output>) {
    let mut runs = Vec::new();
    for with_cache in [false, true, true] {
        support::remove_pycaches(tree);
        let mut cmd = precompyle();
        cmd.args(["--backend", "native", "--target", target, "-q"]).arg(tree);
        if with_cache {
            cmd.arg("--cache-dir").arg(cache);
        }
        let out = run(&mut cmd);
        runs.push((stdout_lines(&out), pycs_under(tree), out));
    }
    for (lines, pycs, _) in &runs[1..] {
        assert_eq!(lines, &runs[0].0);
        assert_eq!(diff_pycs(&runs[0].1, pycs), "");
    }
    let pycs = runs[0].1.len();
    (pycs, runs.into_iter().map(|(_, _, out)| out).collect())
}

/// Runs each case over one cache, first empty then warm, and compares with
/// compileall (`oracle_flags` added to its command line). `compiles` gives
/// the compiles a case makes, to check the hit and miss counts, if known.
fn check_cases(
    python: &Path,
    tree: &Path,
    scratch: &Path,
    cases: &[Case],
    oracle_flags: &[&str],
    compiles: impl Fn(&Case) -> Option<u64>,
) {
    for case in cases {
        let cache = scratch.join(format!("cache-{}", case.name));
        let work = scratch.join(format!("work-{}", case.name));
        std::fs::create_dir(&work).unwrap();
        let prefix: OsString = work.join("pfx").into();
        let mut oracle_cmd: Vec<&OsStr> = vec![OsStr::new("-m"), OsStr::new("compileall")];
        if case.prefix {
            oracle_cmd = vec![OsStr::new("-c"), OsStr::new(support::COMPILEALL_WITH_PREFIX), &prefix];
        }
        let mut args: Vec<&OsStr> = case.args.iter().map(OsStr::new).collect();
        args.extend([OsStr::new("-q"), OsStr::new("tree")]);
        let mut oracle_args = args.clone();
        oracle_args.extend(oracle_flags.iter().map(OsStr::new));
        let mut ours = vec![OsStr::new("--cache-dir"), cache.as_os_str()];
        if case.prefix {
            ours.extend([OsStr::new("--prefix"), &prefix]);
        }
        ours.extend(&args);
        let env: Vec<(&str, &OsStr)> = case.env.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
        for round in ["empty", "warm"] {
            let p = support::parity_with(python, tree, &work, &oracle_cmd, &oracle_args, &ours, &env, &env);
            let what = format!("{} with the {round} cache", case.name);
            assert_eq!(p.ours.status.code(), Some(1), "{what}: the syntax errors fail");
            assert_eq!(p.oracle.status.code(), Some(1), "{what}");
            if oracle_flags.is_empty() {
                assert_eq!(stdout_lines(&p.ours), stdout_lines(&p.oracle), "{what}");
            }
            assert!(!p.oracle_pycs.is_empty());
            assert_eq!(diff_pycs(&p.oracle_pycs, &p.our_pycs), "", "{what}");
            let (hits, misses, stored) = cache_counts(&p.ours);
            match (round, compiles(case)) {
                ("empty", Some(n)) => assert_eq!((hits, misses, stored), (0, n, n), "{what}"),
                ("warm", Some(n)) => assert_eq!((hits, misses, stored), (n, 0, 0), "{what}"),
                ("empty", None) => assert_eq!((hits, misses), (0, stored), "{what}"),
                _ => assert_eq!((misses, stored), (0, 0), "{what}: every compile found"),
            }
        }
        std::fs::remove_dir_all(&work).unwrap();
    }
}

/// The native backend reads and writes the cache the same way: the pycs of
/// a warm run are those of a run without the cache, and CPython 3.13 loads
/// them.
#[test]
fn native_output_is_the_same_with_and_without_the_cache() {
    let s = scratch();
    let tree = sample(&python3(), s.path());
    let n = sources(&tree);
    let (_, outputs) = native_without_then_with_cache(&tree, &s.path().join("cache"), "3.13");
    for out in &outputs {
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(cache_counts(&outputs[1]), (0, n, n));
    assert_eq!(cache_counts(&outputs[2]), (n, 0, 0));
    if let Some(py313) = support::pyenv("3.13") {
        let verdict = support::verify_pycs(&py313, &tree);
        assert_eq!(verdict.bad, Vec::<String>::new());
        assert_eq!(verdict.checked as u64, n - 1);
    }
}

/// A sitecustomize that logs every interpreter start: the probe, and each
/// worker. With a warm cache, only the probe starts, also for the file with
/// a syntax error.
#[test]
fn a_warm_cache_starts_no_worker() {
    let s = scratch();
    let tree = sample(&python3(), s.path());
    let site = s.path().join("site");
    let log = s.path().join("starts.log");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(
        site.join("sitecustomize.py"),
        format!("open({:?}, 'a').write('start\\n')\n", log.display().to_string()),
    )
    .unwrap();
    let cache = s.path().join("cache");
    let mut starts = Vec::new();
    for _ in 0..2 {
        support::remove_pycaches(&tree);
        let _ = std::fs::remove_file(&log);
        let out = run(precompyle()
            .env("PYTHONPATH", &site)
            .args(["--backend", "cpython", "-j", "2", "-q", "--cache-dir"])
            .arg(&cache)
            .arg(&tree));
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        starts.push(std::fs::read_to_string(&log).unwrap().lines().count());
    }
    assert!(starts[0] >= 2, "the probe and at least one worker: {starts:?}");
    assert_eq!(starts[1], 1, "only the probe: {starts:?}");
}

/// Every entry damaged: each is ignored, the pycs are still compileall's,
/// and the run stores good entries in their place.
#[test]
fn damaged_entries_are_ignored_and_replaced() {
    let python = python3();
    let s = scratch();
    let tree = sample(&python, s.path());
    let n = sources(&tree);
    let work = s.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let cache = s.path().join("cache");
    let args = [OsStr::new("-q"), OsStr::new("tree")];
    let ours = [
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
        OsStr::new("-q"),
        OsStr::new("tree"),
    ];
    support::parity(&python, &tree, &work, &args, &ours, &[]);
    let entries: Vec<PathBuf> = walkdir::WalkDir::new(cache.join("v1"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    assert_eq!(entries.len() as u64, n);
    for (i, entry) in entries.iter().enumerate() {
        let mut bytes = std::fs::read(entry).unwrap();
        match i % 3 {
            0 => bytes.truncate(bytes.len() / 2),
            1 => *bytes.last_mut().unwrap() ^= 1,
            _ => bytes = b"not an entry".to_vec(),
        }
        std::fs::write(entry, bytes).unwrap();
    }
    let p = support::parity(&python, &tree, &work, &args, &ours, &[]);
    assert_eq!(diff_pycs(&p.oracle_pycs, &p.our_pycs), "");
    assert_eq!(cache_counts(&p.ours), (0, n, n));
    assert!(String::from_utf8_lossy(&p.ours.stderr).contains(&format!("{n} invalid ignored")));
    let p = support::parity(&python, &tree, &work, &args, &ours, &[]);
    assert_eq!(cache_counts(&p.ours), (n, 0, 0));
    assert_eq!(diff_pycs(&p.oracle_pycs, &p.our_pycs), "");
}

/// Two runs at once on two copies of a tree, compiled with `-d /app` so
/// both ask for the same keys: both write compileall's pycs, and the cache
/// they filled together serves a third run whole.
#[test]
fn two_runs_share_one_cache() {
    let python = python3();
    let s = scratch();
    let tree = sample(&python, s.path());
    let cache = s.path().join("cache");
    let copies: Vec<PathBuf> = (0..3).map(|i| s.path().join(format!("copy{i}"))).collect();
    for copy in &copies {
        support::copy_tree(&tree, copy);
    }
    let start = |copy: &Path| {
        precompyle()
            .args(["-q", "-d", "/app", "--cache-dir"])
            .arg(&cache)
            .arg(copy)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let running: Vec<_> = copies[..2].iter().map(|c| start(c)).collect();
    for child in running {
        assert_eq!(child.wait_with_output().unwrap().status.code(), Some(1));
    }
    let third = start(&copies[2]).wait_with_output().unwrap();
    assert_eq!(cache_counts(&third), (sources(&tree), 0, 0));
    let oracle = s.path().join("oracle");
    support::copy_tree(&tree, &oracle);
    support::compileall(
        &python,
        s.path(),
        &[
            OsStr::new("-q"),
            OsStr::new("-d"),
            OsStr::new("/app"),
            oracle.as_os_str(),
        ],
    );
    let expected = pycs_under(&oracle);
    for copy in &copies {
        assert_eq!(diff_pycs(&expected, &pycs_under(copy)), "", "{}", copy.display());
    }
}

/// The cache on a 64 KiB tmpfs fills up after a few entries: one notice,
/// the run goes on storing nothing more, and every pyc is compileall's.
#[test]
fn a_full_cache_is_noticed_once() {
    let python = python3();
    let s = scratch();
    let tree = sample(&python, s.path());
    let cache = s.path().join("cache");
    let Some(_tmpfs) = Tmpfs::mount(&cache, 64) else { return };
    let work = s.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let args = [OsStr::new("-q"), OsStr::new("tree")];
    let ours = [
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
        OsStr::new("-q"),
        OsStr::new("tree"),
    ];
    let p = support::parity(&python, &tree, &work, &args, &ours, &[]);
    assert_eq!(diff_pycs(&p.oracle_pycs, &p.our_pycs), "");
    assert_eq!(stdout_lines(&p.ours), stdout_lines(&p.oracle));
    let stderr = String::from_utf8_lossy(&p.ours.stderr);
    let notices: Vec<&str> = stderr.lines().filter(|l| l.contains(" is full ")).collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    let (_, misses, stored) = cache_counts(&p.ours);
    assert!(stored > 0 && stored < misses, "{stderr}");
    let others = not_entries(&cache);
    assert!(others.is_empty(), "partial entries left: {others:?}");
}

/// A cache its owner made read-only (as uid 65534, which root's permission
/// bits would not stop): used for reading, with one notice, and the pycs
/// are those the cache was filled with.
#[test]
fn a_read_only_cache_is_read() {
    let Some(system_python) = support::python_for_nobody() else {
        return;
    };
    let s = scratch();
    let base = s.path().canonicalize().unwrap();
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tree = sample(system_python, &base);
    let status = Command::new("chown").args(["-R", "65534:65534"]).arg(&base).status();
    assert!(status.is_ok_and(|s| s.success()), "chown");
    let as_nobody = |tree: &Path, cache: &Path| {
        let mut cmd = support::as_nobody(env!("CARGO_BIN_EXE_precompyle"));
        cmd.arg("--python")
            .arg(system_python)
            .args(["-q", "-d", "/app", "--cache-dir"])
            .arg(cache)
            .arg(tree);
        run(&mut cmd)
    };
    let cache = base.join("cache");
    as_nobody(&tree, &cache);
    let filled = pycs_under(&tree);
    support::remove_pycaches(&tree);
    std::fs::set_permissions(cache.join("v1"), std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let n = sources(&tree);
    std::fs::write(tree.join("new.py"), "x = 1\n").unwrap();
    let out = as_nobody(&tree, &cache);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is read-only: used for reading only"), "{stderr}");
    assert_eq!(cache_counts(&out), (n, 1, 0), "{stderr}");
    let again = pycs_under(&tree);
    assert!(again.contains_key(Path::new("__pycache__/new.cpython-311.pyc")));
    for (path, bytes) in &filled {
        assert_eq!(again.get(path), Some(bytes), "{}", path.display());
    }
}

/// `--cache-max-size` well below what the tree needs: the run's output is
/// unchanged, the JSON counts the evictions, and what stays fits the limit.
#[test]
fn the_cache_is_kept_within_its_size() {
    let python = python3();
    let s = scratch();
    let tree = sample(&python, s.path());
    let cache = s.path().join("cache");
    let out = run(precompyle()
        .args(["-q", "--format", "json", "--cache-max-size", "64K", "--cache-dir"])
        .arg(&cache)
        .arg(&tree));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &report["cache"];
    let stored = c["stored_bytes"].as_u64().unwrap();
    assert!(stored > 64 * 1024, "the sample must overflow the limit: {c}");
    let kept: u64 = walkdir::WalkDir::new(cache.join("v1"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(kept <= 64 * 1024, "{kept} bytes kept");
    assert_eq!(c["evicted_bytes"].as_u64().unwrap(), stored - kept, "{c}");
    assert!(c["evicted"].as_u64().unwrap() > 0);
    let ours = pycs_under(&tree);
    support::remove_pycaches(&tree);
    support::compileall(&python, s.path(), &[OsStr::new("-q"), tree.as_os_str()]);
    assert_eq!(diff_pycs(&pycs_under(&tree), &ours), "");
}

/// Runs killed (SIGKILL) at points spread over a whole run, each storing
/// into the same cache (each under `-d /roundN`, so every compile is a new
/// key): no partial entry is ever visible, every run reading what a killed
/// run stored finds no damaged entry, and the pycs from a partly stored
/// cache are compileall's.
#[test]
fn kills_while_storing_leave_no_partial_entry() {
    let python = python3();
    let s = scratch();
    let tree = sample(&python, s.path());
    let n = sources(&tree);
    let work = s.path().join("work");
    std::fs::create_dir(&work).unwrap();
    support::copy_tree(&tree, &work.join("tree"));
    let cache = s.path().join("cache");
    let command = |cache: &Path, round: u32| {
        let mut cmd = precompyle();
        cmd.current_dir(&work)
            .arg("--cache-dir")
            .arg(cache)
            .args(["-q", "-f", "--backend", "cpython", "-d"])
            .arg(format!("/round{round}"))
            .arg("tree");
        cmd
    };
    // How long a run storing everything takes, on a throwaway cache.
    let clock = std::time::Instant::now();
    let out = run(&mut command(&s.path().join("throwaway"), 0));
    let full_run = clock.elapsed();
    assert_eq!(cache_counts(&out).2, n, "every result stored (the syntax error too)");

    let kills: u32 = std::env::var("PRECOMPYLE_FAULT_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let (mut landed, mut rounds, mut window) = (0, 0, full_run);
    while landed < kills && rounds < kills * 3 {
        rounds += 1;
        let round = rounds;
        let child = command(&cache, round)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the run; a kill that finds the run over shrinks the window.
        if support::kill_after(child, window * (landed + 1) / (kills + 1)) {
            landed += 1;
        } else {
            window = window * 3 / 4;
        }
        let partial = not_entries(&cache);
        assert!(partial.is_empty(), "round {round}: not entries: {partial:?}");
    }
    assert_eq!(
        landed, kills,
        "only {landed} of {rounds} kills landed before the run ended"
    );

    // Every killed run's keys again: what it stored is read, nothing damaged.
    let mut hits = 0;
    for round in 1..=rounds {
        let out = run(&mut command(&cache, round));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("invalid ignored"), "round {round}: {stderr}");
        hits += cache_counts(&out).0;
    }
    let middle = rounds / 2;
    let round_dir = format!("/round{middle}");
    let ours = [
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
        OsStr::new("-q"),
        OsStr::new("-d"),
        OsStr::new(&round_dir),
        OsStr::new("tree"),
    ];
    let oracle = [
        OsStr::new("-q"),
        OsStr::new("-d"),
        OsStr::new(&round_dir),
        OsStr::new("tree"),
    ];
    let p = support::parity(&python, &tree, &work, &oracle, &ours, &[]);
    assert_eq!(diff_pycs(&p.oracle_pycs, &p.our_pycs), "");
    eprintln!(
        "REPORT cache kills: {landed} of {rounds} runs killed; their keys again: {hits} of {} read from the cache, \
         0 invalid; pycs of round {middle} = compileall's",
        u64::from(rounds) * n
    );
}
