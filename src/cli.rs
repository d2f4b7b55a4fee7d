//! The command line: compileall's flags with compileall's spellings, plus
//! precompyle's own options under their own heading. Nothing here is
//! validated beyond what clap does; `settings.rs` turns this into checked
//! settings.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};

/// Environment variables precompyle reads, in one place so `--help` and the
/// README can name them.
pub mod env {
    pub const PYTHON: &str = "PRECOMPYLE_PYTHON";
    /// Set by `python -m precompyle` to the interpreter running it.
    pub const DEFAULT_PYTHON: &str = "PRECOMPYLE_DEFAULT_PYTHON";
    pub const BACKEND: &str = "PRECOMPYLE_BACKEND";
    pub const TARGET: &str = "PRECOMPYLE_TARGET";
    pub const PYCACHE_PREFIX: &str = "PYTHONPYCACHEPREFIX";
    pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
    pub const TIMEOUT: &str = "PRECOMPYLE_TIMEOUT";
    pub const NO_COLOR: &str = "NO_COLOR";
    pub const CACHE_DIR: &str = "PRECOMPYLE_CACHE_DIR";
    pub const CACHE_MAX_SIZE: &str = "PRECOMPYLE_CACHE_MAX_SIZE";
}

const OWN: &str = "precompyle options";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "precompyle",
    version,
    about = "Precompile Python source trees into .pyc files, byte-for-byte as CPython would.",
    long_about = "Precompile Python source trees into .pyc files, byte-for-byte as CPython would.\n\n\
        Accepts python -m compileall's flags with the same meaning. With no FILE|DIR, compiles \
        the target interpreter's sys.path (like compileall: -l, only -f, -q, -b and \
        --invalidation-mode apply).",
    disable_help_flag = true
)]
pub struct Cli {
    /// Files and directories to compile; with none, the target's sys.path.
    #[arg(value_name = "FILE|DIR")]
    pub paths: Vec<OsString>,

    /// Don't recurse into subdirectories.
    #[arg(short = 'l')]
    pub no_recurse: bool,

    /// Maximum recursion level (overrides -l).
    #[arg(short = 'r', value_name = "N", allow_hyphen_values = true)]
    pub recursion: Option<i64>,

    /// Force rebuild even if the pyc is up to date.
    #[arg(short = 'f')]
    pub force: bool,

    /// Output only error messages; -qq suppresses the error messages as well.
    #[arg(short = 'q', action = ArgAction::Count)]
    pub quiet: u8,

    /// Use legacy (pre-PEP 3147) pyc locations: FILE.pyc next to FILE.py.
    #[arg(short = 'b')]
    pub legacy: bool,

    /// Directory to prepend to file paths in co_filename (for tracebacks).
    #[arg(short = 'd', value_name = "DESTDIR")]
    pub ddir: Option<OsString>,

    /// Part of the source path to left-strip for co_filename.
    #[arg(short = 's', value_name = "STRIPDIR")]
    pub stripdir: Option<OsString>,

    /// Path to prepend to the source path for co_filename (after -s).
    #[arg(short = 'p', value_name = "PREPENDDIR")]
    pub prependdir: Option<OsString>,

    /// Skip files whose full path matches this (Python re) regular expression.
    #[arg(short = 'x', value_name = "REGEXP")]
    pub rx: Option<String>,

    /// Add the files and directories listed in FILE ("-" for stdin).
    #[arg(short = 'i', value_name = "FILE")]
    pub flist: Option<OsString>,

    /// Compile with N parallel workers (0 = all cores, the default).
    #[arg(short = 'j', long = "workers", value_name = "N", allow_hyphen_values = true)]
    pub workers: Option<i64>,

    /// Optimization level (repeatable; -1 = the interpreter's own).
    #[arg(short = 'o', value_name = "LEVEL", action = ArgAction::Append, allow_hyphen_values = true)]
    pub opt_levels: Vec<i64>,

    /// Ignore symlinks pointing outside of DIR.
    #[arg(short = 'e', value_name = "DIR")]
    pub limit_sl_dest: Option<OsString>,

    /// Hardlink duplicated pyc files across optimization levels.
    #[arg(long = "hardlink-dupes")]
    pub hardlink_dupes: bool,

    /// How the pyc is invalidated; default checked-hash if SOURCE_DATE_EPOCH is set, else timestamp.
    #[arg(long = "invalidation-mode", value_enum)]
    pub invalidation_mode: Option<InvalidationModeArg>,

    /// Print help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,

    /// Target interpreter: asked once for version, magic number and cache tag [default: python3.X
    /// for --target 3.X, then python3; under `python -m precompyle`, the interpreter running it
    /// first]. Repeat it to compile for several interpreters in one run.
    #[arg(long, value_name = "PATH", env = env::PYTHON, help_heading = OWN)]
    pub python: Vec<PathBuf>,

