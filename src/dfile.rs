//! The file name compiled into `co_filename`, as compileall derives it from
//! `-d`, `-s` and `-p` (the rules changed in 3.9 and in 3.13).
//!
//! Paths are bytes: splitting on `/` and comparing components give the same
//! answers as Python does on the surrogateescape-decoded `str`.

use crate::discover::Keep;
use crate::pyrepr::repr_path;

/// The last line of compileall's traceback when stripping leaves nothing:
/// `os.path.join()` is called with no arguments (same text in 3.8–3.13).
pub const EMPTY_JOIN_ERROR: &str = "TypeError: join() missing 1 required positional argument: 'a'";

/// Which files a walk must keep, given which of `-d`, `-s`, `-p` are set:
/// with any of them every file gets a dfile before its suffix is tested,
/// and may get a warning or an error printed for it.
pub fn walk_keep(ddir: bool, stripdir: bool, prependdir: bool) -> Keep {
    if ddir || stripdir || prependdir {
        Keep::Everything
    } else {
        Keep::Sources
    }
}

/// What compileall was told about `co_filename` for one run.
#[derive(Debug, Clone, Default)]
pub struct DfileRules {
    /// `-d`: for a file argument, dfile = join(ddir, basename); for a
    /// directory argument it becomes stripdir = the directory, prependdir = ddir
    /// (3.9+), or the walk's relative path under ddir (3.8). When set, the CLI
    /// guarantees `stripdir` and `prependdir` are not.
    pub ddir: Option<Vec<u8>>,
    pub stripdir: Option<Vec<u8>>,
    pub prependdir: Option<Vec<u8>>,
    /// Target (major, minor): stripdir semantics differ before/after 3.13,
    /// and 3.8 has no -s/-p (they are ignored for targets before 3.9).
    pub version: (u32, u32),
}

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dfile {
    /// No dfile: co_filename is the path as given.
    Unset,
    /// co_filename is this path.
    Set(Vec<u8>),
    /// 3.13+: stripdir was not a prefix. compileall prints `warning` on stdout
    /// (when quiet < 2), ignores stripdir, and still applies prependdir:
    /// `dfile` is the result (`None`: co_filename is the path as given).
    Warn { warning: String, dfile: Option<Vec<u8>> },
    /// Stripping removed every component: compileall dies with a TypeError.
    /// Carries the message to report ([`EMPTY_JOIN_ERROR`]).
    Error(String),
}

/// Result of applying stripdir to a fullname.
enum Stripped<'a> {
    /// The components left (possibly none, which is the TypeError case).
    Parts(Vec<&'a [u8]>),
    /// 3.13+: not a leading-component prefix.
    NotPrefix,
}

impl DfileRules {
    /// Which files a walk must keep.
    pub fn keep(&self) -> Keep {
        walk_keep(self.ddir.is_some(), self.stripdir.is_some(), self.prependdir.is_some())
    }

    /// dfile for `fullname`, reached from the command-line argument `dir_arg`
    /// (`None` when `fullname` itself was a file argument).
    pub fn dfile_for(&self, fullname: &[u8], dir_arg: Option<&[u8]>) -> Dfile {
        if self.version < (3, 9) {
            return self.dfile_before_39(fullname, dir_arg);
        }
        let mut dfile = None;
        let (stripdir, prependdir) = match (&self.ddir, dir_arg) {
            // compile_dir turns `-d` into stripdir = dir, prependdir = ddir.
            (Some(ddir), Some(dir)) => (Some(dir), Some(ddir.as_slice())),
            (Some(ddir), None) => {
                dfile = Some(path_join(ddir, basename(fullname)));
                (None, None)
            }
            (None, _) => (self.stripdir.as_deref(), self.prependdir.as_deref()),
        };
        let mut warning = None;
        if let Some(stripdir) = stripdir {
            match self.strip(fullname, stripdir) {
                Stripped::Parts(parts) => match join_parts(&parts) {
                    Some(joined) => dfile = Some(joined),
                    None => return Dfile::Error(EMPTY_JOIN_ERROR.to_owned()),
                },
                Stripped::NotPrefix => warning = Some(not_prefix_warning(stripdir, fullname)),
            }
        }
        if let Some(prependdir) = prependdir {
            dfile = Some(path_join(prependdir, dfile.as_deref().unwrap_or(fullname)));
        }
        match (warning, dfile) {
            (Some(warning), dfile) => Dfile::Warn { warning, dfile },
            (None, Some(dfile)) => Dfile::Set(dfile),
            (None, None) => Dfile::Unset,
        }
    }

