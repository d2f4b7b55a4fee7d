//! Property tests: random paths for `properties::check_cache_path`, and the
//! oracle, a random sample of paths put to every interpreter present through
//! the same batch helpers as the recorded cases (`tests::oracle_mismatches`).
//! Case counts follow `PROPTEST_CASES` (default 256; the oracle takes two
//! paths per case), so a long run is
//! `PROPTEST_CASES=100000 cargo test … layout::proptests`.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::Layout;
use super::properties::check_cache_path;
use super::tests::{OracleCase, oracle_cwds, oracle_mismatches};

/// One path component: the names that matter to `cache_from_source` (dots,
/// `__pycache__`, suffixes), non-UTF-8 and non-ASCII bytes, any bytes but
/// `/`, and now and then a long one.
fn component() -> impl Strategy<Value = Vec<u8>> {
    let named = proptest::sample::select(vec![
        &b""[..],
        b".",
        b"..",
        b"...",
        b"__pycache__",
        b"foo.py",
        b"foo",
        b".hidden",
        b".py",
        b"foo.bar.py",
        b"foo.",
        b"a:b",
        b"C:",
        b"\xff",
        b"\xc3",
        "café".as_bytes(),
        b"x.cpython-311.pyc",
    ])
    .prop_map(<[u8]>::to_vec);
    let any_but_slash = proptest::collection::vec(any::<u8>().prop_filter("no /", |&b| b != b'/'), 1..12);
    let long = (1..5000_usize, any::<u8>().prop_filter("no /", |&b| b != b'/')).prop_map(|(len, byte)| vec![byte; len]);
    prop_oneof![12 => named, 7 => any_but_slash, 1 => long]
}

/// A path as typed: maybe rooted (`/`, `//`, `./`), components joined by one
/// to three `/`, maybe a trailing `/`; or any bytes at all.
fn path() -> impl Strategy<Value = Vec<u8>> {
    let lead = proptest::sample::select(vec![&b""[..], b"", b"/", b"//", b"///", b"./", b".//", b"../"]);
    let sep = proptest::sample::select(vec![&b"/"[..], b"/", b"/", b"//", b"///"]);
    let trail = proptest::sample::select(vec![&b""[..], b"", b"", b"/", b"//"]);
    let structured =
        (lead, proptest::collection::vec((component(), sep), 0..6), trail).prop_map(|(lead, parts, trail)| {
            let mut path = lead.to_vec();
            for (i, (part, sep)) in parts.iter().enumerate() {
                if i > 0 {
                    path.extend_from_slice(sep);
                }
                path.extend_from_slice(part);
            }
            path.extend_from_slice(trail);
            path
        });
    let raw = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![4 => structured, 1 => raw]
}

/// The optimization suffixes compileall passes, and other alphanumeric ones.
fn optimization() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["", "", "1", "2", "0", "abc", "Z9"])
}

/// An absolute, normalised cwd, as `os.getcwd()` returns it.
fn cwd() -> impl Strategy<Value = Vec<u8>> {
    let name = proptest::collection::vec(any::<u8>().prop_filter("no / or NUL", |&b| b != b'/' && b != 0), 1..10)
        .prop_filter("no . or ..", |n| n != b"." && n != b"..");
    prop_oneof![
        1 => Just(b"/".to_vec()),
        4 => proptest::collection::vec(name, 1..4).prop_map(|names| {
            names.iter().flat_map(|n| [&b"/"[..], n]).flatten().copied().collect()
        }),
    ]
}

fn layout() -> impl Strategy<Value = Layout> {
    let prefix = proptest::option::weighted(0.6, path());
    (7..=14_u32, prefix, cwd(), proptest::bool::weighted(0.1)).prop_map(|(minor, prefix, cwd, legacy)| Layout {
        cache_tag: format!("cpython-3{minor}"),
        version: (3, minor),
        prefix,
        cwd,
        legacy,
    })
}

proptest! {
    #[test]
    fn cache_path_holds_its_invariants_for_any_path(
        layout in layout(),
        source in path(),
        opt in optimization(),
    ) {
        check_cache_path(&layout, &source, opt).map_err(TestCaseError::fail)?;
    }
}

/// The oracle: `2 × PROPTEST_CASES` random (source, optimization, prefix)
/// triples, each in one of the real cwds, through every interpreter present.
/// A mismatch prints the case; the interpreters' versions decide the rules.
#[test]
fn cache_path_agrees_with_every_interpreter_on_random_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let cwds = oracle_cwds(tmp.path());
    let mut runner = TestRunner::new(Config::default());
    let count = 2 * runner.config().cases as usize;
    let case = (
        path(),
        optimization(),
        proptest::option::weighted(0.6, path()),
        0..cwds.len(),
    );
    let sample = proptest::collection::vec(case, count)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let cases: Vec<OracleCase> = sample
        .into_iter()
        .map(|(source, opt, prefix, cwd)| OracleCase {
            source,
            opt,
            prefix,
            cwd: cwds[cwd].clone(),
        })
        .collect();
    let all = oracle_mismatches(tmp.path(), &cases);
    assert!(all.is_empty(), "{} mismatches:\n{}", all.len(), all.join("\n"));
}
