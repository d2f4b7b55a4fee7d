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

const MAGIC_311: [u8; 4] = [0xa7, 0x0d, 0x0d, 0x0a];
const MAGIC_314: [u8; 4] = [0x2b, 0x0e, 0x0d, 0x0a];

/// §1.2: magic bytes and hash algorithm per version.
fn target(version: &str) -> ([u8; 4], HashAlgo) {
    let (lo, hi, algo) = match version {
        "3.7" => (0x42, 0x0d, HashAlgo::SipHash24),
        "3.8" => (0x55, 0x0d, HashAlgo::SipHash24),
        "3.9" => (0x61, 0x0d, HashAlgo::SipHash24),
        "3.10" => (0x6f, 0x0d, HashAlgo::SipHash24),
        "3.11" => (0xa7, 0x0d, HashAlgo::SipHash13),
        "3.12" => (0xcb, 0x0d, HashAlgo::SipHash13),
        "3.13" => (0xf3, 0x0d, HashAlgo::SipHash13),
        "3.14" => (0x2b, 0x0e, HashAlgo::SipHash13),
        other => panic!("no magic for {other}"),
    };
    ([lo, hi, 0x0d, 0x0a], algo)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn source_hash_matches_cpython_vectors() {
    let c_input = [b"x = 1\n".repeat(166), b"pass".to_vec()].concat();
    let inputs: [&[u8]; 7] = [
        b"",
        b"x = 1\n",
        &c_input,
        "s = 'héllo €'\n".as_bytes(),
        b"\xff\xfe\x00\x80",
        b"abcdefg",
        b"abcdefgh",
    ];
    // pyc-format.md §1.5: importlib.util.source_hash(input).hex() per version.
    #[rustfmt::skip]
    let vectors = [
        ("3.7", ["85ee0caabd83b6a7", "20329d810db227ea", "5a312d70d70ef70a", "32d8624a95d3e43a", "a54e1c1cd090ccc3", "aa1ca7a44b9a3e76", "4c1c3e8345b33d02"]),
        ("3.8", ["81e4881b3643e8e9", "1506f08f32bf3ff3", "686b7c371782c92b", "7fc63e13f6f2943e", "1c05f31ae6634e4d", "c011868e0c7e3cad", "1ccec927de48c3ec"]),
        ("3.9", ["ac0bb7c83e5b1c5f", "f1d665a9e50fdffa", "0dbc43a50728a820", "882e2cfe70c762e3", "030f7bd0051da53a", "2850a36fd215f337", "08acb926c79b8040"]),
        ("3.10", ["8cc0cd2525e7fd27", "d94aade28c8cbebf", "de3181f87416ecf5", "697c72ff440955ce", "f3f9a38a6d5b6a10", "dc92dfc5df5381a0", "f3dc82f1450cade2"]),
        ("3.11", ["738d9cd5d5e87f73", "4c0372aa93f75252", "247911fe576097c4", "cfb2b086490fea83", "c1aa44dbe9e7de37", "9b58a82378e1d95f", "a705b39c25edd8a5"]),
        ("3.12", ["baf18eedc9387a25", "1522561917f5df08", "7b35140d453d5234", "fea67ba7674734f8", "6e624730aebf4a6f", "938168dfd8fcccf4", "8a99407cdd8ad4fc"]),
        ("3.13", ["27ec6d312f93b814", "e786e2893651120e", "add051ad13018a7c", "2f3cdfdd83ae4c51", "b0418e94d1aded9d", "5938e0b96d03c544", "688580b078b36f08"]),
        ("3.14", ["61f5b7cb653a6aa4", "1db2b6325ca282a7", "1b0d0d6a70585045", "153f9ab358bc90e6", "7750c70d83b6798a", "e4e8818033175162", "77f83f2bcc25edda"]),
    ];
    for (version, expected) in vectors {
        let (magic, algo) = target(version);
        for (input, (name, want)) in inputs.iter().zip("ABCDEFG".chars().zip(expected)) {
            assert_eq!(hex(&source_hash(magic, algo, input)), want, "{version} input {name}");
        }
    }
}

#[test]
fn header_matches_py_compile_example() {
    // pyc-format.md §1.1: `x = 1\n` with mtime 0x6b01a38b, from py_compile.
    #[rustfmt::skip]
    let cases = [
        (MAGIC_311, InvalidationMode::Timestamp, "a70d0d0a000000008ba3016b06000000"),
        (MAGIC_311, InvalidationMode::CheckedHash, "a70d0d0a030000004c0372aa93f75252"),
        (MAGIC_311, InvalidationMode::UncheckedHash, "a70d0d0a010000004c0372aa93f75252"),
        (MAGIC_314, InvalidationMode::Timestamp, "2b0e0d0a000000008ba3016b06000000"),
        (MAGIC_314, InvalidationMode::CheckedHash, "2b0e0d0a030000001db2b6325ca282a7"),
        (MAGIC_314, InvalidationMode::UncheckedHash, "2b0e0d0a010000001db2b6325ca282a7"),
    ];
    for (magic, mode, want) in cases {
        let stamp = match mode {
            InvalidationMode::Timestamp => timestamp_stamp(0x6b01a38b, 0, 6),
            _ => Stamp::Hash(source_hash(magic, HashAlgo::SipHash13, b"x = 1\n")),
        };
        assert_eq!(hex(&header(magic, mode, stamp)), want, "{magic:x?} {mode:?}");
    }
}

#[test]
fn timestamp_stamp_reproduces_int_of_st_mtime() {
    // pyc-format.md §1.4 [V3.11]; (st_mtime sec, nsec, st_size) -> header fields.
    let cases: [(i64, i64, u64, u32, u32); 8] = [
        (1_700_000_000, 999_999_881, 6, 1_700_000_001, 6), // double rounding goes up
        (1_700_000_000, 999_999_880, 6, 1_700_000_000, 6),
        (-2, 500_000_000, 0, 0xFFFF_FFFF, 0), // -1.5 s: int() truncates toward zero
        (-2, 0, 0, 0xFFFF_FFFE, 0),
        ((1 << 32) + 5, 0, 0, 5, 0),
        (0, 0, (1 << 32) + 9, 0, 9),
        (0x6b01a38b, 999_999_999, 1, 0x6b01a38c, 1),
        (-1, 999_999_999, 1, 0, 1), // -1e-9 truncates to 0
    ];
    for (sec, nsec, size, mtime, stored_size) in cases {
        let want = Stamp::Timestamp {
            mtime,
            size: stored_size,
        };
        assert_eq!(timestamp_stamp(sec, nsec, size), want, "{sec}.{nsec:09} size {size}");
    }
}

#[test]
fn compare_header_classifies_like_the_import_system() {
    let ts = header(MAGIC_311, InvalidationMode::Timestamp, timestamp_stamp(100, 0, 6));
    let checked = header(MAGIC_311, InvalidationMode::CheckedHash, Stamp::Hash([7; 8]));
    let with = |base: [u8; 16], at: usize, byte: u8| {
        let mut b = base;
        b[at] = byte;
        b.to_vec()
    };
    use Staleness::{HashDiffers, ModeDiffers, MtimeDiffers, OtherMagic, SizeDiffers, Unreadable};
    type Case = (&'static str, Vec<u8>, [u8; 16], Result<(), Staleness>);
    // The order of checks follows SourceLoader.get_code (pyc-format.md §5.1).
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("same", ts.to_vec(), ts, Ok(())),
        ("whole file", [&ts[..], b"body"].concat(), ts, Ok(())),
        ("15 bytes", ts[..15].to_vec(), ts, Err(Unreadable)),
        ("empty", vec![], ts, Err(Unreadable)),
        ("short, other magic", vec![0x6f, 0x0d], ts, Err(Unreadable)),
        ("3.10 magic", with(ts, 0, 0x6f), ts, Err(OtherMagic)),
        ("flags 2", with(ts, 4, 2), ts, Err(ModeDiffers)),
        ("mtime", with(ts, 8, 101), ts, Err(MtimeDiffers)),
        ("mtime high byte", with(ts, 11, 1), ts, Err(MtimeDiffers)),
        ("size", with(ts, 12, 7), ts, Err(SizeDiffers)),
        ("mtime and size", with(with(ts, 8, 1).try_into().unwrap(), 12, 1), ts, Err(MtimeDiffers)),
        ("hash same", checked.to_vec(), checked, Ok(())),
        ("unchecked vs checked", with(checked, 4, 1), checked, Err(ModeDiffers)),
        ("timestamp vs checked", ts.to_vec(), checked, Err(ModeDiffers)),
        ("hash last byte", with(checked, 15, 0), checked, Err(HashDiffers)),
    ];
    for (name, existing, expected, want) in cases {
        assert_eq!(compare_header(&existing, &expected), want, "{name}");
    }
}

#[test]
fn check_fresh_reads_through_symlinks_and_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let good = header(MAGIC_311, InvalidationMode::Timestamp, timestamp_stamp(5, 0, 1));
    std::fs::write(p("good.pyc"), [&good[..], b"code"].concat()).unwrap();
    std::fs::write(p("short.pyc"), &good[..12]).unwrap();
    std::fs::create_dir(p("dir.pyc")).unwrap();
    symlink("good.pyc", p("link.pyc")).unwrap();
    symlink("nowhere", p("dangling.pyc")).unwrap();
    let fifo = std::ffi::CString::new(p("fifo.pyc").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let cases = [
        ("good.pyc", Ok(())),
        ("link.pyc", Ok(())),
        ("missing.pyc", Err(Staleness::Missing)),
        ("dangling.pyc", Err(Staleness::Missing)),
        ("good.pyc/x.pyc", Err(Staleness::Missing)),
        ("short.pyc", Err(Staleness::Unreadable)),
        ("dir.pyc", Err(Staleness::Unreadable)),
        ("fifo.pyc", Err(Staleness::Unreadable)),
    ];
    for (name, want) in cases {
        assert_eq!(check_fresh(&p(name), &good), want, "{name}");
    }
    assert_eq!(read_header(&p("good.pyc")).unwrap(), good);
}

// ---- helpers for live interpreter runs and child processes ----

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
        "umask" => child_write_under_umask(&dir, u32::from_str_radix(&arg, 8).unwrap()),
        "fsize" => child_write_over_fsize_limit(&dir),
        "create_dirs" => arg
            .lines()
            .for_each(|d| println!("@@ {}", create_dirs_outcome(&dir, d))),
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

// ---- headers against py_compile ----

/// splitmix64: a reproducible sample without a rand dependency.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let time = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), [time, time].as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {sec}.{nsec:09}: {}", io::Error::last_os_error());
}

