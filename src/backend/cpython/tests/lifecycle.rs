//! Workers' lives: killed, timed out, replaced and reaped, answers split
//! across reads, and the handshake that refuses a wrong interpreter.

use super::*;

#[test]
fn killed_worker_fails_one_file_and_is_replaced() {
    let Some((python, version)) = newest() else {
        return;
    };
    let pool = start(&python, version, 1, None);
    let pid = idle_python_pids(&pool)[0];
    let slow = CompileJob {
        source: b"x = 1\n",
        filename: b"5",
        optimize: -1,
    };
    let failure = std::thread::scope(|scope| {
        let compiling = scope.spawn(|| pool.compile_job(&slow, SLEEP_FIRST));
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: plain kill(2) of the worker this test started.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
        compiling.join().unwrap().unwrap_err()
    });
    assert_eq!(failure.kind, FailureKind::WorkerCrashed);
    assert!(failure.message.contains("signal 9 (SIGKILL)"), "{}", failure.message);
    assert!(is_gone(pid), "the dead worker was not reaped");
    // The next file gets a fresh worker.
    let ok = CompileJob {
        filename: b"ok.py",
        ..slow
    };
    assert!(pool.compile(ok).is_ok());
    assert_ne!(idle_python_pids(&pool), [pid]);
}

#[test]
fn slow_file_times_out_and_worker_is_replaced() {
    let Some((python, version)) = newest() else {
        return;
    };
    let pool = start(&python, version, 1, Some(Duration::from_millis(300)));
    let pid = idle_python_pids(&pool)[0];
    let slow = CompileJob {
        source: b"x = 1\n",
        filename: b"30",
        optimize: -1,
    };
    let started = Instant::now();
    let failure = pool.compile_job(&slow, SLEEP_FIRST).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(failure.message.contains("0.3s"), "{}", failure.message);
    assert!(is_gone(pid), "the timed-out worker was not reaped");
    // A file that takes less than the limit still works, in a new worker.
    let quick = CompileJob {
        filename: b"0.05",
        ..slow
    };
    assert!(pool.compile_job(&quick, SLEEP_FIRST).is_ok());
}

#[test]
fn drop_reaps_every_worker() {
    let Some((python, version)) = newest() else {
        return;
    };
    let pool = start(&python, version, 3, None);
    let pids = idle_python_pids(&pool);
    assert_eq!(pids.len(), 3);
    drop(pool);
    for pid in pids {
        assert!(is_gone(pid), "worker {pid} is still there (zombie?)");
    }
}

#[test]
fn wrong_version_fails_the_handshake() {
    let Some((python, (major, minor))) = newest() else {
        return;
    };
    let config = PoolConfig {
        python: python.clone(),
        workers: 1,
        timeout: None,
        version: (major, minor + 1),
    };
    let err = CpythonPool::start(config).err().expect("version mismatch accepted");
    assert!(matches!(err, PoolError::Handshake { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("expected {major}.{}", minor + 1)),
        "{err}"
    );
}

#[test]
fn not_a_python_fails_the_handshake() {
    let config = PoolConfig {
        python: PathBuf::from("false"),
        workers: 2,
        timeout: None,
        version: (3, 11),
    };
    let err = CpythonPool::start(config).err().expect("`false` accepted as python");
    assert!(err.to_string().contains("exited with status 1"), "{err}");
}

/// A stand-in for `worker.py`: answers the handshake as 3.11, then answers
/// a source `pieces` with a 200,000-byte payload written in three parts
/// with pauses between (the header split, then more than a pipe holds), and
/// any other source with one byte of payload followed by two bytes no
/// answer announced.
const FAKE_WORKER: &str = r#"
import os, sys, time
requests, answers = sys.stdin.buffer, sys.stdout.buffer
def frame(job, status, payload):
    return job.to_bytes(8, "little") + bytes((status,)) + len(payload).to_bytes(8, "little") + payload
answers.write(b"\0precompyle-worker\0" + frame(0, 3, b"3.11.0 %d" % os.getpid()))
answers.flush()
while True:
    head = requests.read(32)
    if len(head) < 32:
        break
    job = int.from_bytes(head[0:8], "little")
    requests.read(int.from_bytes(head[16:24], "little"))
    source = requests.read(int.from_bytes(head[24:32], "little"))
    if source == b"pieces":
        whole = frame(job, 0, bytes(i % 251 for i in range(200000)))
        for part in (whole[:5], whole[5:1017], whole[1017:]):
            answers.write(part)
            answers.flush()
            time.sleep(0.05)
    else:
        answers.write(frame(job, 0, b"x") + b"yz")
        answers.flush()
"#;

/// Answers are read whole however the worker's writes split them, and
/// bytes after an answer (the stream out of step) fail that file and that
/// worker only: the next job gets a fresh one.
#[test]
fn answers_in_pieces_are_read_whole_and_trailing_bytes_fail_the_file() {
    let Some((python, _)) = newest() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake_worker.py");
    std::fs::write(&fake, FAKE_WORKER).unwrap();
    let wrapper = shell_script(dir.path(), &format!("exec '{}' '{}'", python.display(), fake.display()));
    let pool = start(&wrapper, (3, 11), 1, Some(Duration::from_secs(20)));
    let compile = |source: &[u8]| {
        pool.compile(CompileJob {
            source,
            filename: b"f.py",
            optimize: -1,
        })
    };

    let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(compile(b"pieces").expect("an answer in pieces"), expected);
    let first_pid = idle_python_pids(&pool);

    let failure = compile(b"x = 1\n").expect_err("trailing bytes accepted");
    assert_eq!(failure.kind, FailureKind::WorkerCrashed, "{}", failure.message);
    assert!(
        failure.message.contains("2 bytes after an answer of 1"),
        "{}",
        failure.message
    );

    assert_eq!(compile(b"pieces").expect("a fresh worker"), expected);
    assert_ne!(idle_python_pids(&pool), first_pid, "the worker was replaced");
}
