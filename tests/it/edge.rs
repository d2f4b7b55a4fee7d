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

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::support::{self, Parity};

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

// ---------------------------------------------------------------------------
// Source content: errors, encodings, line endings, deep expressions
// ---------------------------------------------------------------------------

/// `fixtures/edge/content` plus what git cannot hold: sources inside
/// `__pycache__` (never compiled by a walk), a FIFO named `.py`, and a
/// 12-level nest (compileall's default depth is 10 on 3.8, the recursion
/// limit from 3.9).
fn content_tree(s: &Scratch) -> PathBuf {
    let tree = s.fixture_tree("content", "content");
    write(&tree, b"__pycache__/cached_source.py", b"x = 1\n");
    write(&tree, b"__pycache__/syntax_error.py", b"def f(:\n");
    write(&tree, b"x.py/__pycache__/inner_cache.py", b"y = 2\n");
    mkfifo(&tree.join("fifo.py"));
    let mut dir = tree.join("nest");
    for level in 1..=12 {
        dir.push("n");
        write(
            &dir,
            format!("level{level}.py").as_bytes(),
            format!("level = {level}\n").as_bytes(),
        );
    }
    tree
}

#[test]
fn content_cases_match_compileall_311() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = content_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["content"]);
    // Each case really is one for this interpreter (3.11.7's wording).
    for needle in [
        "***   File \"content/syntax_error.py\", line 1",
        "*** Sorry: IndentationError: expected an indented block",
        "*** Sorry: TabError:",
        "*** SyntaxError: source code string cannot contain null bytes",
        "SyntaxError: unknown encoding: foobar",
        "SyntaxError: encoding problem: iso-8859-1 with BOM",
        "SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xe9",
        "SyntaxError: too many nested parentheses",
        "*** Sorry: MemoryError: \n",
        "*** Sorry: RecursionError: maximum recursion depth exceeded during compilation",
        "Compiling 'content/latin1_cookie.py'...\nCompiling",
        "Compiling 'content/bom.py'...\nCompiling",
        "Compiling 'content/crlf.py'...\nCompiling",
        "Listing 'content/x.py'...",
    ] {
        assert_oracle_printed("content", &p, needle);
    }
    assert!(!String::from_utf8_lossy(&p.oracle.stdout).contains("__pycache__"));
    assert_eq!(p.oracle.status.code(), Some(1));

    let p = f.check_str(&py, &tree, &s.work, &["-q", "content"]);
    assert_oracle_printed("-q", &p, "*** Error compiling 'content/null_byte.py'...\nSyntaxError");
    let p = f.check_str(&py, &tree, &s.work, &["-qq", "content"]);
    assert!(p.oracle.stdout.is_empty(), "-qq prints nothing");
    assert_eq!(p.oracle.status.code(), Some(1));
    f.finish();
}

/// The same sources named on the command line go through `compile_file`
/// directly (or `compile_dir` for whatever is not a regular file).
#[test]
fn content_cases_as_file_arguments_311() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = content_tree(&s);
    let py = python3();
    let args = [
        "content/syntax_error.py",
        "content/indentation_error.py",
        "content/null_byte.py",
        "content/crlf.py",
        "content/script.pyw",
        "content/UPPER.PY",
        "content/noext",
        "content/fifo.py",
        "content/x.py",
        "content/__pycache__",
        "content/latin1_cookie.py",
    ];
    for quiet in [None, Some("-q"), Some("-qq")] {
        let mut all: Vec<&str> = quiet.into_iter().collect();
        all.extend(args);
        let p = f.check_str(&py, &tree, &s.work, &all);
        if quiet.is_none() {
            // A FIFO is not a file, so compileall tries to list it.
            assert_oracle_printed("args", &p, "Can't list 'content/fifo.py'");
            // A __pycache__ named on the command line is walked.
            assert_oracle_printed("args", &p, "Compiling 'content/__pycache__/cached_source.py'...");
        }
    }
    f.finish();
}

#[test]
fn content_cases_across_versions() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = content_tree(&s);
    let mut ran = 0;
    for minor in MINORS {
        let Some(py) = support::pyenv(minor) else {
            continue;
        };
        f.check_str(&py, &tree, &s.work, &["content"]);
        ran += 1;
    }
    if ran == 0 {
        eprintln!("SKIPPED: content_cases_across_versions: no pyenv interpreter found");
    }
    f.finish();
}

