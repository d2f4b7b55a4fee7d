use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;
use crate::backend::FailureKind;

fn native_target() -> Target {
    Target::native(serc::PythonVersion::Py312)
}

fn cache_in(dir: &Path, max_size: u64) -> Cache {
    Cache::new(
        CacheSettings {
            dir: dir.to_owned(),
            max_size,
            hash_seed: None,
        },
        &native_target(),
    )
}

fn job<'a>(source: &'a [u8], filename: &'a [u8], optimize: i64) -> CompileJob<'a> {
    CompileJob {
        source,
        filename,
        optimize,
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn the_key_changes_with_every_input() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = cache_in(scratch.path(), u64::MAX);
    let base = cache.key(&job(b"x = 1\n", b"/a/m.py", -1));
    assert_eq!(base, cache.key(&job(b"x = 1\n", b"/a/m.py", -1)));
    let changed = [
        cache.key(&job(b"x = 2\n", b"/a/m.py", -1)),
        cache.key(&job(b"x = 1\n", b"/b/m.py", -1)),
        cache.key(&job(b"x = 1\n", b"/a/m.py", 1)),
        // The boundary between file name and source is part of the key.
        cache.key(&job(b"y\nx = 1\n", b"/a/m.p", -1)),
    ];
    for key in changed {
        assert_ne!(key, base);
    }
    let settings = cache.settings.clone();
    let for_313 = Cache::new(settings, &Target::native(serc::PythonVersion::Py313));
    assert_ne!(for_313.key(&job(b"x = 1\n", b"/a/m.py", -1)), base);
}

#[test]
fn the_cpython_identity_includes_build_script_and_seed() {
    let mut target = native_target();
    target.compiler = Compiler::Cpython;
    target.build = "3.12.1 (main, Jan  1 2024, 00:00:00) [GCC 12.2.0]".to_owned();
    let base = identity(&target, None);
    let mut rebuilt = target.clone();
    rebuilt.build = "3.12.1 (main, Feb  2 2024, 00:00:00) [Clang 17]".to_owned();
    assert_ne!(identity(&rebuilt, None), base);
    assert_ne!(identity(&target, Some(std::ffi::OsStr::new("1"))), base);
    assert!(
        base.windows(32)
            .any(|w| w == blake3::hash(crate::backend::cpython::worker_script().as_bytes()).as_bytes())
    );
}

#[test]
fn a_stored_result_is_found_by_the_next_run() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("cache");
    let compiled: Result<Vec<u8>, CompileFailure> = Ok(b"\xe3marshalled".to_vec());
    let broken: Result<Vec<u8>, CompileFailure> = Err(CompileFailure {
        kind: FailureKind::Compile,
        message: "SyntaxError: invalid syntax".to_owned(),
    });
    let first = cache_in(&dir, u64::MAX);
    let (good, bad) = (
        first.key(&job(b"x = 1\n", b"m.py", 0)),
        first.key(&job(b"def\n", b"b.py", 0)),
    );
    assert_eq!(first.get(&good), None);
    first.put(&good, &compiled);
    first.put(&bad, &broken);
    let report = first.finish().unwrap();
    assert_eq!((report.misses, report.stored, report.hits), (1, 2, 0));
    assert!(report.notices.is_empty(), "{:?}", report.notices);

    let second = cache_in(&dir, u64::MAX);
    assert_eq!(second.get(&good), Some(compiled));
    assert_eq!(second.get(&bad), Some(broken));
    assert_eq!(second.finish().unwrap().hits, 2);
    // Only complete entries: no temp file is left.
    assert!(files_under(&dir.join("v1/tmp")).is_empty());
}

#[test]
fn timeouts_and_crashes_are_not_stored() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = cache_in(scratch.path(), u64::MAX);
    let key = cache.key(&job(b"x = 1\n", b"m.py", 0));
    for kind in [FailureKind::Timeout, FailureKind::WorkerCrashed] {
        cache.put(
            &key,
            &Err(CompileFailure {
                kind,
                message: String::new(),
            }),
        );
    }
    assert_eq!(cache.get(&key), None);
    assert_eq!(cache.finish().unwrap().stored, 0);
}

#[test]
fn a_damaged_entry_is_ignored_and_replaced() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = cache_in(scratch.path(), u64::MAX);
    let key = cache.key(&job(b"x = 1\n", b"m.py", 0));
    let compiled: Result<Vec<u8>, CompileFailure> = Ok(b"\xe3code".to_vec());
    cache.put(&key, &compiled);
    let [path] = &files_under(&scratch.path().join("v1"))[..] else {
        panic!("one entry expected")
    };
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();

    let next = cache_in(scratch.path(), u64::MAX);
    assert_eq!(next.get(&key), None);
    next.put(&key, &compiled);
    assert_eq!(next.get(&key), Some(compiled));
    let report = next.finish().unwrap();
    assert_eq!((report.invalid, report.misses, report.hits), (1, 1, 1));
}

