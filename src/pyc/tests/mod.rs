//! Expected values come from real interpreters: tables recorded by running
//! them (pyc-format.md entries marked [V], re-checked here where noted), or
//! live runs of the interpreters on this machine, skipped with a message when
//! none is found. Tests needing their own umask, rlimit or uid re-run this
//! test binary as a child (`child_entry`).

use super::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;
use std::process::Command;

mod dirs;
mod headers;
// `below` serves only the integration tests' kills.
#[allow(dead_code)]
mod rng;
mod writes;

/// 3.11's magic (pyc-format.md §1.2), for headers whose version does not matter.
const MAGIC_311: [u8; 4] = [0xa7, 0x0d, 0x0d, 0x0a];

/// Every CPython 3.7+ (PEP 552 headers) on this machine: `python3` on PATH
/// and the pyenv builds.
pub(super) fn interpreters() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let works = |py: &Path| {
        let check = "import sys; sys.exit(sys.version_info < (3, 7))";
        Command::new(py)
            .args(["-c", check])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(Path::new("python3")) {
        found.push(PathBuf::from("python3"));
    }
    let pyenv = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv/versions"));
    let mut versions: Vec<PathBuf> = pyenv
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("bin/python3")))
        .filter(|py| works(py))
        .collect();
    versions.sort();
    found.extend(versions);
    if found.is_empty() {
        eprintln!("SKIP: no python3 interpreter found; live oracle comparison not run");
    }
    found
}

/// Run `python -c script args…` and return its stdout; panics with stderr on failure.
fn run_python(python: &Path, script: &str, args: &[OsString]) -> String {
    let out = Command::new(python).arg("-c").arg(script).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed: {stderr}", python.display());
    String::from_utf8(out.stdout).unwrap()
}

const CHILD_ROLE: &str = "PRECOMPYLE_PYC_TEST_CHILD";
const CHILD_DIR: &str = "PRECOMPYLE_PYC_TEST_DIR";
const CHILD_ARG: &str = "PRECOMPYLE_PYC_TEST_ARG";

/// Re-run this test binary's `child_entry` in a process of its own and
/// return the lines it reports (prefixed `@@ ` on stdout).
fn run_child(role: &str, dir: &Path, arg: &str, wrapper: &[&str]) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    // Test names are module paths without the crate name.
    let (_, module) = module_path!().split_once("::").unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([&format!("{module}::child_entry"), "--exact", "--ignored", "--nocapture"]);
    cmd.env(CHILD_ROLE, role).env(CHILD_DIR, dir).env(CHILD_ARG, arg);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {role} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("@@ "))
        .map(str::to_owned)
        .collect()
}

/// The part of a test that needs its own process. Does nothing unless
/// started by `run_child`.
#[test]
#[ignore = "helper run by other tests in a child process"]
fn child_entry() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).unwrap());
    let arg = std::env::var(CHILD_ARG).unwrap();
    match role.as_str() {
        "umask" => writes::child_write_under_umask(&dir, u32::from_str_radix(&arg, 8).unwrap()),
        "fsize" => writes::child_write_over_fsize_limit(&dir),
        "create_dirs" => arg
            .lines()
            .for_each(|d| println!("@@ {}", dirs::create_dirs_outcome(&dir, d))),
        other => panic!("unknown child role {other}"),
    }
}

/// Replace the temp suffix after `<cfile>.` by `TMP`: it differs in both
/// (CPython's is digits, ours digits with one letter).
fn normalize_temp(text: &str, cfile: &Path) -> String {
    let stem = format!("{}.", cfile.display());
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&stem) {
        out.push_str(&rest[..at + stem.len()]);
        rest = rest[at + stem.len()..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        out.push_str("TMP");
    }
    out + rest
}

/// The magic and hash algorithm from the script's first line
/// (`MAGIC_NUMBER.hex() major minor`).
pub(super) fn parse_target(stdout: &str) -> ([u8; 4], HashAlgo) {
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    let byte = |i: usize| u8::from_str_radix(&fields[0][2 * i..2 * i + 2], 16).unwrap();
    let minor: u32 = fields[2].parse().unwrap();
    let algo = if minor < 11 {
        HashAlgo::SipHash24
    } else {
        HashAlgo::SipHash13
    };
    ([byte(0), byte(1), byte(2), byte(3)], algo)
}