    /// 3.8: only `-d`. A directory walk carries ddir down one
    /// `os.path.join(ddir, name)` per level, so dfile is ddir joined with the
    /// names below the argument.
    fn dfile_before_39(&self, fullname: &[u8], dir_arg: Option<&[u8]>) -> Dfile {
        let Some(ddir) = &self.ddir else {
            return Dfile::Unset;
        };
        let below = dir_arg.and_then(|dir| relative_to(fullname, dir));
        let Some(below) = below else {
            return Dfile::Set(path_join(ddir, basename(fullname)));
        };
        let dfile = below
            .split(|&b| b == b'/')
            .fold(ddir.clone(), |acc, name| path_join(&acc, name));
        Dfile::Set(dfile)
    }

    fn strip<'a>(&self, fullname: &'a [u8], stripdir: &[u8]) -> Stripped<'a> {
        let full_parts: Vec<&[u8]> = fullname.split(|&b| b == b'/').collect();
        let strip_parts: Vec<&[u8]> = stripdir.split(|&b| b == b'/').collect();
        if self.version >= (3, 13) {
            let n = strip_parts.len();
            return match full_parts.get(..n) {
                Some(head) if head == strip_parts.as_slice() => Stripped::Parts(full_parts[n..].to_vec()),
                _ => Stripped::NotPrefix,
            };
        }
        // 3.9–3.12: wherever the two agree position by position, remove the
        // *first occurrence* of that component (list.remove), wherever it is.
        let mut kept = full_parts.clone();
        for (spart, opart) in strip_parts.iter().zip(&full_parts) {
            if spart == opart
                && let Some(pos) = kept.iter().position(|part| part == spart)
            {
                kept.remove(pos);
            }
        }
        Stripped::Parts(kept)
    }
}

/// compileall 3.13+'s text, paths shown with `repr()`.
fn not_prefix_warning(stripdir: &[u8], fullname: &[u8]) -> String {
    format!(
        "The stripdir path {} is not a valid prefix for source path {}; ignoring",
        repr_path(stripdir),
        repr_path(fullname)
    )
}

/// The part of `fullname` below `dir`, undoing the walk's `os.path.join`.
fn relative_to<'a>(fullname: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    let rest = fullname.strip_prefix(dir)?;
    if dir.is_empty() || dir.ends_with(b"/") {
        Some(rest)
    } else {
        rest.strip_prefix(b"/")
    }
}

/// `os.path.basename`: everything after the last `/`.
fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// `os.path.join(*parts)`; `None` for no parts (Python's TypeError).
fn join_parts(parts: &[&[u8]]) -> Option<Vec<u8>> {
    let (first, rest) = parts.split_first()?;
    Some(rest.iter().fold(first.to_vec(), |acc, part| path_join(&acc, part)))
}

