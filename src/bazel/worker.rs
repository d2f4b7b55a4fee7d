//! Bazel's JSON persistent-worker protocol on stdin/stdout.
//!
//! Requests (`WorkRequest`): `arguments`, `inputs`, `requestId`, `cancel`,
//! `sandboxDir`; unknown fields are ignored. Bazel 4 writes them back to
//! back, later releases one per line: the input is read as a stream of JSON
//! objects, whatever separates them. Responses (`WorkResponse`): one JSON
//! object per line with `exitCode`, `output`, `requestId` and, for a
//! cancelled request, `wasCancelled`. Nothing else is written to stdout.
//!
//! `requestId` 0 is singleplex: answered in order, one at a time. Any other
//! id is multiplex: each request runs on its own thread and is answered when
//! done, in any order. Every request gets exactly one response: whoever
//! takes its id out of the in-flight set (the request's thread when done,
//! or a `cancel` for it) answers it. A request that cannot be read gets an
//! error response; the worker goes on.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use super::Compilers;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkRequest {
    #[serde(default)]
    arguments: Vec<String>,
    #[serde(default)]
    request_id: i64,
    #[serde(default)]
    cancel: bool,
    #[serde(default)]
    sandbox_dir: Option<String>,
}

#[derive(Debug, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkResponse {
    pub exit_code: i32,
    pub output: String,
    pub request_id: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub was_cancelled: bool,
}

/// Serve requests from stdin until it closes.
pub fn serve(compilers: Arc<Compilers>) -> ExitCode {
    let stdout = Arc::new(Mutex::new(io::stdout()));
    let send = move |response: WorkResponse| {
        let mut line = serde_json::to_vec(&response).expect("a response serialises");
        line.push(b'\n');
        let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
        // Bazel gone: nothing left to tell.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    };
    let mut session = Session::new(compilers, Arc::new(send));
    for frame in Frames::new(io::stdin().lock()) {
        session.handle(frame);
    }
    session.finish();
    ExitCode::SUCCESS
}

type Send = Arc<dyn Fn(WorkResponse) + std::marker::Send + Sync>;

/// The worker between requests: the warm compilers, the multiplex requests
/// in flight and their threads.
pub struct Session {
    compilers: Arc<Compilers>,
    send: Send,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Session {
    pub fn new(compilers: Arc<Compilers>, send: Send) -> Session {
        Session {
            compilers,
            send,
            in_flight: Arc::default(),
            threads: Vec::new(),
        }
    }

    pub fn handle(&mut self, frame: Result<Vec<u8>, Vec<u8>>) {
        let request = frame
            .map_err(|bytes| malformed(&bytes, "not a JSON object"))
            .and_then(|bytes| {
                serde_json::from_slice::<WorkRequest>(&bytes).map_err(|e| {
                    let id = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("requestId").and_then(serde_json::Value::as_i64))
                        .unwrap_or(0);
                    WorkResponse {
                        request_id: id,
                        ..malformed(&bytes, &e.to_string())
                    }
                })
            });
        let request = match request {
            Ok(request) => request,
            Err(response) => return (self.send)(response),
        };
        if request.cancel {
            if self.take(request.request_id) {
                (self.send)(WorkResponse {
                    exit_code: 0,
                    output: String::new(),
                    request_id: request.request_id,
                    was_cancelled: true,
                });
            }
            return;
        }
        if request.request_id == 0 {
            return (self.send)(respond(&self.compilers, &request));
        }
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request.request_id);
        if !fresh {
            return (self.send)(WorkResponse {
                exit_code: 2,
                output: format!(
                    "precompyle: error: request {} is already in flight\n",
                    request.request_id
                ),
                request_id: request.request_id,
                was_cancelled: false,
            });
        }
        let (compilers, send, in_flight) = (self.compilers.clone(), self.send.clone(), self.in_flight.clone());
        self.threads.push(std::thread::spawn(move || {
            let response = respond(&compilers, &request);
            if in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&request.request_id)
            {
                send(response);
            }
        }));
    }

    /// Wait for the requests still running: each is answered.
    pub fn finish(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }

    fn take(&self, id: i64) -> bool {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }
}

fn respond(compilers: &Compilers, request: &WorkRequest) -> WorkResponse {
    let sandbox = request
        .sandbox_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let (exit_code, output) = compilers.run(&request.arguments, sandbox.as_deref(), false);
    WorkResponse {
        exit_code,
        output,
        request_id: request.request_id,
        was_cancelled: false,
    }
}

fn malformed(bytes: &[u8], why: &str) -> WorkResponse {
    let shown: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
    WorkResponse {
        exit_code: 2,
        output: format!("precompyle: error: malformed work request ({why}): {shown}\n"),
        request_id: 0,
        was_cancelled: false,
    }
}

/// The JSON objects of a stream, however they are separated: `Ok` with an
/// object's bytes (brackets matched, strings skipped), `Err` with bytes that
/// are not one (text outside an object, up to the next line or `{`; an
/// object up to a bracket that does not match; or one cut off by the end of
/// the input).
pub struct Frames<R> {
    input: R,
}

impl<R: BufRead> Frames<R> {
    pub fn new(input: R) -> Frames<R> {
        Frames { input }
    }

    fn peek(&mut self) -> Option<u8> {
        self.input.fill_buf().ok().and_then(|buf| buf.first().copied())
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.input.consume(1);
        Some(byte)
    }
}

impl<R: BufRead> Iterator for Frames<R> {
    type Item = Result<Vec<u8>, Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.peek()?.is_ascii_whitespace() {
            self.input.consume(1);
        }
        let mut frame = Vec::new();
        if self.peek()? != b'{' {
            while let Some(byte) = self.peek() {
                if byte == b'{' {
                    break;
                }
                self.input.consume(1);
                if byte == b'\n' {
                    break;
                }
                frame.push(byte);
            }
            return Some(Err(frame));
        }
        // The brackets open at this point: a closing one that does not match
        // ends the frame as malformed, so one bad request cannot swallow the
        // requests after it.
        let mut open = Vec::new();
        let (mut in_string, mut escaped) = (false, false);
        while let Some(byte) = self.next_byte() {
            frame.push(byte);
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' => open.push(b'}'),
                b'[' => open.push(b']'),
                b'}' | b']' if open.pop() != Some(byte) => return Some(Err(frame)),
                b'}' | b']' if open.is_empty() => return Some(Ok(frame)),
                _ => {}
            }
        }
        Some(Err(frame))
    }
}