/// `marshal.dumps` fails on this code object ("object too deeply nested").
/// compileall does not catch that: it dies with a traceback and exit 1, and
/// files after it are never compiled. precompyle deliberately reports the
/// file and goes on (documented on `backend::FailureKind::Marshal`), so the
/// expected output is compileall's output for the tree without that file,
/// with the file's `Compiling` line and one `*** … object too deeply nested
/// to marshal` line where compileall would have been.
#[test]
fn marshal_failure_is_reported_and_the_run_goes_on() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let py = python3();
    fs::create_dir(s.src.join("full")).expect("mkdir");
    fs::create_dir(s.src.join("without")).expect("mkdir");
    let full = s.root.join("src/full/marshal");
    support::copy_tree(&fixture_dir("marshal"), &full);
    let without = s.root.join("src/without/marshal");
    support::copy_tree(&fixture_dir("marshal"), &without);
    fs::remove_file(without.join("deep_lambda.py")).expect("rm");

    let rest = f.check_str(&py, &without, &s.work, &["marshal"]);
    let p = support::parity(&py, &full, &s.work, &os_args(&["marshal"]), &os_args(&["marshal"]), &[]);
    let crash = String::from_utf8_lossy(&p.oracle.stderr);
    assert!(
        crash.contains("ValueError: object too deeply nested to marshal"),
        "the oracle should die in marshal; stderr:\n{crash}"
    );
    let compiling = "Compiling 'marshal/deep_lambda.py'...".to_owned();
    assert_eq!(lines(&p.oracle).iter().filter(|l| **l == compiling).count(), 1);

    let mut expected = lines(&rest.oracle);
    let after_a = expected
        .iter()
        .position(|l| l == "Compiling 'marshal/a.py'...")
        .expect("a.py compiled")
        + 1;
    let ours = lines(&p.ours);
    let reported = ours.get(after_a + 1).cloned().unwrap_or_default();
    assert!(
        reported.starts_with("*** ") && reported.contains("object too deeply nested to marshal"),
        "precompyle should report the marshal failure after {compiling:?}; got {reported:?}\n{}",
        line_diff(&expected, &ours)
    );
    expected.insert(after_a, compiling);
    expected.insert(after_a + 1, reported);
    assert!(ours == expected, "{}", line_diff(&expected, &ours));
    assert_eq!(p.ours.status.code(), Some(1), "a failed file means exit 1");
    let pycs = support::diff_pycs(&rest.oracle_pycs, &p.our_pycs);
    assert!(
        pycs.is_empty(),
        "pycs differ from compileall's without deep_lambda.py:\n{pycs}"
    );
    f.finish();
}

// ---------------------------------------------------------------------------
// Permissions: needs a user that permissions apply to
// ---------------------------------------------------------------------------

/// How to run both tools as a user that file permissions apply to.
struct Unprivileged {
    wrapper: Vec<OsString>,
    python: PathBuf,
    uid: u32,
}

/// Root ignores chmod 000, so as root both tools run as `nobody` through
/// `setpriv`. pyenv's interpreters live under /root, which `nobody` cannot
/// enter, so the interpreter is the first that `nobody` can start: the one
/// behind `python3`, else the system's. Both tools use the same one, so the
/// comparison holds whichever it is.
fn unprivileged() -> Result<Unprivileged, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(Unprivileged {
            wrapper: Vec::new(),
            python: python3(),
            uid: euid,
        });
    }
    let uid = 65534;
    let wrapper: Vec<OsString> = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        .iter()
        .map(OsString::from)
        .collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_precompyle"));
    let bin_runs = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !bin_runs {
        return Err(format!("`setpriv` missing, or uid {uid} cannot run {}", bin.display()));
    }
    // Ask both as root and as the user: some sandboxes quietly run another
    // interpreter when the user cannot reach the one asked for.
    let version = |wrapped: bool, python: &Path| {
        let mut cmd = if wrapped {
            Command::new(&wrapper[0])
        } else {
            Command::new(python)
        };
        if wrapped {
            cmd.args(&wrapper[1..]).arg(python);
        }
        let out = cmd
            .args(["-c", "import sys, compileall; print(sys.version, sys.prefix)"])
            .output();
        out.ok().filter(|o| o.status.success()).map(|o| o.stdout)
    };
    let candidates = [python3(), "/usr/bin/python3".into(), "/usr/local/bin/python3".into()];
    for python in candidates {
        let as_root = version(false, &python);
        if as_root.is_some() && as_root == version(true, &python) {
            return Ok(Unprivileged { wrapper, python, uid });
        }
    }
    Err(format!("no Python interpreter that uid {uid} can run"))
}

