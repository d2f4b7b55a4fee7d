//! What must hold for every input of the header functions, each check
//! returning what broke. Shared by the property tests (`proptests.rs`) and
//! the cargo-fuzz target `fuzz/fuzz_targets/header.rs`, which includes this
//! file by `#[path]`: it names only items both reach as `super::…`.

use std::path::Path;

use super::{
    HEADER_LEN, HashAlgo, InvalidationMode, Staleness, Stamp, check_fresh, compare_header, header, read_header,
    source_hash, timestamp_stamp,
};

fn ensure(holds: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(what()) }
}

/// The field a byte of the header belongs to, as the staleness a
/// difference there means (pyc-format.md §1.1, checks in §5.1's order).
fn reason_at(at: usize, hash_based: bool) -> Staleness {
    match at {
        0..4 => Staleness::OtherMagic,
        4..8 => Staleness::ModeDiffers,
        _ if hash_based => Staleness::HashDiffers,
        8..12 => Staleness::MtimeDiffers,
        _ => Staleness::SizeDiffers,
    }
}

/// `compare_header` on any bytes: fresh exactly when the first 16 bytes are
/// the expected ones; otherwise the first differing byte names the reason;
/// fewer than 16 bytes are `Unreadable`.
pub(super) fn check_comparison(existing: &[u8], expected: &[u8; HEADER_LEN]) -> Result<(), String> {
    let got = compare_header(existing, expected);
    let want = match existing.get(..HEADER_LEN) {
        None => Err(Staleness::Unreadable),
        Some(head) => match head.iter().zip(expected).position(|(a, b)| a != b) {
            None => Ok(()),
            // Bit 0 of the flags word: hash-based (§1.3).
            Some(at) => Err(reason_at(at, expected[4] & 1 == 1)),
        },
    };
    ensure(got == want, || {
        format!("compare_header({existing:02x?}, {expected:02x?}) = {got:?}, want {want:?}")
    })
}

/// A header built by `header()` holds its fields where §1.1 puts them,
/// compares equal to itself (with or without a body after it), is
/// `Unreadable` when cut short, and goes stale with its field's reason after
/// a change of any one byte (by `^ flip`, and by `^ 0xff`).
pub(super) fn check_built_header(
    magic: [u8; 4],
    mode: InvalidationMode,
    stamp: Stamp,
    body: &[u8],
    flip: u8,
) -> Result<(), String> {
    let built = header(magic, mode, stamp);
    let context = || format!("header({magic:02x?}, {mode:?}, {stamp:?}) = {built:02x?}");
    ensure(built[..4] == magic, || format!("{}: magic not at 0..4", context()))?;
    let flags = u32::from_le_bytes(built[4..8].try_into().unwrap());
    let want_flags = match mode {
        InvalidationMode::Timestamp => 0,
        InvalidationMode::UncheckedHash => 1,
        InvalidationMode::CheckedHash => 3,
    };
    ensure(flags == want_flags, || {
        format!("{}: flags {flags}, want {want_flags}", context())
    })?;
    let stamp_bytes: Vec<u8> = match stamp {
        Stamp::Timestamp { mtime, size } => [mtime.to_le_bytes(), size.to_le_bytes()].concat(),
        Stamp::Hash(hash) => hash.to_vec(),
    };
    ensure(built[8..] == stamp_bytes[..], || {
        format!("{}: stamp not at 8..16", context())
    })?;
    let same = compare_header(&[&built[..], body].concat(), &built);
    ensure(same == Ok(()), || {
        format!("{}: itself plus a body is {same:?}", context())
    })?;
    for len in 0..HEADER_LEN {
        let short = compare_header(&built[..len], &built);
        ensure(short == Err(Staleness::Unreadable), || {
            format!("{}: its first {len} bytes are {short:?}", context())
        })?;
    }
    let hash_based = mode != InvalidationMode::Timestamp;
    for at in 0..HEADER_LEN {
        for flip in [flip, 0xff].into_iter().filter(|&f| f != 0) {
            let mut changed = built;
            changed[at] ^= flip;
            let got = compare_header(&changed, &built);
            let want = Err(reason_at(at, hash_based));
            ensure(got == want, || {
                format!("{}: byte {at} ^ {flip:#04x} gives {got:?}, want {want:?}", context())
            })?;
        }
    }
    Ok(())
}

