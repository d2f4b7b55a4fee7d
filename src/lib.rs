//! precompyle: precompile Python source trees into `.pyc` files whose bytes and
//! paths are exactly what the target CPython would write.
//!
//! Code map (dependencies point down):
//!
//! - [`cli`]: the clap struct, compileall's flags plus our own.
//! - [`settings`]: validated settings from cli + environment; nothing below reads either.
//! - [`select`]: `--target`/`--python`/`--backend` -> the target and who compiles for it.
//! - [`target`]: the target interpreter, asked once for version, magic and cache tag,
//!   or a native target described from serc's pinned release.
//! - [`discover`]: compileall's walk (`Listing`, sort order, depth, symlink rules).
//! - [`dfile`]: the `co_filename` compileall would pass (`-d`, `-s`, `-p`, per version).
//! - [`layout`]: source path -> pyc path, as the target's `cache_from_source`.
//! - [`destination`]: the directories a run may write into; a pyc outside them is refused.
//! - [`pyc`]: header, source hash, freshness, atomic writes.
//! - [`cache`]: `--cache-dir`, results of earlier compiles by key, asked before the backend.
//! - [`backend`]: source bytes -> marshalled code; never touches paths or files.
//!   `cpython` (interpreter workers) or `native` (serc in-process).
//! - [`run`]: the pipeline tying the above together, in parallel.
//! - [`bazel`]: rules_python's precompiler command line, one-shot or as a persistent worker.
//! - [`report`]: the only place that prints.
//! - [`pyrepr`]: Python's `repr()` of paths, str ordering, OSError texts.
//! - [`dirents`]: a directory's entries by `getdents64`, for the walk and the temp-file sweep.
//! - [`arena`]: the per-thread bump arena a native compile allocates from (the binary's allocator asks it).

pub mod arena;
pub mod backend;
pub mod bazel;
pub mod cache;
pub mod cli;
pub mod destination;
pub mod dfile;
pub mod dirents;
pub mod discover;
pub mod engine;
pub mod file;
pub mod filelist;
pub mod layout;
pub mod prewalk;
pub mod pyc;
pub mod pycdir;
pub mod pyrepr;
pub mod report;
pub mod run;
pub mod select;
pub mod settings;
pub mod source;
pub mod target;
pub mod watchdog;
