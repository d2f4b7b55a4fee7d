//! Property tests: random rules and paths for `properties::check_dfile`.
//! Case counts follow `PROPTEST_CASES` (default 256).

use proptest::prelude::*;

use super::DfileRules;
use super::properties::{check_dfile, cli_rules};

/// Paths from few names, so that stripdirs and paths share components
/// often: empty (`//`, leading or trailing `/`), dots, non-UTF-8, quotes.
fn path() -> impl Strategy<Value = Vec<u8>> {
    let name = proptest::sample::select(vec![
        &b""[..],
        b".",
        b"..",
        b"t",
        b"a",
        b"sub",
        b"a.py",
        b"\xff",
        b"it's",
    ]);
    let names = proptest::collection::vec(name, 0..6).prop_map(|names| names.join(&b'/'));
    prop_oneof![4 => names, 1 => proptest::collection::vec(any::<u8>(), 0..20)]
}

/// A path and how it was reached: as a file argument, or under a directory
/// argument the way the walk joins names.
fn reached() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    let file = path().prop_map(|p| (p, None));
    let walked = (path(), path(), any::<bool>()).prop_map(|(dir, below, slash)| {
        let sep: &[u8] = if slash || dir.is_empty() || dir.ends_with(b"/") {
            b""
        } else {
            b"/"
        };
        ([&dir[..], sep, &below].concat(), Some(dir))
    });
    prop_oneof![file, walked]
}

/// The first `n` components of `fullname` (a stripdir that matches), or any path.
fn stripdir_for(fullname: Vec<u8>) -> impl Strategy<Value = Option<Vec<u8>>> {
    let parts = fullname.split(|&b| b == b'/').count();
    let matching =
        (1..=parts).prop_map(move |n| Some(fullname.split(|&b| b == b'/').take(n).collect::<Vec<_>>().join(&b'/')));
    prop_oneof![1 => Just(None), 2 => matching, 1 => path().prop_map(Some)]
}

fn case() -> impl Strategy<Value = (DfileRules, Vec<u8>, Option<Vec<u8>>)> {
    reached().prop_flat_map(|(fullname, dir_arg)| {
        let ddir = proptest::option::weighted(0.3, path());
        let prependdir = proptest::option::weighted(0.4, path());
        (8..=14_u32, ddir, stripdir_for(fullname.clone()), prependdir).prop_map(
            move |(minor, ddir, stripdir, prependdir)| {
                let rules = cli_rules(minor, ddir, stripdir, prependdir);
                (rules, fullname.clone(), dir_arg.clone())
            },
        )
    })
}

proptest! {
    #[test]
    fn dfile_outcomes_follow_version_and_options((rules, fullname, dir_arg) in case()) {
        check_dfile(&rules, &fullname, dir_arg.as_deref()).map_err(TestCaseError::fail)?;
    }
}
