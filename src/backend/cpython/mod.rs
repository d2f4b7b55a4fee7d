//! The CPython worker backend: a pool of persistent processes of the target
//! interpreter, fed over pipes, one file in flight per worker.
//!
//! - `worker.py` (embedded) is the program each process runs;
//! - [`protocol`] is the frame layout it speaks;
//! - [`worker`] owns one process; [`pipe`] does deadline-bounded pipe I/O.
//!
//! A worker that dies or overruns the per-file timeout fails only the file it
//! was compiling; its slot is refilled by a fresh process on next use.
//!
//! On 3.13+ the marshal bytes depend on the compiling process's state; the
//! worker makes itself look like a fresh `python -m py_compile`, retires when
//! a job changes that, and asks for the rare file its history could affect
//! to be redone by a fresh worker (see the top of `worker.py`).

mod pipe;
mod protocol;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Backend, CompileFailure, CompileJob, FailureKind};
pub use worker::worker_script;
use worker::{Reply, Worker, WorkerFault};

/// How to start the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub python: PathBuf,
    /// Number of worker processes (≥ 1).
    pub workers: usize,
    /// Per-file limit; `None` = no limit.
    pub timeout: Option<Duration>,
    /// Target (major, minor), for version-specific worker behaviour.
    pub version: (u32, u32),
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot start {python}: {source}")]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{python} did not answer the worker handshake: {detail}")]
    Handshake { python: PathBuf, detail: String },
}

pub struct CpythonPool {
    config: PoolConfig,
    /// Workers not compiling right now. `None` is a slot whose worker died and
    /// will be restarted by whoever takes it.
    idle: Mutex<Vec<Option<Worker>>>,
    slot_returned: Condvar,
    next_job: AtomicU64,
}

