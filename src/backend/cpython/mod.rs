//! The CPython worker backend: a pool of persistent processes of the target
//! interpreter, fed over pipes, one file in flight per worker.

use std::path::PathBuf;
use std::time::Duration;

use super::{Backend, CompileFailure, CompileJob};

/// How to start the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub python: PathBuf,
    /// Number of worker processes (≥ 1).
    pub workers: usize,
    /// Per-file limit; `None` = no limit.
    pub timeout: Option<Duration>,
    /// Target (major, minor), for version-specific worker behaviour.
    pub version: (u32, u32),
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot start {python}: {source}")]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{python} did not answer the worker handshake: {detail}")]
    Handshake { python: PathBuf, detail: String },
}

pub struct CpythonPool {}

impl CpythonPool {
    pub fn start(config: PoolConfig) -> Result<CpythonPool, PoolError> {
        todo!("{config:?}")
    }
}

impl Backend for CpythonPool {
    fn compile(&self, job: CompileJob<'_>) -> Result<Vec<u8>, CompileFailure> {
        todo!("{job:?}")
    }
}
