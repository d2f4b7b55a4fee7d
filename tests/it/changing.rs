//! Sources that change while precompyle runs: deleted, rewritten, replaced
//! by a directory, or rewritten within the second their pyc was stamped.
//! The judge is CPython itself: for every pyc whose header the import system
//! would accept for the source as it is now, the code must be what CPython
//! compiles from that source (`HEADER_CLAIMS_ONLY_THE_TRUTH`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, precompyle, run, scratch, stdout_lines, temp_files};

/// For each pyc under argv[1] whose timestamp header matches its source's
/// stat now (as `_validate_timestamp_pyc` checks it), compare the code with
/// `compile()` of the source now. Prints `CHECKED n FRESH m`, then `LIE path`
/// for a header that claims freshness for content it was not compiled from.
const HEADER_CLAIMS_ONLY_THE_TRUTH: &str = r#"
import importlib.util, marshal, os, sys
checked = fresh = 0
for dirpath, dirnames, filenames in os.walk(sys.argv[1]):
    for name in filenames:
        if not name.endswith(".pyc"):
            continue
        pyc = os.path.join(dirpath, name)
        source = importlib.util.source_from_cache(pyc)
        checked += 1
        try:
            st = os.stat(source)
            with open(source, "rb") as f:
                text = f.read()
        except OSError:
            continue
        with open(pyc, "rb") as f:
            data = f.read()
        mtime = int.from_bytes(data[8:12], "little")
        size = int.from_bytes(data[12:16], "little")
        if mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size & 0xFFFFFFFF:
            continue
        fresh += 1
        code = marshal.loads(data[16:])
        if code != compile(text, code.co_filename, "exec", dont_inherit=True):
            print("LIE %s" % pyc)
print("CHECKED %d FRESH %d" % (checked, fresh))
"#;

struct Judgement {
    checked: usize,
    fresh: usize,
    lies: Vec<String>,
}

fn judge(tree: &Path) -> Judgement {
    let mut cmd = Command::new("python3");
    support::clear_python_env(&mut cmd);
    let out = run(cmd.arg("-c").arg(HEADER_CLAIMS_ONLY_THE_TRUTH).arg(tree));
    let lines = stdout_lines(&out);
    let counts = lines
        .iter()
        .find_map(|l| l.strip_prefix("CHECKED "))
        .unwrap_or_else(|| panic!("judge failed: {}", String::from_utf8_lossy(&out.stderr)));
    let (checked, fresh) = counts.split_once(" FRESH ").expect("counts");
    Judgement {
        checked: checked.parse().unwrap(),
        fresh: fresh.parse().unwrap(),
        lies: lines.iter().filter(|l| l.starts_with("LIE ")).cloned().collect(),
    }
}

/// Wait until the clock is just past a second boundary, so that what
/// follows happens within one second of the file system's clock.
fn start_of_a_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(u64::from(1_000_000_000 - now.subsec_nanos())) + Duration::from_millis(10));
}

/// A source written, compiled and rewritten (same size) all within one
/// second: a header stamped with that second would be accepted for the new
/// content. compileall, and precompyle before this test, wrote exactly that
/// in most rounds; precompyle now reads such a source again once its second
/// is over, so the rewrite carries a later mtime.
#[test]
fn a_source_rewritten_in_its_stamped_second_is_never_claimed_fresh() {
    let s = scratch();
    let tree = s.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    let source = tree.join("a.py");
    let mut lies = Vec::new();
    for round in 0..4 {
        start_of_a_second();
        std::fs::write(&source, format!("x = {round}\n")).unwrap();
        let out = run(precompyle().arg("-q").arg("--no-progress").arg(&tree));
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        std::fs::write(&source, format!("y = {round}\n")).unwrap();
        lies.extend(judge(&tree).lies);
    }
    assert_eq!(lies, Vec::<String>::new());
}

/// One source per kind of change, each big enough (a ~60 KB literal) that
/// the run is still going while a second thread deletes a third of them,
/// rewrites a third with other content, and replaces some with directories.
/// The run may fail those files (naming them) but must not crash, every pyc
/// must be complete and truthful, no temp file may stay, and the next run
/// must make the tree entirely fresh.
#[test]
fn sources_deleted_rewritten_or_replaced_during_a_run() {
    let s = scratch();
    let tree = s.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    const FILES: usize = 150;
    let body = |n: usize, v: usize| {
        let items: String = (0..6000).map(|i| format!("{},", i * v + n)).collect();
        format!("DATA_{n} = [{items}]\ndef f():\n    return {v}\n")
    };
    let path = |n: usize| tree.join(format!("m{n:03}.py"));
    for n in 0..FILES {
        std::fs::write(path(n), body(n, 1)).unwrap();
    }
    // Old mtimes, so no file waits out its second: the changes must race.
    let status = Command::new("touch")
        .args(["-d", "2020-01-01"])
        .args((0..FILES).map(path))
        .status();
    assert!(status.is_ok_and(|s| s.success()));

    let mut total_lies = Vec::new();
    for round in 0..2 {
        let child = precompyle()
            .args(["-q", "--no-progress", "-f", "-j", "2"])
            .arg(&tree)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        // Once the first pyc is written, change files from the end of the
        // run's order backwards, so the changes meet files being compiled.
        let cache = tree.join("__pycache__");
        while std::fs::read_dir(&cache).map_or(true, |mut d| d.next().is_none()) {
            assert!(started.elapsed() < Duration::from_secs(60), "no pyc appeared");
            std::thread::sleep(Duration::from_millis(2));
        }
        for n in (round..FILES).step_by(3).rev() {
            let target = path(n);
            match n % 4 {
                0 => {
                    let _ = std::fs::remove_file(&target);
                }
                1 | 2 => std::fs::write(&target, body(n, 2 + round)).unwrap(),
                _ => {
                    let _ = std::fs::remove_file(&target);
                    std::fs::create_dir(&target).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        let out = child.wait_with_output().expect("wait");
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "round {round}: {:?} after {:?}\n{}",
            out.status,
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = stdout_lines(&out);
        for pair in lines.chunks(2) {
            assert!(pair[0].starts_with("*** Error compiling '"), "{pair:?}");
            let message = pair.get(1).map(String::as_str).unwrap_or_default();
            assert!(
                message.starts_with("FileNotFoundError: [Errno 2]")
                    || message.starts_with("IsADirectoryError: [Errno 21]")
                    || message.contains("kept changing"),
                "round {round}: {pair:?}"
            );
        }
        let verdict = judge(&tree);
        total_lies.extend(verdict.lies);
        assert_eq!(temp_files(&tree), Vec::<PathBuf>::new());
        // Put the deleted and replaced ones back for the next round.
        for n in 0..FILES {
            let target = path(n);
            if target.is_dir() {
                std::fs::remove_dir(&target).unwrap();
            }
            if !target.exists() {
                std::fs::write(&target, body(n, 9)).unwrap();
            }
        }
        eprintln!(
            "round {round}: exit {code:?} after {:?}, {} failed files, {} pycs, {} claim freshness",
            started.elapsed(),
            lines.len() / 2,
            verdict.checked,
            verdict.fresh
        );
    }
    assert_eq!(total_lies, Vec::<String>::new());
    let out = run(precompyle().args(["-q", "--no-progress"]).arg(&tree));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let check = run(precompyle().args(["-q", "--no-progress", "--check"]).arg(&tree));
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
