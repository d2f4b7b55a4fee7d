//! What `Layout::cache_path` must give for every input, string-wise, each
//! check returning what broke. The rules are pyc-format.md §2.1, §2.3 and
//! §2.5 read as statements about the result; the live interpreters are the
//! oracle for the exact strings (`proptests.rs`, `tests`). Shared with the
//! cargo-fuzz target `fuzz/fuzz_targets/layout.rs`, which includes this
//! file by `#[path]`: it names only items both reach as `super::…`.

use super::{Layout, LayoutError};
use std::os::unix::ffi::OsStrExt;

fn ensure(holds: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(what()) }
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", std::ffi::OsStr::from_bytes(bytes))
}

fn trim_end_slashes(path: &[u8]) -> &[u8] {
    let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    &path[..end]
}

fn trim_slashes(path: &[u8]) -> &[u8] {
    let trimmed = trim_end_slashes(path);
    let start = trimmed.iter().position(|&b| b != b'/').unwrap_or(trimmed.len());
    &trimmed[start..]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The pyc file name CPython's `cache_from_source` builds from the tail, in
/// its own terms: `base, sep, rest = tail.rpartition('.')`, then
/// `(base or rest) + sep + tag`, the optimization, `.pyc`.
fn expected_name(tail: &[u8], tag: &str, opt: &str) -> Vec<u8> {
    let (base, sep, rest) = match tail.iter().rposition(|&b| b == b'.') {
        Some(dot) => (&tail[..dot], &b"."[..], &tail[dot + 1..]),
        None => (&b""[..], &b""[..], tail),
    };
    let stem = if base.is_empty() { rest } else { base };
    let opt = if opt.is_empty() {
        String::new()
    } else {
        format!(".opt-{opt}")
    };
    [stem, sep, tag.as_bytes(), opt.as_bytes(), b".pyc"].concat()
}

/// `layout.cache_path(source, opt)` for any source bytes (`..`, `//`, empty,
/// non-UTF-8, long). `opt` must be ASCII alphanumeric (CPython raises
/// otherwise) and `layout.cwd` absolute, as `os.getcwd()` is.
///
/// - `-b`: the source plus `c`.
/// - The file name ends in `.pyc`, holds the cache tag, and is the one
///   CPython builds from the source's last component, with or without a
///   prefix; the directory does not depend on the optimization.
/// - No prefix (or 3.7, which has none): the pyc is in a `__pycache__`
///   directly under the source's directory as spelled.
/// - A prefix: the pyc starts with it, adds no `__pycache__`, and sits in the
///   source's absolute directory (cwd-joined for a relative one, one `./`
///   dropped from 3.12) with its leading `/` removed. It fails only before
///   3.14 with cwd `/` or a source directory of exactly `/`, and always
///   does for the latter.
pub(super) fn check_cache_path(layout: &Layout, source: &[u8], opt: &str) -> Result<(), String> {
    let context = || {
        format!(
            "{}.{} tag {:?} prefix {} cwd {} legacy {}: cache_path({}, {opt:?})",
            layout.version.0,
            layout.version.1,
            layout.cache_tag,
            layout.prefix.as_deref().map_or_else(|| "None".to_owned(), show),
            show(&layout.cwd),
            layout.legacy,
            show(source)
        )
    };
    let got = layout
        .cache_path(source, opt)
        .map(|p| p.into_os_string().as_bytes().to_vec());
    let shown = |got: &Result<Vec<u8>, LayoutError>| match got {
        Ok(pyc) => show(pyc),
        Err(err) => format!("Err({err})"),
    };
    if layout.legacy {
        let want = [source, b"c"].concat();
        return ensure(got.as_ref() == Ok(&want), || {
            format!("{} = {}, want {}", context(), shown(&got), show(&want))
        });
    }
    let (head, tail) = match source.iter().rposition(|&b| b == b'/') {
        Some(i) => (&source[..i], &source[i + 1..]),
        None => (&b""[..], source),
    };
    let prefix = layout.prefix.as_deref().filter(|_| layout.version >= (3, 8));
    let Ok(pyc) = &got else {
        let cwd_is_root = layout.cwd == b"/";
        let may_fail = prefix.is_some() && layout.version < (3, 14) && (cwd_is_root || head == b"/");
        return ensure(may_fail, || format!("{} = {}", context(), shown(&got)));
    };
    let must_fail =
        prefix.is_some() && layout.version < (3, 14) && (head == b"/" || (head.is_empty() && layout.cwd == b"/"));
    ensure(!must_fail, || format!("{} = {}, want IndexError", context(), show(pyc)))?;

    let (dir, name) = match pyc.iter().rposition(|&b| b == b'/') {
        Some(i) => (Some(&pyc[..i]), &pyc[i + 1..]),
        None => (None, &pyc[..]),
    };
    let want_name = expected_name(tail, &layout.cache_tag, opt);
    ensure(
        name.ends_with(b".pyc") && contains(name, layout.cache_tag.as_bytes()),
        || format!("{} = {}: no .pyc or no tag", context(), show(pyc)),
    )?;
    ensure(name == want_name, || {
        format!("{} = {}: file name, want {}", context(), show(pyc), show(&want_name))
    })?;
    let plain = layout
        .cache_path(source, "")
        .map(|p| p.into_os_string().as_bytes().to_vec());
    let plain_dir = plain
        .as_ref()
        .ok()
        .and_then(|p| p.iter().rposition(|&b| b == b'/').map(|i| &p[..i]));
    ensure(plain_dir == dir, || {
        format!(
            "{} = {}: other directory than with no optimization, {}",
            context(),
            show(pyc),
            shown(&plain)
        )
    })?;

    let Some(prefix) = prefix else {
        let want_dir = if head.is_empty() {
            b"__pycache__".to_vec()
        } else {
            [trim_end_slashes(head), b"/__pycache__"].concat()
        };
        return ensure(dir == Some(&want_dir[..]), || {
            format!("{} = {}: not in {}", context(), show(pyc), show(&want_dir))
        });
    };
    let pycache = b"__pycache__";
    let anywhere = [prefix, &layout.cwd, source].iter().any(|part| contains(part, pycache));
    ensure(anywhere || !contains(pyc, pycache), || {
        format!("{} = {}: __pycache__ with a prefix", context(), show(pyc))
    })?;
    // `_path_join(prefix, head, name)`: an empty prefix is dropped, `/` ends
    // up as a leading separator.
    let below_prefix = if prefix.is_empty() {
        Some(&pyc[..]).filter(|p| p.first() != Some(&b'/'))
    } else {
        pyc.strip_prefix(&[trim_end_slashes(prefix), b"/"].concat()[..])
    };
    let Some(below_prefix) = below_prefix else {
        return Err(format!("{} = {}: not under the prefix", context(), show(pyc)));
    };
    let absolute = if head.starts_with(b"/") {
        head.to_vec()
    } else {
        let head = match head.strip_prefix(b"./") {
            Some(rest) if layout.version >= (3, 12) => rest,
            _ => head,
        };
        let cwd = trim_end_slashes(&layout.cwd);
        if head.is_empty() {
            cwd.to_vec()
        } else {
            [cwd, b"/", trim_end_slashes(head)].concat()
        }
    };
    let mirrored = trim_slashes(&absolute);
    let want = if mirrored.is_empty() {
        name.to_vec()
    } else {
        [mirrored, b"/", name].concat()
    };
    ensure(below_prefix == want, || {
        format!("{} = {}: below the prefix, want {}", context(), show(pyc), show(&want))
    })
}