impl CpythonPool {
    pub fn start(config: PoolConfig) -> Result<CpythonPool, PoolError> {
        // Spawn them all before waiting for any, so that they boot in parallel.
        let spawned = (0..config.workers.max(1))
            .map(|_| spawn(&config))
            .collect::<Result<Vec<_>, _>>()?;
        let ready = spawned
            .into_iter()
            .map(|worker| handshake(worker, &config).map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CpythonPool {
            config,
            idle: Mutex::new(ready),
            slot_returned: Condvar::new(),
            next_job: AtomicU64::new(1),
        })
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Option<Worker>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a slot is free; the slot goes back when the guard drops.
    fn checkout(&self) -> Checkout<'_> {
        let mut idle = self.lock_idle();
        loop {
            if let Some(worker) = idle.pop() {
                return Checkout { pool: self, worker };
            }
            idle = self.slot_returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs one job; `id_flags` is only non-zero for the test hooks.
    fn compile_job(&self, job: &CompileJob<'_>, id_flags: u64) -> Result<Vec<u8>, CompileFailure> {
        let mut slot = self.checkout();
        let reply = match self.run_in_slot(&mut slot, job, id_flags)? {
            // 3.13+: the worker's history may have changed the bytes; a fresh
            // worker never asks this for its first job.
            Reply::Redo => match self.run_in_slot(&mut slot, job, id_flags)? {
                Reply::Redo => {
                    let message = "a fresh compile worker refused its first file".to_owned();
                    return Err(failure(FailureKind::WorkerCrashed, message));
                }
                reply => reply,
            },
            reply => reply,
        };
        match reply {
            Reply::Code(code) => Ok(code),
            Reply::CompileError(message) => Err(failure(FailureKind::Compile, message)),
            Reply::MarshalError(message) => Err(failure(FailureKind::Marshal, message)),
            Reply::Redo => unreachable!("handled above"),
        }
    }

    /// Runs the job on the slot's worker, starting one if the slot is empty;
    /// empties the slot when the worker is gone or must go.
    fn run_in_slot(
        &self,
        slot: &mut Checkout<'_>,
        job: &CompileJob<'_>,
        id_flags: u64,
    ) -> Result<Reply, CompileFailure> {
        let worker = match slot.worker {
            Some(ref mut worker) => worker,
            None => match spawn(&self.config).and_then(|w| handshake(w, &self.config)) {
                Ok(worker) => slot.worker.insert(worker),
                Err(err) => {
                    let message = format!("cannot restart the compile worker: {err}");
                    return Err(failure(FailureKind::WorkerCrashed, message));
                }
            },
        };
        let job_id = self.next_job.fetch_add(1, Ordering::Relaxed) | id_flags;
        let deadline = self.config.timeout.map(|limit| Instant::now() + limit);
        match worker.run(job_id, job, deadline) {
            Ok(answer) => {
                if answer.retired || answer.reply == Reply::Redo {
                    // It exits by itself after such an answer; dropping it reaps it.
                    slot.worker = None;
                }
                Ok(answer.reply)
            }
            Err(fault) => {
                let worker = slot.worker.take().expect("checked out above");
                Err(self.discard(worker, fault))
            }
        }
    }

    /// Kills a worker that can no longer be trusted and says why, for the file
    /// it was compiling.
    fn discard(&self, worker: Worker, fault: WorkerFault) -> CompileFailure {
        let pid = worker.python_pid();
        let ending = worker.kill();
        match fault {
            WorkerFault::TimedOut => failure(
                FailureKind::Timeout,
                format!(
                    "compiling took longer than {}; the compile worker (pid {pid}) was stopped",
                    describe_duration(self.config.timeout.unwrap_or_default())
                ),
            ),
            WorkerFault::Died => failure(
                FailureKind::WorkerCrashed,
                format!("the compile worker (pid {pid}) {ending} while compiling this file"),
            ),
            WorkerFault::Io(_) | WorkerFault::Protocol(_) => failure(
                FailureKind::WorkerCrashed,
                format!("the compile worker (pid {pid}) failed: {fault}; it was {ending}"),
            ),
        }
    }
}

impl Backend for CpythonPool {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        self.compile_job(&job, 0)
    }
}

impl Drop for CpythonPool {
    fn drop(&mut self) {
        let mut idle = self.lock_idle();
        // Ask all of them first so that they exit in parallel; dropping each
        // Worker then reaps it.
        for worker in idle.iter_mut().flatten() {
            worker.close_requests();
        }
        idle.clear();
    }
}

/// A checked-out slot; it returns to the pool (possibly empty) when dropped,
/// also on panic, so that no thread waits forever for it.
struct Checkout<'p> {
    pool: &'p CpythonPool,
    worker: Option<Worker>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        self.pool.lock_idle().push(self.worker.take());
        self.pool.slot_returned.notify_one();
    }
}

fn spawn(config: &PoolConfig) -> Result<Worker, PoolError> {
    Worker::spawn(&config.python).map_err(|source| PoolError::Spawn {
        python: config.python.clone(),
        source,
    })
}

/// Waits for the worker's Ready and checks that it runs the version the rest
/// of the run (magic number, cache tag) was planned for.
fn handshake(mut worker: Worker, config: &PoolConfig) -> Result<Worker, PoolError> {
    let error = |detail: String| PoolError::Handshake {
        python: config.python.clone(),
        detail,
    };
    match worker.handshake() {
        Ok((major, minor, _)) if (major, minor) == config.version => Ok(worker),
        Ok((major, minor, micro)) => Err(error(format!(
            "it runs Python {major}.{minor}.{micro}, expected {}.{}",
            config.version.0, config.version.1
        ))),
        Err(fault @ (WorkerFault::Died | WorkerFault::TimedOut)) => {
            Err(error(format!("{fault}; the process {}", worker.kill())))
        }
        Err(fault) => Err(error(fault.to_string())),
    }
}

fn failure(kind: FailureKind, message: String) -> CompileFailure {
    CompileFailure { kind, message }
}

fn describe_duration(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests;
