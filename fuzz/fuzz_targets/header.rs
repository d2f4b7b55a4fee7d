//! Header parsing and freshness on arbitrary bytes: the checks of
//! `src/pyc/properties.rs`, included as they are, on headers built from the
//! input's first bytes and "existing pyc" bytes made of the rest.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use precompyle::pyc::{
    HEADER_LEN, HashAlgo, InvalidationMode, Staleness, Stamp, check_fresh, compare_header, header, read_header,
    source_hash, timestamp_stamp,
};

#[path = "../../src/pyc/properties.rs"]
mod properties;

/// Bytes `at..at + N` of the input, zero-padded past its end.
fn field<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = data.get(at + i).copied().unwrap_or(0);
    }
    out
}

/// One directory per fuzzing process, under `$TMPDIR` (scripts/fuzz.sh
/// points it at a scratch directory it removes).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("precompyle-fuzz-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    // [selector][magic: 4][stamp: 8][existing pyc bytes…]
    let selector = field::<1>(data, 0)[0];
    let magic = field::<4>(data, 1);
    let stamp_bytes = field::<8>(data, 5);
    let existing = data.get(13..).unwrap_or_default();
    let (mode, stamp) = match selector % 3 {
        0 => {
            let (mtime, size) = stamp_bytes.split_at(4);
            let stamp = Stamp::Timestamp {
                mtime: u32::from_le_bytes(mtime.try_into().unwrap()),
                size: u32::from_le_bytes(size.try_into().unwrap()),
            };
            (InvalidationMode::Timestamp, stamp)
        }
        1 => (InvalidationMode::CheckedHash, Stamp::Hash(stamp_bytes)),
        _ => (InvalidationMode::UncheckedHash, Stamp::Hash(stamp_bytes)),
    };
    let expected = header(magic, mode, stamp);
    let fail = |what: String| panic!("{what}");
    properties::check_built_header(magic, mode, stamp, existing, selector).unwrap_or_else(fail);
    properties::check_comparison(existing, &expected).unwrap_or_else(fail);
    // Any 16 bytes as the expected header, too.
    properties::check_comparison(existing, &field::<HEADER_LEN>(data, 0)).unwrap_or_else(fail);
    let sec = i64::from_le_bytes(stamp_bytes);
    let nsec = i64::from_le_bytes(field::<8>(existing, 0));
    let size = u64::from_le_bytes(field::<8>(existing, 8));
    properties::check_timestamp(sec, nsec, size).unwrap_or_else(fail);
    properties::check_timestamp(sec >> 23, nsec.rem_euclid(1_000_000_000), size).unwrap_or_else(fail);
    let algo = if selector & 4 == 0 {
        HashAlgo::SipHash13
    } else {
        HashAlgo::SipHash24
    };
    let at = usize::from(u16::from_le_bytes(field::<2>(existing, 0)));
    properties::check_source_edit(magic, algo, existing, at, selector).unwrap_or_else(fail);
    // A file costs ~0.1 ms; only inputs with the top bit set pay it.
    if selector & 0x80 != 0 {
        properties::check_file(scratch(), existing, &expected).unwrap_or_else(fail);
    }
});