/// `read_header` and `check_fresh` on a real file of `contents` in `dir`:
/// the file's first 16 bytes (or all of a shorter file), and the verdict of
/// `compare_header` on them. A missing file, or a path through a file, is
/// `Missing`.
pub(super) fn check_file(dir: &Path, contents: &[u8], expected: &[u8; HEADER_LEN]) -> Result<(), String> {
    let pyc = dir.join("x.pyc");
    // A new file each time: ext4 flushes a truncated file's data on close
    // (auto_da_alloc), which made a rewrite cost 5 ms instead of 0.1 ms.
    let _ = std::fs::remove_file(&pyc);
    std::fs::write(&pyc, contents).map_err(|e| format!("writing {}: {e}", pyc.display()))?;
    let read = read_header(&pyc).map_err(|e| format!("read_header: {e}"))?;
    let want_read = &contents[..contents.len().min(HEADER_LEN)];
    ensure(read == want_read, || {
        format!("read_header of {contents:02x?} gave {read:02x?}")
    })?;
    let (got, want) = (check_fresh(&pyc, expected), compare_header(contents, expected));
    ensure(got == want, || {
        format!("check_fresh of {contents:02x?} vs {expected:02x?}: {got:?}, compare_header says {want:?}")
    })?;
    for absent in [dir.join("missing.pyc"), pyc.join("below-a-file.pyc")] {
        let got = check_fresh(&absent, expected);
        ensure(got == Err(Staleness::Missing), || {
            format!("{}: {got:?}", absent.display())
        })?;
    }
    Ok(())
}

/// `timestamp_stamp` keeps the size modulo 2**32 and stores `int(st_mtime)`,
/// which for a real `st_mtime` (nanoseconds below 10**9, seconds well inside
/// a double's exact range) is the second itself or, by rounding up or
/// truncating a negative time toward zero, the next one. Any input at all
/// must not panic.
pub(super) fn check_timestamp(sec: i64, nsec: i64, size: u64) -> Result<(), String> {
    let Stamp::Timestamp { mtime, size: stored } = timestamp_stamp(sec, nsec, size) else {
        return Err(format!("timestamp_stamp({sec}, {nsec}, {size}) is not a timestamp"));
    };
    let context = || format!("timestamp_stamp({sec}, {nsec}, {size}) = mtime {mtime}, size {stored}");
    ensure(u64::from(stored) == size % (1 << 32), || {
        format!("{}: size not mod 2**32", context())
    })?;
    if !(0..1_000_000_000).contains(&nsec) || sec.unsigned_abs() > 1 << 40 {
        return Ok(());
    }
    let (this, next) = (sec as u32, sec.wrapping_add(1) as u32);
    ensure(mtime == this || mtime == next, || {
        format!("{}: not {this} or {next}", context())
    })?;
    let want = match (sec >= 0, nsec) {
        (_, 0) => Some(this),
        (true, 0..500_000_000) => Some(this),
        (false, 500_000_000..) => Some(next),
        _ => None,
    };
    ensure(want.is_none_or(|want| mtime == want), || {
        format!("{}: want {want:?}", context())
    })
}

/// A checked-hash header goes stale (`HashDiffers`) when any one byte of the
/// source changes, and stays fresh for the unchanged source: a hash that
/// ignored some bytes would miss edits. (SipHash collisions are 2**-64.)
pub(super) fn check_source_edit(
    magic: [u8; 4],
    algo: HashAlgo,
    source: &[u8],
    at: usize,
    flip: u8,
) -> Result<(), String> {
    let stamp_of = |bytes: &[u8]| Stamp::Hash(source_hash(magic, algo, bytes));
    let written = header(magic, InvalidationMode::CheckedHash, stamp_of(source));
    let again = header(magic, InvalidationMode::CheckedHash, stamp_of(source));
    ensure(compare_header(&written, &again) == Ok(()), || {
        format!("source_hash({magic:02x?}, {algo:?}) of {source:02x?} is not repeatable")
    })?;
    if source.is_empty() || flip == 0 {
        return Ok(());
    }
    let mut edited = source.to_vec();
    edited[at % source.len()] ^= flip;
    let now = header(magic, InvalidationMode::CheckedHash, stamp_of(&edited));
    let got = compare_header(&written, &now);
    ensure(got == Err(Staleness::HashDiffers), || {
        format!("{algo:?} {magic:02x?}: {source:02x?} edited to {edited:02x?} is {got:?}")
    })
}
