//! The floor under the native backend: every `.py` under the given trees,
//! read and compiled with serc exactly as `backend/native.rs` calls it, on
//! one thread, writing nothing. Each flag adds one of precompyle's own
//! per-file steps, so a step's cost is the difference between two runs
//! (docs/native-cpu.md has the numbers and the commands).
//!
//! ```sh
//! cargo build --release --ignore-rust-version --example serc_floor
//! valgrind --tool=callgrind target/release/examples/serc_floor TREE            # serc alone
//! valgrind --tool=callgrind target/release/examples/serc_floor --precompyle TREE # every step
//! SERC_FLOOR_ALLOC=system target/release/examples/serc_floor TREE            # glibc malloc
//! ```
//!
//! The guard and the marshal-depth walk are precompyle's own modules,
//! compiled in from `src/` so the harness cannot drift from them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;

use clap::Parser;
use serc::{CompileOptions, OptimizationLevel, PythonVersion};

#[path = "../src/allocator.rs"]
mod allocator;
#[allow(dead_code)]
#[path = "../src/backend/native/guard.rs"]
mod guard;
#[allow(dead_code)]
#[path = "../src/backend/native/marshal_depth.rs"]
mod marshal_depth;

/// What precompyle's `main.rs` passes serc: `sys.get_int_max_str_digits()`.
const INT_MAX_STR_DIGITS: u32 = 4300;
/// The compile thread's stack in `backend/native/threads.rs`.
const PRECOMPYLE_STACK_MIB: usize = 256;

#[derive(Parser)]
#[command(about = "serc on a tree, with precompyle's per-file steps added one at a time")]
struct Args {
    /// Trees (or files) whose `.py` files are compiled, in sorted walk order.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Target version: 3.12, 3.13, 3.14 or 3.15.
    #[arg(long, default_value = "3.12")]
    target: String,
    /// Decode the source first, as the guard does (serc decodes it again).
    #[arg(long)]
    decode: bool,
    /// Decode, then run precompyle's nesting guard on the text (implies --decode).
    #[arg(long)]
    guard: bool,
    /// Walk the marshalled body as precompyle's marshal-depth check does.
    #[arg(long)]
    marshal_depth: bool,
    /// Build the pyc with a zero header and cut the header off, as native.rs does.
    #[arg(long)]
    drain: bool,
    /// Hash the source for a checked-hash header (precompyle's `pyc::source_hash`).
    #[arg(long)]
    hash: bool,
    /// Compile inside `precompyle::arena::scope`, as native.rs does: serc's
    /// allocations come from the thread's bump arena.
    #[arg(long)]
    arena: bool,
    /// Read as precompyle does: open, fstat, read, fstat again (else `fs::read`).
    #[arg(long)]
    stat_twice: bool,
    /// Hand each file to a long-lived compile thread through channels,
    /// copying source and name, as `CompileThreads` does.
    #[arg(long, conflicts_with = "thread_per_file")]
    handoff: bool,
    /// Spawn (and join) a new compile thread for every file.
    #[arg(long)]
    thread_per_file: bool,
    /// Stack of the compile thread in MiB (--handoff, --thread-per-file).
    #[arg(long, default_value_t = PRECOMPYLE_STACK_MIB)]
    stack_mib: usize,
    /// Every precompyle step at once: --guard --marshal-depth --drain --arena --stat-twice --handoff.
    #[arg(long)]
    precompyle: bool,
    /// Write each pyc to `__pycache__/NAME.cpython-3XY.pyc` (temp file, one
    /// write, rename), as serc's CLI does.
    #[arg(long)]
    write: bool,
}

/// The per-file steps switched on, after `--precompyle` is expanded.
#[derive(Clone, Copy)]
struct Steps {
    decode: bool,
    guard: bool,
    marshal_depth: bool,
    drain: bool,
    hash: bool,
    arena: bool,
    stat_twice: bool,
    write: bool,
}

/// serc's options and the guard's limits for one target, built once.
struct Compiler {
    options: CompileOptions,
    limits: guard::Limits,
    cache_tag: String,
    magic: [u8; 4],
}

