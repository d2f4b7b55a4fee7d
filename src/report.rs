//! The printer: the only code that writes to stdout or stderr.
//!
//! stdout carries compileall's lines (`Listing`, `Compiling`, `***`) in the
//! order a sequential compileall prints them, so scripts that read them keep
//! working; `--check` lines go there too. stderr gets the progress bar and a
//! one-line summary. `--format json` replaces everything on stdout with one
//! JSON document at the end.

use std::io::{self, BufWriter, Stdout, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cache::CacheReport;
use crate::cli::Format;
use crate::pyc::Staleness;
use crate::pyrepr::repr_path;
use crate::target::{Compiler, Target};

/// What went wrong with one file, for the JSON report and the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// compile() raised: SyntaxError, IndentationError, MemoryError…
    Compile,
    /// marshal.dumps raised (object too deeply nested).
    Marshal,
    WorkerCrashed,
    Timeout,
    /// The native backend cannot compile this file; the CPython one can.
    Unsupported,
    /// The source could not be read, or changed while being read.
    ReadSource,
    /// The pyc's path is a symlink or a non-regular file.
    Destination,
    /// Creating the directory or writing the pyc failed.
    Write,
    /// The target's `cache_from_source` would crash on this path.
    Layout,
    /// The pyc would land outside its destination root (`--root`, the
    /// prefix, or its source's directory; see destination.rs).
    OutsideRoot,
    /// compileall's `-s`/`-d` handling crashes on this path (TypeError).
    Dfile,
}

/// The end state of one candidate file.
#[derive(Debug)]
pub enum FileResult {
    /// Not compiled and not reported: not `.py`, excluded by `-x`/`-e`, not a regular file.
    Skipped,
    /// Every pyc already matches.
    Fresh,
    Compiled,
    /// `--check`: these pycs are missing or stale.
    Stale(Vec<(PathBuf, Staleness)>),
    Failed {
        kind: ErrorKind,
        message: String,
        compiling_printed: bool,
        /// The OS error behind a read or write failure.
        errno: Option<i32>,
    },
}

#[derive(Debug)]
pub struct FileReport {
    /// The path as compileall builds it (shown with `repr`).
    pub path: Vec<u8>,
    /// Which of the run's targets (their order on the command line).
    pub target: usize,
    /// A line compileall prints before handling the file (3.13+ stripdir warning).
    pub warning: Option<String>,
    pub result: FileResult,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Counts {
    compiled: u64,
    fresh: u64,
    failed: u64,
    stale: u64,
    skipped: u64,
}

#[derive(serde::Serialize)]
struct JsonError {
    path: String,
    /// The target's cache tag, in a run with several targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    kind: ErrorKind,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<i32>,
    /// Python's `errno.errorcode` name, e.g. `ENOSPC`.
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_name: Option<&'static str>,
}

#[derive(serde::Serialize)]
struct JsonStale {
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    pyc: String,
    reason: Staleness,
}

pub struct Printer {
    quiet: u8,
    format: Format,
    check: bool,
    out: BufWriter<Stdout>,
    bar: Option<ProgressBar>,
    /// Per target, in the run's order.
    counts: Vec<Counts>,
    /// Per target, its cache tag when a run has several; empty with one.
    tags: Vec<String>,
    /// Per target, what starts its lines (`[cpython-313] `), from `tags`.
    labels: Vec<String>,
    /// For the JSON document (kept only with `--format json`).
    errors: Vec<JsonError>,
    stale: Vec<JsonStale>,
    file_list_error: bool,
    cache: Option<CacheReport>,
}

impl Printer {
    pub fn new(quiet: u8, format: Format, check: bool, progress: bool, color: bool) -> Printer {
        let bar = progress.then(|| {
            let template = if color {
                "{spinner:.green} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} {wide_msg}"
            } else {
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {wide_msg}"
            };
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            bar
        });
        Printer {
            quiet,
            format,
            check,
            out: BufWriter::new(io::stdout()),
            bar,
            counts: vec![Counts::default()],
            tags: Vec::new(),
            labels: Vec::new(),
            errors: Vec::new(),
            stale: Vec::new(),
            file_list_error: false,
            cache: None,
        }
    }

