//! Byte classes of Python source and the scans the guard's scanner skips
//! runs of bytes with: names and string bodies sixteen bytes at a time
//! (SSE2 on x86-64, the tables elsewhere), blanks and the rest by table.

pub(super) fn word_at(text: &[u8], start: usize) -> &[u8] {
    let mut end = start;
    // Sixteen bytes at a time while that many are left: most names end
    // within the first block.
    while let Some(block) = text.get(end..end + 16) {
        let words = word_bytes(block.try_into().expect("sixteen bytes"));
        end += words.trailing_ones() as usize;
        if words != u16::MAX {
            return &text[start..end];
        }
    }
    &text[start..skip_while(text, end, &WORD)]
}

/// Bit `k` set when `block[k]` is a word byte (`WORD`), with SSE2 (part of
/// every x86-64): `[0-9A-Za-z_]` by range tests, `0x80..` by sign.
#[cfg(target_arch = "x86_64")]
pub(super) fn word_bytes(block: &[u8; 16]) -> u16 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    // An unsigned range test `lo <= b < lo + n`: shift the range to start at
    // -128, then compare signed.
    // SAFETY: SSE2 is baseline on x86-64; the load is unaligned and reads
    // exactly the sixteen bytes of `block`.
    unsafe {
        let splat = |b: u8| _mm_set1_epi8(b as i8);
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let in_range = |x: __m128i, lo: u8, n: u8| {
            _mm_cmplt_epi8(_mm_add_epi8(x, splat(0x80u8.wrapping_sub(lo))), splat(0x80 + n))
        };
        let high = _mm_cmplt_epi8(v, _mm_setzero_si128());
        let digit = in_range(v, b'0', 10);
        let letter = in_range(_mm_or_si128(v, splat(0x20)), b'a', 26);
        let underscore = _mm_cmpeq_epi8(v, splat(b'_'));
        let words = _mm_or_si128(_mm_or_si128(high, digit), _mm_or_si128(letter, underscore));
        _mm_movemask_epi8(words) as u16
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn word_bytes(block: &[u8; 16]) -> u16 {
    class_bits(block, &WORD)
}

/// Bit `k` set when `block[k]` is in `class`: the vector tests without
/// vectors, what other architectures run and what the tests hold the
/// vector versions to.
#[cfg(any(test, not(target_arch = "x86_64")))]
pub(super) fn class_bits(block: &[u8; 16], class: &Class) -> u16 {
    block
        .iter()
        .enumerate()
        .fold(0, |bits, (k, &b)| bits | (u16::from(class[usize::from(b)]) << k))
}

/// Byte classes as 256-entry tables: one load per byte in the loops that
/// skip over runs, the bulk of any source.
pub(super) type Class = [bool; 256];

/// A `Class` of the bytes `b` for which the expression holds, built at
/// compile time.
macro_rules! class {
    (|$b:ident| $member:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $member;
            i += 1;
        }
        table
    }};
}

pub(super) const WORD: Class = class!(|b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80);
/// A name (or keyword, or string prefix) starts here: a word byte, not a digit.
pub(super) const NAME_START: Class = class!(|b| b.is_ascii_alphabetic() || b == b'_' || b >= 0x80);
/// First letters of the keywords `word` counts.
pub(super) const KEYWORD_START: Class = class!(|b| matches!(b, b'n' | b'a' | b'o' | b'i' | b'e' | b'l' | b'y' | b'f'));
pub(super) const BLANK: Class = class!(|b| matches!(b, b' ' | b'\t' | b'\x0c'));
/// Bytes inside a plain string that neither end it nor escape (the quote
/// byte itself is checked by the caller).
pub(super) const TRIPLE_BODY: Class = class!(|b| !matches!(b, b'\\' | b'\'' | b'"'));
pub(super) const SINGLE_BODY: Class = class!(|b| !matches!(b, b'\\' | b'\'' | b'"' | b'\n' | b'\r'));

/// The index of the first byte at or after `i` not in `class`.
pub(super) fn skip_while(text: &[u8], i: usize, class: &Class) -> usize {
    text.get(i..)
        .and_then(|rest| rest.iter().position(|&b| !class[usize::from(b)]))
        .map_or(text.len(), |n| i + n)
}

/// The index of the first byte at or after `i` that may end or escape a
/// plain string's body (not in `TRIPLE_BODY` or `SINGLE_BODY`): sixteen
/// bytes at a time while that many are left, docstrings being long.
pub(super) fn skip_body(text: &[u8], mut i: usize, triple: bool) -> usize {
    while let Some(block) = text.get(i..i + 16) {
        let stops = string_stops(block.try_into().expect("sixteen bytes"), triple);
        if stops != 0 {
            return i + stops.trailing_zeros() as usize;
        }
        i += 16;
    }
    skip_while(text, i, if triple { &TRIPLE_BODY } else { &SINGLE_BODY })
}

/// Bit `k` set when `block[k]` is not in the body class of the string
/// (`TRIPLE_BODY`, `SINGLE_BODY`), with SSE2.
#[cfg(target_arch = "x86_64")]
pub(super) fn string_stops(block: &[u8; 16], triple: bool) -> u16 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: SSE2 is baseline on x86-64; the load is unaligned and reads
    // exactly the sixteen bytes of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let mut stops = _mm_or_si128(_mm_or_si128(is(b'\\'), is(b'\'')), is(b'"'));
        if !triple {
            stops = _mm_or_si128(stops, _mm_or_si128(is(b'\n'), is(b'\r')));
        }
        _mm_movemask_epi8(stops) as u16
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn string_stops(block: &[u8; 16], triple: bool) -> u16 {
    !class_bits(block, if triple { &TRIPLE_BODY } else { &SINGLE_BODY })
}

pub(super) fn is_string_prefix(word: &[u8]) -> bool {
    (1..=2).contains(&word.len()) && word.iter().all(|b| b"rRbBuUfFtT".contains(b))
}
