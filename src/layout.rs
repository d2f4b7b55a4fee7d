//! Source path -> pyc path, computed exactly as the target interpreter's
//! `importlib.util.cache_from_source` computes it (pure string manipulation,
//! nothing resolved on disk), including `sys.pycache_prefix` mirroring and the
//! per-version quirks; plus compileall's legacy (`-b`) placement.

use std::path::PathBuf;

/// Everything the mapping depends on, fixed for a run.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `sys.implementation.cache_tag`, e.g. `cpython-311`.
    pub cache_tag: String,
    /// Target (major, minor): the prefix rules differ in 3.11 vs 3.12+ vs 3.14.
    pub version: (u32, u32),
    /// `sys.pycache_prefix` (kept verbatim: may be relative or end in `/`).
    pub prefix: Option<Vec<u8>>,
    /// `os.getcwd()` of the run (physical, absolute), used with a prefix.
    pub cwd: Vec<u8>,
    /// `-b`: `FILE.py` -> `FILE.pyc`, ignoring prefix and optimization.
    pub legacy: bool,
}

/// Why no pyc path exists for a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// 3.8–3.13 crash with `IndexError: string index out of range` when a
    /// prefix is set and the head becomes empty (cwd `/`).
    #[error("IndexError: string index out of range")]
    EmptyHead,
}

impl Layout {
    /// The pyc path for `source` at optimization suffix `optimization`
    /// (`""` for level 0, `"1"`, `"2"`; compileall maps 0 to `""`).
    pub fn cache_path(&self, source: &[u8], optimization: &str) -> Result<PathBuf, LayoutError> {
        todo!("{source:?} {optimization}")
    }
}
