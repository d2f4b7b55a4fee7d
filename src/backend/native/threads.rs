//! Native compiles run on threads of their own, one file at a time each,
//! the way the CPython backend runs them in worker processes. A file that
//! compiles longer than `--timeout` fails with kind `timeout` and its thread
//! is left behind to finish (a thread cannot be stopped from outside; its
//! result is dropped and it ends, or the process exits first); the next
//! file gets a fresh thread. serc is slow on some chains CPython compiles
//! (README, "Nesting limits"): 2,992 `not`s take ~9 s, 5,967 minutes.
//!
//! The threads also carry the stack serc needs for deep trees, and their
//! panics print nothing: `NativeBackend` turns them into the file's error,
//! and only the printer prints.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

use crate::backend::{Backend, CompileFailure, CompileJob, FailureKind};

/// The stack of a compile thread. serc's recursion over what the guard
/// lets through fits 2 MiB in every case measured, but its code paths are
/// many: reserve far more. Only touched pages cost memory.
const STACK: usize = 256 * 1024 * 1024;

/// Compile threads are named so, and the panic hook knows them by it.
const THREAD_NAME: &str = "precompyle-native";

pub struct CompileThreads {
    backend: Arc<dyn Backend>,
    timeout: Option<Duration>,
    idle: Mutex<Vec<CompileThread>>,
}

/// One thread's two ends: jobs in, results out. A job comes back with its
/// result, to be freed on the thread that allocated it: mimalloc holds on
/// to memory freed from another thread for a while, and a job freed on the
/// compile thread raised a corpus run's peak RSS from ~90 MB to 155 MB
/// (110-121 MB this way; the rest is the two threads' heaps each keeping freed
/// pages, as `MIMALLOC_PURGE_DELAY=0` shows: 62 MB and 65 MB then).
struct CompileThread {
    jobs: mpsc::Sender<OwnedJob>,
    results: mpsc::Receiver<(OwnedJob, Result<Vec<u8>, CompileFailure>)>,
}

struct OwnedJob {
    source: Vec<u8>,
    filename: Vec<u8>,
    optimize: i64,
}

impl CompileThreads {
    pub fn new(backend: Arc<dyn Backend>, timeout: Option<Duration>) -> CompileThreads {
        silence_compile_thread_panics();
        CompileThreads {
            backend,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn spawn(&self) -> std::io::Result<CompileThread> {
        let (jobs, job_rx) = mpsc::channel::<OwnedJob>();
        let (result_tx, results) = mpsc::channel();
        let backend = self.backend.clone();
        let serve = move || {
            for job in job_rx {
                let result = backend.compile(CompileJob {
                    source: &job.source,
                    filename: &job.filename,
                    optimize: job.optimize,
                });
                // Nobody listens once the job was given up on: end.
                if result_tx.send((job, result)).is_err() {
                    break;
                }
            }
        };
        // A system that refuses the reservation (strict overcommit, a
        // ulimit) gets the default stack rather than no compile at all.
        let serve = Arc::new(Mutex::new(Some(serve)));
        let first = serve.clone();
        let named = || std::thread::Builder::new().name(THREAD_NAME.to_owned());
        named()
            .stack_size(STACK)
            .spawn(move || run_once(&first))
            .or_else(|_| named().spawn(move || run_once(&serve)))?;
        Ok(CompileThread { jobs, results })
    }
}

impl Backend for CompileThreads {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let thread = match idle {
            Some(thread) => thread,
            None => self.spawn().map_err(|err| CompileFailure {
                kind: FailureKind::WorkerCrashed,
                message: format!("cannot start a native compile thread: {err}"),
            })?,
        };
        let owned = OwnedJob {
            source: job.source.to_vec(),
            filename: job.filename.to_vec(),
            optimize: job.optimize,
        };
        let answer = match thread.jobs.send(owned) {
            Ok(()) => match self.timeout {
                Some(limit) => thread.results.recv_timeout(limit),
                None => thread.results.recv().map_err(|_| RecvTimeoutError::Disconnected),
            },
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok((job, result)) => {
                drop(job);
                self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(thread);
                result
            }
            // Dropping `thread` leaves it to finish on its own.
            Err(RecvTimeoutError::Timeout) => Err(CompileFailure {
                kind: FailureKind::Timeout,
                message: format!(
                    "compiling took longer than {}s; the native compile was abandoned",
                    self.timeout.unwrap_or_default().as_secs_f64()
                ),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(CompileFailure {
                kind: FailureKind::WorkerCrashed,
                message: "the native compile thread died while compiling this file".to_owned(),
            }),
        }
    }
}

/// A panic on a compile thread is that file's error, reported by the
/// printer; the default hook would print it to stderr as well.
fn silence_compile_thread_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(THREAD_NAME) {
                previous(info);
            }
        }));
    });
}

fn run_once(work: &Mutex<Option<impl FnOnce()>>) {
    let taken = work.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(work) = taken {
        work();
    }
}

#[cfg(test)]
mod tests;
