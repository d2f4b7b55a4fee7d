//! What `DfileRules::dfile_for` must give for every input, each check
//! returning what broke: which outcomes each version and option allow, and
//! the cases whose result pyc-format.md §3.5 and compileall's code fix
//! outright. The exact strings come from each version's compileall in
//! `tests`. Shared with the cargo-fuzz target `fuzz/fuzz_targets/dfile.rs`,
//! which includes this file by `#[path]`: it names only items both reach as
//! `super::…`.

use super::{Dfile, DfileRules, EMPTY_JOIN_ERROR};

fn ensure(holds: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(what()) }
}

/// Rules as the CLI makes them: `-d` or `-s`/`-p`, never both, so a ddir
/// drops the other two.
pub(super) fn cli_rules(
    minor: u32,
    ddir: Option<Vec<u8>>,
    stripdir: Option<Vec<u8>>,
    prependdir: Option<Vec<u8>>,
) -> DfileRules {
    let (stripdir, prependdir) = if ddir.is_some() {
        (None, None)
    } else {
        (stripdir, prependdir)
    };
    DfileRules {
        ddir,
        stripdir,
        prependdir,
        version: (3, minor),
    }
}

/// POSIX `os.path.join(a, b)`.
fn os_path_join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if b.first() == Some(&b'/') || a.is_empty() {
        b.to_vec()
    } else if a.ends_with(b"/") {
        [a, b].concat()
    } else {
        [a, b"/", b].concat()
    }
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or_default()
}

/// - Before 3.9 only `-d` counts: unset without it, set with it, and for a
///   file argument `os.path.join(ddir, basename)`.
/// - From 3.9: a file argument with `-d` gives the same join; with nothing
///   given the dfile is unset, and only then.
/// - Only a stripdir in effect (`-s`, or `-d` for a directory argument)
///   fails (compileall's TypeError text) or warns. It warns exactly from
///   3.13 when its components do not start the path's, and the warning's
///   dfile is then the prependdir joined with the path as given.
/// - With a prependdir in effect a set dfile starts with it or is absolute.
pub(super) fn check_dfile(rules: &DfileRules, fullname: &[u8], dir_arg: Option<&[u8]>) -> Result<(), String> {
    let got = rules.dfile_for(fullname, dir_arg);
    let context = || {
        format!(
            "{rules:?}.dfile_for({:?}, {:?}) = {got:?}",
            String::from_utf8_lossy(fullname),
            dir_arg.map(String::from_utf8_lossy)
        )
    };
    let ddir = rules.ddir.as_deref();
    if rules.version < (3, 9) {
        let want = match (ddir, dir_arg) {
            (None, _) => Some(Dfile::Unset),
            (Some(ddir), None) => Some(Dfile::Set(os_path_join(ddir, basename(fullname)))),
            (Some(_), Some(_)) => None,
        };
        return ensure(
            want.as_ref().map_or(matches!(got, Dfile::Set(_)), |want| &got == want),
            context,
        );
    }
    let (stripdir, prependdir) = match (ddir, dir_arg) {
        (Some(ddir), None) => {
            let want = Dfile::Set(os_path_join(ddir, basename(fullname)));
            return ensure(got == want, || format!("{}, want {want:?}", context()));
        }
        (Some(ddir), Some(dir)) => (Some(dir), Some(ddir)),
        (None, _) => (rules.stripdir.as_deref(), rules.prependdir.as_deref()),
    };
    let nothing_given = stripdir.is_none() && prependdir.is_none();
    ensure(nothing_given == (got == Dfile::Unset), context)?;
    let parts = |path: &[u8]| path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect::<Vec<_>>();
    let should_warn =
        rules.version >= (3, 13) && stripdir.is_some_and(|strip| !parts(fullname).starts_with(&parts(strip)));
    ensure(should_warn == matches!(got, Dfile::Warn { .. }), context)?;
    match &got {
        Dfile::Error(text) => ensure(stripdir.is_some() && text == EMPTY_JOIN_ERROR, context),
        Dfile::Warn { warning, dfile } => {
            let want_dfile = prependdir.map(|p| os_path_join(p, fullname));
            ensure(*dfile == want_dfile, context)?;
            ensure(
                warning.starts_with("The stripdir path ") && warning.ends_with("; ignoring"),
                context,
            )
        }
        Dfile::Set(dfile) => {
            let under = prependdir.is_none_or(|p| dfile.starts_with(p) || dfile.first() == Some(&b'/'));
            ensure(under, || format!("{}: not under the prependdir", context()))
        }
        Dfile::Unset => Ok(()),
    }
}
