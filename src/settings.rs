//! Checked settings, built from the command line and the environment. Code
//! below this layer never reads clap or environment variables.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cache::CacheSettings;
use crate::cli::{self, Cli, Format, InvalidationModeArg};
use crate::dfile::DfileRules;
use crate::pyc::InvalidationMode;
use crate::target::Target;

/// What to compile.
#[derive(Debug, Clone)]
pub enum Dests {
    /// FILE|DIR arguments, then `-i` lines, in order.
    Paths(Vec<PathBuf>),
    /// No arguments: the target's `sys.path`, each with maxlevels 0.
    SysPath(Vec<PathBuf>),
}

#[derive(Debug)]
pub struct Settings {
    pub dests: Dests,
    pub maxlevels: i64,
    pub force: bool,
    pub quiet: u8,
    pub legacy: bool,
    pub dfile: DfileRules,
    pub rx: Option<fancy_regex::Regex>,
    /// `-e`, resolved against the cwd (and `--root`).
    pub limit_sl_dest: Option<PathBuf>,
    pub workers: usize,
    /// Sorted, without duplicates, as compileall uses them.
    pub opt_levels: Vec<i64>,
    pub hardlink_dupes: bool,
    pub mode: InvalidationMode,
    pub prefix: Option<Vec<u8>>,
    pub root: Option<PathBuf>,
    pub check: bool,
    pub timeout: Option<Duration>,
    pub format: Format,
    pub progress: bool,
    pub color: bool,
    /// Physical cwd (`os.getcwd()`).
    pub cwd: PathBuf,
    /// `--cache-dir`; never with `--check`, which compiles nothing.
    pub cache: Option<CacheSettings>,
}

/// A usage error: printed as `precompyle: error: …`, exit 2 (like argparse).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("Hardlinking of duplicated bytecode makes sense only for more than one optimization level.")]
    HardlinkNeedsLevels,
    #[error("-d cannot be used in combination with -s or -p")]
    DdirWithStrip,
    #[error("no FILE|DIR given, and a native target has no interpreter whose sys.path could be compiled")]
    NoSysPath,
    #[error("workers must be greater or equal to 0")]
    NegativeWorkers,
    #[error("invalid -x regular expression {pattern:?}: {source}")]
    Regex {
        pattern: String,
        #[source]
        source: Box<fancy_regex::Error>,
    },
    #[error("cannot determine the current directory: {0}")]
    Cwd(#[source] std::io::Error),
    #[error("--root {}: {reason}", .root.display())]
    Root { root: PathBuf, reason: &'static str },
    #[error("several targets need FILE|DIR arguments (each target's sys.path differs)")]
    TargetsWithoutPaths,
    #[error("several targets cannot share -b's legacy pyc locations (each would overwrite the other's)")]
    TargetsWithLegacy,
}

/// Failure to read the `-i` list: compileall prints `Error reading file list
/// FILE` and exits 1 without compiling anything.
#[derive(Debug)]
pub struct FileListError(pub OsString);

/// What the environment says, read once by `main`.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    /// What workers inherit (the compile cache keys on it).
    pub hash_seed: Option<OsString>,
    /// The interpreter `python -m precompyle` runs under (select.rs).
    pub default_python: Option<PathBuf>,
    pub pycache_prefix: Option<OsString>,
    pub source_date_epoch: Option<OsString>,
    pub no_color: bool,
    pub stderr_is_terminal: bool,
}

