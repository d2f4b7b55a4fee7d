//! Property tests: random inputs for the checks in `properties.rs`, and
//! `source_hash` against every interpreter's `importlib.util.source_hash` on
//! a random sample. Case counts follow `PROPTEST_CASES` (default 256), so a
//! long run is `PROPTEST_CASES=100000 cargo test … pyc::proptests`.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::properties::{check_built_header, check_comparison, check_file, check_source_edit, check_timestamp};
use super::tests::{interpreters, parse_target};
use super::*;
use crate::pyrepr::oracle::{hex, run, unhex};

/// Real magics (pyc-format.md §1.2) as often as arbitrary ones.
fn magic() -> impl Strategy<Value = [u8; 4]> {
    let real = [0x42_u8, 0x55, 0x61, 0x6f, 0xa7, 0xcb, 0xf3].map(|lo| [lo, 0x0d, 0x0d, 0x0a]);
    prop_oneof![
        proptest::sample::select(real.into_iter().chain([[0x2b, 0x0e, 0x0d, 0x0a]]).collect::<Vec<_>>()),
        any::<[u8; 4]>(),
    ]
}

fn algo() -> impl Strategy<Value = HashAlgo> {
    prop_oneof![Just(HashAlgo::SipHash24), Just(HashAlgo::SipHash13)]
}

/// A mode with a stamp of its kind, the only pairs `header()` accepts.
fn mode_and_stamp() -> impl Strategy<Value = (InvalidationMode, Stamp)> {
    let timestamp = (any::<i64>(), 0..1_000_000_000_i64, any::<u64>())
        .prop_map(|(sec, nsec, size)| (InvalidationMode::Timestamp, timestamp_stamp(sec, nsec, size)));
    let hashed = (
        prop_oneof![
            Just(InvalidationMode::CheckedHash),
            Just(InvalidationMode::UncheckedHash)
        ],
        any::<[u8; 8]>(),
    )
        .prop_map(|(mode, hash)| (mode, Stamp::Hash(hash)));
    prop_oneof![timestamp, hashed]
}

fn built_header() -> impl Strategy<Value = [u8; HEADER_LEN]> {
    (magic(), mode_and_stamp()).prop_map(|(magic, (mode, stamp))| header(magic, mode, stamp))
}

/// An expected header (built, or any 16 bytes) and a file that is mostly it:
/// a body after it, a few bytes changed, cut to a random length. Arbitrary
/// bytes alone would almost never share the 4 magic bytes.
fn expected_and_existing() -> impl Strategy<Value = ([u8; HEADER_LEN], Vec<u8>)> {
    let expected = prop_oneof![built_header(), any::<[u8; HEADER_LEN]>()];
    let edits = proptest::collection::vec((0..HEADER_LEN, any::<u8>()), 0..3);
    let body = proptest::collection::vec(any::<u8>(), 0..16);
    (
        expected,
        edits,
        body,
        0..40_usize,
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(expected, edits, body, len, noise)| {
            if len % 5 == 0 {
                return (expected, noise);
            }
            let mut existing = [&expected[..], &body].concat();
            for (at, byte) in edits {
                existing[at] = byte;
            }
            existing.truncate(len);
            (expected, existing)
        })
}

proptest! {
    #[test]
    fn built_headers_round_trip_and_go_stale_on_any_byte_change(
        magic in magic(),
        (mode, stamp) in mode_and_stamp(),
        body in proptest::collection::vec(any::<u8>(), 0..32),
        flip in any::<u8>(),
    ) {
        check_built_header(magic, mode, stamp, &body, flip).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn compare_header_names_the_first_differing_field((expected, existing) in expected_and_existing()) {
        check_comparison(&existing, &expected).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn timestamp_stamp_keeps_the_second_and_never_panics(
        (sec, nsec, size) in prop_oneof![
            (-(1_i64 << 40)..=1 << 40, 0..1_000_000_000_i64, any::<u64>()),
            (-(1_i64 << 40)..=1 << 40, 999_999_000..1_000_000_000_i64, any::<u64>()),
            (any::<i64>(), any::<i64>(), any::<u64>()),
        ],
    ) {
        check_timestamp(sec, nsec, size).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn checked_hash_headers_go_stale_on_any_source_edit(
        magic in magic(),
        algo in algo(),
        source in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<usize>(),
        flip in any::<u8>(),
    ) {
        check_source_edit(magic, algo, &source, at, flip).map_err(TestCaseError::fail)?;
    }
}

// The file properties share one directory: a directory per case would cost
// more than the case.

#[test]
fn check_fresh_on_a_file_agrees_with_compare_header() {
    let dir = tempfile::tempdir().unwrap();
    TestRunner::new(Config::default())
        .run(&expected_and_existing(), |(expected, existing)| {
            check_file(dir.path(), &existing, &expected).map_err(TestCaseError::fail)
        })
        .unwrap();
}

#[test]
fn files_shorter_than_a_header_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let pyc = dir.path().join("short.pyc");
    TestRunner::new(Config::default())
        .run(&(built_header(), 0..HEADER_LEN), |(expected, len)| {
            // The expected header's own first bytes: the closest a short file gets.
            let _ = std::fs::remove_file(&pyc); // see check_file
            std::fs::write(&pyc, &expected[..len]).unwrap();
            prop_assert_eq!(check_fresh(&pyc, &expected), Err(Staleness::Unreadable));
            prop_assert_eq!(read_header(&pyc).unwrap(), &expected[..len]);
            Ok(())
        })
        .unwrap();
}

/// Prints the magic and version, then per hex line of stdin the source hash.
const SOURCE_HASH_SCRIPT: &str = r#"
import sys, importlib.util as u
print(u.MAGIC_NUMBER.hex(), sys.version_info[0], sys.version_info[1])
for line in sys.stdin:
    print(u.source_hash(bytes.fromhex(line.strip())).hex())
"#;

/// The oracle: `PROPTEST_CASES` random sources (empty, short, long, every
/// byte value) hashed by each interpreter in one run, compared with ours.
#[test]
fn source_hash_agrees_with_every_interpreter_on_random_sources() {
    let mut runner = TestRunner::new(Config::default());
    let sources = proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..600),
        runner.config().cases as usize,
    );
    let sources = sources.new_tree(&mut runner).unwrap().current();
    let stdin: String = sources.iter().map(|s| hex(s) + "\n").collect();
    let dir = tempfile::tempdir().unwrap();
    for python in interpreters() {
        let out = run(&python, dir.path(), SOURCE_HASH_SCRIPT, &stdin);
        let (first, hashes) = out.split_once('\n').unwrap();
        let (magic, algo) = parse_target(first);
        let hashes: Vec<&str> = hashes.lines().collect();
        assert_eq!(hashes.len(), sources.len(), "{}", python.display());
        for (source, theirs) in sources.iter().zip(hashes) {
            assert_eq!(
                source_hash(magic, algo, source).to_vec(),
                unhex(theirs),
                "{}: source {}",
                python.display(),
                hex(source)
            );
        }
    }
}
