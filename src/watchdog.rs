//! `--timeout` for compiles that run on the engine's own threads (native).
//!
//! A thread cannot be stopped from outside. So a compile that runs past the
//! limit is *abandoned*: the watchdog marks the thread's slot, the engine
//! reports the file as timed out and starts a replacement thread, and the
//! abandoned thread, when its compile finally returns, drops the result and
//! ends without writing or reporting anything (or the process exits first).
//! serc is slow on some chains CPython compiles (docs/backends.md, "Nesting limits"):
//! 2,992 `not`s take ~9 s, 5,967 minutes.
//!
//! The race between a compile finishing and the watchdog giving up on it is
//! settled under the slot's lock: whichever moves the slot out of
//! `Compiling` first wins, and the other side sees it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::backend::{Backend, CompileFailure, CompileJob, FailureKind};

/// One engine thread's state, as the watchdog sees it.
#[derive(Debug, Default)]
pub struct Slot {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Idle,
    Compiling(Instant),
    Abandoned,
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start_compiling(&self) {
        let mut state = self.state();
        if *state == State::Idle {
            *state = State::Compiling(Instant::now());
        }
    }

    /// The compile returned: false if the watchdog gave up on it first.
    fn finish_compiling(&self) -> bool {
        let mut state = self.state();
        match *state {
            State::Compiling(_) => {
                *state = State::Idle;
                true
            }
            State::Idle => true,
            State::Abandoned => false,
        }
    }

    /// Whether the watchdog gave up on this thread's current compile.
    pub fn abandoned(&self) -> bool {
        *self.state() == State::Abandoned
    }

    fn abandon_if_overdue(&self, limit: Duration, now: Instant) -> bool {
        let mut state = self.state();
        match *state {
            State::Compiling(since) if now.duration_since(since) > limit => {
                *state = State::Abandoned;
                true
            }
            _ => false,
        }
    }
}

/// What the engine's threads carry for the watchdog.
pub trait Watched: Send + Sync + 'static {
    fn slot(&self) -> &Slot;
}

thread_local! {
    /// The slot of the engine thread running here, if it is watched.
    static CURRENT: RefCell<Option<Arc<dyn Watched>>> = const { RefCell::new(None) };
}

/// Make `watched` the slot that compiles on this thread report to.
pub fn watch_this_thread(watched: Arc<dyn Watched>) {
    CURRENT.with(|current| *current.borrow_mut() = Some(watched));
}

/// The failure a compile past the limit reports.
pub fn timeout_failure(limit: Duration) -> CompileFailure {
    CompileFailure {
        kind: FailureKind::Timeout,
        message: format!(
            "compiling took longer than {}s; the native compile was abandoned",
            limit.as_secs_f64()
        ),
    }
}

/// A backend whose compiles the watchdog may abandon. Off an engine thread
/// (no slot), compiles run unwatched.
pub struct WatchedBackend<B> {
    inner: B,
    limit: Duration,
}

impl<B: Backend> WatchedBackend<B> {
    pub fn new(inner: B, limit: Duration) -> WatchedBackend<B> {
        WatchedBackend { inner, limit }
    }
}

impl<B: Backend> Backend for WatchedBackend<B> {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        let watched = CURRENT.with(|current| current.borrow().clone());
        let Some(watched) = watched else {
            return self.inner.compile(job);
        };
        watched.slot().start_compiling();
        let result = self.inner.compile(job);
        if watched.slot().finish_compiling() {
            result
        } else {
            // Already reported as timed out: nothing of it may be written.
            Err(timeout_failure(self.limit))
        }
    }
}

/// The thread that abandons overdue compiles.
pub struct Watchdog<T: Watched> {
    watched: Mutex<Vec<Arc<T>>>,
    stopped: AtomicBool,
}

impl<T: Watched> Watchdog<T> {
    /// Start watching; `on_abandon` runs on the watchdog's thread for each
    /// thread given up on, which is no longer watched afterwards.
    pub fn start(limit: Duration, on_abandon: impl Fn(Arc<T>) + Send + 'static) -> Arc<Watchdog<T>> {
        let watchdog = Arc::new(Watchdog {
            watched: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        // Checked often enough to keep the overrun under 5% of the limit,
        // and no more than four times a second.
        let every = (limit / 20).clamp(Duration::from_millis(5), Duration::from_millis(250));
        let this = watchdog.clone();
        std::thread::spawn(move || {
            while !this.stopped.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                let now = Instant::now();
                let overdue: Vec<Arc<T>> = {
                    let mut watched = this.watched.lock().unwrap_or_else(PoisonError::into_inner);
                    let (overdue, kept) = watched
                        .drain(..)
                        .partition(|t: &Arc<T>| t.slot().abandon_if_overdue(limit, now));
                    *watched = kept;
                    overdue
                };
                overdue.into_iter().for_each(&on_abandon);
            }
        });
        watchdog
    }

    pub fn watch(&self, watched: Arc<T>) {
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(watched);
    }

    /// Stop the thread (within one check interval) and forget every slot.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.watched.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests;
