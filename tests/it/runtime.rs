//! Run-time proof: the interpreter loads precompyle's pycs instead of
//! recompiling. `python -v` prints `# code object from '<pyc>'` only when it
//! used a pyc whose header it accepted.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

const MODULES: &[(&str, &str)] = &[
    ("pkgx/__init__.py", "from . import mod\n"),
    ("pkgx/mod.py", "def f():\n    return 'precompiled'\n"),
];

fn interpreters() -> Vec<PathBuf> {
    let mut found = vec![];
    for minor in ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"] {
        found.extend(support::pyenv(minor));
    }
    assert!(!found.is_empty(), "no pyenv interpreters at all");
    found.extend(["3.14", "3.15"].map(support::debian_python));
    found
}

fn cache_tag(python: &Path) -> String {
    let out = support::run(Command::new(python).args(["-c", "import sys; print(sys.implementation.cache_tag)"]));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write_tree(dir: &Path) {
    for (name, text) in MODULES {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Import `pkgx.mod` from `path_entry` with `-v` and return stderr.
fn import_verbose(python: &Path, path_entry: &Path, prefix: Option<&Path>) -> String {
    let mut cmd = Command::new(python);
    support::clear_python_env(&mut cmd);
    // Let the import system write, so a rejected pyc would be visibly rewritten.
    cmd.env_remove("PYTHONDONTWRITEBYTECODE").env("PYTHONPATH", path_entry);
    if let Some(prefix) = prefix {
        cmd.arg("-X").arg(format!("pycache_prefix={}", prefix.display()));
    }
    cmd.args(["-v", "-c", "import pkgx.mod; assert pkgx.mod.f() == 'precompiled'"]);
    let out = support::run(&mut cmd);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_loaded(stderr: &str, pycs: &[PathBuf], python: &Path) {
    for pyc in pycs {
        let line = format!("# code object from '{}'", pyc.display());
        assert!(
            stderr.contains(&line),
            "{}: expected {line:?} in:\n{}",
            python.display(),
            tail(stderr)
        );
        assert!(
            !stderr.contains(&format!("# created '{}'", pyc.display())),
            "{} rewrote {}",
            python.display(),
            pyc.display()
        );
    }
}

fn tail(text: &str) -> String {
    text.lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

fn precompyle_ok(cmd: &mut Command) {
    let out = support::run(cmd);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pycs_are_used_without_a_prefix() {
    for python in interpreters() {
        let work = support::scratch();
        let work = work.path().canonicalize().unwrap();
        write_tree(&work.join("tree"));
        precompyle_ok(
            support::precompyle()
                .current_dir(&work)
                .arg("--python")
                .arg(&python)
                .args(["-q", "tree"]),
        );
        let tag = cache_tag(&python);
        let pycs: Vec<PathBuf> = ["__init__", "mod"]
            .iter()
            .map(|m| work.join(format!("tree/pkgx/__pycache__/{m}.{tag}.pyc")))
            .collect();
        assert_loaded(&import_verbose(&python, &work.join("tree"), None), &pycs, &python);
    }
}

#[test]
fn pycs_are_used_under_a_prefix() {
    for python in interpreters() {
        let work = support::scratch();
        let work = work.path().canonicalize().unwrap();
        write_tree(&work.join("tree"));
        let prefix = work.join("pfx");
        precompyle_ok(
            support::precompyle()
                .current_dir(&work)
                .arg("--python")
                .arg(&python)
                .arg("--prefix")
                .arg(&prefix)
                .args(["-q", "tree"]),
        );
        let tag = cache_tag(&python);
        let mirror = prefix.join(work.join("tree/pkgx").strip_prefix("/").unwrap());
        let pycs: Vec<PathBuf> = ["__init__", "mod"]
            .iter()
            .map(|m| mirror.join(format!("{m}.{tag}.pyc")))
            .collect();
        assert_loaded(
            &import_verbose(&python, &work.join("tree"), Some(&prefix)),
            &pycs,
            &python,
        );
    }
}

/// A packager stages the tree under DESTDIR, compiles with `--root`, then the
/// tree (and the prefix mirror) are moved to their run-time place.
#[test]
fn staged_pycs_are_used_after_moving_into_place() {
    for python in interpreters() {
        for with_prefix in [false, true] {
            let work = support::scratch();
            let work = work.path().canonicalize().unwrap();
            let stage = work.join("stage");
            let live_app = work.join("live/app");
            let live_prefix = work.join("live/pfx");
            let staged = |p: &Path| stage.join(p.strip_prefix("/").unwrap());
            write_tree(&staged(&live_app));
            let mut cmd = support::precompyle();
            cmd.arg("--python")
                .arg(&python)
                .arg("--root")
                .arg(&stage)
                .arg("-q")
                .arg(staged(&live_app));
            if with_prefix {
                cmd.arg("--prefix").arg(&live_prefix);
            }
            precompyle_ok(&mut cmd);
            std::fs::rename(staged(&work.join("live")), work.join("live")).unwrap();
            let tag = cache_tag(&python);
            let pyc_dir = if with_prefix {
                live_prefix.join(live_app.join("pkgx").strip_prefix("/").unwrap())
            } else {
                live_app.join("pkgx/__pycache__")
            };
            let pycs: Vec<PathBuf> = ["__init__", "mod"]
                .iter()
                .map(|m| pyc_dir.join(format!("{m}.{tag}.pyc")))
                .collect();
            let prefix = with_prefix.then_some(live_prefix.as_path());
            assert_loaded(&import_verbose(&python, &live_app, prefix), &pycs, &python);
            // co_filename is the run-time path, not the staging path.
            let body = std::fs::read(&pycs[1]).unwrap();
            let needle = live_app.join("pkgx/mod.py");
            let needle = needle.as_os_str().as_encoded_bytes();
            assert!(
                body.windows(needle.len()).any(|w| w == needle),
                "co_filename is not {}",
                live_app.display()
            );
            assert!(
                !body.windows(5).any(|w| w == b"stage"),
                "the staging path leaked into the pyc"
            );
        }
    }
}