    /// A run with several targets: each file's lines start with its
    /// target's cache tag, and each target gets its counts and summary.
    pub fn set_targets(&mut self, targets: &[&Target]) {
        self.counts = vec![Counts::default(); targets.len()];
        if targets.len() > 1 {
            self.tags = targets.iter().map(|t| t.cache_tag.clone()).collect();
            self.labels = self.tags.iter().map(|tag| format!("[{tag}] ")).collect();
        }
    }

    /// What the compile cache did, for the summary.
    pub fn cache(&mut self, report: CacheReport) {
        self.cache = Some(report);
    }

    fn text(&self) -> bool {
        self.format == Format::Text
    }

    /// A line on stdout. A closed stdout (`| head`) is not an error worth
    /// dying for; the exit code still tells the truth.
    fn line(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// How many files the progress bar counts towards.
    pub fn add_to_total(&mut self, files: u64) {
        if let Some(bar) = &self.bar {
            bar.inc_length(files);
        }
    }

    /// Not in `--check` mode, whose output is only the stale pycs.
    pub fn listing(&mut self, dir: &[u8]) {
        if self.quiet == 0 && self.text() && !self.check {
            let line = format!("Listing {}...", repr_path(dir));
            self.line(&line);
        }
    }

    pub fn cant_list(&mut self, dir: &[u8]) {
        if self.quiet < 2 && self.text() {
            let line = format!("Can't list {}", repr_path(dir));
            self.line(&line);
        }
    }

    pub fn skipping_current_directory(&mut self) {
        if self.quiet < 2 && self.text() {
            self.line("Skipping current directory");
        }
    }

    pub fn file_list_error(&mut self, list: &std::ffi::OsStr) {
        self.file_list_error = true;
        if self.quiet < 2 && self.text() {
            // compileall formats it with str(), not repr().
            let line = format!("Error reading file list {}", list.to_string_lossy());
            self.line(&line);
        }
    }

    pub fn file(&mut self, report: FileReport) {
        // The total counts `.py` candidates only (the engine's `add_to_total`).
        if let Some(bar) = &self.bar
            && report.path.ends_with(b".py")
        {
            bar.inc(1);
        }
        let label = self.labels.get(report.target).cloned().unwrap_or_default();
        if let Some(warning) = &report.warning
            && self.quiet < 2
            && self.text()
        {
            self.line(&format!("{label}{warning}"));
        }
        // Only printed lines need the repr: not worked out for fresh files.
        let shown = || repr_path(&report.path);
        let t = report.target;
        match report.result {
            FileResult::Skipped => self.counts[t].skipped += 1,
            FileResult::Fresh => self.counts[t].fresh += 1,
            FileResult::Compiled => {
                self.counts[t].compiled += 1;
                if self.quiet == 0 && self.text() {
                    self.line(&format!("{label}Compiling {}...", shown()));
                }
            }
            FileResult::Stale(pycs) => {
                self.counts[t].stale += 1;
                let tag = self.tags.get(t).cloned();
                self.stale_pycs(&report.path, pycs, &label, tag)
            }
            FileResult::Failed {
                kind,
                message,
                compiling_printed,
                errno,
            } => {
                self.counts[t].failed += 1;
                if self.text() {
                    self.failure(&label, &shown(), &message, compiling_printed);
                } else {
                    self.errors.push(JsonError {
                        path: lossy(&report.path),
                        target: self.tags.get(t).cloned(),
                        kind,
                        message,
                        errno,
                        errno_name: errno.and_then(crate::pyrepr::errno_name),
                    });
                }
            }
        }
    }

    /// compileall's three quiet levels for a failed file.
    fn failure(&mut self, label: &str, shown: &str, message: &str, compiling_printed: bool) {
        match self.quiet {
            0 => {
                if compiling_printed {
                    self.line(&format!("{label}Compiling {shown}..."));
                }
                self.line(&format!("{label}*** {message}"));
            }
            1 => {
                self.line(&format!("{label}*** Error compiling {shown}..."));
                self.line(message);
            }
            _ => {}
        }
    }

    fn stale_pycs(&mut self, source: &[u8], pycs: Vec<(PathBuf, Staleness)>, label: &str, tag: Option<String>) {
        for (pyc, reason) in pycs {
            let pyc_bytes = pyc.as_os_str().as_encoded_bytes();
            if self.text() && self.quiet < 2 {
                let line = format!(
                    "{label}{}: {} for {}",
                    reason.describe(),
                    repr_path(pyc_bytes),
                    repr_path(source)
                );
                self.line(&line);
            }
            // Kept for the JSON document only: a text run over a big stale
            // tree need not hold one per pyc.
            if !self.text() {
                self.stale.push(JsonStale {
                    source: lossy(source),
                    target: tag.clone(),
                    pyc: lossy(pyc_bytes),
                    reason,
                });
            }
        }
    }

    /// Finish output and return the exit code: 1 if any file failed (or,
    /// with `--check`, was stale), like compileall. `targets` are the run's,
    /// in the order of `set_targets`.
    pub fn finish(mut self, targets: &[&Target], elapsed: Duration, interrupted: bool) -> u8 {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if interrupted && self.quiet < 2 && self.text() {
            self.line("\n[interrupted]");
        }
        let total = self.counts.iter().fold(Counts::default(), |sum, c| sum.plus(c));
        let failed = total.failed > 0 || self.file_list_error || interrupted;
        let stale = self.check && total.stale > 0;
        let code = u8::from(failed || stale);
        if self.format == Format::Json {
            let per_target: Vec<_> = targets
                .iter()
                .zip(&self.counts)
                .map(|(target, counts)| serde_json::json!({"target": target, "counts": counts}))
                .collect();
            let mut doc = serde_json::json!({
                "check": self.check,
                "counts": &total,
                "targets": per_target,
                "elapsed_seconds": elapsed.as_secs_f64(),
                "errors": &self.errors,
                "stale": &self.stale,
                "cache": &self.cache,
                "exit_code": code,
            });
            if let [target] = targets {
                doc["target"] = serde_json::json!(target);
            }
            let _ = writeln!(self.out, "{doc:#}");
        }
        let _ = self.out.flush();
        if self.quiet < 2 && self.format == Format::Text {
            for (target, counts) in targets.iter().zip(&self.counts) {
                eprintln!("{}", self.summary(counts, target, elapsed));
            }
            if let Some(cache) = &self.cache {
                for notice in &cache.notices {
                    eprintln!("precompyle: cache: {notice}");
                }
                eprintln!("{}", cache_summary(cache));
            }
        }
        code
    }

    fn summary(&self, c: &Counts, target: &Target, elapsed: Duration) -> String {
        let what = if self.check {
            format!("{} stale or missing, {} fresh", c.stale, c.fresh)
        } else {
            format!("{} compiled, {} fresh", c.compiled, c.fresh)
        };
        format!(
            "precompyle: {what}, {} failed in {:.2}s ({} {}, {}, {} backend)",
            c.failed,
            elapsed.as_secs_f64(),
            target.implementation,
            target.version_string(),
            target.cache_tag,
            match target.compiler {
                Compiler::Cpython => "cpython",
                Compiler::Native => "native",
            }
        )
    }
}

impl Counts {
    fn plus(mut self, other: &Counts) -> Counts {
        self.compiled += other.compiled;
        self.fresh += other.fresh;
        self.failed += other.failed;
        self.stale += other.stale;
        self.skipped += other.skipped;
        self
    }
}

fn cache_summary(c: &CacheReport) -> String {
    let mut line = format!(
        "precompyle: cache {}: {} hits, {} misses, {} stored ({})",
        c.dir,
        c.hits,
        c.misses,
        c.stored,
        megabytes(c.stored_bytes)
    );
    if c.invalid > 0 {
        line += &format!(", {} invalid ignored", c.invalid);
    }
    if c.evicted > 0 {
        line += &format!(", {} evicted ({})", c.evicted, megabytes(c.evicted_bytes));
    }
    line
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Print a usage or start-up error the way argparse-style tools do.
pub fn fatal(message: &dyn std::fmt::Display) {
    eprintln!("precompyle: error: {message}");
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Staleness {
    pub fn describe(self) -> &'static str {
        match self {
            Staleness::Missing => "missing",
            Staleness::Unreadable => "unreadable",
            Staleness::OtherMagic => "other magic",
            Staleness::ModeDiffers => "mode differs",
            Staleness::MtimeDiffers => "mtime differs",
            Staleness::SizeDiffers => "size differs",
            Staleness::HashDiffers => "hash differs",
        }
    }
}