/// POSIX `os.path.join(a, b)`: an absolute `b` replaces `a`; a `/` is added
/// unless `a` is empty or already ends with one.
fn path_join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if b.starts_with(b"/") {
        return b.to_vec();
    }
    let mut joined = a.to_vec();
    if !a.is_empty() && !a.ends_with(b"/") {
        joined.push(b'/');
    }
    joined.extend_from_slice(b);
    joined
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyrepr::oracle::{hex, interpreter, run, unhex};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn rules(version: (u32, u32), ddir: Option<&str>, strip: Option<&[u8]>, prepend: Option<&str>) -> DfileRules {
        DfileRules {
            ddir: ddir.map(|d| d.as_bytes().to_vec()),
            stripdir: strip.map(<[u8]>::to_vec),
            prependdir: prepend.map(|p| p.as_bytes().to_vec()),
            version,
        }
    }

    fn set(path: &str) -> Dfile {
        Dfile::Set(path.as_bytes().to_vec())
    }

    /// Rules, fullname, directory argument, expected outcome.
    type TableCase = (DfileRules, &'static [u8], Option<&'static [u8]>, Dfile);

    // Expected values printed by each interpreter's own compile_file
    // (py_compile.compile patched to capture dfile): 3.8.18, 3.11.7, 3.13.0.
    #[test]
    fn dfile_table() {
        let warn = |text: &str, dfile: Option<&str>| Dfile::Warn {
            warning: text.to_owned(),
            dfile: dfile.map(|d| d.as_bytes().to_vec()),
        };
        let error = Dfile::Error(EMPTY_JOIN_ERROR.to_owned());
        #[rustfmt::skip]
        let cases: Vec<TableCase> = vec![
            (rules((3, 8), Some("/dest"), None, None), b"t/a.py", None, set("/dest/a.py")),
            (rules((3, 8), Some("/dest"), None, None), b"t/sub/deeper/d.py", Some(b"t"), set("/dest/sub/deeper/d.py")),
            (rules((3, 8), Some(""), None, None), b"t/sub/s.py", Some(b"t/"), set("sub/s.py")),
            // Our policy, not an oracle fact: 3.8 has no -s/-p, so they are ignored.
            (rules((3, 8), None, Some(b"t"), Some("/opt")), b"t/a.py", Some(b"t"), Dfile::Unset),
            (rules((3, 11), Some("/dest"), None, None), b"t/sub/s.py", Some(b"t/"), set("/dest/sub/s.py")),
            (rules((3, 11), None, Some(b"z/z/a"), None), b"a/b/a/c.py", Some(b"a"), set("b/a/c.py")),
            (rules((3, 11), None, Some(b"x/b"), None), b"a/b/a/c.py", Some(b"a"), set("a/a/c.py")),
            (rules((3, 11), None, Some(b"q/b/a"), None), b"a/b/a/c.py", Some(b"a"), set("a/c.py")),
            (rules((3, 11), None, Some(b"/nomatch"), None), b"t/a.py", None, set("t/a.py")),
            (rules((3, 11), None, Some(b"home"), None), b"/home/u/t/a.py", None, set("home/u/t/a.py")),
            (rules((3, 11), None, None, Some("/opt")), b"/abs/t/a.py", Some(b"/abs/t"), set("/abs/t/a.py")),
            (rules((3, 11), None, Some(b"t/a.py"), None), b"t/a.py", None, error.clone()),
            (rules((3, 13), Some("/dest"), None, None), b"t/sub/s.py", Some(b"t/"),
                warn("The stripdir path 't/' is not a valid prefix for source path 't/sub/s.py'; ignoring", Some("/dest/t/sub/s.py"))),
            (rules((3, 13), None, Some(b"it's"), None), b"t/a.py", None,
                warn(r#"The stripdir path "it's" is not a valid prefix for source path 't/a.py'; ignoring"#, None)),
            (rules((3, 13), None, Some(b"z/z/a"), None), b"a/b/a/c.py", Some(b"a"),
                warn("The stripdir path 'z/z/a' is not a valid prefix for source path 'a/b/a/c.py'; ignoring", None)),
            (rules((3, 13), None, Some(b"t"), Some("/opt")), b"t/sub/s.py", Some(b"t"), set("/opt/sub/s.py")),
            (rules((3, 13), None, Some(b"t/a.py"), None), b"t/a.py", None, error),
        ];
        for (rules, fullname, dir_arg, expected) in cases {
            assert_eq!(
                rules.dfile_for(fullname, dir_arg),
                expected,
                "{rules:?} {:?}",
                String::from_utf8_lossy(fullname)
            );
        }
    }

    /// One oracle case: a file or directory argument with -d / -s / -p.
    struct Case {
        dir: bool,
        path: Vec<u8>,
        ddir: Option<Vec<u8>>,
        strip: Option<Vec<u8>>,
        prepend: Option<Vec<u8>>,
    }

    fn cases(abs: &[u8]) -> Vec<Case> {
        let a = |p: &str| [abs, p.as_bytes()].concat();
        let case =
            |dir: bool, path: Vec<u8>, ddir: Option<Vec<u8>>, strip: Option<Vec<u8>>, prepend: Option<Vec<u8>>| Case {
                dir,
                path,
                ddir,
                strip,
                prepend,
            };
        let b = |s: &str| Some(s.as_bytes().to_vec());
        let p = |s: &str| s.as_bytes().to_vec();
        vec![
            case(false, p("t/a.py"), b("/dest"), None, None),
            case(false, p("t/a.py"), b(""), None, None),
            case(false, p("t//a.py"), b("rel/"), None, None),
            case(true, p("t"), b("/dest"), None, None),
            case(true, p("t/"), b("/dest"), None, None),
            case(true, p("t//"), b("/dest"), None, None),
            case(true, p("./t"), b("/dest/"), None, None),
            case(true, p("t"), b(""), None, None),
            case(true, a("/t"), b("/dest"), None, None),
            case(true, p("t"), None, b("t"), None),
            case(true, p("t"), None, b("t/sub"), None),
            case(true, p("t"), None, b("/nomatch"), None),
            case(true, p("t"), None, b("z/z/t"), None),
            case(true, p("t"), None, None, b("/opt")),
            case(true, p("t"), None, b("t"), b("/opt")),
            case(true, p("t"), None, b("t"), b("")),
            case(true, p("t//"), None, b("t"), b("/opt/")),
            case(true, a("/t"), None, Some(abs.to_vec()), b("/opt")),
            case(true, a("/t"), None, None, b("/opt")),
            case(true, a("/t"), None, b("tmp"), None),
            case(true, a("/t"), None, Some(a("/t/sub")), None),
            case(true, p("a"), None, b("z/z/a"), None),
            case(true, p("a"), None, b("x/b"), None),
            case(true, p("a"), None, b("q/b/a"), b("/p")),
            case(true, p("t"), None, b("t/sub/deeper/d.py/extra"), None),
            case(true, p("t"), None, b("t/sub/deeper/d.py"), b("/opt")),
            case(false, p("t/a.py"), None, b("t/a.py"), None),
            case(false, p("a/b/a/c.py"), None, b("a/b/a/c.py"), b("/p")),
            case(false, p("t/a.py"), None, b("it's"), None),
            case(false, b"t/bad\xff.py".to_vec(), None, b("/nomatch"), b("/opt")),
            case(false, p("t/q'x\".py"), None, b("t/q'x\".py/"), None),
        ]
    }

    fn build_tree(root: &Path) {
        for rel in [
            &b"t/a.py"[..],
            b"t/sub/s.py",
            b"t/sub/deeper/d.py",
            b"a/b/a/c.py",
            b"t/bad\xff.py",
            b"t/q'x\".py",
        ] {
            let path = root.join(std::ffi::OsStr::from_bytes(rel));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x = 1\n").unwrap();
        }
    }

    /// Calls the interpreter's compile_dir / compile_file with
    /// py_compile.compile patched out; records per file the captured dfile,
    /// printed warnings and the TypeError, keyed by fullname.
    const DFILE_SCRIPT: &str = r#"
import os, sys, compileall
out, printed, seen = [], [], []
compileall.py_compile.compile = lambda file, cfile=None, dfile=None, *a, **k: seen.append(dfile)
compileall.print = lambda *a, **k: printed.append(' '.join(map(str, a)))
real_compile_file = compileall.compile_file
def compile_file(fullname, *a, **k):
    printed.clear(); seen.clear()
    try:
        real_compile_file(fullname, *a, **k)
        result = ['S ' + os.fsencode(d).hex() if d is not None else 'U' for d in seen]
    except TypeError as e:
        result = ['E ' + ('TypeError: ' + str(e)).encode().hex()]
    out.append(' '.join(['F', os.fsencode(fullname).hex()] + ['W ' + p.encode().hex() for p in printed] + result))
    return True
compileall.compile_file = compile_file
dec = lambda f: None if f == '-' else os.fsdecode(bytes.fromhex(f[1:]))
for line in sys.stdin.read().split('\n')[:-1]:
    kind, path, ddir, strip, prepend = line.split(' ')
    kw = dict(ddir=dec(ddir), force=True, quiet=1)
    if strip != '-' or prepend != '-':
        kw.update(stripdir=dec(strip), prependdir=dec(prepend))
    (compileall.compile_dir if kind == 'd' else compile_file)(dec(path), **kw)
    out.append('END')
print('\n'.join(out))
"#;

    fn encode_opt(value: &Option<Vec<u8>>) -> String {
        value.as_ref().map_or("-".to_owned(), |v| format!("h{}", hex(v)))
    }

    /// Our outcome in the oracle's format.
    fn as_oracle(dfile: &Dfile) -> Vec<String> {
        let dfile_word = |d: &Option<Vec<u8>>| d.as_ref().map_or("U".to_owned(), |d| format!("S {}", hex(d)));
        match dfile {
            Dfile::Unset => vec!["U".to_owned()],
            Dfile::Set(d) => vec![format!("S {}", hex(d))],
            Dfile::Warn { warning, dfile } => {
                vec![format!("W {}", hex(warning.as_bytes())), dfile_word(dfile)]
            }
            Dfile::Error(text) => vec![format!("E {}", hex(text.as_bytes()))],
        }
    }

    fn compare_with(version: &str, parsed: (u32, u32)) {
        let Some(exe) = interpreter(version) else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        build_tree(tmp.path());
        let abs = tmp.path().as_os_str().as_bytes();
        // 3.8 has no stripdir/prependdir parameters.
        let cases: Vec<Case> = cases(abs)
            .into_iter()
            .filter(|c| parsed >= (3, 9) || (c.strip.is_none() && c.prepend.is_none()))
            .collect();
        let stdin: String = cases
            .iter()
            .map(|c| {
                let kind = if c.dir { "d" } else { "f" };
                format!(
                    "{kind} h{} {} {} {}\n",
                    hex(&c.path),
                    encode_opt(&c.ddir),
                    encode_opt(&c.strip),
                    encode_opt(&c.prepend)
                )
            })
            .collect();
        let out = run(&exe, tmp.path(), DFILE_SCRIPT, &stdin);
        let lines: Vec<&str> = out.lines().collect();
        let mut per_case = lines.split(|l| *l == "END");
        let mut checked = 0;
        for case in &cases {
            let rules = DfileRules {
                ddir: case.ddir.clone(),
                stripdir: case.strip.clone(),
                prependdir: case.prepend.clone(),
                version: parsed,
            };
            let dir_arg = case.dir.then_some(case.path.as_slice());
            for line in per_case.next().unwrap() {
                let mut words = line.split(' ');
                assert_eq!(words.next(), Some("F"));
                let fullname = unhex(words.next().unwrap());
                let theirs: Vec<String> = words.collect::<Vec<_>>().chunks(2).map(|w| w.join(" ")).collect();
                let ours = as_oracle(&rules.dfile_for(&fullname, dir_arg));
                assert_eq!(
                    ours,
                    theirs,
                    "{version}: {:?} dir_arg {:?} {rules:?}",
                    String::from_utf8_lossy(&fullname),
                    dir_arg.map(String::from_utf8_lossy)
                );
                checked += 1;
            }
        }
        assert!(checked > cases.len(), "{version}: too few files checked ({checked})");
    }

    #[test]
    fn dfile_matches_compileall_every_version() {
        for (version, parsed) in [
            ("3.8", (3, 8)),
            ("3.9", (3, 9)),
            ("3.10", (3, 10)),
            ("3.11", (3, 11)),
            ("3.12", (3, 12)),
            ("3.13", (3, 13)),
        ] {
            compare_with(version, parsed);
        }
    }
}
