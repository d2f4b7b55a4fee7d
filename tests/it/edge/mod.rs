//! Edge cases: for each one, precompyle's stdout lines and exit code must
//! equal `python -m compileall`'s, and the pycs it writes must be
//! byte-identical.
//!
//! No expected value is written down here. Every case runs the real
//! interpreter on an identical copy of the tree at the same path
//! (`support::parity`, or `Runner::both` when the run needs an
//! unprivileged user, stdin or a deeper interpreter stack) and compares.
//! Where a case is only meaningful if the oracle really hit the situation
//! (an error, a `Can't list`), the test also checks that the oracle printed
//! it, so a changed fixture or environment cannot make the test vacuous.
//!
//! Static sources live in `fixtures/edge/` (see its README). Things git
//! cannot hold (permissions, undecodable or newline names, FIFOs, symlinks,
//! `__pycache__` content) are made at run time in a scratch copy.
//!
//! This module holds the scratch trees and the comparison; the cases are
//! in its submodules, one kind of input each.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::support::{self, Parity};

mod content;
mod names;
mod permissions;
mod selection;
mod symlinks;

/// `python3` (CPython 3.11.7 here), resolved once to the interpreter itself:
/// on machines where `python3` is a pyenv shim, every start through the shim
/// costs a shell script, and these tests start Python a few hundred times.
fn python3() -> PathBuf {
    static RESOLVED: OnceLock<PathBuf> = OnceLock::new();
    RESOLVED
        .get_or_init(|| {
            let out = Command::new(support::python3())
                .args(["-c", "import sys; print(sys.executable)"])
                .output();
            out.ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(OsString::from_vec(o.stdout.trim_ascii().to_vec())))
                .filter(|p| p.is_absolute())
                .unwrap_or_else(support::python3)
        })
        .clone()
}

/// The pyenv minors the content-only cases run on (each skipped if missing).
const MINORS: [&str; 6] = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"];

// ---------------------------------------------------------------------------
// Scratch trees
// ---------------------------------------------------------------------------

/// `src/` holds trees as built; `work/` is where both tools run, on fresh
/// copies. Anything a tree points at from outside lives next to them.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    work: PathBuf,
}

/// Trees made unreadable for a test must not outlive it.
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(&self.root).status();
    }
}

impl Scratch {
    fn new() -> Scratch {
        let dir = support::scratch();
        let root = dir.path().to_owned();
        let (src, work) = (root.join("src"), root.join("work"));
        fs::create_dir(&src).expect("mkdir src");
        fs::create_dir(&work).expect("mkdir work");
        Scratch {
            _dir: dir,
            root,
            src,
            work,
        }
    }

    /// A copy of `fixtures/edge/<fixture>` as `src/<name>`.
    fn fixture_tree(&self, fixture: &str, name: &str) -> PathBuf {
        let to = self.src.join(name);
        support::copy_tree(&fixture_dir(fixture), &to);
        to
    }

    /// An empty `src/<name>`.
    fn empty_tree(&self, name: &str) -> PathBuf {
        let to = self.src.join(name);
        fs::create_dir(&to).expect("mkdir tree");
        to
    }
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/edge").join(name)
}

