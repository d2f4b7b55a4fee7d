//! Where a run may write: the destination root of each pyc, and the check
//! that the pyc's directory really lies inside it.
//!
//! CPython computes a pyc path as a string and writes wherever the operating
//! system takes it: a source path with `..` under a pycache prefix, or a
//! symlinked `__pycache__`, sends the pyc (and the directories `makedirs`
//! creates) outside the tree being compiled (pyc-format.md §2.3). precompyle
//! refuses those writes. The rule:
//!
//! - with a prefix, every pyc lies under the prefix (under `--root`, under
//!   `ROOT/PREFIX`);
//! - without one, a pyc lies under its source's own directory (`__pycache__`,
//!   or the directory itself for `-b`); under `--root` that directory is
//!   inside the root, which the run checks when it maps the source.
//!
//! "Lies under" holds twice: for the path as written, with `..` applied as
//! text, and for the directory the kernel would reach, with every symlink of
//! its existing part resolved. The check runs before any directory is
//! created. `pycdir.rs` then checks the directory's open handle the same
//! way and writes through it, so a symlink planted after the check cannot
//! redirect a write.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::settings::lexical_absolute;

/// A pyc that would land outside its destination root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to write {}: {reason} {}", repr(.pyc), repr(.root))]
pub struct Escape {
    pub pyc: PathBuf,
    pub root: PathBuf,
    pub reason: &'static str,
}

fn repr(path: &Path) -> String {
    crate::pyrepr::repr_path(path.as_os_str().as_bytes())
}

/// The destination roots of a run.
#[derive(Debug, Clone)]
pub struct Destinations {
    /// The prefix as pycs are written under it (joined to `--root`), absolute
    /// and without `.`/`..`; `None` without a prefix (or in `-b` mode, which
    /// ignores it).
    prefix: Option<PathBuf>,
    cwd: PathBuf,
}

impl Destinations {
    pub fn new(prefix: Option<&[u8]>, root: Option<&Path>, cwd: &Path) -> Destinations {
        let prefix = prefix.map(|p| {
            let absolute = lexical_absolute(Path::new(std::ffi::OsStr::from_bytes(p)), cwd);
            match root {
                Some(root) => root.join(absolute.strip_prefix("/").unwrap_or(&absolute)),
                None => absolute,
            }
        });
        Destinations {
            prefix,
            cwd: cwd.to_owned(),
        }
    }

    /// The destination root of `source`'s pycs: the prefix, or the
    /// source's own directory; absolute, without `.`/`..`.
    pub fn root(&self, source: &Path) -> PathBuf {
        match &self.prefix {
            Some(prefix) => prefix.clone(),
            None => lexical_absolute(source.parent().unwrap_or(Path::new("")), &self.cwd),
        }
    }

    /// Why a pyc whose directory resolves outside its root is refused.
    pub fn symlink_reason(&self) -> &'static str {
        match self.prefix {
            Some(_) => "a symlink would take it outside the pycache prefix",
            None => "a symlink would take it outside its source's directory",
        }
    }

    /// Check that `pyc`, the pyc path for `source` (both as the run writes
    /// them), stays inside its destination root: as text, then with the
    /// symlinks of the existing part of its directory resolved.
    pub fn check(&self, pyc: &Path, source: &Path) -> Result<(), Escape> {
        self.check_text(pyc, source)?;
        let root = self.root(source);
        let dir = lexical_absolute(pyc.parent().unwrap_or(Path::new("")), &self.cwd);
        if !physical(&dir).starts_with(physical(&root)) {
            return Err(Escape {
                pyc: pyc.to_owned(),
                root,
                reason: self.symlink_reason(),
            });
        }
        Ok(())
    }

    /// `check` as text only, with `..` applied: for a directory whose
    /// handle is checked afterwards, which covers the symlinks.
    pub fn check_text(&self, pyc: &Path, source: &Path) -> Result<(), Escape> {
        let root = self.root(source);
        let what = match self.prefix {
            Some(_) => "it would land outside the pycache prefix",
            None => "it would land outside its source's directory",
        };
        let escape = |reason| Escape {
            pyc: pyc.to_owned(),
            root: root.clone(),
            reason,
        };
        let dir = lexical_absolute(pyc.parent().unwrap_or(Path::new("")), &self.cwd);
        if !dir.starts_with(&root) {
            return Err(escape(what));
        }
        Ok(())
    }
}

