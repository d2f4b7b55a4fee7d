//! The target interpreter: asked once, at start, for what the pyc layout and
//! header depend on. Everything else is computed in Rust.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pyc::HashAlgo;

/// Printed by the target as one line of JSON; bytes travel as hex because
/// `sys.path` entries need not be UTF-8.
const PROBE: &str = r#"
import sys, os, json, importlib.util
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:3]),
    "build": sys.version,
    "magic": importlib.util.MAGIC_NUMBER.hex(),
    "cache_tag": sys.implementation.cache_tag,
    "optimize": sys.flags.optimize,
    "recursion_limit": sys.getrecursionlimit(),
    "sys_path": [os.fsencode(p).hex() for p in sys.path[1:]],
    "hash_probe": importlib.util.source_hash(b"x = 1\n").hex(),
    "executable": os.fsencode(sys.executable).hex(),
}))
"#;

/// What precompyle knows about the interpreter it compiles for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    /// `sys.implementation.name`: `cpython`, `pypy`.
    pub implementation: String,
    /// (major, minor, micro).
    pub version: (u32, u32, u32),
    /// `sys.version`: release and build (date, compiler), or for native
    /// serc's release; part of the compile cache's key.
    #[serde(skip)]
    pub build: String,
    #[serde(serialize_with = "hex")]
    pub magic: [u8; 4],
    /// `sys.implementation.cache_tag`, e.g. `cpython-311`.
    pub cache_tag: String,
    /// `sys.flags.optimize`: the level `-o -1` (the default) means.
    pub optimize: u8,
    /// `sys.getrecursionlimit()`: compileall's default depth from 3.9.
    pub recursion_limit: i64,
    /// `sys.path` as `python -m compileall` sees it, minus its first entry
    /// (the cwd), which the caller supplies. None without an interpreter.
    #[serde(skip)]
    pub sys_path_tail: Option<Vec<PathBuf>>,
    #[serde(skip)]
    pub hash_algo: HashAlgo,
    /// Which backend compiles for this target.
    pub compiler: Compiler,
    /// `sys.executable`: what the workers run, so a launcher in front of the
    /// interpreter (a pyenv shim costs ~0.5 s a start) runs only once.
    /// None for a native target.
    pub executable: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiler {
    /// The target interpreter's own workers.
    Cpython,
    /// serc, in this process.
    Native,
}

fn hex<S: serde::Serializer>(magic: &[u8; 4], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&magic.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot run the target interpreter {}: {source}", .python.display())]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the target interpreter {} failed to describe itself: {detail}", .python.display())]
    Probe { python: PathBuf, detail: String },
    #[error("{} is Python {version}; precompyle supports 3.8 and later", .python.display())]
    TooOld { python: PathBuf, version: String },
    #[error("{}: its source hash matches neither SipHash-1-3 nor SipHash-2-4", .python.display())]
    UnknownHash { python: PathBuf },
}

#[derive(serde::Deserialize)]
struct ProbeAnswer {
    implementation: String,
    version: (u32, u32, u32),
    build: String,
    magic: String,
    cache_tag: Option<String>,
    optimize: u8,
    recursion_limit: i64,
    sys_path: Vec<String>,
    hash_probe: String,
    executable: String,
}

impl Target {
    /// Run `python -c PROBE` once and check what it says.
    pub fn probe(python: &Path) -> Result<Target, TargetError> {
        let output = Command::new(python)
            .arg("-c")
            .arg(PROBE)
            .output()
            .map_err(|source| TargetError::Spawn {
                python: python.to_owned(),
                source,
            })?;
        let fail = |detail: String| TargetError::Probe {
            python: python.to_owned(),
            detail,
        };
        if !output.status.success() {
            return Err(fail(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let answer: ProbeAnswer = serde_json::from_slice(&output.stdout).map_err(|e| fail(e.to_string()))?;
        let (major, minor, micro) = answer.version;
        if (major, minor) < (3, 8) {
            return Err(TargetError::TooOld {
                python: python.to_owned(),
                version: format!("{major}.{minor}.{micro}"),
            });
        }
        let magic: [u8; 4] = unhex(&answer.magic)
            .and_then(|m| m.try_into().ok())
            .ok_or_else(|| fail(format!("bad magic {:?}", answer.magic)))?;
        let cache_tag = answer
            .cache_tag
            .ok_or_else(|| fail("sys.implementation.cache_tag is None: this interpreter writes no pycs".into()))?;
        let hash_algo = detect_hash_algo(magic, &answer.hash_probe).ok_or_else(|| TargetError::UnknownHash {
            python: python.to_owned(),
        })?;
        let sys_path_tail = answer
            .sys_path
            .iter()
            .map(|h| unhex(h).map(|b| PathBuf::from(OsString::from_vec(b))))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("bad sys.path entry".into()))?;
        Ok(Target {
            implementation: answer.implementation,
            version: answer.version,
            build: answer.build,
            magic,
            cache_tag,
            optimize: answer.optimize,
            recursion_limit: answer.recursion_limit,
            sys_path_tail: Some(sys_path_tail),
            hash_algo,
            compiler: Compiler::Cpython,
            executable: Some(
                unhex(&answer.executable)
                    .map(|b| PathBuf::from(OsString::from_vec(b)))
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or_else(|| python.to_owned()),
            ),
        })
    }

    /// The CPython release serc reproduces for `version`, described without
    /// starting any interpreter: what a plain `python3.X` of that release
    /// would have answered to the probe.
    pub fn native(version: serc::PythonVersion) -> Target {
        let release = version.target();
        let (major, minor, micro) = release.version;
        Target {
            implementation: release.implementation.to_owned(),
            version: (major.into(), minor.into(), micro.into()),
            build: format!("serc {} {}", crate::backend::native::SERC_VERSION, release.tag),
            magic: release.magic_number,
            cache_tag: format!("cpython-{major}{minor}"),
            optimize: 0,
            // CPython's default; compileall's default depth from 3.9.
            recursion_limit: 1000,
            sys_path_tail: None,
            hash_algo: HashAlgo::SipHash13,
            compiler: Compiler::Native,
            executable: None,
        }
    }

    pub fn minor_version(&self) -> (u32, u32) {
        (self.version.0, self.version.1)
    }

    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }
}

/// The interpreter's own hash of a known input tells which SipHash variant it
/// uses, so an unexpected build (PyPy, a patched CPython) is caught at start
/// instead of producing pycs that never validate.
fn detect_hash_algo(magic: [u8; 4], probe_hex: &str) -> Option<HashAlgo> {
    let expected = unhex(probe_hex)?;
    [HashAlgo::SipHash13, HashAlgo::SipHash24]
        .into_iter()
        .find(|&algo| crate::pyc::source_hash(magic, algo, b"x = 1\n")[..] == expected[..])
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
