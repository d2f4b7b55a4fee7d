//! Keeping the cache within `--cache-max-size`: at the end of a run that
//! stored something, the least recently used entries (oldest mtime: a hit
//! touches its entry) are removed until the rest fits. Temp files that a
//! killed run left behind are removed too once they are an hour old (a
//! younger one may belong to a run still writing).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Removed by one eviction pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub entries: u64,
    pub bytes: u64,
}

const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Remove least-recently-used entries under `entries` until they take at
/// most `max_size` bytes. Another run may be removing the same files: a
/// file already gone counts for nobody.
pub fn to_size(entries: &Path, max_size: u64) -> Evicted {
    let mut found = Vec::new();
    let Ok(fanout) = std::fs::read_dir(entries) else {
        return Evicted::default();
    };
    for dir in fanout.flatten() {
        let is_temp = dir.file_name() == super::TEMP_DIR;
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            let Ok(meta) = file.metadata() else { continue };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if is_temp {
                if used.elapsed().is_ok_and(|age| age > STALE_TEMP) {
                    let _ = std::fs::remove_file(file.path());
                }
                continue;
            }
            found.push((used, meta.len(), file.path()));
        }
    }
    let mut total: u64 = found.iter().map(|(_, size, _)| size).sum();
    let mut evicted = Evicted::default();
    if total <= max_size {
        return evicted;
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    for (_, size, path) in found {
        if total <= max_size {
            break;
        }
        total -= size;
        if std::fs::remove_file(&path).is_ok() {
            evicted.entries += 1;
            evicted.bytes += size;
        }
    }
    evicted
}
