//! Shared helpers: find oracles, build scratch trees, run both tools at the
//! same path, and diff what they wrote.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn precompyle() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_precompyle"));
    clear_python_env(&mut cmd);
    cmd
}

/// Variables that change what either tool writes; tests set them explicitly.
pub fn clear_python_env(cmd: &mut Command) {
    for var in [
        "PYTHONPYCACHEPREFIX",
        "SOURCE_DATE_EPOCH",
        "PYTHONOPTIMIZE",
        "PRECOMPYLE_PYTHON",
        "PRECOMPYLE_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
}

/// `python3` (CPython 3.11.7 on the project machines).
pub fn python3() -> PathBuf {
    PathBuf::from("python3")
}

/// A pyenv interpreter by minor version ("3.8"), or `None` with a message
/// saying the test part is skipped.
pub fn pyenv(minor: &str) -> Option<PathBuf> {
    let root = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv/versions");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix(minor).is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|e| e.path().join("bin/python3"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    let python = found.pop();
    if python.is_none() {
        eprintln!("SKIPPED: no pyenv Python {minor} under {}", root.display());
    }
    python
}

/// CPython `minor` ("3.14", "3.15") from Debian unstable, unpacked under
/// `target/debian-python` by `scripts/debian-python.sh` on first use (it
/// needs Debian's package mirror, as `apt-get` does). Panics when it cannot
/// be had: the newest versions must not pass by being skipped.
pub fn debian_python(minor: &str) -> PathBuf {
    static FETCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = FETCHING.lock().unwrap_or_else(|e| e.into_inner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/debian-python.sh");
    let out = run(Command::new(&script).arg(minor));
    assert!(
        out.status.success(),
        "{} {minor} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `python -m py_compile FILE`, with CPython's type attribute cache emptied
/// first. Before 3.11 a name held only by that cache (`_m`, left by
/// types.py) is written with or without a marshal reference depending on
/// memory layout (ASLR, environment size): `json/decoder.py` came out both
/// ways from plain `-m py_compile`. precompyle's workers empty the cache
/// before each compile so their bytes do not vary.
pub const FRESH_PY_COMPILE: &str = "import sys, runpy\n\
sys.argv[0] = 'py_compile'\n\
if sys.version_info < (3, 11):\n    sys._clear_type_cache()\n\
runpy.run_module('py_compile', run_name='__main__', alter_sys=True)\n";

/// Each of `sources` (relative to `cwd`) compiled by a fresh `python -m
/// py_compile` with `PYTHONHASHSEED=0`: the reference where compileall's
/// bytes depend on what it compiled before (3.8–3.10, 3.13+).
pub fn fresh_py_compile(python: &Path, cwd: &Path, sources: &[PathBuf]) {
    for source in sources {
        let out = run(Command::new(python)
            .current_dir(cwd)
            .env("PYTHONHASHSEED", "0")
            .args(["-c", FRESH_PY_COMPILE])
            .arg(source));
        assert!(
            out.status.success(),
            "py_compile {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `.py` files under `dir/under`, relative to `dir`.
pub fn py_sources(dir: &Path, under: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir.join(under))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension() == Some(OsStr::new("py")))
        .map(|e| e.path().strip_prefix(dir).unwrap().to_owned())
        .collect()
}

pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("precompyle-it-")
        .tempdir()
        .expect("temp dir")
}

/// `cp -a`, which keeps mtimes (the header stores them) and symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `python -m compileall ARGS` in `cwd`.
pub fn compileall(python: &Path, cwd: &Path, args: &[&OsStr]) -> Output {
    let mut cmd = Command::new(python);
    clear_python_env(&mut cmd);
    cmd.current_dir(cwd).arg("-m").arg("compileall").args(args);
    run(&mut cmd)
}

/// Every `.pyc` under `dir`, by path relative to `dir`, with its bytes.
pub fn pycs_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        let path = entry.path();
        if entry.file_type().is_file() && path.extension() == Some(OsStr::new("pyc")) {
            let rel = path.strip_prefix(dir).expect("under dir").to_owned();
            found.insert(rel, std::fs::read(path).expect("read pyc"));
        }
    }
    found
}

/// A readable account of how two pyc sets differ; empty when equal.
pub fn diff_pycs(oracle: &BTreeMap<PathBuf, Vec<u8>>, ours: &BTreeMap<PathBuf, Vec<u8>>) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut note = |line: String| {
        shown += 1;
        if shown <= 20 {
            out.push_str(&line);
            out.push('\n');
        }
    };
    for (path, bytes) in oracle {
        match ours.get(path) {
            None => note(format!("missing from precompyle: {}", path.display())),
            Some(mine) if mine != bytes => {
                let at = bytes
                    .iter()
                    .zip(mine)
                    .position(|(a, b)| a != b)
                    .unwrap_or(bytes.len().min(mine.len()));
                note(format!(
                    "bytes differ at offset {at}: {} ({} vs {} bytes)",
                    path.display(),
                    bytes.len(),
                    mine.len()
                ))
            }
            Some(_) => {}
        }
    }
    for path in ours.keys().filter(|p| !oracle.contains_key(*p)) {
        note(format!("only precompyle wrote: {}", path.display()));
    }
    if shown > 20 {
        out.push_str(&format!("… {} differences in all\n", shown));
    }
    out
}

/// Both tools on identical copies of `tree` at the same path
/// (`<work>/<tree name>`), so co_filename and mtimes agree. Returns the
/// oracle's and precompyle's outputs and the pycs each wrote under `work`.
pub struct Parity {
    pub oracle: Output,
    pub ours: Output,
    pub oracle_pycs: BTreeMap<PathBuf, Vec<u8>>,
    pub our_pycs: BTreeMap<PathBuf, Vec<u8>>,
}

pub fn parity(
    python: &Path,
    tree: &Path,
    work: &Path,
    oracle_args: &[&OsStr],
    our_args: &[&OsStr],
    env: &[(&str, &OsStr)],
) -> Parity {
    parity_with(
        python,
        tree,
        work,
        &[OsStr::new("-m"), OsStr::new("compileall")],
        oracle_args,
        our_args,
        env,
        env,
    )
}

/// Runs compileall with a prefix set *after* the interpreter started
/// (`sys.pycache_prefix = P`), as `python -X pycache_prefix` would for its
/// writes but without compiling its own start-up modules from source:
/// PYTHONPYCACHEPREFIX at start-up changes the process state and, on 3.12,
/// the marshal bytes of what it compiles.
pub const COMPILEALL_WITH_PREFIX: &str = "import sys, runpy\n\
sys.pycache_prefix = sys.argv.pop(1)\n\
sys.argv[0] = 'compileall.py'\n\
runpy.run_module('compileall', run_name='__main__', alter_sys=True)\n";

/// `parity` with the oracle's interpreter arguments and each side's
/// environment given separately.
#[allow(clippy::too_many_arguments)]
pub fn parity_with(
    python: &Path,
    tree: &Path,
    work: &Path,
    oracle_cmd: &[&OsStr],
    oracle_args: &[&OsStr],
    our_args: &[&OsStr],
    oracle_env: &[(&str, &OsStr)],
    our_env: &[(&str, &OsStr)],
) -> Parity {
    let name = tree.file_name().expect("tree has a name");
    let reset = || {
        for entry in std::fs::read_dir(work).expect("work dir").flatten() {
            let p = entry.path();
            if p.is_dir() && !p.is_symlink() {
                let _ = make_writable_and_remove(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
        copy_tree(tree, &work.join(name));
    };
    reset();
    let mut cmd = Command::new(python);
    clear_python_env(&mut cmd);
    cmd.current_dir(work).args(oracle_cmd).args(oracle_args);
    cmd.envs(oracle_env.iter().copied());
    let oracle = run(&mut cmd);
    let oracle_pycs = pycs_under(work);
    reset();
    let mut cmd = precompyle();
    cmd.current_dir(work).arg("--python").arg(python).args(our_args);
    cmd.envs(our_env.iter().copied());
    let ours = run(&mut cmd);
    let our_pycs = pycs_under(work);
    Parity {
        oracle,
        ours,
        oracle_pycs,
        our_pycs,
    }
}

fn make_writable_and_remove(dir: &Path) -> std::io::Result<()> {
    let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(dir).status();
    std::fs::remove_dir_all(dir)
}

pub fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The stdlib directory of `python` (`sysconfig`'s `stdlib` path).
pub fn stdlib_dir(python: &Path) -> PathBuf {
    let out = run(Command::new(python).args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"]));
    assert!(out.status.success(), "cannot find the stdlib of {}", python.display());
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Copies `packages` of `python`'s stdlib into `<dir>/<name>` (`cp -a`, so
/// mtimes stay), without their `__pycache__`.
pub fn stdlib_sample(python: &Path, dir: &Path, name: &str, packages: &[&str]) -> PathBuf {
    let stdlib = stdlib_dir(python);
    let tree = dir.join(name);
    std::fs::create_dir(&tree).unwrap_or_else(|e| panic!("mkdir {}: {e}", tree.display()));
    for package in packages {
        copy_tree(&stdlib.join(package), &tree.join(package));
    }
    remove_pycaches(&tree);
    tree
}

/// Removes every `__pycache__` directory under `tree`.
pub fn remove_pycaches(tree: &Path) {
    let caches: Vec<PathBuf> = walkdir::WalkDir::new(tree)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir() && e.file_name() == "__pycache__")
        .map(|e| e.into_path())
        .collect();
    for cache in caches {
        std::fs::remove_dir_all(&cache).unwrap_or_else(|e| panic!("rm -r {}: {e}", cache.display()));
    }
}

/// Prints `CHECKED <n>` then one `BAD <path>: <why>` line per pyc that the
/// import system would reject or choke on. Mirrors importlib's
/// `_classify_pyc` + `_validate_timestamp_pyc` + `_compile_bytecode`.
/// With a second argument, pycs live under that pycache prefix.
pub const VERIFY_PYCS: &str = r#"
import importlib.util, marshal, os, sys
if len(sys.argv) > 2:
    sys.pycache_prefix = sys.argv[2]
checked = 0
for dirpath, dirnames, filenames in os.walk(sys.argv[1]):
    for name in filenames:
        if not name.endswith(".pyc"):
            continue
        path = os.path.join(dirpath, name)
        checked += 1
        def bad(why):
            print("BAD %s: %s" % (path, why))
        try:
            source = importlib.util.source_from_cache(path)
            st = os.stat(source)
        except Exception as err:
            bad("no source: %r" % (err,))
            continue
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 16:
            bad("only %d bytes" % len(data))
            continue
        if data[:4] != importlib.util.MAGIC_NUMBER:
            bad("magic %r" % data[:4])
            continue
        flags = int.from_bytes(data[4:8], "little")
        mtime = int.from_bytes(data[8:12], "little")
        size = int.from_bytes(data[12:16], "little")
        if flags != 0:
            bad("flags %d" % flags)
        elif mtime != int(st.st_mtime) & 0xFFFFFFFF:
            bad("mtime %d, source %d" % (mtime, int(st.st_mtime)))
        elif size != st.st_size & 0xFFFFFFFF:
            bad("size %d, source %d" % (size, st.st_size))
        else:
            try:
                code = marshal.loads(data[16:])
            except Exception as err:
                bad("marshal: %r (%d bytes)" % (err, len(data)))
                continue
            if type(code).__name__ != "code":
                bad("not a code object: %r" % type(code))
print("CHECKED %d" % checked)
"#;

/// Names precompyle's temp files can have (`<cfile>.<pid>p<counter>`,
/// `<cfile>.<pid>l<counter>`); any `*.pyc.*` counts.
pub fn temp_files(tree: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(tree)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".pyc."))
        .map(|e| e.into_path())
        .collect()
}

pub struct Verdict {
    pub checked: usize,
    pub bad: Vec<String>,
}

/// Every pyc under `tree`, judged by the target interpreter in one process.
pub fn verify_pycs(python: &Path, tree: &Path) -> Verdict {
    verify_pycs_with(python, tree, None)
}

/// `verify_pycs` of the pycs under `tree` that mirror sources under `prefix`.
pub fn verify_pycs_with(python: &Path, tree: &Path, prefix: Option<&Path>) -> Verdict {
    let mut cmd = Command::new(python);
    clear_python_env(&mut cmd);
    cmd.arg("-c").arg(VERIFY_PYCS).arg(tree);
    if let Some(prefix) = prefix {
        cmd.arg(prefix);
    }
    let out = run(&mut cmd);
    let lines = stdout_lines(&out);
    let checked = lines
        .iter()
        .find_map(|l| l.strip_prefix("CHECKED "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("verifier failed: {}", String::from_utf8_lossy(&out.stderr)));
    let bad = lines.into_iter().filter(|l| l.starts_with("BAD ")).collect();
    Verdict { checked, bad }
}

/// Mounts a tmpfs of `kib` KiB at `at`; unmounted on drop. `None` (with a
/// message) where mounting is not allowed.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, kib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={kib}k"))
            .arg("tmpfs")
            .arg(at)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: cannot mount a tmpfs at {} (needs root)", at.display());
            return None;
        }
        Some(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs a command as uid/gid 65534 (`nobody`), for permission tests that
/// root would pass through.
pub const NOBODY: [&str; 4] = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

/// `program` run as `nobody`, without the variables that change what a tool
/// writes (see `clear_python_env`).
pub fn as_nobody(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(NOBODY[0]);
    clear_python_env(&mut cmd);
    cmd.args(&NOBODY[1..]).arg(program);
    cmd
}

/// The interpreter such tests use as `nobody` (pyenv's live under /root,
/// which nobody cannot enter), if nobody can run it here; otherwise `None`
/// with a message saying the test is skipped.
pub fn python_for_nobody() -> Option<&'static Path> {
    let python = Path::new("/usr/bin/python3");
    let probe = Command::new(NOBODY[0])
        .args(&NOBODY[1..])
        .arg(python)
        .arg("-c")
        .arg("import compileall")
        .status();
    if probe.is_ok_and(|s| s.success()) {
        Some(python)
    } else {
        eprintln!("SKIPPED: uid 65534 cannot run {} (needs root)", python.display());
        None
    }
}

/// SIGKILL `child` after `delay`; whether the kill landed (the run had not
/// ended by itself).
pub fn kill_after(mut child: std::process::Child, delay: std::time::Duration) -> bool {
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().expect("reap the killed run");
    std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL)
}

/// Whether `dir`'s file system takes `O_TMPFILE` (then precompyle's pyc
/// files have no name until they are complete).
pub fn has_o_tmpfile(dir: &Path) -> bool {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; the descriptor is closed at once.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return false;
    }
    // SAFETY: a descriptor this function owns.
    unsafe { libc::close(fd) };
    true
}

#[path = "../../src/pyc/tests/rng.rs"]
mod rng;
pub use rng::Rng;