/// Sources with edge-case and random nanosecond mtimes.
fn sources_with_mtimes(dir: &Path, seed: u64) -> Vec<PathBuf> {
    let mut state = seed;
    let mut times: Vec<(i64, i64)> = vec![
        (1_700_000_000, 999_999_881),
        (1_700_000_000, 999_999_880),
        (-2, 500_000_000),
        (-2, 0),
        ((1 << 32) + 5, 0),
        ((1 << 31) + 7, 999_999_999),
    ];
    for i in 0..50 {
        let sec = (next_random(&mut state) % (1 << 34)) as i64 - (1 << 31);
        let nsec = match i % 3 {
            0 => 999_999_000 + (next_random(&mut state) % 1000) as i64,
            _ => (next_random(&mut state) % 1_000_000_000) as i64,
        };
        times.push((sec, nsec));
    }
    let mut sources = Vec::new();
    for (i, (sec, nsec)) in times.into_iter().enumerate() {
        let source = dir.join(format!("s{i}.py"));
        let lines = next_random(&mut state) % 40;
        let value = next_random(&mut state);
        std::fs::write(&source, format!("x = {value}\n").repeat(lines as usize)).unwrap();
        set_mtime(&source, sec, nsec);
        sources.push(source);
    }
    sources
}

const PY_COMPILE_ALL_MODES: &str = r#"
import importlib.util, os, py_compile, sys
print(importlib.util.MAGIC_NUMBER.hex(), sys.version_info[0], sys.version_info[1])
out = sys.argv[1]
for src in sys.argv[2:]:
    for mode in ("TIMESTAMP", "CHECKED_HASH", "UNCHECKED_HASH"):
        cfile = os.path.join(out, os.path.basename(src) + "." + mode)
        py_compile.compile(src, cfile, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode[mode])