    /// Python version to compile for [default: that of the interpreter]. Several, comma-separated
    /// (3.12,3.13,3.14), compile each source for each version in one run.
    #[arg(long, value_name = "3.X", env = env::TARGET, value_parser = parse_target, value_delimiter = ',', help_heading = OWN)]
    pub target: Vec<(u32, u32)>,

    /// Who compiles. cpython: workers of the target interpreter (any CPython 3.8+). native: serc,
    /// in-process, for 3.12-3.15, no Python needed once --target is given. auto: cpython when an
    /// interpreter of the target version is found (--python, else python3.X, else python3), else
    /// native.
    #[arg(long, value_enum, env = env::BACKEND, default_value_t = BackendArg::Auto, help_heading = OWN)]
    pub backend: BackendArg,

    /// Mirror pycs under DIR as sys.pycache_prefix would [default: $PYTHONPYCACHEPREFIX].
    #[arg(long, value_name = "DIR", help_heading = OWN, conflicts_with = "no_prefix")]
    pub prefix: Option<OsString>,

    /// Ignore PYTHONPYCACHEPREFIX.
    #[arg(long, help_heading = OWN)]
    pub no_prefix: bool,

    /// Staged install: sources under DESTDIR will live at the same path without it at run time.
    #[arg(long, value_name = "DESTDIR", help_heading = OWN)]
    pub root: Option<OsString>,

    /// Write nothing; list every missing or stale pyc with its reason and exit 1 if any.
    #[arg(long, help_heading = OWN)]
    pub check: bool,

    /// Seconds one file may take to compile before its worker is replaced (0 = no limit).
    #[arg(long, value_name = "SECS", env = env::TIMEOUT, default_value_t = 60, help_heading = OWN)]
    pub timeout: u64,

    /// Summary format on stderr (json prints a machine-readable summary on stdout's behalf to stderr).
    #[arg(long, value_enum, default_value_t = Format::Text, help_heading = OWN)]
    pub format: Format,

    /// Keep each compile's result in DIR and take it from there in later runs (off unless given).
    #[arg(long, value_name = "DIR", env = env::CACHE_DIR, help_heading = OWN)]
    pub cache_dir: Option<PathBuf>,

    /// Largest the cache may grow (K, M, G, T); least recently used entries are removed first.
    #[arg(long, value_name = "SIZE", env = env::CACHE_MAX_SIZE, default_value = "2G", value_parser = parse_size, help_heading = OWN)]
    pub cache_max_size: u64,

    /// Never draw a progress bar.
    #[arg(long, help_heading = OWN)]
    pub no_progress: bool,
}

impl Cli {
    /// The command line of this process, exiting on `--help`, `--version`
    /// and errors as clap does. `--version` also names the native compiler
    /// and the CPython releases it reproduces.
    pub fn parse_args() -> Cli {
        let version = format!("{} ({})", env!("CARGO_PKG_VERSION"), crate::backend::native::describe());
        let matches = Cli::command().version(version).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The walk depth `-r`/`-l` ask for (`-r` wins), or `None` for
    /// compileall's version-dependent default.
    pub fn depth_flag(&self) -> Option<i64> {
        self.recursion.or(self.no_recurse.then_some(0))
    }
}

/// `3.X` as a (major, minor) pair.
fn parse_target(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    match parsed {
        Some((3, minor)) => Ok((3, minor)),
        _ => Err(format!("expected a version such as 3.12, got '{text}'")),
    }
}

/// `--cache-max-size`: bytes, or a number with K, M, G or T (powers of
/// 1024; `KiB`, `MB` and `GiB` are read the same way).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("expected a size such as 500M or 2G, got '{text}'")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a size such as 500M or 2G, got '{text}'"))?;
    Ok((value * (1u64 << shift) as f64) as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Auto,
    Native,
    Cpython,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvalidationModeArg {
    #[value(name = "checked-hash")]
    CheckedHash,
    #[value(name = "timestamp")]
    Timestamp,
    #[value(name = "unchecked-hash")]
    UncheckedHash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        let cases = [
            ("0", Some(0)),
            ("1234", Some(1234)),
            ("500M", Some(500 << 20)),
            ("2G", Some(2 << 30)),
            ("2GiB", Some(2 << 30)),
            ("1.5g", Some(3 << 29)),
            ("10 KB", Some(10 << 10)),
            ("1T", Some(1 << 40)),
            ("", None),
            ("G", None),
            ("12Q", None),
            ("-1G", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text).ok(), expected, "{text:?}");
        }
    }
}