#[test]
fn unreadable_files_and_directories() {
    let mut f = Findings::default();
    let user = match unprivileged() {
        Ok(user) => user,
        Err(why) => {
            eprintln!("SKIPPED: unreadable_files_and_directories: {why}");
            return;
        }
    };
    eprintln!(
        "unreadable_files_and_directories: both tools run as uid {} with {}",
        user.uid,
        user.python.display()
    );
    let s = Scratch::new();
    chmod(&s.root, 0o755);
    let tree = s.empty_tree("perm");
    write(&tree, b"a.py", b"a = 1\n");
    write(&tree, b"unreadable.py", b"u = 1\n");
    write(&tree, b"noread_dir/b.py", b"b = 1\n");
    write(&tree, b"noexec_dir/e.py", b"e = 1\n");
    write(&tree, b"ro_dir/r.py", b"r = 1\n");
    write(&tree, b"ro_cache/c.py", b"c = 1\n");
    fs::create_dir(tree.join("ro_cache/__pycache__")).expect("mkdir");
    write(&tree, b"ok/z.py", b"z = 1\n");
    write(&tree, b"list.txt", b"perm/a.py\n");
    let restrict = |copy: &Path| {
        if !user.wrapper.is_empty() {
            let owner = format!("{0}:{0}", user.uid);
            let status = Command::new("chown").args(["-R", &owner]).arg(copy).status();
            assert!(status.is_ok_and(|s| s.success()), "chown -R {owner}");
        }
        chmod(&copy.join("unreadable.py"), 0o000);
        chmod(&copy.join("list.txt"), 0o000);
        chmod(&copy.join("noread_dir"), 0o000);
        chmod(&copy.join("noexec_dir"), 0o644);
        chmod(&copy.join("ro_dir"), 0o555);
        chmod(&copy.join("ro_cache/__pycache__"), 0o555);
    };

    let mut runner = Runner::new(&user.python);
    runner.wrapper = &user.wrapper;
    runner.prepare = Some(&restrict);
    let mut run = |args: &[&str]| {
        let p = runner.both(&tree, &s.work, &os_args(args), &os_args(args));
        let case = format!(
            "as uid {} with {} [{}]",
            user.uid,
            user.python.display(),
            args.join(" ")
        );
        f.compare(&case, &p);
        p
    };
    let p = run(&["perm"]);
    for needle in [
        "Can't list 'perm/noread_dir'",
        "Listing 'perm/noexec_dir'...",
        "*** PermissionError: [Errno 13] Permission denied: 'perm/unreadable.py'",
        "*** PermissionError: [Errno 13] Permission denied: 'perm/ro_dir/__pycache__'",
        "*** PermissionError: [Errno 13] Permission denied: 'perm/ro_cache/__pycache__/c.",
        "Compiling 'perm/ok/z.py'...",
    ] {
        assert_oracle_printed("unreadable", &p, needle);
    }
    run(&["-q", "perm"]);
    run(&["-qq", "perm"]);
    let p = run(&[
        "perm/unreadable.py",
        "perm/noread_dir",
        "perm/noexec_dir/e.py",
        "perm/a.py",
    ]);
    assert_oracle_printed("unreadable args", &p, "Permission denied: 'perm/unreadable.py'");
    let p = run(&["-i", "perm/list.txt", "perm/a.py"]);
    assert_oracle_printed("unreadable list", &p, "Error reading file list perm/list.txt");
    f.finish();
}

// ---------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------

