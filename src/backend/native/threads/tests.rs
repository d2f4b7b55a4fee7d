use std::time::Instant;

use super::*;

/// Answers with the source, after sleeping as many milliseconds as the file
/// name says; panics for a file named `panic`.
struct Scripted;

impl Backend for Scripted {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        let name = std::str::from_utf8(job.filename).unwrap();
        if name == "panic" {
            panic!("scripted panic");
        }
        std::thread::sleep(Duration::from_millis(name.parse().unwrap()));
        Ok(job.source.to_vec())
    }
}

fn job<'a>(filename: &'a str, source: &'a [u8]) -> CompileJob<'a> {
    CompileJob {
        source,
        filename: filename.as_bytes(),
        optimize: 0,
    }
}

#[test]
fn an_overrunning_file_times_out_and_the_next_gets_a_fresh_thread() {
    let threads = CompileThreads::new(Arc::new(Scripted), Some(Duration::from_millis(300)));
    assert_eq!(threads.compile(job("0", b"a")), Ok(b"a".to_vec()));
    let started = Instant::now();
    let failure = threads.compile(job("5000", b"slow")).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(
        failure.message,
        "compiling took longer than 0.3s; the native compile was abandoned"
    );
    // The abandoned thread is still asleep; this one must not wait for it.
    let started = Instant::now();
    assert_eq!(threads.compile(job("0", b"b")), Ok(b"b".to_vec()));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
}

#[test]
fn without_a_timeout_a_slow_file_is_waited_for() {
    let threads = CompileThreads::new(Arc::new(Scripted), None);
    assert_eq!(threads.compile(job("400", b"slow")), Ok(b"slow".to_vec()));
}

#[test]
fn a_thread_that_dies_fails_its_file_only() {
    let threads = CompileThreads::new(Arc::new(Scripted), Some(Duration::from_secs(30)));
    let failure = threads.compile(job("panic", b"")).unwrap_err();
    assert_eq!(failure.kind, FailureKind::WorkerCrashed, "{}", failure.message);
    assert_eq!(threads.compile(job("0", b"c")), Ok(b"c".to_vec()));
}

/// Several callers at once (the run's deciders) each get a thread.
#[test]
fn callers_compile_in_parallel() {
    let threads = CompileThreads::new(Arc::new(Scripted), Some(Duration::from_secs(30)));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| assert_eq!(threads.compile(job("500", b"p")), Ok(b"p".to_vec())));
        }
    });
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(threads.idle.lock().unwrap().len(), 4);
}