impl Environment {
    pub fn read() -> Environment {
        use std::io::IsTerminal;
        Environment {
            hash_seed: std::env::var_os("PYTHONHASHSEED"),
            default_python: std::env::var_os(cli::env::DEFAULT_PYTHON)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            pycache_prefix: std::env::var_os(cli::env::PYCACHE_PREFIX),
            source_date_epoch: std::env::var_os(cli::env::SOURCE_DATE_EPOCH),
            no_color: std::env::var_os(cli::env::NO_COLOR).is_some_and(|v| !v.is_empty()),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Settings {
    /// The settings of each target of a run, in its order. They differ only
    /// in what depends on the version (the default depth, `-d`/`-s`/`-p`
    /// rules); everything the engine shares is the same in all.
    pub fn for_targets(
        cli: Cli,
        env: &Environment,
        targets: &[Target],
        file_list: Vec<PathBuf>,
    ) -> Result<Vec<Settings>, SettingsError> {
        if targets.len() > 1 {
            if cli.paths.is_empty() && cli.flist.is_none() {
                return Err(SettingsError::TargetsWithoutPaths);
            }
            if cli.legacy {
                return Err(SettingsError::TargetsWithLegacy);
            }
        }
        targets
            .iter()
            .map(|target| Settings::new(cli.clone(), env, target, file_list.clone()))
            .collect()
    }

    pub fn new(
        cli: Cli,
        env: &Environment,
        target: &Target,
        file_list: Vec<PathBuf>,
    ) -> Result<Settings, SettingsError> {
        if cli.hardlink_dupes && cli.opt_levels.len() < 2 {
            return Err(SettingsError::HardlinkNeedsLevels);
        }
        if cli.ddir.is_some() && (cli.stripdir.is_some() || cli.prependdir.is_some()) {
            return Err(SettingsError::DdirWithStrip);
        }
        let workers = match cli.workers {
            Some(n) if n < 0 => return Err(SettingsError::NegativeWorkers),
            Some(n) if n > 0 => n as usize,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let rx = cli
            .rx
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| {
                fancy_regex::Regex::new(&python_pattern(p)).map_err(|e| SettingsError::Regex {
                    pattern: p.to_owned(),
                    source: Box::new(e),
                })
            })
            .transpose()?;
        let cwd = std::env::current_dir().map_err(SettingsError::Cwd)?;
        let root = cli.root.as_deref().map(|r| check_root(r, &cwd)).transpose()?;
        let no_args = cli.paths.is_empty() && cli.flist.is_none();
        let dests = if no_args {
            let tail = target.sys_path_tail.as_ref().ok_or(SettingsError::NoSysPath)?;
            let mut entries = vec![cwd.clone()];
            entries.extend(tail.iter().cloned());
            Dests::SysPath(entries)
        } else {
            let mut paths: Vec<PathBuf> = cli.paths.iter().map(PathBuf::from).collect();
            paths.extend(file_list);
            Dests::Paths(paths)
        };
        let maxlevels = match cli.depth_flag() {
            Some(depth) => depth,
            None if target.minor_version() < (3, 9) => 10,
            None => target.recursion_limit,
        };
        let mut opt_levels = if cli.opt_levels.is_empty() {
            vec![-1]
        } else {
            cli.opt_levels.clone()
        };
        opt_levels.sort_unstable();
        opt_levels.dedup();
        let mode = match cli.invalidation_mode {
            Some(InvalidationModeArg::Timestamp) => InvalidationMode::Timestamp,
            Some(InvalidationModeArg::CheckedHash) => InvalidationMode::CheckedHash,
            Some(InvalidationModeArg::UncheckedHash) => InvalidationMode::UncheckedHash,
            // py_compile's rule: only non-emptiness of SOURCE_DATE_EPOCH counts.
            None if env.source_date_epoch.as_ref().is_some_and(|v| !v.is_empty()) => InvalidationMode::CheckedHash,
            None => InvalidationMode::Timestamp,
        };
        let prefix = if cli.no_prefix {
            None
        } else {
            cli.prefix
                .or_else(|| env.pycache_prefix.clone())
                .filter(|p| !p.is_empty())
                .map(OsString::into_vec)
        };
        let limit_sl_dest = cli
            .limit_sl_dest
            .filter(|d| !d.is_empty())
            .map(|d| resolve_limit(Path::new(&d), &cwd, root.as_deref()));
        let bytes = |o: Option<OsString>| o.map(OsString::into_vec);
        let dfile = DfileRules {
            ddir: bytes(cli.ddir),
            stripdir: bytes(cli.stripdir),
            prependdir: bytes(cli.prependdir),
            version: target.minor_version(),
        };
        let quiet = cli.quiet.min(2);
        let mut settings = Settings {
            dests,
            maxlevels,
            force: cli.force,
            quiet,
            legacy: cli.legacy,
            dfile,
            rx,
            limit_sl_dest,
            workers,
            opt_levels,
            hardlink_dupes: cli.hardlink_dupes,
            mode,
            prefix,
            root,
            check: cli.check,
            timeout: (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout)),
            format: cli.format,
            progress: !cli.no_progress && quiet == 0 && env.stderr_is_terminal && cli.format == Format::Text,
            color: !env.no_color,
            cache: cli.cache_dir.filter(|_| !cli.check).map(|dir| CacheSettings {
                dir: lexical_absolute(&dir, &cwd),
                max_size: cli.cache_max_size,
                hash_seed: env.hash_seed.clone(),
            }),
            cwd,
        };
        if no_args {
            settings.ignore_what_compile_path_ignores(target);
        }
        Ok(settings)
    }

    /// compileall's no-argument mode honours only -f, -q, -b and
    /// --invalidation-mode; -j is ours to keep.
    fn ignore_what_compile_path_ignores(&mut self, target: &Target) {
        self.maxlevels = 0;
        self.rx = None;
        self.limit_sl_dest = None;
        self.opt_levels = vec![-1];
        self.hardlink_dupes = false;
        self.dfile = DfileRules {
            version: target.minor_version(),
            ..DfileRules::default()
        };
    }

    /// The suffix `cache_from_source` gets for a level: compileall passes
    /// `''` for 0 and nothing (the interpreter's own level) for negatives.
    pub fn optimization_suffix(level: i64, interpreter_level: u8) -> String {
        let level = if level < 0 { i64::from(interpreter_level) } else { level };
        if level == 0 { String::new() } else { level.to_string() }
    }
}

fn check_root(root: &OsStr, cwd: &Path) -> Result<PathBuf, SettingsError> {
    let root = lexical_absolute(Path::new(root), cwd);
    if !root.is_dir() {
        return Err(SettingsError::Root {
            root,
            reason: "is not a directory",
        });
    }
    Ok(root)
}

/// `-e DIR` as compileall resolves it (`Path(DIR).resolve()`); under `--root`
/// the directory names a run-time path, so it is looked up inside the root.
fn resolve_limit(dir: &Path, cwd: &Path, root: Option<&Path>) -> PathBuf {
    match root {
        Some(root) => resolve_in_root(&lexical_absolute(dir, Path::new("/")), root),
        None => {
            let abs = lexical_absolute(dir, cwd);
            std::fs::canonicalize(&abs).unwrap_or(abs)
        }
    }
}

/// `os.path.abspath` without touching the disk: join with `base` and
/// collapse `.`, `..` and repeated slashes.
pub fn lexical_absolute(path: &Path, base: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in joined.as_os_str().as_bytes().split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Resolve `path` (absolute, run-time) as if `root` were `/`: absolute
/// symlink targets are looked up inside the root, and `..` never climbs out
/// of it. Used for `-e` under `--root`, where the staged tree's links name
/// run-time paths.
pub fn resolve_in_root(path: &Path, root: &Path) -> PathBuf {
    let mut todo: Vec<Vec<u8>> = components(path.as_os_str().as_bytes());
    todo.reverse();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(part);
        let host = root.join(PathBuf::from(OsString::from_vec(done.join(&b'/'))));
        let Ok(target) = std::fs::read_link(&host) else {
            continue;
        };
        hops += 1;
        if hops > 40 {
            break;
        }
        done.pop();
        let target = target.as_os_str().as_bytes();
        if target.starts_with(b"/") {
            done.clear();
        }
        let mut parts = components(target);
        parts.reverse();
        todo.extend(parts);
    }
    let mut out = b"/".to_vec();
    out.extend(done.join(&b'/'));
    root.join(
        PathBuf::from(OsString::from_vec(out))
            .strip_prefix("/")
            .unwrap_or(Path::new("")),
    )
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Rewrite a Python `re` pattern where the regex crate's syntax differs:
/// inside a character class Python treats `[`, `&&`, `--` and `~~` as plain
/// characters (so `[[:alpha:]]` is a class of `[:alph` then `]`), and `\Z`
/// is the end of the string.
fn python_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    // Python: a `]` first in a class (after `[` or `[^`) is literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next();
                match next {
                    Some('Z') if !in_class => out.push_str("\\z"),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
                class_start = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                class_start = true;
                continue;
            }
            ']' if in_class && class_start => out.push_str("\\]"),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => out.push('-'),
            _ => out.push(c),
        }
        class_start = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::python_pattern;

    /// Each pattern's meaning was checked with Python 3.11's `re.search`
    /// on the subject strings in `python_regex_semantics` below.
    #[test]
    fn python_pattern_escapes_what_python_treats_literally() {
        let cases = [
            ("[[:alpha:]]", "[\\[:alpha:]]"),
            ("a[&&b]", "a[\\&\\&b]"),
            ("[]a]", "[\\]a]"),
            ("[^]a]", "[^\\]a]"),
            ("x\\Z", "x\\z"),
            ("t/s.*\\.py$", "t/s.*\\.py$"),
            ("[a\\]b]", "[a\\]b]"),
        ];
        for (python, rust) in cases {
            assert_eq!(python_pattern(python), rust, "{python}");
        }
    }

    #[test]
    fn python_regex_semantics() {
        // (pattern, subject, Python 3.11's `bool(re.search(pattern, subject))`)
        let cases = [
            ("[[:alpha:]]", "t/a.py", false),
            ("[[:alpha:]]", "t/a]", true),
            ("[]a]", "]", true),
            ("[^]a]", "a", false),
            ("py\\Z", "t/a.py", true),
            ("^t/s", "t/sub/s.py", true),
            ("a[&&b]", "a&", true),
        ];
        for (pattern, subject, python) in cases {
            let re = fancy_regex::Regex::new(&python_pattern(pattern)).unwrap();
            assert_eq!(re.is_match(subject).unwrap(), python, "{pattern} on {subject}");
        }
    }
}