/// `w/t` with symlinks to files (inside, up, absolute outside, chained, to a
/// non-.py file), to a directory, a broken one, a symlinked `__pycache__`,
/// pyc paths that are a symlink / a directory, and `__pycache__` as a file.
/// `w/tlink` points at `t`; `w/loopdir/loop.py` points at itself.
fn symlink_tree(s: &Scratch) -> PathBuf {
    let elsewhere = s.root.join("elsewhere");
    write(&elsewhere, b"o.py", b"o = 1\n");
    let tree = s.empty_tree("w");
    write(&tree, b"t/a.py", b"a = 1\n");
    write(&tree, b"t/sub/s.py", b"s = 1\n");
    write(&tree, b"t/notes.txt", b"n = 1\n");
    write(&tree, b"outside.py", b"out = 1\n");
    link(&tree, b"t/link_in.py", "sub/s.py");
    link(&tree, b"t/link_chain.py", "link_in.py");
    link(&tree, b"t/link_up.py", "../outside.py");
    link(&tree, b"t/link_abs.py", elsewhere.join("o.py"));
    link(&tree, b"t/from_txt.py", "notes.txt");
    link(&tree, b"t/to_txt.txt", "a.py");
    link(&tree, b"t/link_dir", "sub");
    link(&tree, b"t/broken.py", "missing.py");
    link(&tree, b"t/sub/link_sibling.py", "../a.py");
    link(&tree, b"t/sub/link_up2.py", "../../outside.py");
    write(&tree, b"t/cachelink/m.py", b"m = 1\n");
    // Within its directory: one that leads outside is refused (destinations.rs).
    fs::create_dir(tree.join("t/cachelink/.cache")).expect("mkdir");
    link(&tree, b"t/cachelink/__pycache__", ".cache");
    write(&tree, b"t/cfile_link/c.py", b"c = 1\n");
    fs::create_dir(tree.join("t/cfile_link/__pycache__")).expect("mkdir");
    link(&tree, b"t/cfile_link/__pycache__/c.cpython-311.pyc", "nowhere.pyc");
    write(&tree, b"t/cfile_dir/d.py", b"d = 1\n");
    fs::create_dir_all(tree.join("t/cfile_dir/__pycache__/d.cpython-311.pyc")).expect("mkdir");
    write(&tree, b"t/pycache_file/f.py", b"f = 1\n");
    write(&tree, b"t/pycache_file/__pycache__", b"not a directory");
    link(&tree, b"tlink", "t");
    fs::create_dir(tree.join("loopdir")).expect("mkdir");
    link(&tree, b"loopdir/loop.py", "loop.py");
    tree
}

#[test]
fn symlinks() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = symlink_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["w/t"]);
    for needle in [
        "Compiling 'w/t/link_in.py'...",
        "Compiling 'w/t/link_abs.py'...",
        "Compiling 'w/t/from_txt.py'...",
        "Compiling 'w/t/cachelink/m.py'...",
        "is a symlink and will be changed",
        "is a non-regular file and will be changed",
    ] {
        assert_oracle_printed("symlinks", &p, needle);
    }
    let out = String::from_utf8_lossy(&p.oracle.stdout);
    assert!(!out.contains("link_dir") && !out.contains("broken"), "{out}");

    // Symlinked directory, broken symlink, self-loop and linked files as arguments.
    let p = f.check_str(
        &py,
        &tree,
        &s.work,
        &["w/tlink", "w/t/broken.py", "w/loopdir", "w/loopdir/loop.py"],
    );
    assert_oracle_printed("symlink args", &p, "Listing 'w/tlink/sub'...");
    assert_oracle_printed("symlink args", &p, "Can't list 'w/t/broken.py'");
    // Separately: `w/tlink/sub` above and `w/t/link_dir` are the same pycs
    // (see same_pyc_reached_twice_in_one_run).
    f.check_str(&py, &tree, &s.work, &["w/t/link_dir"]);
    f.check_str(
        &py,
        &tree,
        &s.work,
        &["w/t/link_in.py", "w/t/link_abs.py", "w/t/link_chain.py"],
    );
    f.check_str(&py, &tree, &s.work, &["-x", "link", "w/t"]);
    f.check_str(&py, &tree, &s.work, &["-l", "w/tlink"]);
    f.finish();
}

