//! The command: parse, probe the target while the tree is walked, settle the
//! settings, run the engine, print the summary, and exit like compileall.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::cache::{Cache, CacheReport};
use crate::cli::Cli;
use crate::dfile::walk_keep;
use crate::engine::{Engine, RunTarget};
use crate::filelist::{FileListError, read_file_list};
use crate::prewalk::Prewalk;
use crate::report::{Printer, fatal};
use crate::select::select_all;
use crate::settings::{Environment, Settings};
use crate::target::Target;

/// Set by the SIGINT handler; the engine's threads stop taking new files.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether the run was interrupted (Ctrl-C).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if crate::bazel::wanted(&args) {
        return crate::bazel::main(args);
    }
    let cli = Cli::parse_args();
    let env = Environment::read();
    // The interpreters start while the tree is walked: neither needs the other.
    let (backend, wanted, pythons) = (cli.backend, cli.target.clone(), cli.python.clone());
    let default_python = env.default_python.clone();
    let probe =
        std::thread::spawn(move || select_all(backend, &wanted, &pythons, default_python.as_deref(), &Target::probe));
    let flist = cli.flist.clone();
    let file_list = flist.as_deref().map(read_file_list).transpose();
    let prewalk = match &file_list {
        Ok(list) if !cli.paths.is_empty() || cli.flist.is_some() => {
            let mut paths: Vec<PathBuf> = cli.paths.iter().map(PathBuf::from).collect();
            paths.extend(list.iter().flatten().cloned());
            let keep = walk_keep(cli.ddir.is_some(), cli.stripdir.is_some(), cli.prependdir.is_some());
            // As many as `-j` (settings refuse a negative one later).
            let threads = match cli.workers {
                Some(n) if n > 0 => usize::try_from(n).unwrap_or(1),
                _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            Some(Prewalk::new(&paths, walk_limit(&cli), keep, threads))
        }
        _ => None,
    };
    let targets = match probe.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
        Ok(t) => t,
        Err(e) => {
            fatal(&e);
            return ExitCode::from(2);
        }
    };
    // Paths are shown as the first target would show them.
    crate::pyrepr::set_target_version(targets[0].minor_version());
    let file_list = match file_list {
        Ok(list) => list.unwrap_or_default(),
        Err(FileListError::NotUtf8) => {
            // compileall dies with UnicodeDecodeError here, compiling nothing.
            let list = flist.as_deref().unwrap_or_default();
            fatal(&format!("the file list {} is not UTF-8", list.to_string_lossy()));
            return ExitCode::from(1);
        }
        Err(FileListError::Unreadable) => {
            let s = settings_or_exit(cli, &env, &targets, Vec::new());
            let Ok(settings) = s else {
                return ExitCode::from(2);
            };
            let mut printer = printer_for(&settings[0], &targets);
            printer.file_list_error(flist.as_deref().unwrap_or_default());
            let targets: Vec<&Target> = targets.iter().collect();
            return ExitCode::from(printer.finish(&targets, started.elapsed(), false));
        }
    };
    let Ok(settings) = settings_or_exit(cli, &env, &targets, file_list) else {
        return ExitCode::from(2);
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let mut printer = printer_for(&settings[0], &targets);
    // The engine's threads may outlive a run (an abandoned native compile):
    // what they read lives as long as the process.
    let run: Vec<RunTarget> = settings
        .into_iter()
        .zip(targets)
        .map(|(settings, target)| {
            let settings: &'static Settings = Box::leak(Box::new(settings));
            let target: &'static Target = Box::leak(Box::new(target));
            let cache = settings
                .cache
                .clone()
                .map(|config| &*Box::leak(Box::new(Cache::new(config, target))));
            RunTarget {
                settings,
                target,
                cache,
            }
        })
        .collect();
    Engine::new(&run).run(&mut printer, prewalk);
    let cached = run.iter().filter_map(|t| t.cache.and_then(Cache::finish));
    if let Some(report) = cached.reduce(CacheReport::merge) {
        printer.cache(report);
    }
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    let targets: Vec<&Target> = run.iter().map(|t| t.target).collect();
    let code = printer.finish(&targets, started.elapsed(), interrupted);
    ExitCode::from(if interrupted { 130 } else { code })
}

/// How deep to walk before the target is known: the flags' depth, or
/// compileall's default for 3.9+ (the recursion limit, 1000). A smaller
/// final depth (3.8's 10) is applied to the walked items afterwards; a
/// larger one (a raised recursion limit) walks again.
fn walk_limit(cli: &Cli) -> i64 {
    cli.depth_flag().unwrap_or(1000)
}

fn settings_or_exit(cli: Cli, env: &Environment, targets: &[Target], list: Vec<PathBuf>) -> Result<Vec<Settings>, ()> {
    Settings::for_targets(cli, env, targets, list).map_err(|e| fatal(&e))
}

fn printer_for(s: &Settings, targets: &[Target]) -> Printer {
    let mut printer = Printer::new(s.quiet, s.format, s.check, s.progress, s.color);
    printer.set_targets(&targets.iter().collect::<Vec<_>>());
    printer
}