/// One file's result: the bytes to write, or why there are none.
type Compiled = Result<Vec<u8>, String>;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Some(version) = version_of(&args.target) else {
        eprintln!("serc_floor: no serc target {}", args.target);
        return std::process::ExitCode::from(2);
    };
    let every = args.precompyle;
    let steps = Steps {
        decode: args.decode || args.guard || every,
        guard: args.guard || every,
        marshal_depth: args.marshal_depth || every,
        drain: args.drain || every,
        hash: args.hash,
        arena: args.arena || every,
        stat_twice: args.stat_twice || every,
        write: args.write,
    };
    let target = version.target();
    let compiler = Compiler {
        options: CompileOptions {
            python_version: version,
            optimization_level: OptimizationLevel::Zero,
            ..CompileOptions::default()
        },
        limits: guard::Limits::of(version),
        cache_tag: format!("cpython-{}{}", target.version.0, target.version.1),
        magic: target.magic_number,
    };
    let files = python_files(&args.paths);
    let stack = args.stack_mib * 1024 * 1024;
    let tally = if args.handoff || every {
        run_handed_off(&compiler, steps, &files, stack)
    } else if args.thread_per_file {
        run_thread_per_file(&compiler, steps, &files, stack)
    } else {
        files
            .iter()
            .map(|path| one_file(&compiler, steps, path, compile))
            .collect()
    };
    tally.print(uses_system_allocator());
    std::process::ExitCode::SUCCESS
}

fn version_of(text: &str) -> Option<PythonVersion> {
    let versions = [
        PythonVersion::Py312,
        PythonVersion::Py313,
        PythonVersion::Py314,
        PythonVersion::Py315,
    ];
    versions.into_iter().find(|v| {
        let (major, minor, _) = v.target().version;
        format!("{major}.{minor}") == text
    })
}

/// Every `.py` file under `paths`, skipping `__pycache__`, in a fixed order.
fn python_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for root in paths {
        let walk = walkdir::WalkDir::new(root).sort_by_file_name().into_iter();
        for entry in walk.filter_entry(|e| e.file_name() != "__pycache__").flatten() {
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "py") {
                files.push(entry.into_path());
            }
        }
    }
    files
}

/// Read, (hash), compile through `compile_fn`, (write): one file.
fn one_file(
    compiler: &Compiler,
    steps: Steps,
    path: &Path,
    compile_fn: impl FnOnce(&Compiler, Steps, &[u8], &[u8]) -> Compiled,
) -> Outcome {
    let (source, meta) = match read(path, steps.stat_twice) {
        Ok(read) => read,
        Err(e) => return Outcome::failed(format!("{}: {e}", path.display())),
    };
    let stamp = if steps.hash {
        precompyle::pyc::source_hash(compiler.magic, precompyle::pyc::HashAlgo::SipHash13, &source)
    } else {
        [0; 8]
    };
    std::hint::black_box(stamp);
    let filename = path.as_os_str().as_encoded_bytes();
    let pyc = match compile_fn(compiler, steps, &source, filename) {
        Ok(pyc) => pyc,
        Err(e) => return Outcome::failed(format!("{}: {e}", path.display())),
    };
    if steps.write {
        let header = steps.drain.then(|| header(compiler.magic, &meta));
        if let Err(e) = write_pyc(path, &compiler.cache_tag, header.as_ref(), &pyc) {
            return Outcome::failed(format!("{}: write: {e}", path.display()));
        }
    }
    Outcome {
        source_bytes: source.len(),
        pyc_bytes: pyc.len(),
        failure: None,
    }
}

fn read(path: &Path, stat_twice: bool) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    if !stat_twice {
        let bytes = std::fs::read(path)?;
        let meta = std::fs::symlink_metadata(path)?;
        return Ok((bytes, meta));
    }
    // precompyle's read_source: the stat before and after must agree.
    let mut file = std::fs::File::open(path)?;
    let before = file.metadata()?;
    let mut bytes = Vec::with_capacity(before.len() as usize);
    file.read_to_end(&mut bytes)?;
    let after = file.metadata()?;
    std::hint::black_box(before.mtime() == after.mtime() && before.size() == after.size());
    Ok((bytes, after))
}

