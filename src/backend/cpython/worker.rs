//! One worker process: the target interpreter running the embedded
//! `worker.py`, one request in flight at a time.

use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::pipe::{self, PipeError};
use super::protocol::{self, RESPONSE_HEADER_LEN, ResponseHeader, Status};
use crate::backend::CompileJob;

const WORKER_SCRIPT: &str = include_str!("worker.py");

/// The script every worker runs: what it does decides the bytes, so the
/// compile cache keys on it.
pub fn worker_script() -> &'static str {
    WORKER_SCRIPT
}

/// How long a freshly started interpreter may take to say Ready (site
/// imports on a cold disk can be slow; a wrong binary fails long before).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a worker whose stdin we closed may take to exit before SIGKILL.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Bytes of start-up stdout we are willing to skip before the Ready frame.
const MAX_STARTUP_NOISE: usize = 1 << 20;

/// What the worker answered for one file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    Code(Vec<u8>),
    CompileError(String),
    MarshalError(String),
    /// Compile this file again in a fresh worker (3.13+, see `worker.py`).
    Redo,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub reply: Reply,
    /// The worker has exited after answering and must be replaced.
    pub retired: bool,
}

/// Why a worker could not answer; the worker must then be discarded.
#[derive(Debug, thiserror::Error)]
pub(super) enum WorkerFault {
    #[error("the worker process died")]
    Died,
    #[error("the worker did not answer in time")]
    TimedOut,
    #[error("I/O error on the worker's pipes: {0}")]
    Io(io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<PipeError> for WorkerFault {
    fn from(err: PipeError) -> WorkerFault {
        match err {
            PipeError::Closed => WorkerFault::Died,
            PipeError::TimedOut => WorkerFault::TimedOut,
            PipeError::Io(err) => WorkerFault::Io(err),
        }
    }
}

pub(super) struct Worker {
    child: Child,
    /// `None` once closed, which asks the worker to exit.
    requests: Option<ChildStdin>,
    responses: ChildStdout,
    /// The Python process's own pid once it said Ready (a wrapper script
    /// that forks would make it differ from the child we spawned).
    python_pid: u32,
    /// Where an answer's first read(2) lands: its header and, for most
    /// files, all of its payload.
    first_read: Box<[u8]>,
}

/// What one read(2) of an answer can take: a pipe holds 64 KiB unless
/// enlarged, and ~97% of the corpus's sources are smaller, their code too.
const FIRST_READ: usize = 64 << 10;

impl Worker {
    /// Starts the interpreter without waiting for it; see [`Worker::handshake`].
    ///
    /// No -I/-E/-S: the worker must see the environment (PYTHONOPTIMIZE,
    /// PYTHONWARNINGS, site) that `python -m compileall` would see, so that
    /// `sys.flags.optimize` and warning filters match.
    pub(super) fn spawn(python: &Path) -> io::Result<Worker> {
        let mut command = Command::new(python);
        // Frozenset constants are marshalled in hash order, and str hashes are
        // salted per process: without a fixed seed, 3.8-3.10 write different
        // bytes for the same file from run to run and worker to worker. A seed
        // the user chose is kept.
        if std::env::var_os("PYTHONHASHSEED").is_none() {
            command.env("PYTHONHASHSEED", "0");
        }
        // The prefix is ours to apply. In the worker it would only make the
        // interpreter compile its own start-up modules from source, which
        // changes its state and (3.12) the bytes it marshals.
        command.env_remove("PYTHONPYCACHEPREFIX");
        let mut child = command
            .arg("-c")
            .arg(WORKER_SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Compiler warnings go to stderr in compileall too.
            .stderr(Stdio::inherit())
            .spawn()?;
        let requests = child.stdin.take().expect("stdin is piped");
        let responses = child.stdout.take().expect("stdout is piped");
        let worker = Worker {
            python_pid: child.id(),
            child,
            requests: Some(requests),
            responses,
            first_read: vec![0; FIRST_READ].into_boxed_slice(),
        };
        for fd in [
            worker.requests.as_ref().expect("open").as_fd(),
            worker.responses.as_fd(),
        ] {
            pipe::set_nonblocking(fd)?;
        }
        Ok(worker)
    }

    pub(super) fn python_pid(&self) -> u32 {
        self.python_pid
    }

    /// Waits for the Ready frame; returns the interpreter's (major, minor,
    /// micro).
    pub(super) fn handshake(&mut self) -> Result<(u32, u32, u32), WorkerFault> {
        let deadline = Some(Instant::now() + HANDSHAKE_TIMEOUT);
        self.skip_to_ready_marker(deadline)?;
        let header = self.read_header(deadline)?;
        if header.status != Status::Ready || header.job != 0 || header.payload_len > 256 {
            return Err(WorkerFault::Protocol(format!("expected Ready, got {header:?}")));
        }
        let payload = self.read_payload(header.payload_len, deadline)?;
        match protocol::parse_ready(&payload) {
            Some(ready) => {
                self.python_pid = ready.pid;
                Ok(ready.version)
            }
            _ => Err(WorkerFault::Protocol(format!(
                "bad Ready payload {:?}",
                String::from_utf8_lossy(&payload)
            ))),
        }
    }

    /// Start-up output that is not ours goes to our stderr, where the worker's
    /// later stray output goes too.
    fn skip_to_ready_marker(&mut self, deadline: Option<Instant>) -> Result<(), WorkerFault> {
        let mut seen = Vec::new();
        while !seen.ends_with(protocol::READY_MARKER) {
            if seen.len() > MAX_STARTUP_NOISE {
                return Err(WorkerFault::Protocol(
                    "no Ready frame in the worker's output".to_owned(),
                ));
            }
            let mut byte = [0u8];
            pipe::read_exact(&mut self.responses, &mut byte, deadline)?;
            seen.push(byte[0]);
        }
        let noise = &seen[..seen.len() - protocol::READY_MARKER.len()];
        if !noise.is_empty() {
            let _ = io::stderr().write_all(noise);
        }
        Ok(())
    }

    /// Sends one job and waits for its answer, all before `deadline`.
    pub(super) fn run(
        &mut self,
        job_id: u64,
        job: &CompileJob<'_>,
        deadline: Option<Instant>,
    ) -> Result<Answer, WorkerFault> {
        let requests = self.requests.as_mut().ok_or(WorkerFault::Died)?;
        // One writev(2) for the head and the source, which is not copied.
        let head = protocol::request_head(job_id, job);
        let mut request = [IoSlice::new(&head), IoSlice::new(job.source)];
        pipe::write_all_vectored(requests, &mut request, deadline)?;
        let (header, payload) = self.read_answer(job_id, deadline)?;
        let reply = match header.status {
            Status::Code => Reply::Code(payload),
            Status::CompileError => Reply::CompileError(into_text(payload)),
            Status::MarshalError => Reply::MarshalError(into_text(payload)),
            Status::Redo => Reply::Redo,
            Status::Ready => return Err(WorkerFault::Protocol("unexpected Ready".to_owned())),
        };
        Ok(Answer {
            reply,
            retired: header.retire,
        })
    }

    /// Reads the answer to job `job_id`: its header and, in the same
    /// read(2) for most files, its payload.
    fn read_answer(
        &mut self,
        job_id: u64,
        deadline: Option<Instant>,
    ) -> Result<(ResponseHeader, Vec<u8>), WorkerFault> {
        let first = &mut self.first_read;
        let got = pipe::read_at_least(&mut self.responses, first, RESPONSE_HEADER_LEN, deadline)?;
        let (head, early) = first[..got].split_at(RESPONSE_HEADER_LEN);
        let head: &[u8; RESPONSE_HEADER_LEN] = head.try_into().expect("split at the header's length");
        let header = header_of(head)?;
        // The echoed id proves the answer belongs to this request and that the
        // stream is still in step (checked before the length is trusted).
        if header.job != job_id {
            return Err(WorkerFault::Protocol(format!(
                "sent job {job_id}, got an answer for job {}",
                header.job
            )));
        }
        let len = payload_size(header.payload_len)?;
        // Nothing follows an answer until the next request.
        if early.len() > len {
            return Err(WorkerFault::Protocol(format!(
                "{} bytes after an answer of {len}",
                early.len() - len
            )));
        }
        let mut payload = vec![0u8; len];
        payload[..early.len()].copy_from_slice(early);
        pipe::read_exact(&mut self.responses, &mut payload[early.len()..], deadline)?;
        Ok((header, payload))
    }

    /// The handshake's reads, byte-exact after the marker: the Ready
    /// frame's status and size are checked before its payload is read.
    fn read_header(&mut self, deadline: Option<Instant>) -> Result<ResponseHeader, WorkerFault> {
        let mut bytes = [0u8; RESPONSE_HEADER_LEN];
        pipe::read_exact(&mut self.responses, &mut bytes, deadline)?;
        header_of(&bytes)
    }

    fn read_payload(&mut self, len: u64, deadline: Option<Instant>) -> Result<Vec<u8>, WorkerFault> {
        let len = payload_size(len)?;
        let mut payload = vec![0u8; len];
        pipe::read_exact(&mut self.responses, &mut payload, deadline)?;
        Ok(payload)
    }

    /// Kills the worker (a no-op if it already died) and reaps it. Returns how
    /// it ended, e.g. `killed by signal 11 (SIGSEGV)`.
    pub(super) fn kill(mut self) -> String {
        // An already dead child keeps its real status; SIGKILL to a zombie is ignored.
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => describe_exit(status),
            Err(err) => format!("could not be reaped: {err}"),
        }
    }

    /// Closing stdin is the shutdown request; the worker exits on EOF.
    pub(super) fn close_requests(&mut self) {
        self.requests = None;
    }
}

fn header_of(bytes: &[u8; RESPONSE_HEADER_LEN]) -> Result<ResponseHeader, WorkerFault> {
    protocol::parse_response_header(bytes).map_err(|err| WorkerFault::Protocol(err.to_string()))
}

fn payload_size(len: u64) -> Result<usize, WorkerFault> {
    usize::try_from(len).map_err(|_| WorkerFault::Protocol(format!("payload of {len} bytes")))
}

impl Drop for Worker {
    /// Never leave a zombie: ask politely, then insist.
    fn drop(&mut self) {
        self.close_requests();
        let give_up = Instant::now() + EXIT_GRACE;
        while Instant::now() < give_up {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker sends UTF-8 (backslashreplace'd); stay total anyway.
fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

pub(super) fn describe_exit(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        }
    } else {
        match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("ended with {status}"),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    let names = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
    ];
    names
        .iter()
        .find(|(number, _)| *number == signal)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        // Raw wait statuses: low 7 bits = signal, else code << 8.
        let cases = [
            (9, "killed by signal 9 (SIGKILL)"),
            (11, "killed by signal 11 (SIGSEGV)"),
            (64, "killed by signal 64"),
            (1 << 8, "exited with status 1"),
            (0, "exited with status 0"),
        ];
        for (raw, expected) in cases {
            assert_eq!(describe_exit(ExitStatus::from_raw(raw)), expected);
        }
    }
}
