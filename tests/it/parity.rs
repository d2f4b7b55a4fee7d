//! Byte parity: precompyle writes the same set of pyc paths with the same
//! bytes as the target's own `python -m compileall`, for each flag
//! combination that changes what is written.
//!
//! The trees are real stdlib packages of each target interpreter. The whole
//! corpus (stdlib + site-packages of python3) runs in the ignored test
//! `parity_whole_corpus` (`cargo test --release --test it -- --ignored`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::support::{self, Parity};

/// One flag combination: what compileall gets and what precompyle gets
/// (mostly the same; a prefix is an environment variable for compileall).
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    /// Put the prefix `<work>/pfx` in PYTHONPYCACHEPREFIX for both tools.
    prefix: bool,
    source_date_epoch: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "timestamp",
        args: &[],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "checked-hash",
        args: &["--invalidation-mode", "checked-hash"],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "unchecked-hash",
        args: &["--invalidation-mode", "unchecked-hash"],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "SOURCE_DATE_EPOCH",
        args: &[],
        prefix: false,
        source_date_epoch: true,
    },
    Case {
        name: "-o 0 -o 1 -o 2",
        args: &["-o", "0", "-o", "1", "-o", "2"],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "-b",
        args: &["-b"],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "-d",
        args: &["-d", "/dest/lib"],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "-s -p",
        args: &["-s", "tree", "-p", "/opt/app"],
        prefix: false,
        source_date_epoch: false,
    },
    Case {
        name: "prefix",
        args: &[],
        prefix: true,
        source_date_epoch: false,
    },
    Case {
        name: "prefix checked-hash -o 2",
        args: &["--invalidation-mode", "checked-hash", "-o", "2"],
        prefix: true,
        source_date_epoch: false,
    },
];

/// Stdlib packages of one interpreter, copied into a scratch `tree`.
fn stdlib_sample(python: &Path, scratch: &Path) -> PathBuf {
    let packages = [
        "json",
        "email",
        "importlib",
        "concurrent",
        "argparse.py",
        "dataclasses.py",
        "typing.py",
    ];
    support::stdlib_sample(python, scratch, "tree", &packages)
}

fn run_case(python: &Path, tree: &Path, work: &Path, case: &Case) -> Parity {
    let mut args: Vec<&OsStr> = case.args.iter().map(OsStr::new).collect();
    args.push(OsStr::new("-q"));
    args.push(OsStr::new("tree"));
    let prefix: OsString = work.join("pfx").into();
    let mut env: Vec<(&str, &OsStr)> = Vec::new();
    if case.source_date_epoch {
        env.push(("SOURCE_DATE_EPOCH", OsStr::new("1700000000")));
    }
    if !case.prefix {
        return support::parity(python, tree, work, &args, &args, &env);
    }
    // precompyle reads the prefix from the environment, like the interpreter.
    let mut our_env = env.clone();
    our_env.push(("PYTHONPYCACHEPREFIX", &prefix));
    let oracle_cmd = [OsStr::new("-c"), OsStr::new(support::COMPILEALL_WITH_PREFIX), &prefix];
    support::parity_with(python, tree, work, &oracle_cmd, &args, &args, &env, &our_env)
}