/// The call in `NativeBackend::compile`, with each of its extra steps
/// behind its flag. Returns the whole pyc, or the body alone with `drain`.
fn compile(compiler: &Compiler, steps: Steps, source: &[u8], filename: &[u8]) -> Compiled {
    let filename = Path::new(std::ffi::OsStr::from_bytes(filename));
    // `Err(None)`: refused by the nesting guard. Errors are worded after
    // the scope, as native.rs words them, so no arena block outlives it.
    let attempt = || {
        if steps.decode
            && let Ok(text) = serc::decode_source(source)
        {
            let text = std::hint::black_box(text);
            if steps.guard && guard::check(&text, compiler.limits).is_some() {
                return Err(None);
            }
        }
        serc::compile_bytes_with_path_options_and_integer_limits(
            source,
            filename,
            &compiler.options,
            INT_MAX_STR_DIGITS,
            Some(INT_MAX_STR_DIGITS),
        )
        .map_err(Some)
    };
    let compiled = if steps.arena {
        precompyle::arena::scope(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)))
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt))
    }
    .map_err(|_| "serc panicked".to_owned())?
    .map_err(|error| error.map_or_else(|| "refused by the nesting guard".to_owned(), |e| e.to_string()))?;
    let mut pyc = compiled.to_timestamp_pyc(0, 0);
    if steps.drain {
        pyc.drain(..precompyle::pyc::HEADER_LEN);
    }
    if steps.marshal_depth {
        let body = if steps.drain {
            &pyc[..]
        } else {
            &pyc[precompyle::pyc::HEADER_LEN..]
        };
        marshal_depth::check(body).map_err(|e| format!("marshal depth: {e:?}"))?;
    }
    Ok(pyc)
}

/// `CompileThreads`: one long-lived thread with a big stack; each job's
/// source and name are copied into it and come back with the result, to
/// be freed on the thread that allocated them.
fn run_handed_off(compiler: &Compiler, steps: Steps, files: &[PathBuf], stack: usize) -> Tally {
    type Job = (Vec<u8>, Vec<u8>);
    std::thread::scope(|scope| {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (result_tx, results) = mpsc::channel::<(Job, Compiled)>();
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn_scoped(scope, move || {
                for job in job_rx {
                    let result = compile(compiler, steps, &job.0, &job.1);
                    if result_tx.send((job, result)).is_err() {
                        break;
                    }
                }
            })
            .expect("compile thread");
        let tally = files
            .iter()
            .map(|path| {
                one_file(compiler, steps, path, |_, _, source, filename| {
                    jobs.send((source.to_vec(), filename.to_vec()))
                        .expect("compile thread alive");
                    let (job, result) = results.recv().expect("compile thread answers");
                    drop(job);
                    result
                })
            })
            .collect();
        drop(jobs);
        tally
    })
}

/// A fresh thread (and stack) for every file: the cost of not keeping one.
fn run_thread_per_file(compiler: &Compiler, steps: Steps, files: &[PathBuf], stack: usize) -> Tally {
    files
        .iter()
        .map(|path| {
            one_file(compiler, steps, path, |compiler, steps, source, filename| {
                std::thread::scope(|scope| {
                    std::thread::Builder::new()
                        .stack_size(stack)
                        .spawn_scoped(scope, || compile(compiler, steps, source, filename))
                        .expect("compile thread")
                        .join()
                        .unwrap_or_else(|_| Err("compile thread panicked".to_owned()))
                })
            })
        })
        .collect()
}

/// The 16 header bytes of a timestamp pyc for this stat.
fn header(magic: [u8; 4], meta: &std::fs::Metadata) -> [u8; 16] {
    let stamp = precompyle::pyc::timestamp_stamp(meta.mtime(), meta.mtime_nsec(), meta.size());
    precompyle::pyc::header(magic, precompyle::pyc::InvalidationMode::Timestamp, stamp)
}