/// `base` joined with a raw-byte relative path.
fn at(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

fn write(base: &Path, rel: &[u8], content: &[u8]) {
    let path = at(base, rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir -p");
    }
    fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn link(base: &Path, rel: &[u8], target: impl AsRef<Path>) {
    let path = at(base, rel);
    symlink(target.as_ref(), &path).unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn os_args<'a>(args: &'a [&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(OsStr::new).collect()
}

// ---------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------

/// stdout split on `\n` only (a `\r` or a trailing space is kept, so it is
/// compared); a line that is not UTF-8 is shown escaped rather than repaired.
fn lines(out: &Output) -> Vec<String> {
    out.stdout
        .split(|&b| b == b'\n')
        .map(|line| match std::str::from_utf8(line) {
            Ok(text) => text.to_owned(),
            Err(_) => format!("<not UTF-8: {}>", line.escape_ascii()),
        })
        .collect()
}

/// The first place two line lists part, with a little context, `{:?}`-quoted
/// so that `\r`, tabs and trailing spaces show.
fn line_diff(oracle: &[String], ours: &[String]) -> String {
    let at = oracle
        .iter()
        .zip(ours)
        .position(|(a, b)| a != b)
        .unwrap_or(oracle.len().min(ours.len()));
    let from = at.saturating_sub(2);
    let show = |side: &[String]| {
        side.iter()
            .enumerate()
            .skip(from)
            .take(8)
            .map(|(i, l)| format!("  {i:>4} {l:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "stdout differs at line {at} (compileall {} lines, precompyle {}):\n compileall:\n{}\n precompyle:\n{}",
        oracle.len(),
        ours.len(),
        show(oracle),
        show(ours)
    )
}

/// CPython names its temp file `<cfile>.<id(cfile)>`, an object address that
/// changes every run, and it shows in OSError lines about that file
/// (`… [Errno 13] Permission denied: 'p/__pycache__/c.cpython-311.pyc.1398…'`).
/// Only that suffix is masked, on both sides.
fn mask_temp_name(line: String) -> String {
    if !line.contains("Error: [Errno ") || !line.ends_with('\'') {
        return line;
    }
    match line.rfind(".pyc.") {
        Some(at) => format!("{}.pyc.<tmp>'", &line[..at]),
        None => line,
    }
}

/// Everything that differs between the two runs; empty when they agree.
fn differences(p: &Parity) -> Vec<String> {
    let mut problems = Vec::new();
    let oracle: Vec<String> = lines(&p.oracle).into_iter().map(mask_temp_name).collect();
    let ours: Vec<String> = lines(&p.ours).into_iter().map(mask_temp_name).collect();
    if oracle != ours {
        problems.push(line_diff(&oracle, &ours));
    }
    if p.oracle.status.code() != p.ours.status.code() {
        problems.push(format!(
            "exit code: compileall {:?}, precompyle {:?}",
            p.oracle.status.code(),
            p.ours.status.code()
        ));
    }
    let pycs = support::diff_pycs(&p.oracle_pycs, &p.our_pycs);
    if !pycs.is_empty() {
        problems.push(format!("pycs differ:\n{pycs}"));
    }
    problems
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(1500);
    let start = (start..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text[start..].to_owned()
}

/// The case is only a test of something if the oracle really printed it.
#[track_caller]
fn assert_oracle_printed(case: &str, p: &Parity, needle: &str) {
    let out = String::from_utf8_lossy(&p.oracle.stdout);
    assert!(
        out.contains(needle),
        "{case}: the oracle did not print {needle:?}, so this case no longer tests what it should.\n--- compileall stdout:\n{out}\n--- stderr:\n{}",
        tail(&p.oracle.stderr)
    );
}

/// Every case where precompyle differs from compileall, gathered so that
/// one run of a test reports all of them rather than the first.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn compare(&mut self, case: &str, p: &Parity) {
        let problems = differences(p);
        if !problems.is_empty() {
            self.0.push(format!(
                "{case}:\n{}\n--- compileall stderr (tail):\n{}\n--- precompyle stderr (tail):\n{}",
                problems.join("\n"),
                tail(&p.oracle.stderr),
                tail(&p.ours.stderr)
            ));
        }
    }

    /// Same arguments for both tools, compared exactly.
    fn check(&mut self, python: &Path, tree: &Path, work: &Path, args: &[&OsStr]) -> Parity {
        let p = support::parity(python, tree, work, args, args, &[]);
        let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        self.compare(&format!("{} [{}]", python.display(), shown.join(" ")), &p);
        p
    }

    fn check_str(&mut self, python: &Path, tree: &Path, work: &Path, args: &[&str]) -> Parity {
        self.check(python, tree, work, &os_args(args))
    }

    #[track_caller]
    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "precompyle differs from compileall in {} case(s):\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Running both tools some other way: as another user, with stdin, or with
// the oracle started by a different command line.
// ---------------------------------------------------------------------------

struct Runner<'a> {
    python: &'a Path,
    /// Put in front of both commands (e.g. `setpriv --reuid=…`).
    wrapper: &'a [OsString],
    /// What follows the interpreter for the oracle; `-m compileall` by default.
    oracle_head: Vec<OsString>,
    stdin: Option<&'a [u8]>,
    /// Applied to each fresh copy in `work` before a tool runs (permissions
    /// are set here, after `cp`, so that a non-root user can still copy).
    prepare: Option<&'a dyn Fn(&Path)>,
    /// The tree already is `work/<name>`: between runs only remove what the
    /// tools wrote (`__pycache__` directories) instead of copying it afresh.
    in_place: bool,
}

impl<'a> Runner<'a> {
    fn new(python: &'a Path) -> Runner<'a> {
        Runner {
            python,
            wrapper: &[],
            oracle_head: vec!["-m".into(), "compileall".into()],
            stdin: None,
            prepare: None,
            in_place: false,
        }
    }

    fn command(&self, program: &OsStr) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        support::clear_python_env(&mut cmd);
        cmd
    }

    fn run(&self, mut cmd: Command, work: &Path) -> Output {
        cmd.current_dir(work).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        if let Some(bytes) = self.stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(bytes).expect("write stdin");
        }
        child.wait_with_output().expect("wait")
    }

    /// Like `support::parity`: both tools on fresh copies of `tree` at
    /// `work/<tree name>`.
    fn both(&self, tree: &Path, work: &Path, oracle_args: &[&OsStr], our_args: &[&OsStr]) -> Parity {
        self.fresh_copy(tree, work);
        let mut cmd = self.command(self.python.as_os_str());
        cmd.args(&self.oracle_head).args(oracle_args);
        let oracle = self.run(cmd, work);
        let oracle_pycs = support::pycs_under(work);
        self.fresh_copy(tree, work);
        let mut cmd = self.command(OsStr::new(env!("CARGO_BIN_EXE_precompyle")));
        cmd.arg("--python").arg(self.python).args(our_args);
        let ours = self.run(cmd, work);
        let our_pycs = support::pycs_under(work);
        Parity {
            oracle,
            ours,
            oracle_pycs,
            our_pycs,
        }
    }

    fn fresh_copy(&self, tree: &Path, work: &Path) {
        if self.in_place {
            support::remove_pycaches(work);
            return;
        }
        fresh_copy(tree, work);
        if let Some(prepare) = self.prepare {
            prepare(&work.join(tree.file_name().expect("tree name")));
        }
    }
}

/// Empty `work` and copy `tree` into it (`cp -a`: modes, owners, mtimes,
/// symlinks and FIFOs kept).
fn fresh_copy(tree: &Path, work: &Path) {
    for entry in fs::read_dir(work).expect("read work").flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(&path).status();
            fs::remove_dir_all(&path).expect("clear work");
        } else {
            fs::remove_file(&path).expect("clear work");
        }
    }
    support::copy_tree(tree, &work.join(tree.file_name().expect("tree name")));
}
