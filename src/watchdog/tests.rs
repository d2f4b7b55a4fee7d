use std::sync::mpsc;

use super::*;

/// Answers with the source after sleeping as many milliseconds as the file
/// name says.
struct Sleepy;

impl Backend for Sleepy {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        let millis = std::str::from_utf8(job.filename).unwrap().parse().unwrap();
        std::thread::sleep(Duration::from_millis(millis));
        Ok(job.source.to_vec())
    }
}

#[derive(Default)]
struct Thread {
    slot: Slot,
}

impl Watched for Thread {
    fn slot(&self) -> &Slot {
        &self.slot
    }
}

fn job(millis: &str) -> CompileJob<'_> {
    CompileJob {
        source: b"src",
        filename: millis.as_bytes(),
        optimize: 0,
    }
}

/// Compile `millis` on a watched thread of its own; the result arrives on
/// the returned channel when the compile returns.
fn compile_watched(
    backend: &Arc<WatchedBackend<Sleepy>>,
    watchdog: &Watchdog<Thread>,
    millis: &'static str,
) -> (Arc<Thread>, mpsc::Receiver<Result<Vec<u8>, CompileFailure>>) {
    let thread = Arc::new(Thread::default());
    watchdog.watch(thread.clone());
    let (tx, rx) = mpsc::channel();
    let (backend, mine) = (backend.clone(), thread.clone());
    std::thread::spawn(move || {
        watch_this_thread(mine);
        let _ = tx.send(backend.compile(job(millis)));
    });
    (thread, rx)
}

#[test]
fn an_overrunning_compile_is_abandoned_at_the_limit_and_its_result_dropped() {
    let limit = Duration::from_millis(200);
    let backend = Arc::new(WatchedBackend::new(Sleepy, limit));
    let (abandoned_tx, abandoned) = mpsc::channel();
    let watchdog = Watchdog::start(limit, move |thread: Arc<Thread>| {
        let _ = abandoned_tx.send(thread);
    });
    let started = Instant::now();
    let (slow, result) = compile_watched(&backend, &watchdog, "1500");
    let given_up = abandoned.recv_timeout(Duration::from_secs(5)).expect("abandoned");
    let waited = started.elapsed();
    assert!(Arc::ptr_eq(&given_up, &slow));
    assert!(
        waited >= limit && waited < Duration::from_millis(1000),
        "abandoned after {waited:?}"
    );
    assert!(slow.slot().abandoned());
    // The compile succeeds in the end, too late: it must not count.
    let late = result
        .recv_timeout(Duration::from_secs(5))
        .expect("the compile returns");
    assert_eq!(late, Err(timeout_failure(limit)));
    assert_eq!(
        timeout_failure(limit).message,
        "compiling took longer than 0.2s; the native compile was abandoned"
    );
    watchdog.stop();
}

#[test]
fn a_compile_within_the_limit_keeps_its_result_and_its_thread() {
    let limit = Duration::from_millis(2000);
    let backend = Arc::new(WatchedBackend::new(Sleepy, limit));
    let (abandoned_tx, abandoned) = mpsc::channel();
    let watchdog = Watchdog::start(limit, move |thread: Arc<Thread>| {
        let _ = abandoned_tx.send(thread);
    });
    let (thread, result) = compile_watched(&backend, &watchdog, "300");
    assert_eq!(result.recv_timeout(Duration::from_secs(5)), Ok(Ok(b"src".to_vec())));
    assert!(!thread.slot().abandoned());
    // An idle thread is never abandoned, however long it stays idle.
    assert!(abandoned.recv_timeout(Duration::from_millis(2500)).is_err());
    watchdog.stop();
}

#[test]
fn several_slow_compiles_are_each_abandoned() {
    let limit = Duration::from_millis(150);
    let backend = Arc::new(WatchedBackend::new(Sleepy, limit));
    let (abandoned_tx, abandoned) = mpsc::channel();
    let watchdog = Watchdog::start(limit, move |thread: Arc<Thread>| {
        let _ = abandoned_tx.send(thread);
    });
    let slow: Vec<_> = (0..3).map(|_| compile_watched(&backend, &watchdog, "1200")).collect();
    let (_, quick) = compile_watched(&backend, &watchdog, "10");
    for _ in 0..3 {
        abandoned.recv_timeout(Duration::from_secs(5)).expect("abandoned");
    }
    assert!(slow.iter().all(|(thread, _)| thread.slot().abandoned()));
    assert_eq!(quick.recv_timeout(Duration::from_secs(5)), Ok(Ok(b"src".to_vec())));
    watchdog.stop();
}

#[test]
fn off_an_engine_thread_a_compile_runs_unwatched() {
    let backend = WatchedBackend::new(Sleepy, Duration::from_millis(10));
    assert_eq!(backend.compile(job("100")), Ok(b"src".to_vec()));
}