/// `-e DIR`: a file that is itself a symlink is compiled only if its
/// resolved path lies strictly below the resolved DIR.
#[test]
fn symlinks_with_limit_dir() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = symlink_tree(&s);
    let py = python3();
    let elsewhere = s.root.join("elsewhere");
    let elsewhere = elsewhere.to_str().expect("UTF-8 temp dir");
    let p = f.check_str(&py, &tree, &s.work, &["-e", "w/t", "w/t"]);
    let out = String::from_utf8_lossy(&p.oracle.stdout);
    assert!(
        out.contains("Compiling 'w/t/link_in.py'") && !out.contains("link_abs") && !out.contains("link_up"),
        "{out}"
    );
    for limit in ["w/t/sub", "w", "w/tlink", elsewhere, ""] {
        f.check_str(&py, &tree, &s.work, &["-e", limit, "w/t"]);
    }
    // Symlinks named on the command line, and a walk through a linked directory.
    f.check_str(
        &py,
        &tree,
        &s.work,
        &[
            "-e",
            "w/t",
            "w/t/link_abs.py",
            "w/t/link_up.py",
            "w/t/link_in.py",
            "w/t/broken.py",
        ],
    );
    f.check_str(&py, &tree, &s.work, &["-e", "w/t", "w/tlink"]);
    // The absolute form of the limit, with a trailing slash.
    let abs = format!("{}/", s.work.join("w/t").display());
    f.check_str(&py, &tree, &s.work, &["-e", &abs, "w/t"]);
    f.finish();
}

// ---------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------

/// Names Python shows with `repr()`: quotes, newlines, tabs, CR, escape and
/// DEL, undecodable bytes (surrogateescape), non-printable and printable
/// non-ASCII (including U+1FAE8, printable only from Unicode 15 = 3.12), a
/// set whose code-point order differs from byte order, and sources with
/// errors under such names (the error text repeats the raw name).
fn names_tree(s: &Scratch) -> PathBuf {
    let tree = s.empty_tree("n");
    let ok: &[&[u8]] = &[
        b"q'uote.py",
        b"dq\"uote.py",
        b"both'\".py",
        b"nl\nname.py",
        b"tab\tx.py",
        b"cr\rname.py",
        b"back\\slash.py",
        b"sp ace.py",
        b"esc\x1b.py",
        b"del\x7f.py",
        b"bad\xffname.py",
        b"bad\xe9latin.py",
        b"caf\xc3\xa9.py",
        b"\xee\x80\x80pua.py",
        b"emoji\xf0\x9f\x98\x80.py",
        b"shaking\xf0\x9f\xab\xa8.py",
        b"zw\xe2\x80\x8bsp.py",
        b"nbsp\xc2\xa0x.py",
        b".hidden.py",
        b".py",
        b"noext",
        b"UPPER.PY",
        b"w.pyw",
        b"sort\xff.py",
        b"sort\xee\x80\x80.py",
        b"sortA.py",
        b"sort\xc3\xa9.py",
        b"sort_.py",
        b"sort\xf0\x9f\x98\x80.py",
        b"dir\nnl/in.py",
        b"dir\xfe/in\xfd.py",
        b"Upper/u.py",
    ];
    for name in ok {
        write(&tree, name, b"x = 1\n");
    }
    write(&tree, b"err\xff\nna\"me'.py", b"def f(:\n");
    write(&tree, b"ind\xe9nt.py", b"if 1:\npass\n");
    write(&tree, b"caf\xc3\xa9\t.py", b"if 1:\npass\n");
    tree
}

#[test]
fn odd_file_names_311() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = names_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["n"]);
    for needle in [
        "Compiling 'n/nl\\nname.py'...",
        "Compiling \"n/q'uote.py\"...",
        "Compiling 'n/both\\'\".py'...",
        "Compiling 'n/bad\\udcffname.py'...",
        "Compiling 'n/sort\\udcff.py'...\nCompiling 'n/sort\\ue000.py'...",
        "File \"n/err\\udcff\nna\"me'.py\", line 1",
        "(ind\\udce9nt.py, line 2)",
    ] {
        assert_oracle_printed("names", &p, needle);
    }
    f.check_str(&py, &tree, &s.work, &["-q", "n"]);
    f.check_str(&py, &tree, &s.work, &["-qq", "n"]);
    let raw: Vec<OsString> = [
        &b"n/nl\nname.py"[..],
        b"n/bad\xffname.py",
        b"n/err\xff\nna\"me'.py",
        b"n/dir\nnl",
        b"n/dir\xfe",
        b"n/q'uote.py",
        b"n/w.pyw",
        b"n/missing\xff\n.py",
    ]
    .iter()
    .map(|b| OsString::from_vec(b.to_vec()))
    .collect();
    let args: Vec<&OsStr> = raw.iter().map(OsString::as_os_str).collect();
    f.check(&py, &tree, &s.work, &args);
    f.finish();
}