#[test]
fn a_symlinked_entry_is_not_followed() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = cache_in(scratch.path(), u64::MAX);
    let key = cache.key(&job(b"x = 1\n", b"m.py", 0));
    let elsewhere = scratch.path().join("elsewhere");
    std::fs::write(&elsewhere, entry::encode(&key, &Ok(b"planted".to_vec()))).unwrap();
    let path = scratch.path().join("v1").join(entry_name(&key));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    assert_eq!(cache.get(&key), None);
}

/// As root, a cache directory given to another user is refused whole.
#[test]
fn a_directory_of_another_user_is_not_used() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to give a directory to another user");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("theirs");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let cache = cache_in(&dir, u64::MAX);
    let key = cache.key(&job(b"x = 1\n", b"m.py", 0));
    cache.put(&key, &Ok(b"code".to_vec()));
    assert_eq!(cache.get(&key), None);
    let report = cache.finish().unwrap();
    assert_eq!(report.stored, 0);
    assert_eq!(report.notices.len(), 1, "{:?}", report.notices);
    assert!(
        report.notices[0].contains("belongs to uid 65534"),
        "{:?}",
        report.notices
    );
    assert!(files_under(&dir).is_empty());
}

#[test]
fn a_run_that_never_looks_touches_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("never-made");
    let cache = cache_in(&dir, u64::MAX);
    assert!(cache.finish().is_none());
    assert!(!dir.exists());
}

#[test]
fn eviction_removes_the_least_recently_used_first() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = cache_in(scratch.path(), u64::MAX);
    let sources: Vec<Vec<u8>> = (0..6).map(|i| format!("x = {i}\n").into_bytes()).collect();
    let keys: Vec<Key> = sources.iter().map(|s| cache.key(&job(s, b"m.py", 0))).collect();
    for key in &keys {
        cache.put(key, &Ok(vec![0; 1000]));
    }
    // Entry i was last used i hours ago; a hit makes entry 5 the newest.
    for (i, key) in keys.iter().enumerate() {
        let path = scratch.path().join("v1").join(entry_name(key));
        let used = SystemTime::now() - Duration::from_secs(3600 * i as u64);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(used)
            .unwrap();
    }
    assert!(cache.get(&keys[5]).is_some());
    let entry_size = (1000 + entry::HEADER_LEN) as u64;
    let evicted = evict::to_size(&scratch.path().join("v1"), 3 * entry_size);
    assert_eq!(
        evicted,
        evict::Evicted {
            entries: 3,
            bytes: 3 * entry_size
        }
    );
    let kept: Vec<bool> = keys
        .iter()
        .map(|k| scratch.path().join("v1").join(entry_name(k)).exists())
        .collect();
    assert_eq!(kept, [true, true, false, false, false, true]);
}

#[test]
fn old_temp_files_are_swept() {
    let scratch = tempfile::tempdir().unwrap();
    let temps = scratch.path().join("tmp");
    std::fs::create_dir(&temps).unwrap();
    let (old, young) = (temps.join("1.0"), temps.join("2.0"));
    for path in [&old, &young] {
        std::fs::write(path, b"partial").unwrap();
    }
    File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    evict::to_size(scratch.path(), u64::MAX);
    assert!(!old.exists());
    assert!(young.exists());
}

#[test]
fn a_read_only_directory_is_read_with_one_notice() {
    if unsafe { libc::geteuid() } == 0 {
        // Root writes through permission bits; tests/it/cache.rs covers this
        // case as an unprivileged user.
        eprintln!("skipped: root ignores a directory's permission bits");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let writer = cache_in(scratch.path(), u64::MAX);
    let key = writer.key(&job(b"x = 1\n", b"m.py", 0));
    writer.put(&key, &Ok(b"code".to_vec()));
    std::fs::set_permissions(scratch.path().join("v1"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let reader = cache_in(scratch.path(), u64::MAX);
    assert!(reader.get(&key).is_some());
    let other = reader.key(&job(b"x = 2\n", b"m.py", 0));
    reader.put(&other, &Ok(b"code".to_vec()));
    let report = reader.finish().unwrap();
    std::fs::set_permissions(scratch.path().join("v1"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(report.notices.len(), 1, "{:?}", report.notices);
    assert_eq!(report.stored, 0);
}