/// serc's CLI: `mkdir __pycache__` if needed, a temp file, one write, rename.
fn write_pyc(source: &Path, cache_tag: &str, header: Option<&[u8; 16]>, pyc: &[u8]) -> std::io::Result<()> {
    let dir = source.parent().unwrap_or(Path::new("")).join("__pycache__");
    let stem = source.file_stem().unwrap_or_default().to_string_lossy();
    let name = format!("{stem}.{cache_tag}.pyc");
    let temp = dir.join(format!(".tmp-floor-{name}"));
    let file = match std::fs::File::create_new(&temp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir)?;
            std::fs::File::create_new(&temp)
        }
        other => other,
    };
    let mut file = file?;
    match header {
        Some(header) => file.write_all(&[&header[..], pyc].concat())?,
        None => file.write_all(pyc)?,
    }
    drop(file);
    std::fs::rename(&temp, dir.join(name))
}

struct Outcome {
    source_bytes: usize,
    pyc_bytes: usize,
    failure: Option<String>,
}

impl Outcome {
    fn failed(why: String) -> Outcome {
        Outcome {
            source_bytes: 0,
            pyc_bytes: 0,
            failure: Some(why),
        }
    }
}

#[derive(Default)]
struct Tally {
    compiled: usize,
    failed: usize,
    source_bytes: usize,
    pyc_bytes: usize,
}

impl FromIterator<Outcome> for Tally {
    fn from_iter<I: IntoIterator<Item = Outcome>>(outcomes: I) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match outcome.failure {
                Some(why) => {
                    tally.failed += 1;
                    if std::env::var_os("SERC_FLOOR_VERBOSE").is_some() {
                        eprintln!("failed: {why}");
                    }
                }
                None => tally.compiled += 1,
            }
            tally.source_bytes += outcome.source_bytes;
            tally.pyc_bytes += outcome.pyc_bytes;
        }
        tally
    }
}

impl Tally {
    fn print(&self, system_allocator: bool) {
        let (user, sys) = cpu_seconds();
        let allocator = if system_allocator { "system" } else { "mimalloc" };
        eprintln!(
            "serc_floor: {} compiled, {} failed, {} source bytes, {} pyc bytes; \
             user {user:.3} s, sys {sys:.3} s; allocator {allocator}",
            self.compiled, self.failed, self.source_bytes, self.pyc_bytes
        );
    }
}

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// mimalloc, as precompyle's binary uses, unless `SERC_FLOOR_ALLOC=system`
/// picks glibc's malloc. Decided at the first allocation, before `main`,
/// so memory never changes hands between the two.
struct SwitchedAllocator;

#[global_allocator]
static ALLOCATOR: SwitchedAllocator = SwitchedAllocator;

/// 0 undecided, 1 mimalloc, 2 system.
static CHOICE: AtomicU8 = AtomicU8::new(0);

fn uses_system_allocator() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // getenv allocates nothing, so it is safe inside the allocator.
            // SAFETY: a NUL-terminated name; the result is only read.
            let system = unsafe {
                let value = libc::getenv(c"SERC_FLOOR_ALLOC".as_ptr());
                !value.is_null() && std::ffi::CStr::from_ptr(value) == c"system"
            };
            CHOICE.store(if system { 2 } else { 1 }, Ordering::Relaxed);
            system
        }
    }
}

// SAFETY: each call goes to one allocator, the same one for the whole run.
unsafe impl GlobalAlloc for SwitchedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe {
            if uses_system_allocator() {
                System.alloc(layout)
            } else {
                allocator::Mimalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe {
            if uses_system_allocator() {
                System.alloc_zeroed(layout)
            } else {
                allocator::Mimalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded to the allocator that made `ptr`.
        unsafe {
            if uses_system_allocator() {
                System.dealloc(ptr, layout)
            } else {
                allocator::Mimalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded to the allocator that made `ptr`.
        unsafe {
            if uses_system_allocator() {
                System.realloc(ptr, layout, new_size)
            } else {
                allocator::Mimalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}