#[test]
fn odd_file_names_across_versions() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = names_tree(&s);
    for minor in MINORS {
        if let Some(py) = support::pyenv(minor) {
            f.check_str(&py, &tree, &s.work, &["n"]);
        }
    }
    f.finish();
}

// ---------------------------------------------------------------------------
// Depth: -l, -r, and 1000 levels
// ---------------------------------------------------------------------------

fn levels_tree(s: &Scratch) -> PathBuf {
    let tree = s.empty_tree("r");
    write(&tree, b"a.py", b"a = 1\n");
    write(&tree, b"s1/b.py", b"b = 1\n");
    write(&tree, b"s1/s2/c.py", b"c = 1\n");
    write(&tree, b"s1/s2/s3/d.py", b"d = 1\n");
    write(&tree, b"z.py", b"z = 1\n");
    tree
}

#[test]
fn recursion_flags() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = levels_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-l", "r"]);
    assert!(!String::from_utf8_lossy(&p.oracle.stdout).contains("s1"));
    let p = f.check_str(&py, &tree, &s.work, &["-r", "1", "r"]);
    assert_oracle_printed(
        "-r 1",
        &p,
        "Listing 'r/s1'...\nCompiling 'r/s1/b.py'...\nCompiling 'r/z.py'",
    );
    // File arguments are compiled whatever the depth.
    for args in [
        &["-r", "0", "r", "r/s1/s2/s3/d.py"][..],
        &["-r", "-1", "r"],
        &["-l", "-r", "1", "r"],
        &["-r", "1", "-l", "r"],
        &["-l", "r/s1/s2/c.py", "r/s1"],
    ] {
        f.check_str(&py, &tree, &s.work, args);
    }
    f.finish();
}

/// `work/deep`, directories 1002 levels deep, with sources near the top and
/// around level 1000. Copying such a tree takes seconds, so it is built once
/// in place and only the `__pycache__` directories are removed between runs.
fn deep_tree(s: &Scratch) -> PathBuf {
    let tree = s.work.join("deep");
    let mut dir = tree.clone();
    fs::create_dir(&dir).expect("mkdir");
    for level in 1..=1002 {
        dir.push("d");
        // `a…` sorts before `d`, so each level's file is met before the descent.
        if level <= 2 || level >= 998 {
            write(
                &dir,
                format!("a{level}.py").as_bytes(),
                format!("level = {level}\n").as_bytes(),
            );
        } else {
            fs::create_dir(&dir).expect("mkdir");
        }
    }
    tree
}

/// Stock compileall cannot walk 1000 levels: its recursive generator hits
/// Python's recursion limit first (RecursionError traceback, exit 1, nothing
/// compiled). Within its reach (`-r 900`) the outputs must match exactly.
/// For the default depth (maxlevels = recursion limit = 1000) the reference
/// is the same compileall given a deeper stack (`sys.setrecursionlimit`)
/// and `-r 1000` explicitly: what compileall means, without the crash.
#[test]
fn directories_1000_levels_deep() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = deep_tree(&s);
    let py = python3();
    let mut runner = Runner::new(&py);
    runner.in_place = true;
    let args = os_args(&["-r", "900", "deep"]);
    let p = runner.both(&tree, &s.work, &args, &args);
    f.compare("-r 900", &p);
    assert_eq!(
        lines(&p.oracle).iter().filter(|l| l.starts_with("Listing")).count(),
        901
    );

    support::remove_pycaches(&s.work);
    let stock = support::compileall(&py, &s.work, &os_args(&["deep"]));
    assert!(
        String::from_utf8_lossy(&stock.stderr).contains("RecursionError"),
        "stock compileall was expected to hit the recursion limit here"
    );
    runner.oracle_head = vec![
        "-c".into(),
        "import runpy, sys; sys.setrecursionlimit(20000); \
         runpy.run_module('compileall', run_name='__main__', alter_sys=True)"
            .into(),
    ];
    let p = runner.both(&tree, &s.work, &os_args(&["-r", "1000", "deep"]), &os_args(&["deep"]));
    f.compare("default depth vs compileall -r 1000 with a deep stack", &p);
    assert_oracle_printed("deep", &p, "/a1000.py'...");
    assert!(!String::from_utf8_lossy(&p.oracle.stdout).contains("a1001.py"));
    f.finish();
}

