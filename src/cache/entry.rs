//! One cache entry on disk: what a compile gave for one key, with the key
//! and a checksum so a truncated, corrupt or misplaced file is recognised
//! and never written into a pyc.
//!
//! Layout (little-endian):
//!
//! | bytes  | what |
//! | ---    | --- |
//! | 0..8   | `PRECOMPC` |
//! | 8      | format version (1) |
//! | 9      | kind: 0 code, 1 compile failure, 2 marshal failure |
//! | 10..16 | zero |
//! | 16..48 | the key this entry answers |
//! | 48..56 | payload length |
//! | 56..88 | BLAKE3 of bytes 0..56 and the payload |
//! | 88..   | payload: marshalled code, or the failure's message (UTF-8) |

use crate::backend::{CompileFailure, FailureKind};

const MAGIC: &[u8; 8] = b"PRECOMPC";
const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 88;

/// The BLAKE3 digest naming an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// Lower-case hex, as the entry's file name.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a compile gave, in the form worth keeping: only results that the
/// same inputs give again (code, and compile or marshal failures).
pub type Stored = Result<Vec<u8>, CompileFailure>;

/// Whether a compile result may be kept: timeouts, crashed workers and what
/// native cannot compile say nothing certain about the next try.
pub fn cacheable(result: &Stored) -> bool {
    match result {
        Ok(_) => true,
        Err(failure) => matches!(failure.kind, FailureKind::Compile | FailureKind::Marshal),
    }
}

/// The file's bytes for `result` (which must be [`cacheable`]).
pub fn encode(key: &Key, result: &Stored) -> Vec<u8> {
    let (kind, payload): (u8, &[u8]) = match result {
        Ok(code) => (0, code),
        Err(f) if f.kind == FailureKind::Compile => (1, f.message.as_bytes()),
        Err(f) => (2, f.message.as_bytes()),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let checksum = checksum(&out, payload);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(payload);
    out
}

/// Why a file is not a valid entry for the key asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Shorter than its header or its payload says.
    Truncated,
    /// Not an entry of this format (or of another version).
    Foreign,
    /// An entry, but for another key (copied or renamed).
    OtherKey,
    /// The checksum does not match: bits changed.
    Corrupt,
}

/// The result stored in `bytes`, if they are a complete, intact entry for
/// `key`.
pub fn decode(key: &Key, bytes: &[u8]) -> Result<Stored, Invalid> {
    if bytes.len() < HEADER_LEN {
        return Err(if bytes.starts_with(&MAGIC[..bytes.len().min(8)]) {
            Invalid::Truncated
        } else {
            Invalid::Foreign
        });
    }
    if &bytes[..8] != MAGIC || bytes[8] != VERSION || bytes[10..16] != [0; 6] {
        return Err(Invalid::Foreign);
    }
    let length = u64::from_le_bytes(bytes[48..56].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if (payload.len() as u64) < length {
        return Err(Invalid::Truncated);
    }
    if payload.len() as u64 != length {
        return Err(Invalid::Corrupt);
    }
    if checksum(&bytes[..56], payload) != bytes[56..HEADER_LEN] {
        return Err(Invalid::Corrupt);
    }
    if bytes[16..48] != key.0 {
        return Err(Invalid::OtherKey);
    }
    let message = || String::from_utf8(payload.to_vec()).map_err(|_| Invalid::Corrupt);
    match bytes[9] {
        0 => Ok(Ok(payload.to_vec())),
        1 => Ok(Err(CompileFailure {
            kind: FailureKind::Compile,
            message: message()?,
        })),
        2 => Ok(Err(CompileFailure {
            kind: FailureKind::Marshal,
            message: message()?,
        })),
        _ => Err(Invalid::Foreign),
    }
}

fn checksum(header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = Key([7; 32]);

    fn syntax_error() -> Stored {
        Err(CompileFailure {
            kind: FailureKind::Compile,
            message: "  File \"x.py\", line 1\n    def\n       ^\nSyntaxError: invalid syntax\n".to_owned(),
        })
    }

    #[test]
    fn every_cacheable_result_comes_back() {
        let results = [
            Ok(b"\xe3\x00\x00code".to_vec()),
            Ok(Vec::new()),
            syntax_error(),
            Err(CompileFailure {
                kind: FailureKind::Marshal,
                message: "ValueError: object too deeply nested to marshal".to_owned(),
            }),
        ];
        for result in results {
            assert!(cacheable(&result));
            assert_eq!(decode(&KEY, &encode(&KEY, &result)), Ok(result));
        }
    }

    #[test]
    fn uncertain_failures_are_not_kept() {
        for kind in [
            FailureKind::Timeout,
            FailureKind::WorkerCrashed,
            FailureKind::Unsupported,
        ] {
            let failure = CompileFailure {
                kind,
                message: String::new(),
            };
            assert!(!cacheable(&Err(failure)));
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = encode(&KEY, &Ok(b"some marshalled code".to_vec()));
        for length in 0..bytes.len() {
            let verdict = decode(&KEY, &bytes[..length]);
            assert!(
                matches!(verdict, Err(Invalid::Truncated)),
                "{length} bytes: {verdict:?}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = encode(&KEY, &syntax_error());
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&KEY, &damaged).is_err(), "bit {bit} flipped and accepted");
        }
    }

    #[test]
    fn an_entry_answers_only_its_own_key() {
        let bytes = encode(&KEY, &Ok(b"code".to_vec()));
        assert_eq!(decode(&Key([8; 32]), &bytes), Err(Invalid::OtherKey));
    }

    #[test]
    fn other_files_are_foreign() {
        let pyc = b"\xa7\x0d\x0d\x0a\x00\x00\x00\x00 a pyc is not an entry, however long it is";
        assert_eq!(decode(&KEY, pyc), Err(Invalid::Foreign));
        let mut bytes = encode(&KEY, &Ok(b"code".to_vec()));
        bytes[8] = 2;
        assert_eq!(decode(&KEY, &bytes), Err(Invalid::Foreign));
        assert_eq!(decode(&KEY, b""), Err(Invalid::Truncated));
    }

    #[test]
    fn extra_bytes_are_corruption() {
        let mut bytes = encode(&KEY, &Ok(b"code".to_vec()));
        bytes.push(0);
        assert_eq!(decode(&KEY, &bytes), Err(Invalid::Corrupt));
    }
}