"#;

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

#[test]
fn headers_match_py_compile_for_random_mtimes() {
    let seed = std::env::var("PRECOMPYLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let dir = tempfile::tempdir().unwrap();
    let sources = sources_with_mtimes(dir.path(), seed);
    for (n, python) in interpreters().iter().enumerate() {
        let out = dir.path().join(format!("out{n}"));
        std::fs::create_dir(&out).unwrap();
        let args: Vec<OsString> = std::iter::once(&out)
            .chain(&sources)
            .map(|p| p.clone().into())
            .collect();
        let (magic, algo) = parse_target(&run_python(python, PY_COMPILE_ALL_MODES, &args));
        for source in &sources {
            let meta = std::fs::metadata(source).unwrap();
            for (mode, name) in [
                (InvalidationMode::Timestamp, "TIMESTAMP"),
                (InvalidationMode::CheckedHash, "CHECKED_HASH"),
                (InvalidationMode::UncheckedHash, "UNCHECKED_HASH"),
            ] {
                let stamp = match mode {
                    InvalidationMode::Timestamp => timestamp_stamp(meta.mtime(), meta.mtime_nsec(), meta.len()),
                    _ => Stamp::Hash(source_hash(magic, algo, &std::fs::read(source).unwrap())),
                };
                let mut pyc = source.file_name().unwrap().to_owned();
                pyc.push(format!(".{name}"));
                let written = read_header(&out.join(pyc)).unwrap();
                let (sec, nsec) = (meta.mtime(), meta.mtime_nsec());
                let context = format!("{} {name} mtime {sec}.{nsec:09}", python.display());
                let expected = header(magic, mode, stamp);
                assert_eq!(hex(&expected), hex(&written), "{context} (seed {seed})");
            }
        }
    }
}

// ---- destination checks and directory creation against py_compile ----

const PY_COMPILE_DESTINATIONS: &str = r#"
import py_compile, sys
for cfile in sys.argv[2:]:
    try:
        py_compile.compile(sys.argv[1], cfile, doraise=True)
        print("ok")
    except FileExistsError as e:
        print("FileExistsError: " + str(e))
    except OSError as e:
        print("ok")  # failed later than the destination checks
"#;

#[test]
fn check_destination_matches_py_compile() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("a.py"), "x = 1\n").unwrap();
    std::fs::write(p("reg.pyc"), "old").unwrap();
    std::fs::create_dir(p("dir.pyc")).unwrap();
    symlink("nowhere", p("dangling.pyc")).unwrap();
    symlink("reg.pyc", p("link.pyc")).unwrap();
    let fifo = std::ffi::CString::new(p("fifo.pyc").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let names = [
        "dangling.pyc",
        "link.pyc",
        "dir.pyc",
        "fifo.pyc",
        "reg.pyc",
        "missing.pyc",
        "reg.pyc/x.pyc",
    ];
    let ours: Vec<String> = names
        .iter()
        .map(|n| check_destination(&p(n)).map_or_else(|e| e.to_string(), |()| "ok".to_owned()))
        .collect();
    assert_eq!(
        ours[0],
        format!(
            "FileExistsError: {} is a symlink and will be changed into a regular file if import writes a byte-compiled file to it",
            p("dangling.pyc").display()
        )
    );
    for python in interpreters() {
        let args: Vec<OsString> = std::iter::once("a.py").chain(names).map(|n| p(n).into()).collect();
        let theirs = run_python(&python, PY_COMPILE_DESTINATIONS, &args);
        assert_eq!(ours, theirs.lines().collect::<Vec<_>>(), "{}", python.display());
    }
}