/// Every case on `tree` for `python`; all differences reported at once.
/// Returns how many pycs each case compared.
fn check_cases(python: &Path, tree: &Path, cases: &[&Case]) -> Vec<usize> {
    let mut compared = Vec::new();
    let mut failures = String::new();
    for case in cases {
        let work = support::scratch();
        let p = run_case(python, tree, work.path(), case);
        let diff = support::diff_pycs(&p.oracle_pycs, &p.our_pycs);
        let codes = (p.oracle.status.code(), p.ours.status.code());
        compared.push(p.oracle_pycs.len());
        if p.oracle_pycs.is_empty() {
            failures.push_str(&format!(
                "[{}] the oracle wrote nothing: {}\n",
                case.name,
                String::from_utf8_lossy(&p.oracle.stderr)
            ));
        }
        if !diff.is_empty() || codes.0 != codes.1 || support::stdout_lines(&p.oracle) != support::stdout_lines(&p.ours)
        {
            failures.push_str(&format!(
                "[{}] {} pycs vs {} pycs, exit {:?} vs {:?}\n{diff}oracle stdout:\n{}\nprecompyle stdout:\n{}\nprecompyle stderr:\n{}\n",
                case.name,
                p.oracle_pycs.len(),
                p.our_pycs.len(),
                codes.0,
                codes.1,
                String::from_utf8_lossy(&p.oracle.stdout),
                String::from_utf8_lossy(&p.ours.stdout),
                String::from_utf8_lossy(&p.ours.stderr),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differs from compileall:\n{failures}",
        python.display()
    );
    compared
}

#[test]
fn parity_python3_every_case() {
    let scratch = support::scratch();
    let python = support::python3();
    let tree = stdlib_sample(&python, scratch.path());
    check_cases(&python, &tree, &CASES.iter().collect::<Vec<_>>());
}

/// The cases whose rules differ between versions: plain, hash, prefix, -d, -s/-p.
fn version_cases() -> Vec<&'static Case> {
    CASES
        .iter()
        .filter(|c| ["timestamp", "checked-hash", "prefix", "-d", "-s -p", "-o 0 -o 1 -o 2"].contains(&c.name))
        .collect()
}

macro_rules! parity_for_version {
    ($name:ident, $minor:literal) => {
        #[test]
        fn $name() {
            let Some(python) = support::pyenv($minor) else {
                return;
            };
            let scratch = support::scratch();
            let tree = stdlib_sample(&python, scratch.path());
            check_cases(&python, &tree, &version_cases());
        }
    };
}

parity_for_version!(parity_python_3_12, "3.12");

/// Where compileall itself is not deterministic, the reference for each file
/// is a fresh `python -m py_compile FILE`: on 3.13 marshal output depends on
/// what the compiling process has imported and compiled; on 3.8-3.10 on which
/// interned strings are alive (sequential compileall and `-j 2` disagree on
/// about half the files of this sample). Both sides use PYTHONHASHSEED=0:
/// frozenset constants are written in hash order, so before 3.11 even two
/// py_compile runs of one file differ without it.
fn check_against_fresh_py_compile(minor: &str) {
    if let Some(python) = support::pyenv(minor) {
        check_python_against_fresh_py_compile(&python, minor);
    }
}

fn check_python_against_fresh_py_compile(python: &Path, minor: &str) {
    let scratch = support::scratch();
    let tree = stdlib_sample(python, scratch.path());
    let work = support::scratch();
    support::copy_tree(&tree, &work.path().join("tree"));
    let sources = support::py_sources(work.path(), Path::new("tree"));
    support::fresh_py_compile(python, work.path(), &sources);
    let oracle = support::pycs_under(work.path());
    std::fs::remove_dir_all(work.path().join("tree")).unwrap();
    support::copy_tree(&tree, &work.path().join("tree"));
    let out = support::run(
        support::precompyle()
            .current_dir(work.path())
            .arg("--python")
            .arg(python)
            .args(["-q", "tree"]),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let ours = support::pycs_under(work.path());
    assert_eq!(oracle.len(), sources.len());
    let diff = support::diff_pycs(&oracle, &ours);
    assert!(diff.is_empty(), "{minor} differs from fresh py_compile:\n{diff}");
}

#[test]
fn parity_python_3_8_against_fresh_py_compile() {
    check_against_fresh_py_compile("3.8");
}

#[test]
fn parity_python_3_9_against_fresh_py_compile() {
    check_against_fresh_py_compile("3.9");
}

#[test]
fn parity_python_3_10_against_fresh_py_compile() {
    check_against_fresh_py_compile("3.10");
}

#[test]
fn parity_python_3_13_against_fresh_py_compile() {
    check_against_fresh_py_compile("3.13");
}

/// Debian's 3.14 and 3.15 (support::debian_python): their compileall, like
/// 3.13's, writes some files differently depending on what it compiled
/// before (argparse.py in this sample).
#[test]
fn parity_python_3_14_against_fresh_py_compile() {
    check_python_against_fresh_py_compile(&support::debian_python("3.14"), "3.14");
}

#[test]
fn parity_python_3_15_against_fresh_py_compile() {
    check_python_against_fresh_py_compile(&support::debian_python("3.15"), "3.15");
}

/// The whole corpus (python3's stdlib + site-packages), every case. Slow
/// (minutes); run for the acceptance numbers:
/// `cargo test --release --test it parity_whole_corpus -- --ignored --nocapture`.
#[test]
#[ignore]
fn parity_whole_corpus() {
    let python = support::python3();
    let scratch = support::scratch();
    let tree = scratch.path().join("tree");
    support::copy_tree(&support::stdlib_dir(&python), &tree);
    support::remove_pycaches(&tree);
    for case in CASES {
        let started = std::time::Instant::now();
        check_cases(&python, &tree, &[case]);
        eprintln!(
            "parity_whole_corpus [{}]: identical ({:.1}s)",
            case.name,
            started.elapsed().as_secs_f64()
        );
    }
}

/// `--hardlink-dupes`: the same pycs with the same bytes, and the same files
/// hard-linked together (compared as link counts per pyc).
#[test]
fn hardlink_dupes_link_the_same_files_as_compileall() {
    use std::os::unix::fs::MetadataExt;
    let python = support::python3();
    let scratch = support::scratch();
    let tree = stdlib_sample(&python, scratch.path());
    let work = support::scratch();
    let links = |dir: &Path| -> Vec<(PathBuf, u64)> {
        let mut found: Vec<(PathBuf, u64)> = walkdir::WalkDir::new(dir)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file() && e.path().extension() == Some(OsStr::new("pyc")))
            .map(|e| {
                (
                    e.path().strip_prefix(dir).unwrap().to_owned(),
                    e.metadata().unwrap().nlink(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let args: Vec<&OsStr> = ["-q", "-o", "0", "-o", "1", "-o", "2", "--hardlink-dupes", "tree"]
        .iter()
        .map(OsStr::new)
        .collect();
    let name = work.path().join("tree");
    support::copy_tree(&tree, &name);
    let oracle = support::compileall(&python, work.path(), &args);
    assert!(oracle.status.success());
    let (oracle_links, oracle_pycs) = (links(work.path()), support::pycs_under(work.path()));
    std::fs::remove_dir_all(&name).unwrap();
    support::copy_tree(&tree, &name);
    let ours = support::run(
        support::precompyle()
            .current_dir(work.path())
            .arg("--python")
            .arg(&python)
            .args(&args),
    );
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stdout));
    assert_eq!(support::diff_pycs(&oracle_pycs, &support::pycs_under(work.path())), "");
    assert!(
        oracle_links.iter().any(|(_, n)| *n > 1),
        "the sample has no duplicate levels to link"
    );
    assert_eq!(oracle_links, links(work.path()));
}

/// The walk leaves out files that are not sources, unless `-d`, `-s` or `-p`
/// is given: then every file gets a dfile first, and 3.13+ prints a warning
/// for each one whose path does not start with the stripdir, `.py` or not.
#[test]
fn dfile_flags_meet_every_file_of_the_tree() {
    let python = support::pyenv("3.13").expect("pyenv's 3.13 (the oracle of 3.13's stripdir warning)");
    let scratch = support::scratch();
    let tree = scratch.path().join("tree");
    for (name, text) in [
        ("m.py", "m = 1\n"),
        ("notes.txt", "n\n"),
        ("sub/n.py", "n = 2\n"),
        ("sub/data.bin", "d\n"),
        ("sub/m.pyi", "m: int\n"),
    ] {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let work = scratch.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for args in [
        &["-s", "/elsewhere", "-p", "/opt", "tree"][..],
        &["-d", "/dest", "tree"],
        &["tree"],
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let p = support::parity(&python, &tree, &work, &args, &args, &[]);
        let oracle = support::stdout_lines(&p.oracle);
        assert_eq!(oracle, support::stdout_lines(&p.ours), "{args:?}");
        assert_eq!(support::diff_pycs(&p.oracle_pycs, &p.our_pycs), "", "{args:?}");
        assert_eq!(p.oracle_pycs.len(), 2, "{args:?}");
        if args[0] == "-s" {
            assert!(
                oracle.iter().any(|l| l.contains("'tree/sub/data.bin'; ignoring")),
                "the oracle warns for a file that is not a source: {oracle:?}"
            );
        }
    }
}
