//! Header bytes, source hashes, timestamps and freshness: recorded vectors,
//! then py_compile's headers for random mtimes in every mode.

use super::rng::Rng;
use super::*;

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
fn sources_with_mtimes(dir: &Path, rng: &mut Rng) -> Vec<PathBuf> {
    let mut times: Vec<(i64, i64)> = vec![
        (1_700_000_000, 999_999_881),
        (1_700_000_000, 999_999_880),
        (-2, 500_000_000),
        (-2, 0),
        ((1 << 32) + 5, 0),
        ((1 << 31) + 7, 999_999_999),
    ];
    for i in 0..50 {
        let sec = (rng.next() % (1 << 34)) as i64 - (1 << 31);
        let nsec = match i % 3 {
            0 => 999_999_000 + (rng.next() % 1000) as i64,
            _ => (rng.next() % 1_000_000_000) as i64,
        };
        times.push((sec, nsec));
    }
    let mut sources = Vec::new();
    for (i, (sec, nsec)) in times.into_iter().enumerate() {
        let source = dir.join(format!("s{i}.py"));
        let lines = rng.next() % 40;
        let value = rng.next();
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

#[test]
fn headers_match_py_compile_for_random_mtimes() {
    let mut rng = Rng::from_env();
    let seed = rng.seed();
    let dir = tempfile::tempdir().unwrap();
    let sources = sources_with_mtimes(dir.path(), &mut rng);
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
