//! compileall's directory walk (`_walk_dir`): `Listing` events in order, names
//! sorted as Python `str`s, `__pycache__` skipped, symlinked directories
//! neither walked nor yielded, depth limited by `maxlevels`.

use std::path::PathBuf;

/// One thing the walk found, in the order compileall would meet it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Listing '<dir>'...` (printed before the directory is read).
    Listing(PathBuf),
    /// `Can't list '<dir>'` (not a failure).
    CantList(PathBuf),
    /// A candidate file (anything that is not a directory by `os.path.isdir`:
    /// regular files, broken symlinks, FIFOs…); later stages filter it.
    File(PathBuf),
}

/// Walk `dir` like `compileall._walk_dir(dir, maxlevels)`, pushing events in
/// order. The path strings are built as `os.path.join` builds them (no
/// normalisation: `t/`, `t//`, `./t` are kept as given).
pub fn walk_dir(dir: &std::path::Path, maxlevels: i64, events: &mut Vec<Event>) {
    todo!("{dir:?} {maxlevels} {}", events.len())
}
