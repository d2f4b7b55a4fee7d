//! Several targets in one run (`--target 3.12,3.13,3.14`, `--python`
//! repeated): each target's pycs are the bytes its own interpreter writes,
//! and every line, JSON entry and `--check` result says which target it is.

use std::path::{Path, PathBuf};

use crate::support;

/// 3.12.1, 3.13.0 (pyenv) and Debian's 3.14: one worker pool each.
fn interpreters() -> Option<Vec<PathBuf>> {
    let mut found = vec![support::pyenv("3.12")?, support::pyenv("3.13")?];
    found.push(support::debian_python("3.14"));
    Some(found)
}

fn with_pythons<'c>(cmd: &'c mut std::process::Command, pythons: &[PathBuf]) -> &'c mut std::process::Command {
    for python in pythons {
        cmd.arg("--python").arg(python);
    }
    cmd
}

/// A sample of python3's stdlib with one file that no version compiles.
fn sample(dir: &Path) -> PathBuf {
    let tree = support::stdlib_sample(&support::python3(), dir, "tree", &["json", "email", "argparse.py"]);
    std::fs::write(tree.join("broken.py"), "def f(:\n").unwrap();
    tree
}

#[test]
fn each_targets_pycs_are_its_interpreters() {
    let Some(pythons) = interpreters() else { return };
    let scratch = support::scratch();
    let tree = sample(scratch.path());
    // The reference: each interpreter's py_compile, one fresh process per
    // file (3.13+ compileall writes some files differently depending on
    // what it compiled before; 3.12's equals this).
    let work = support::scratch();
    support::copy_tree(&tree, &work.path().join("tree"));
    let sources: Vec<PathBuf> = support::py_sources(work.path(), Path::new("tree"))
        .into_iter()
        .filter(|s| !s.ends_with("broken.py"))
        .collect();
    for python in &pythons {
        support::fresh_py_compile(python, work.path(), &sources);
    }
    let oracle = support::pycs_under(work.path());
    assert_eq!(oracle.len(), sources.len() * 3);

    std::fs::remove_dir_all(work.path().join("tree")).unwrap();
    support::copy_tree(&tree, &work.path().join("tree"));
    let out = support::run(with_pythons(support::precompyle().current_dir(work.path()), &pythons).arg("tree"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(support::diff_pycs(&oracle, &support::pycs_under(work.path())), "");
    // Each target's lines carry its tag; the failure is reported per target,
    // in the run's order, right after one another.
    let tags = ["cpython-312", "cpython-313", "cpython-314"];
    for tag in tags {
        assert!(
            stdout.contains(&format!("[{tag}] Compiling 'tree/json/decoder.py'...")),
            "{stdout}"
        );
    }
    let failures: Vec<&str> = stdout.lines().filter(|l| l.contains("*** ")).collect();
    assert_eq!(failures.len(), 3, "{stdout}");
    for (line, tag) in failures.iter().zip(tags) {
        assert!(line.starts_with(&format!("[{tag}] *** ")), "{line}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (tag, version) in tags.iter().zip(["3.12.1", "3.13.0", "3.14"]) {
        let summary = stderr
            .lines()
            .find(|l| l.contains(tag))
            .unwrap_or_else(|| panic!("no summary for {tag}:\n{stderr}"));
        let compiled = sources.len();
        assert!(
            summary.starts_with(&format!("precompyle: {compiled} compiled, 0 fresh, 1 failed"))
                && summary.contains(version),
            "{summary}"
        );
    }

    // --check: all fresh; then one source changes and each target's pyc
    // of it is stale, said by its path and tag.
    let check = |format: &str| {
        support::run(
            with_pythons(support::precompyle().current_dir(work.path()), &pythons)
                .args(["--check", "-q", "-x", "broken", "--format", format, "tree"]),
        )
    };
    assert_eq!(check("text").status.code(), Some(0));
    let decoder = work.path().join("tree/json/decoder.py");
    let mut text = std::fs::read(&decoder).unwrap();
    text.extend_from_slice(b"\n# changed\n");
    std::fs::write(&decoder, text).unwrap();
    let out = check("text");
    assert_eq!(out.status.code(), Some(1));
    let expected: Vec<String> = tags
        .iter()
        .map(|tag| {
            format!("[{tag}] mtime differs: 'tree/json/__pycache__/decoder.{tag}.pyc' for 'tree/json/decoder.py'")
        })
        .collect();
    assert_eq!(support::stdout_lines(&out), expected);
    let json: serde_json::Value = serde_json::from_slice(&check("json").stdout).unwrap();
    let stale_targets: Vec<&str> = json["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(stale_targets, tags);
    let per_target: Vec<(&str, u64)> = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"]["cache_tag"].as_str().unwrap(),
                t["counts"]["stale"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_target, tags.iter().map(|t| (*t, 1)).collect::<Vec<_>>());
    assert_eq!(json["counts"]["stale"], 3);
}

/// Native targets: one run writes, per version, the bytes of a run for that
/// version alone (whose exactness the native tests check against CPython).
#[test]
fn native_targets_in_one_run_write_what_single_runs_write() {
    let scratch = support::scratch();
    let tree = sample(scratch.path());
    let versions = ["3.12", "3.13", "3.14", "3.15"];
    let run = |targets: &str| {
        let work = support::scratch();
        support::copy_tree(&tree, &work.path().join("tree"));
        let out = support::run(support::precompyle().current_dir(work.path()).args([
            "--backend",
            "native",
            "-q",
            "--invalidation-mode",
            "checked-hash",
            "--target",
            targets,
            "tree",
        ]));
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
        support::pycs_under(work.path())
    };
    let mut singles = std::collections::BTreeMap::new();
    for version in versions {
        singles.extend(run(version));
    }
    let together = run(&versions.join(","));
    assert!(singles.len() > 4 * 30, "{} pycs", singles.len());
    assert_eq!(support::diff_pycs(&singles, &together), "");
}

/// What several targets cannot do, refused before any file is touched.
#[test]
fn several_targets_refuse_what_they_cannot_share() {
    let scratch = support::scratch();
    let tree = sample(scratch.path());
    let cases: &[(&[&str], &str)] = &[
        (&["--target", "3.12,3.13", "-b", "tree"], "legacy"),
        (&["--target", "3.12,3.13"], "need FILE|DIR"),
        (&["--target", "3.12,3.12", "tree"], "give each version once"),
    ];
    for (args, message) in cases {
        let out = support::run(
            support::precompyle()
                .current_dir(scratch.path())
                .args(["--backend", "native"])
                .args(*args),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(support::pycs_under(&tree).is_empty());
}
