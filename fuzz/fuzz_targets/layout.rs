//! `Layout::cache_path` on arbitrary bytes for every supported version, with
//! and without a prefix, legacy or not: the checks of
//! `src/layout/properties.rs`, included as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precompyle::layout::{Layout, LayoutError};

#[path = "../../src/layout/properties.rs"]
mod properties;

/// The optimization suffixes compileall passes, and other alphanumeric ones
/// (anything else is CPython's ValueError, a precondition of `cache_path`).
const OPTIMIZATIONS: [&str; 8] = ["", "", "1", "2", "0", "abc", "Z9", "opt"];

fuzz_target!(|data: &[u8]| {
    // [minor][flags][source NUL prefix NUL cwd]; flags: bit 0 a prefix,
    // bits 1-2 both set legacy (-b), bits 3-5 the optimization.
    let [minor, flags, rest @ ..] = data else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let source = parts.next().unwrap_or_default();
    let prefix = parts.next().unwrap_or_default();
    // os.getcwd() is absolute and normalised: `/` and non-empty names.
    let mut cwd = Vec::new();
    for name in parts.next().unwrap_or_default().split(|&b| b == b'/') {
        if !name.is_empty() && name != b"." && name != b".." {
            cwd.push(b'/');
            cwd.extend_from_slice(name);
        }
    }
    if cwd.is_empty() {
        cwd.push(b'/');
    }
    let minor = 7 + u32::from(minor % 8);
    let layout = Layout {
        cache_tag: format!("cpython-3{minor}"),
        version: (3, minor),
        prefix: (flags & 1 == 1).then(|| prefix.to_vec()),
        cwd,
        legacy: flags & 6 == 6,
    };
    let opt = OPTIMIZATIONS[usize::from(flags >> 3) % OPTIMIZATIONS.len()];
    if let Err(broken) = properties::check_cache_path(&layout, source, opt) {
        panic!("{broken}");
    }
});
