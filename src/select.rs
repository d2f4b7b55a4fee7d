//! Which version to compile for and who compiles: `--target`, `--python` and
//! `--backend` resolved into one [`Target`], at start, before any file.
//!
//! The rule (also in `--help`, the README and docs/backends.md):
//! - the target is `--target`, else the version of the interpreter;
//! - the interpreter is `--python`, else `python3.X` for `--target 3.X`,
//!   else `python3`; a default interpreter (`PRECOMPYLE_DEFAULT_PYTHON`,
//!   which `python -m precompyle` sets to the interpreter running it) is
//!   tried before those two, and replaces `python3` without `--target`;
//! - `cpython` needs that interpreter, of the target version;
//! - `native` needs serc to know the version, and an interpreter only when
//!   no `--target` names the version;
//! - `auto` is `cpython` when an interpreter of the target version answers
//!   (it is the reference for its own patch release), else `native`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::backend::native;
use crate::cli::BackendArg;
use crate::target::{Target, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Probe(#[from] TargetError),
    #[error("{} is Python {found}, not the --target {}.{}", .python.display(), .wanted.0, .wanted.1)]
    Mismatch {
        python: PathBuf,
        found: String,
        wanted: (u32, u32),
    },
    #[error("the native backend compiles for {}; {} is not one of them{hint}", supported_list(), version_text(*.version))]
    NativeUnsupported { version: (u32, u32), hint: &'static str },
    #[error(
        "{source} (to compile without Python, give --target 3.X; the native backend compiles for {})",
        supported_list()
    )]
    NoInterpreter { source: TargetError },
    #[error("two targets write {0} pycs: give each version once")]
    Repeated(String),
}

fn version_text((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}

fn supported_list() -> String {
    let names: Vec<String> = native::supported().map(|(v, _)| v.to_string()).collect();
    names.join(", ")
}

/// Resolve the command line into the target, asking interpreters through
/// `probe` (one `python -c` each; a test passes a fake).
pub fn select(
    backend: BackendArg,
    wanted: Option<(u32, u32)>,
    python: Option<&Path>,
    default_python: Option<&Path>,
    probe: &dyn Fn(&Path) -> Result<Target, TargetError>,
) -> Result<Target, SelectError> {
    let candidates = interpreters(wanted, python, default_python);
    match (backend, wanted) {
        (BackendArg::Native, Some(version)) => native_target(version, ""),
        (BackendArg::Native, None) => {
            let found = probe(&candidates[0]).map_err(|source| SelectError::NoInterpreter { source })?;
            native_target(found.minor_version(), " (give --target)")
        }
        (BackendArg::Cpython, _) => {
            let mut last = None;
            for python in &candidates {
                match probe(python) {
                    Ok(found) if wanted.is_none_or(|v| v == found.minor_version()) => return Ok(found),
                    Ok(found) => last = Some(mismatch(python, &found, wanted)),
                    Err(e) => last = Some(SelectError::Probe(e)),
                }
            }
            Err(last.expect("there is always one candidate"))
        }
        (BackendArg::Auto, Some(version)) => {
            // An interpreter that fails or is of another version is not an
            // error here: native takes over.
            let found = candidates
                .iter()
                .filter_map(|python| probe(python).ok())
                .find(|t| t.minor_version() == version);
            found.map_or_else(|| native_target(version, ""), Ok)
        }
        (BackendArg::Auto, None) => probe(&candidates[0]).map_err(|source| SelectError::NoInterpreter { source }),
    }
}

/// Several targets in one run: `--target 3.12,3.13` and/or `--python` given
/// more than once. Each version is resolved by the rule above on its own;
/// its interpreter is the `--python` of that version when one is given,
/// else the rule's default (`python3.X`, then `python3`). Without
/// `--target`, each `--python` is a target. Targets keep the order given;
/// two that would write the same cache tag are refused.
pub fn select_all(
    backend: BackendArg,
    wanted: &[(u32, u32)],
    pythons: &[PathBuf],
    default_python: Option<&Path>,
    probe: &dyn Fn(&Path) -> Result<Target, TargetError>,
) -> Result<Vec<Target>, SelectError> {
    // Each interpreter is started once, however many targets ask it.
    let answers: RefCell<HashMap<PathBuf, Target>> = RefCell::default();
    let probe = |python: &Path| -> Result<Target, TargetError> {
        if let Some(known) = answers.borrow().get(python) {
            return Ok(known.clone());
        }
        let found = probe(python)?;
        answers.borrow_mut().insert(python.to_owned(), found.clone());
        Ok(found)
    };
    let probe = &probe;
    let targets = if wanted.len() <= 1 && pythons.len() <= 1 {
        vec![select(
            backend,
            wanted.first().copied(),
            pythons.first().map(PathBuf::as_path),
            default_python,
            probe,
        )?]
    } else if wanted.is_empty() {
        pythons
            .iter()
            .map(|python| select(backend, None, Some(python), default_python, probe))
            .collect::<Result<_, _>>()?
    } else {
        // Each --python is asked once; one that fails is left to the rule,
        // which reports it where it matters.
        let versions: Vec<Option<(u32, u32)>> = pythons
            .iter()
            .map(|p| probe(p).ok().map(|t| t.minor_version()))
            .collect();
        wanted
            .iter()
            .map(|&version| {
                let python = pythons
                    .iter()
                    .zip(&versions)
                    .find(|(_, found)| **found == Some(version))
                    .map(|(python, _)| python);
                select(
                    backend,
                    Some(version),
                    python.map(PathBuf::as_path),
                    default_python,
                    probe,
                )
            })
            .collect::<Result<_, _>>()?
    };
    let mut tags: Vec<&str> = targets.iter().map(|t| t.cache_tag.as_str()).collect();
    tags.sort_unstable();
    if let Some(pair) = tags.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(SelectError::Repeated(pair[0].to_owned()));
    }
    Ok(targets)
}

