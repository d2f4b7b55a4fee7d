//! The native backend's nesting guard alone: its byte scan
//! (`guard::nesting_bound`) over every `.py` under a tree, decoded as serc
//! decodes them, timed over several passes. The sums printed let two builds
//! be checked to scan alike; the instructions to compare come from
//! callgrind (docs/native-cpu.md):
//!
//! ```sh
//! cargo build --profile quick --ignore-rust-version --example guard_scan
//! target/quick/examples/guard_scan TREE
//! GUARD_SCAN_PASSES=1 valgrind --tool=callgrind --toggle-collect='*nesting_bound*' \
//!     target/quick/examples/guard_scan TREE
//! ```

use std::path::PathBuf;
use std::time::Instant;

#[allow(dead_code)]
#[path = "../src/backend/native/guard.rs"]
mod guard;

fn main() {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: guard_scan TREE");
        std::process::exit(2);
    };
    let passes: u32 = std::env::var("GUARD_SCAN_PASSES").map_or(7, |v| v.parse().expect("a number of passes"));
    let mut texts = Vec::new();
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let entry = entry.expect("a readable tree");
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "py") {
            let bytes = std::fs::read(entry.path()).expect("a readable file");
            // What serc cannot decode never reaches the guard.
            if let Ok(text) = serc::decode_source(&bytes) {
                texts.push(text.into_owned());
            }
        }
    }
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut best = f64::INFINITY;
    let mut sums = (0u64, 0u64, 0usize);
    for _ in 0..passes {
        let start = Instant::now();
        sums = (0, 0, 0);
        for text in &texts {
            let scan = guard::nesting_bound(text.as_bytes(), false);
            sums.0 += u64::from(scan.bound);
            sums.1 += u64::from(scan.unary_run);
            sums.2 += usize::from(scan.bracket_excess.is_some());
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{} files, {bytes} bytes: best of {passes} passes {:.1} ms, {:.2} ns/byte; bounds {}, unary runs {}, bracket excesses {}",
        texts.len(),
        best * 1e3,
        best * 1e9 / bytes as f64,
        sums.0,
        sums.1,
        sums.2
    );
}