/// A tree where some path components are not directories.
fn make_obstacle_tree(root: &Path) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("f"), "not a directory").unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();
    symlink("d", root.join("ldir")).unwrap();
}

const CREATE_DIR_CASES: [&str; 12] = [
    "d/new/__pycache__",
    "d/a/b/c",
    "d",
    "f",
    "f/__pycache__",
    "f/sub/deep/__pycache__",
    "f/.",
    "dangling/__pycache__",
    "ldir/x/y",
    "d/n2/./__pycache__",
    "d/n3/../__pycache__",
    "d//n4//x",
];

/// `ok` or `<errno> <failing path relative to root>`.
fn create_dirs_outcome(root: &Path, dir: &str) -> String {
    match create_dirs(&root.join(dir)) {
        Ok(()) => "ok".to_owned(),
        Err(WriteError::Io { path, source }) => {
            // Byte-wise, so that `f/.` or `d//x` are not normalised away.
            let rel = &path.as_os_str().as_bytes()[root.as_os_str().len() + 1..];
            format!("{} {}", source.raw_os_error().unwrap(), String::from_utf8_lossy(rel))
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// py_compile.compile into `<dir>/x.pyc`; an error on the temp file means
/// the directories were made and is reported as ok.
const PY_COMPILE_MAKEDIRS: &str = r#"
import os, py_compile, sys
root = sys.argv[1]
for d in sys.argv[3:]:
    cfile = os.path.join(root, d, "x.pyc")
    try:
        py_compile.compile(sys.argv[2], cfile, doraise=True)
        print("ok")
    except OSError as e:
        if e.filename.startswith(cfile + "."):
            print("ok")
        else:
            print(e.errno, e.filename[len(root) + 1:])
"#;

/// Directories (relative, with modes) under `root`, to compare two trees.
fn listing(root: &Path) -> Vec<String> {
    let mut all: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_dir())
        .map(|e| {
            format!(
                "{} {:o}",
                e.path().strip_prefix(root).unwrap().display(),
                e.metadata().unwrap().mode()
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn create_dirs_fails_at_the_level_py_compile_names() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("a.py");
    std::fs::write(&source, "x = 1\n").unwrap();
    let ours_root = dir.path().join("ours");
    make_obstacle_tree(&ours_root);
    let ours: Vec<String> = CREATE_DIR_CASES
        .iter()
        .map(|d| create_dirs_outcome(&ours_root, d))
        .collect();
    for (n, python) in interpreters().iter().enumerate() {
        let root = dir.path().join(format!("py{n}"));
        make_obstacle_tree(&root);
        let args: Vec<OsString> = [root.as_os_str(), source.as_os_str()]
            .into_iter()
            .map(OsString::from)
            .chain(CREATE_DIR_CASES.map(OsString::from))
            .collect();
        let theirs = run_python(python, PY_COMPILE_MAKEDIRS, &args);
        assert_eq!(ours, theirs.lines().collect::<Vec<_>>(), "{}", python.display());
        assert_eq!(listing(&ours_root), listing(&root), "{}", python.display());
    }
}

/// Read-only and unsearchable directories: only an unprivileged process sees
/// EACCES, so both sides run as uid 65534 through `setpriv`.
#[test]
fn create_dirs_permission_errors_match_python_as_nobody() {
    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(nobody[0])
            .args(&nobody[1..])
            .args([py, "-c", "pass"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python.filter(|_| unsafe { libc::geteuid() } == 0) else {
        eprintln!("SKIP: needs root, setpriv and a python3 that uid 65534 can run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let source = dir.path().join("a.py");
    std::fs::write(&source, "x = 1\n").unwrap();
    let cases = [
        "ro/__pycache__",
        "ro/sub/__pycache__",
        "nx/sub/__pycache__",
        "ok/new/__pycache__",
    ];
    let mut outcomes = Vec::new();
    for side in ["ours", "py"] {
        let root = dir.path().join(side);
        for (sub, mode) in [
            ("", 0o777),
            ("ro", 0o555),
            ("nx/sub", 0o777),
            ("nx", 0o600),
            ("ok", 0o777),
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
            std::fs::set_permissions(root.join(sub), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        outcomes.push(if side == "ours" {
            run_child("create_dirs", &root, &cases.join("\n"), &nobody)
        } else {
            let mut cmd = Command::new(nobody[0]);
            cmd.args(&nobody[1..])
                .args([python, "-c", PY_COMPILE_MAKEDIRS])
                .arg(&root)
                .arg(&source)
                .args(cases);
            String::from_utf8(cmd.output().unwrap().stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        });
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0][1], "13 ro/sub", "the level named is the first missing one");
}

// ---- write_atomic ----

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_atomic_replaces_pyc_with_a_new_inode_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let cfile = dir.path().join("m.cpython-311.pyc");
    let head = header(MAGIC_311, InvalidationMode::Timestamp, timestamp_stamp(1, 0, 2));
    write_atomic(&cfile, &head, b"old", Some(0o644)).unwrap();
    std::fs::hard_link(&cfile, dir.path().join("dupe.pyc")).unwrap();
    let old_inode = std::fs::metadata(&cfile).unwrap().ino();
    write_atomic(&cfile, &head, b"new body", Some(0o644)).unwrap();
    assert_ne!(
        std::fs::metadata(&cfile).unwrap().ino(),
        old_inode,
        "replaced, not rewritten in place [V3.11 §3.3]"
    );
    assert_eq!(std::fs::read(&cfile).unwrap(), [&head[..], b"new body"].concat());
    assert_eq!(
        std::fs::read(dir.path().join("dupe.pyc")).unwrap(),
        [&head[..], b"old"].concat()
    );
    assert_eq!(dir_entries(dir.path()), ["dupe.pyc", "m.cpython-311.pyc"]);
}

/// One way of replacing a pyc, given the round's number.
type Replace<'a> = Box<dyn Fn(usize) + 'a>;

/// What another thread saw listing a directory while a pyc in it was
/// replaced again and again.
#[derive(Default)]
struct Seen {
    listings: usize,
    /// Listings with a temp file of the pyc in them.
    temp: usize,
    /// Of those, the ones where the pyc was there too.
    temp_beside: usize,
}

/// Replaces `cfile` (in `dir`) by `replace` `rounds` times, and on until
/// another thread has listed `dir` at least 1,000 times meanwhile.
fn replace_while_listing(dir: &Path, cfile: &Path, rounds: usize, replace: &dyn Fn(usize)) -> Seen {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let listed = std::sync::Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, listed, dir) = (stop.clone(), listed.clone(), dir.to_owned());
        let name = cfile.file_name().unwrap().to_string_lossy().into_owned();
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) {
                // One getdents64 for a directory this small: a snapshot
                // taken under the directory's lock.
                let names = dir_entries(&dir);
                let temp = names.iter().any(|n| n.starts_with(&format!("{name}.")));
                seen.listings += 1;
                seen.temp += usize::from(temp);
                seen.temp_beside += usize::from(temp && names.contains(&name));
                listed.store(seen.listings, Ordering::Relaxed);
            }
            seen
        })
    };
    let mut round = 0;
    while round < rounds || listed.load(Ordering::Relaxed) < 1_000 {
        replace(round);
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap()
}

/// Replacing a pyc never shows a temp file beside it: with `O_TMPFILE`
/// none at all (the unnamed file is linked after the old pyc is removed;
/// `--hardlink-dupes` links after removing too), and the named fallback's
/// temp only while the pyc is missing. So a kill at any point leaves no temp
/// next to a pyc that later runs would find fresh and never sweep.
#[test]
fn a_replaced_pyc_never_has_a_temp_file_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfile = dir.path().join("m.cpython-312.pyc");
    let dupe = dir.path().join("m.cpython-312.opt-1.pyc");
    let handle = open_dir(dir.path()).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&handle);
    let body = |round: usize| format!("body {round}").into_bytes();
    write_at(fd, &cfile, &[0; 16], b"first", None, true).unwrap();
    write_at(fd, &dupe, &[0; 16], b"first", None, true).unwrap();
    let name = CString::new("m.cpython-312.pyc").unwrap();
    let cases: [(&str, &Path, Replace<'_>); 3] = [
        (
            "unnamed",
            &cfile,
            Box::new(|r| write_at(fd, &cfile, &[0; 16], &body(r), None, false).unwrap()),
        ),
        (
            "named",
            &cfile,
            Box::new(|r| write_named(fd, &cfile, &name, &[0; 16], &body(r), 0o644, false).unwrap()),
        ),
        ("link", &dupe, Box::new(|_| link_at(fd, &cfile, &dupe, false).unwrap())),
    ];
    for (what, target, replace) in cases {
        let seen = replace_while_listing(dir.path(), target, 3_000, &*replace);
        assert_eq!(
            seen.temp_beside, 0,
            "{what}: a temp beside the pyc in {} of {} listings",
            seen.temp_beside, seen.listings
        );
        if what != "named" {
            assert_eq!(
                seen.temp, 0,
                "{what}: a temp file in {} of {} listings",
                seen.temp, seen.listings
            );
        }
    }
    assert_eq!(std::fs::read(&dupe).unwrap(), std::fs::read(&cfile).unwrap());
    assert_eq!(
        std::fs::metadata(&dupe).unwrap().ino(),
        std::fs::metadata(&cfile).unwrap().ino()
    );
    assert_eq!(
        dir_entries(dir.path()),
        ["m.cpython-312.opt-1.pyc", "m.cpython-312.pyc"]
    );
}

const PY_WRITE_ATOMIC: &str = r#"
import sys
from importlib._bootstrap_external import _write_atomic
for path in sys.argv[1:]:
    try:
        _write_atomic(path, b"data", 0o644)
        print("ok")
    except OSError as e:
        print(type(e).__name__ + ": " + str(e))
"#;

/// Rename onto a directory and open in a missing or non-directory parent:
/// the error text matches `_write_atomic`'s and the temp file is gone.
#[test]
fn write_atomic_failures_match_python_and_remove_the_temp() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir_all(p("full.pyc")).unwrap();
    std::fs::write(p("full.pyc/keep"), "").unwrap();
    std::fs::create_dir(p("empty.pyc")).unwrap();
    std::fs::write(p("file"), "").unwrap();
    let cases = ["full.pyc", "empty.pyc", "nodir/x.pyc", "file/x.pyc"];
    let ours: Vec<String> = cases
        .iter()
        .map(|c| match write_atomic(&p(c), &[0; 16], b"", None) {
            Ok(()) => "ok".to_owned(),
            Err(err) => {
                match &err {
                    WriteError::Rename { from, to, .. } => {
                        assert!(from.starts_with(dir.path()) && to == &p(c))
                    }
                    WriteError::Io { path, .. } => {
                        assert!(path.as_os_str().len() == p(c).as_os_str().len() + 16)
                    }
                    other => panic!("{c}: unexpected {other:?}"),
                }
                normalize_temp(&err.to_string(), &p(c))
            }
        })
        .collect();
    assert!(ours[0].starts_with("IsADirectoryError: [Errno 21]"), "{}", ours[0]);
    assert_eq!(
        dir_entries(dir.path()),
        ["empty.pyc", "file", "full.pyc"],
        "temp files removed"
    );
    assert_eq!(dir_entries(&p("full.pyc")), ["keep"]);
    for python in interpreters() {
        let args: Vec<OsString> = cases.iter().map(|c| p(c).into()).collect();
        let theirs = run_python(&python, PY_WRITE_ATOMIC, &args);
        let theirs: Vec<String> = theirs
            .lines()
            .zip(cases)
            .map(|(l, c)| normalize_temp(l, &p(c)))
            .collect();
        assert_eq!(ours, theirs, "{}", python.display());
    }
}

/// A failing write(2): RLIMIT_FSIZE = 0 with SIGXFSZ ignored (Python ignores
/// it at start-up) gives EFBIG, which Python reports without a file name.
#[test]
fn write_atomic_write_failure_names_no_file_and_removes_the_temp() {
    let dir = tempfile::tempdir().unwrap();
    let ours = run_child("fsize", dir.path(), "", &[]);
    assert_eq!(
        ours,
        ["write error 27", "OSError: [Errno 27] File too large", "left: []"]
    );
    for python in interpreters() {
        let script = format!(
            "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))\n{PY_WRITE_ATOMIC}"
        );
        let theirs = run_python(&python, &script, &[dir.path().join("x.pyc").into()]);
        assert_eq!(ours[1], theirs.trim_end(), "{}", python.display());
    }
}

fn child_write_over_fsize_limit(dir: &Path) {
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    match write_atomic(&dir.join("x.pyc"), &[0; 16], b"body", None) {
        Err(err @ WriteError::Write { .. }) => {
            let WriteError::Write { source, .. } = &err else {
                unreachable!()
            };
            println!("@@ write error {}", source.raw_os_error().unwrap());
            println!("@@ {err}");
        }
        other => println!("@@ unexpected {other:?}"),
    }
    println!("@@ left: {:?}", dir_entries(dir));
}

/// §3.3: (umask, [(source mode, pyc mode)]) as observed with CPython 3.11.
#[rustfmt::skip]
const MODE_TABLE: [(u32, [(u32, u32); 8]); 3] = [
    (0o022, [(0o644, 0o644), (0o444, 0o644), (0o755, 0o644), (0o600, 0o600), (0o4755, 0o644), (0o2775, 0o644), (0o1777, 0o644), (0o000, 0o200)]),
    (0o000, [(0o644, 0o644), (0o444, 0o644), (0o755, 0o644), (0o600, 0o600), (0o4755, 0o644), (0o2775, 0o664), (0o1777, 0o666), (0o000, 0o200)]),
    (0o077, [(0o644, 0o600), (0o444, 0o600), (0o755, 0o600), (0o600, 0o600), (0o4755, 0o600), (0o2775, 0o600), (0o1777, 0o600), (0o000, 0o200)]),
];

const PY_MODES_UNDER_UMASK: &str = r#"
import os, py_compile, sys
os.umask(int(sys.argv[1], 8))
d = sys.argv[2]
os.makedirs(os.path.join(d, "made", "deeper"))
print(oct(os.stat(os.path.join(d, "made")).st_mode & 0o7777))
for src in sorted(f for f in os.listdir(d) if f.endswith(".py")):
    cfile = os.path.join(d, src + "c")
    py_compile.compile(os.path.join(d, src), cfile, doraise=True)
    print(src, oct(os.stat(cfile).st_mode & 0o7777))
from importlib._bootstrap_external import _calc_mode, _write_atomic
cfile = os.path.join(d, "nosource.pyc")
_write_atomic(cfile, b"", _calc_mode(os.path.join(d, "no-such-source.py")))
print("unknown", oct(os.stat(cfile).st_mode & 0o7777))
"#;

fn sources_with_modes(dir: &Path, modes: &[(u32, u32)]) {
    for (mode, _) in modes {
        let source = dir.join(format!("m{mode:o}.py"));
        std::fs::write(&source, "x = 1\n").unwrap();
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

fn child_write_under_umask(dir: &Path, umask: u32) {
    unsafe { libc::umask(umask as libc::mode_t) };
    create_dirs(&dir.join("made/deeper")).unwrap();
    println!("@@ {:#o}", std::fs::metadata(dir.join("made")).unwrap().mode() & 0o7777);
    let mut sources: Vec<String> = dir_entries(dir).into_iter().filter(|n| n.ends_with(".py")).collect();
    sources.sort();
    for source in sources {
        let cfile = dir.join(format!("{source}c"));
        let mode = std::fs::metadata(dir.join(&source)).unwrap().mode();
        write_atomic(&cfile, &[0; 16], b"", Some(mode)).unwrap();
        println!("@@ {source} {:#o}", std::fs::metadata(&cfile).unwrap().mode() & 0o7777);
    }
    write_atomic(&dir.join("nosource.pyc"), &[0; 16], b"", None).unwrap();
    let unknown = std::fs::metadata(dir.join("nosource.pyc")).unwrap().mode() & 0o7777;
    println!("@@ unknown {unknown:#o}");
}

#[test]
fn write_atomic_and_create_dirs_modes_follow_the_umask() {
    for (umask, table) in MODE_TABLE {
        let dir = tempfile::tempdir().unwrap();
        sources_with_modes(dir.path(), &table);
        let ours = run_child("umask", dir.path(), &format!("{umask:o}"), &[]);
        assert_eq!(
            ours[0],
            format!("{:#o}", 0o777 & !umask),
            "directory mode under umask {umask:03o}"
        );
        let mut want: Vec<String> = table.iter().map(|(src, pyc)| format!("m{src:o}.py {pyc:#o}")).collect();
        want.sort();
        assert_eq!(ours[1..=8], want, "pyc modes under umask {umask:03o}");
        assert_eq!(
            ours[9],
            format!("unknown {:#o}", 0o666 & !umask),
            "no source mode: 0o666"
        );
        for python in interpreters() {
            let live = tempfile::tempdir().unwrap();
            sources_with_modes(live.path(), &table);
            let theirs = run_python(
                &python,
                PY_MODES_UNDER_UMASK,
                &[format!("{umask:o}").into(), live.path().into()],
            );
            assert_eq!(
                ours,
                theirs.lines().collect::<Vec<_>>(),
                "{} umask {umask:03o}",
                python.display()
            );
        }
    }
}

#[test]
fn temp_names_carry_their_writer() {
    let name = temp_name(Path::new("d/m.cpython-311.pyc"), TempKind::Write);
    let text = name.to_str().unwrap();
    // Same length as CPython's `<cfile>.<id(path)>` (15 digits on x86-64).
    assert_eq!(text.len(), "d/m.cpython-311.pyc".len() + 16);
    assert_eq!(
        temp_writer(name.file_name().unwrap().as_bytes()),
        Some(std::process::id())
    );
    let cases: &[(&str, Option<u32>)] = &[
        ("m.cpython-311.pyc.0012345p0000007", Some(12345)),
        ("m.cpython-311.opt-1.pyc.4194304l9999999", Some(4194304)),
        ("m.pyc.0000001p0000000", Some(1)),
        // CPython's own temp name (an object address): never ours.
        ("m.cpython-311.pyc.140234567891234", None),
        ("m.py.0012345p0000007", None),
        ("m.cpython-311.pyc.0012345x0000007", None),
        ("m.cpython-311.pyc.0012345p000007", None),
        ("m.cpython-311.pyc", None),
    ];
    for &(name, writer) in cases {
        assert_eq!(temp_writer(name.as_bytes()), writer, "{name}");
    }
}

#[test]
fn sweep_removes_only_temps_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let own = std::process::id();
    let names = [
        format!("a.cpython-311.pyc.{dead:07}p0000001"),
        format!("b.cpython-311.pyc.{dead:07}l0000002"),
        format!("c.cpython-311.pyc.{own:07}p0000003"),
        "d.cpython-311.pyc.140234567891234".to_owned(),
        format!("e.py.{dead:07}p0000004"),
        "f.cpython-311.pyc".to_owned(),
    ];
    for name in &names {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }
    assert_eq!(sweep_stale_temps(dir.path()), 2);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, names[2..].to_vec());
}