/// The interpreters to ask, in order.
fn interpreters(wanted: Option<(u32, u32)>, python: Option<&Path>, default: Option<&Path>) -> Vec<PathBuf> {
    if let Some(python) = python {
        return vec![python.to_owned()];
    }
    let mut found: Vec<PathBuf> = default.into_iter().map(Path::to_owned).collect();
    match wanted {
        Some((major, minor)) => found.extend([format!("python{major}.{minor}").into(), "python3".into()]),
        None if found.is_empty() => found.push("python3".into()),
        None => {}
    }
    found
}

fn native_target(version: (u32, u32), hint: &'static str) -> Result<Target, SelectError> {
    native::version_for(version)
        .map(Target::native)
        .ok_or(SelectError::NativeUnsupported { version, hint })
}

fn mismatch(python: &Path, found: &Target, wanted: Option<(u32, u32)>) -> SelectError {
    SelectError::Mismatch {
        python: python.to_owned(),
        found: found.version_string(),
        wanted: wanted.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Compiler;

    /// A machine with these interpreters (name, minor version); every other
    /// name fails to start. The descriptions come from `Target::native`
    /// with the compiler switched, which is all the rule looks at.
    fn machine(interpreters: &'static [(&'static str, u32)]) -> impl Fn(&Path) -> Result<Target, TargetError> {
        move |python: &Path| {
            let minor = interpreters
                .iter()
                .find(|(name, _)| Path::new(name) == python)
                .map(|&(_, minor)| minor)
                .ok_or_else(|| TargetError::Spawn {
                    python: python.to_owned(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
            let mut target = Target::native(serc::PythonVersion::Py312);
            target.version = (3, minor, 0);
            target.cache_tag = format!("cpython-3{minor}");
            target.compiler = Compiler::Cpython;
            target.executable = Some(python.to_owned());
            Ok(target)
        }
    }

    /// (backend, --target, --python, interpreters on PATH) -> compiler and
    /// version chosen, or None for an error.
    #[test]
    fn the_rule() {
        use BackendArg::{Auto, Cpython, Native};
        type Case = (
            BackendArg,
            Option<(u32, u32)>,
            Option<&'static str>,
            &'static [(&'static str, u32)],
            Option<(Compiler, u32)>,
        );
        let py311: &[(&str, u32)] = &[("python3", 11)];
        let py311_312: &[(&str, u32)] = &[("python3", 11), ("python3.12", 12)];
        let none: &[(&str, u32)] = &[];
        let cases: &[Case] = &[
            (Auto, None, None, py311, Some((Compiler::Cpython, 11))),
            (Auto, None, None, none, None),
            (Auto, Some((3, 11)), None, py311, Some((Compiler::Cpython, 11))),
            (Auto, Some((3, 12)), None, py311, Some((Compiler::Native, 12))),
            (Auto, Some((3, 12)), None, py311_312, Some((Compiler::Cpython, 12))),
            (Auto, Some((3, 12)), None, none, Some((Compiler::Native, 12))),
            (
                Auto,
                Some((3, 12)),
                Some("python3"),
                py311_312,
                Some((Compiler::Native, 12)),
            ),
            (Auto, Some((3, 11)), None, none, None),
            (Native, Some((3, 14)), None, none, Some((Compiler::Native, 14))),
            (Native, Some((3, 15)), None, py311, Some((Compiler::Native, 15))),
            (
                Native,
                None,
                Some("python3.12"),
                py311_312,
                Some((Compiler::Native, 12)),
            ),
            (Native, None, None, py311, None),
            (Native, Some((3, 11)), None, py311, None),
            (Cpython, None, None, py311, Some((Compiler::Cpython, 11))),
            (Cpython, Some((3, 12)), None, py311_312, Some((Compiler::Cpython, 12))),
            (Cpython, Some((3, 12)), None, py311, None),
            (Cpython, Some((3, 12)), None, none, None),
        ];
        for &(backend, wanted, python, interpreters, expected) in cases {
            let chosen = select(backend, wanted, python.map(Path::new), None, &machine(interpreters))
                .ok()
                .map(|t| (t.compiler, t.version.1));
            assert_eq!(
                chosen, expected,
                "{backend:?} --target {wanted:?} --python {python:?} on {interpreters:?}"
            );
        }
    }

    /// `python -m precompyle` run by a python3.12 while python3 is 3.11:
    /// that python3.12 is the target unless the command line names another.
    #[test]
    fn the_default_interpreter_comes_first() {
        let interpreters: &[(&str, u32)] = &[("python3", 11), ("/venv/bin/python", 12), ("python3.13", 13)];
        let pick = |backend, wanted, python: Option<&str>| {
            select(
                backend,
                wanted,
                python.map(Path::new),
                Some(Path::new("/venv/bin/python")),
                &machine(interpreters),
            )
            .ok()
            .map(|t| (t.compiler, t.version.1, t.executable))
        };
        let cpython = |minor, path: &str| Some((Compiler::Cpython, minor, Some(PathBuf::from(path))));
        assert_eq!(pick(BackendArg::Auto, None, None), cpython(12, "/venv/bin/python"));
        assert_eq!(
            pick(BackendArg::Cpython, Some((3, 12)), None),
            cpython(12, "/venv/bin/python")
        );
        assert_eq!(
            pick(BackendArg::Cpython, Some((3, 13)), None),
            cpython(13, "python3.13")
        );
        assert_eq!(pick(BackendArg::Auto, Some((3, 11)), None), cpython(11, "python3"));
        assert_eq!(pick(BackendArg::Auto, None, Some("python3")), cpython(11, "python3"));
        assert_eq!(
            pick(BackendArg::Native, None, None).map(|(c, v, _)| (c, v)),
            Some((Compiler::Native, 12))
        );
    }

    /// Several targets: (backend, --target list, --python list,
    /// interpreters) -> (compiler, minor, interpreter) per target, or None.
    #[test]
    fn several_targets() {
        use BackendArg::{Auto, Cpython, Native};
        let machine_312_313: &[(&str, u32)] = &[
            ("python3", 11),
            ("python3.12", 12),
            ("/opt/py313", 13),
            ("/opt/py313b", 13),
        ];
        let pick = |backend, wanted: &[(u32, u32)], pythons: &[&str]| {
            let pythons: Vec<PathBuf> = pythons.iter().map(PathBuf::from).collect();
            select_all(backend, wanted, &pythons, None, &machine(machine_312_313))
                .ok()
                .map(|targets| {
                    targets
                        .into_iter()
                        .map(|t| (t.compiler, t.version.1, t.executable.map(|p| p.display().to_string())))
                        .collect::<Vec<_>>()
                })
        };
        let cpython = |minor, python: &str| (Compiler::Cpython, minor, Some(python.to_owned()));
        let native = |minor| (Compiler::Native, minor, None);
        // Each version by the one-target rule; --python serves its own version.
        assert_eq!(
            pick(Auto, &[(3, 12), (3, 13), (3, 14)], &["/opt/py313"]),
            Some(vec![cpython(12, "python3.12"), cpython(13, "/opt/py313"), native(14)])
        );
        assert_eq!(
            pick(Native, &[(3, 12), (3, 13)], &[]),
            Some(vec![native(12), native(13)])
        );
        // Without --target, one target per --python, in their order.
        assert_eq!(
            pick(Auto, &[], &["/opt/py313", "python3"]),
            Some(vec![cpython(13, "/opt/py313"), cpython(11, "python3")])
        );
        // cpython needs an interpreter of every version.
        assert_eq!(pick(Cpython, &[(3, 12), (3, 14)], &[]), None);
        // Two targets writing the same cache tag.
        assert_eq!(pick(Auto, &[], &["/opt/py313", "/opt/py313b"]), None);
        assert_eq!(pick(Auto, &[(3, 12), (3, 12)], &[]), None);
    }

    #[test]
    fn native_targets_are_the_pinned_releases() {
        let magic = |minor| Target::native(native::version_for((3, minor)).unwrap()).magic;
        // importlib.util.MAGIC_NUMBER of pyenv's 3.12.1 and 3.13.0, which
        // share their minor version's magic with serc's later patch releases.
        assert_eq!(magic(12), *b"\xcb\x0d\x0d\x0a");
        assert_eq!(magic(13), *b"\xf3\x0d\x0d\x0a");
        assert_eq!(Target::native(serc::PythonVersion::Py313).cache_tag, "cpython-313");
        assert_eq!(native::version_for((3, 11)), None);
    }
}
