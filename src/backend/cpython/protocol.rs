//! The frames exchanged with `worker.py` over its stdin/stdout pipes. The
//! layout is documented at the top of `worker.py`; both sides must agree.

use crate::backend::CompileJob;

/// job u64 | optimize i64 | len(filename) u64 | len(source) u64.
pub(super) const REQUEST_HEADER_LEN: usize = 32;
/// job u64 | status u8 | len(payload) u64.
pub(super) const RESPONSE_HEADER_LEN: usize = 17;
/// Precedes the Ready frame, so that whatever reached stdout before the
/// worker script took the pipe over (prints from `.pth` files or
/// sitecustomize) can be skipped.
pub(super) const READY_MARKER: &[u8] = b"\0precompyle-worker\0";
/// Job ids with this bit set ask the worker to sleep `filename` seconds before
/// compiling (test hook for timeouts and crashes); real jobs never set it.
#[cfg(test)]
pub(super) const SLEEP_FIRST: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// The payload is `marshal.dumps(code)`.
    Code,
    /// The payload is the PyCompileError text, UTF-8.
    CompileError,
    /// The payload is `Cls: str(exc)` of what `marshal.dumps` raised.
    MarshalError,
    /// Start-up handshake; the payload is `major.minor.micro pid`.
    Ready,
    /// No answer: compile the job again in a fresh worker.
    Redo,
}

impl Status {
    fn from_byte(byte: u8) -> Option<Status> {
        match byte {
            0 => Some(Status::Code),
            1 => Some(Status::CompileError),
            2 => Some(Status::MarshalError),
            3 => Some(Status::Ready),
            4 => Some(Status::Redo),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ResponseHeader {
    pub job: u64,
    pub status: Status,
    /// The worker exited after this answer (3.13+: the job imported a module,
    /// so the process no longer looks like a fresh `python -m py_compile`).
    pub retire: bool,
    pub payload_len: u64,
}

/// Status bit for [`ResponseHeader::retire`].
const RETIRE: u8 = 0x80;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown status byte {0} in a worker response")]
pub(super) struct UnknownStatus(u8);

/// The request header and file name; the source follows it unchanged, so it is
/// written separately instead of being copied into this buffer.
pub(super) fn request_head(job_id: u64, job: &CompileJob<'_>) -> Vec<u8> {
    let mut head = Vec::with_capacity(REQUEST_HEADER_LEN + job.filename.len());
    head.extend_from_slice(&job_id.to_le_bytes());
    head.extend_from_slice(&job.optimize.to_le_bytes());
    head.extend_from_slice(&(job.filename.len() as u64).to_le_bytes());
    head.extend_from_slice(&(job.source.len() as u64).to_le_bytes());
    head.extend_from_slice(job.filename);
    head
}

pub(super) fn parse_response_header(bytes: &[u8; RESPONSE_HEADER_LEN]) -> Result<ResponseHeader, UnknownStatus> {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let status = Status::from_byte(bytes[8] & !RETIRE).ok_or(UnknownStatus(bytes[8]))?;
    Ok(ResponseHeader {
        job: word(0),
        status,
        retire: bytes[8] & RETIRE != 0,
        payload_len: word(9),
    })
}

/// The Ready payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ready {
    /// `sys.version_info[:3]`.
    pub version: (u32, u32, u32),
    /// The Python process's pid.
    pub pid: u32,
}

pub(super) fn parse_ready(payload: &[u8]) -> Option<Ready> {
    let text = std::str::from_utf8(payload).ok()?;
    let (version, pid) = text.split_once(' ')?;
    let mut parts = version.split('.').map(str::parse::<u32>);
    let triple = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Ready {
        version: triple,
        pid: pid.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_layout() {
        let job = CompileJob {
            source: b"x = 1\n\n",
            filename: b"a\xffb.py",
            optimize: -1,
        };
        let head = request_head(0x0102, &job);
        let mut expected = vec![2, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"a\xffb.py");
        assert_eq!(head, expected);
    }

    #[test]
    fn response_headers() {
        let mut bytes = [0u8; RESPONSE_HEADER_LEN];
        bytes[0] = 9;
        bytes[8] = 2;
        bytes[9] = 0x10;
        bytes[10] = 0x01;
        let expected = ResponseHeader {
            job: 9,
            status: Status::MarshalError,
            retire: false,
            payload_len: 0x0110,
        };
        assert_eq!(parse_response_header(&bytes), Ok(expected));
        bytes[8] = 0x80;
        let retired_code = ResponseHeader {
            status: Status::Code,
            retire: true,
            ..expected
        };
        assert_eq!(parse_response_header(&bytes), Ok(retired_code));
        bytes[8] = 7;
        assert_eq!(parse_response_header(&bytes), Err(UnknownStatus(7)));
    }

    #[test]
    fn ready_payloads() {
        let ready = |version, pid| Some(Ready { version, pid });
        let cases: &[(&[u8], Option<Ready>)] = &[
            (b"3.11.7 4242", ready((3, 11, 7), 4242)),
            (b"3.13.0 1", ready((3, 13, 0), 1)),
            (b"3.13 1", None),
            (b"3.13.0.1 1", None),
            (b"3.13.0", None),
            (b"Ready", None),
        ];
        for (payload, expected) in cases {
            assert_eq!(parse_ready(payload), *expected, "{payload:?}");
        }
    }
}