// ---------------------------------------------------------------------------
// -x
// ---------------------------------------------------------------------------

#[test]
fn exclude_regex() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = levels_tree(&s);
    write(&tree, b"s1/A.py", b"A = 1\n");
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-x", "s2", "r"]);
    // Excluded directories are still listed; only files are skipped.
    assert_oracle_printed("-x", &p, "Listing 'r/s1/s2'...\nListing 'r/s1/s2/s3'...");
    // Python `re` syntax: `\Z`, inline flags, and `[[:alpha:]]`, which
    // Python reads as a set of `[:alph` followed by `]` (no POSIX classes).
    for rx in ["^r/s1/b", "(?i)a\\.PY", "b\\.py|d\\.py", "a\\.py\\Z", "[[:alpha:]]"] {
        f.check_str(&py, &tree, &s.work, &["-x", rx, "r"]);
    }
    f.check_str(&py, &tree, &s.work, &["-x", "a", "r/a.py", "r/z.py"]);
    f.finish();
}

// ---------------------------------------------------------------------------
// -i and path arguments that do not exist
// ---------------------------------------------------------------------------

fn list_tree(s: &Scratch) -> PathBuf {
    let tree = s.empty_tree("l");
    write(&tree, b"a.py", b"a = 1\n");
    write(&tree, b"b.py", b"b = 1\n");
    write(&tree, b"c.py", b"c = 1\n");
    write(&tree, b"sub/s.py", b"s = 1\n");
    // An empty line, surrounding blanks, a missing file and a missing directory.
    write(
        &tree,
        b"lists/basic.txt",
        b"l/a.py\n\n  l/sub  \nl/missing.py\nmissing_dir/\n",
    );
    write(&tree, b"lists/no_final_newline.txt", b"l/a.py\n\nl/b.py");
    write(&tree, b"lists/crlf.txt", b"l/a.py\r\n\r\nl/sub\r\n");
    // str.strip() strips Unicode whitespace (VT, FS, NBSP, NEL, U+3000),
    // and text mode also ends a line at a lone \r.
    write(
        &tree,
        b"lists/python_lines.txt",
        b"\x0bl/a.py\x1c\n\xc2\xa0l/sub\xc2\x85\n\xe3\x80\x80l/missing.py\nl/b.py\rl/c.py\n",
    );
    write(&tree, b"lists/empty.txt", b"");
    write(&tree, b"lists/not_utf8.txt", b"l/a.py\nl/\xff.py\n");
    tree
}

#[test]
fn file_lists() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-i", "l/lists/basic.txt", "l/b.py"]);
    for needle in [
        "Listing ''...\nCan't list ''",
        "Can't list 'l/missing.py'",
        "Listing 'l/sub'...",
    ] {
        assert_oracle_printed("-i", &p, needle);
    }
    assert_eq!(p.oracle.status.code(), Some(0));
    f.check_str(&py, &tree, &s.work, &["-q", "-i", "l/lists/basic.txt"]);
    for list in ["no_final_newline", "crlf"] {
        let path = format!("l/lists/{list}.txt");
        f.check_str(&py, &tree, &s.work, &["-i", &path]);
    }
    // An empty list plus an argument (with no argument at all compileall
    // would compile sys.path instead).
    f.check_str(&py, &tree, &s.work, &["-i", "l/lists/empty.txt", "l/a.py"]);

    let mut stdin = Runner::new(&py);
    stdin.stdin = Some(b"l/a.py\n\nl/missing.py\n");
    let args = os_args(&["-i", "-", "l/b.py"]);
    f.compare("-i - (stdin)", &stdin.both(&tree, &s.work, &args, &args));
    f.finish();
}

/// compileall reads the list as Python text: lines end at `\n`, `\r\n` or a
/// lone `\r`, and `str.strip()` removes Unicode whitespace, not only ASCII.
#[test]
fn file_list_lines_are_python_text_lines() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-i", "l/lists/python_lines.txt"]);
    for needle in [
        "Compiling 'l/a.py'...",
        "Compiling 'l/sub/s.py'...",
        "Can't list 'l/missing.py'",
        "Compiling 'l/b.py'...\nCompiling 'l/c.py'...",
    ] {
        assert_oracle_printed("-i python lines", &p, needle);
    }
    f.finish();
}