/// The path the kernel reaches for `path` (absolute, lexically clean): the
/// deepest existing ancestor with its symlinks resolved, then the part that
/// does not exist yet, which `makedirs` will create as real directories.
pub fn physical(path: &Path) -> PathBuf {
    let mut missing: Vec<&std::ffi::OsStr> = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(resolved) = std::fs::canonicalize(existing) {
            let mut out = resolved.into_os_string().into_vec();
            for part in missing.iter().rev() {
                out.push(b'/');
                out.extend_from_slice(part.as_bytes());
            }
            return PathBuf::from(OsString::from_vec(out));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            // Not even `/` resolves: nothing to compare, keep the text.
            _ => return path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn check(d: &Destinations, pyc: &str, source: &str) -> Result<(), &'static str> {
        d.check(Path::new(pyc), Path::new(source)).map_err(|e| e.reason)
    }

    #[test]
    fn prefix_paths_with_dotdot_that_leave_the_prefix_are_refused() {
        let d = Destinations::new(Some(b"/pfx"), None, Path::new("/home/u/proj"));
        // pyc-format.md §2.3: `/a/../../../x/foo.py` maps to `/pfx/a/../../../x/…`.
        assert_eq!(
            check(&d, "/pfx/a/../../../x/foo.cpython-311.pyc", "/a/../../../x/foo.py"),
            Err("it would land outside the pycache prefix")
        );
        assert_eq!(
            check(&d, "/pfx/home/u/proj/../foo.cpython-311.pyc", "../foo.py"),
            Ok(())
        );
        assert_eq!(check(&d, "/pfx/home/u/proj/foo.cpython-311.pyc", "foo.py"), Ok(()));
        // A prefix that is a prefix of the name, not of the path, is not inside.
        assert_eq!(
            check(&d, "/pfx2/x/foo.cpython-311.pyc", "/x/foo.py"),
            Err("it would land outside the pycache prefix")
        );
    }

    #[test]
    fn relative_prefix_and_root_are_made_absolute() {
        let d = Destinations::new(Some(b"rel/pp/"), None, Path::new("/w"));
        assert_eq!(check(&d, "rel/pp/w/foo.cpython-312.pyc", "foo.py"), Ok(()));
        assert_eq!(
            check(&d, "rel/pp/../foo.cpython-312.pyc", "foo.py"),
            Err("it would land outside the pycache prefix")
        );
        let d = Destinations::new(Some(b"/pfx"), Some(Path::new("/stage")), Path::new("/w"));
        assert_eq!(
            check(&d, "/stage/pfx/usr/lib/m.cpython-312.pyc", "/stage/usr/lib/m.py"),
            Ok(())
        );
        assert_eq!(
            check(&d, "/stage/usr/lib/m.cpython-312.pyc", "/stage/usr/lib/m.py"),
            Err("it would land outside the pycache prefix")
        );
    }

    #[test]
    fn without_a_prefix_the_pyc_stays_under_its_source_directory() {
        let d = Destinations::new(None, None, Path::new("/w"));
        assert_eq!(check(&d, "t/__pycache__/m.cpython-311.pyc", "t/m.py"), Ok(()));
        assert_eq!(check(&d, "t/m.pyc", "t/m.py"), Ok(()));
        assert_eq!(check(&d, "__pycache__/m.cpython-311.pyc", "m.py"), Ok(()));
    }

    #[test]
    fn symlinks_that_lead_outside_are_refused_before_anything_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let (tree, outside) = (base.join("tree"), base.join("outside"));
        std::fs::create_dir_all(tree.join("pkg")).unwrap();
        std::fs::create_dir_all(outside.join("inner")).unwrap();
        symlink(&outside, tree.join("pkg/__pycache__")).unwrap();
        let d = Destinations::new(None, None, &base);
        let pyc = tree.join("pkg/__pycache__/m.cpython-311.pyc");
        let source = tree.join("pkg/m.py");
        assert_eq!(
            check(&d, pyc.to_str().unwrap(), source.to_str().unwrap()),
            Err("a symlink would take it outside its source's directory")
        );
        // A link that stays inside the directory is fine.
        std::fs::create_dir_all(tree.join("pkg/.cache")).unwrap();
        std::fs::remove_file(tree.join("pkg/__pycache__")).unwrap();
        symlink(".cache", tree.join("pkg/__pycache__")).unwrap();
        assert_eq!(check(&d, pyc.to_str().unwrap(), source.to_str().unwrap()), Ok(()));

        // Under a prefix: a symlinked directory in the mirror, with the rest
        // of the path not created yet.
        let prefix = base.join("pfx");
        std::fs::create_dir_all(prefix.join("a")).unwrap();
        symlink(&outside, prefix.join("a/b")).unwrap();
        let d = Destinations::new(Some(prefix.as_os_str().as_bytes()), None, &base);
        let pyc = prefix.join("a/b/not/yet/m.cpython-311.pyc");
        assert_eq!(
            check(&d, pyc.to_str().unwrap(), "/a/b/not/yet/m.py"),
            Err("a symlink would take it outside the pycache prefix")
        );
        let pyc = prefix.join("a/c/m.cpython-311.pyc");
        assert_eq!(check(&d, pyc.to_str().unwrap(), "/a/c/m.py"), Ok(()));
        // The prefix itself may be a symlink: its target is the root.
        let linked = base.join("linked-pfx");
        symlink(&prefix, &linked).unwrap();
        let d = Destinations::new(Some(linked.as_os_str().as_bytes()), None, &base);
        let pyc = linked.join("a/c/m.cpython-311.pyc");
        assert_eq!(check(&d, pyc.to_str().unwrap(), "/a/c/m.py"), Ok(()));
    }
}