/// A list that cannot be read: `Error reading file list FILE` (unless -qq),
/// exit 1, nothing compiled, not even the other arguments. A directory is
/// unreadable as a list even for root.
#[test]
fn unreadable_file_list() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let cases: [&[&str]; 4] = [
        &["-i", "l/lists", "l/a.py"],
        &["-q", "-i", "l/lists", "l/a.py"],
        &["-qq", "-i", "l/lists", "l/a.py"],
        &["-i", "l/nonexistent.txt", "l/a.py"],
    ];
    for args in cases {
        let p = f.check_str(&py, &tree, &s.work, args);
        assert_eq!(p.oracle.status.code(), Some(1));
        assert!(p.oracle_pycs.is_empty());
        if args[0] != "-qq" {
            let list = args[args.len() - 2];
            assert_oracle_printed("-i unreadable", &p, &format!("Error reading file list {list}"));
        }
    }
    f.finish();
}

/// A list that is not UTF-8: compileall (3.10+) reads it as UTF-8 and dies
/// with UnicodeDecodeError before compiling anything (exit 1).
#[test]
fn file_list_not_utf8() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = list_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["-i", "l/lists/not_utf8.txt", "l/b.py"]);
    assert!(String::from_utf8_lossy(&p.oracle.stderr).contains("UnicodeDecodeError"));
    f.finish();
}

#[test]
fn nonexistent_paths() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = s.empty_tree("e");
    write(&tree, b"a.py", b"a = 1\n");
    for sub in ["s1", "s2", "s3"] {
        write(&tree, format!("{sub}/s.py").as_bytes(), b"s = 1\n");
    }
    let py = python3();
    // Spellings of existing paths (`//`, `./`, trailing `/`) are kept as
    // given; each names different files, so no pyc is reached twice.
    let args = [
        "nope",
        "e/a.py",
        "nope/x.py",
        "e/missing.py",
        "",
        "e//s1",
        "./e/s2/",
        "e/s3/",
        "e/a.py/",
    ];
    let p = f.check_str(&py, &tree, &s.work, &args);
    for needle in [
        "Listing 'nope'...\nCan't list 'nope'",
        "Can't list 'nope/x.py'",
        "Can't list ''",
        "Compiling 'e//s1/s.py'...",
        "Compiling './e/s2/s.py'...",
        "Compiling 'e/s3/s.py'...",
        "Can't list 'e/a.py/'",
    ] {
        assert_oracle_printed("nonexistent", &p, needle);
    }
    assert_eq!(p.oracle.status.code(), Some(0), "`Can't list` is not a failure");
    let mut quiet = vec!["-q"];
    quiet.extend(args);
    let p = f.check_str(&py, &tree, &s.work, &quiet);
    assert_oracle_printed("-q nonexistent", &p, "Can't list 'nope'");
    quiet[0] = "-qq";
    let p = f.check_str(&py, &tree, &s.work, &quiet);
    assert!(p.oracle.stdout.is_empty());
    f.finish();
}

/// compileall works sequentially, so a pyc it wrote earlier in the same run
/// is fresh when the same source comes up again under another spelling (a
/// repeated argument, `./` or `//`, a symlinked directory): the second time
/// it prints nothing, and the pyc keeps the first spelling as co_filename.
#[test]
fn same_pyc_reached_twice_in_one_run() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = s.empty_tree("twice");
    write(&tree, b"t/a.py", b"a = 1\n");
    write(&tree, b"t/sub/s.py", b"s = 1\n");
    link(&tree, b"tlink", "t");
    let py = python3();
    for args in [
        &["twice/t/a.py", "twice/t/a.py"][..],
        &["./twice/t/a.py", "twice/t/a.py"],
        &["twice/t//sub", "twice/t"],
        &["twice/tlink", "twice/t"],
    ] {
        let p = f.check_str(&py, &tree, &s.work, args);
        let compiled = lines(&p.oracle).iter().filter(|l| l.starts_with("Compiling")).count();
        let expected = if args[0].ends_with("a.py") { 1 } else { 2 };
        assert_eq!(compiled, expected, "compileall compiles each pyc once: {args:?}");
    }
    f.finish();
}
