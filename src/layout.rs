//! Source path -> pyc path, computed exactly as the target interpreter's
//! `importlib.util.cache_from_source` computes it (pure string manipulation,
//! nothing resolved on disk), including `sys.pycache_prefix` mirroring and the
//! per-version quirks; plus compileall's legacy (`-b`) placement.
//!
//! Everything works on raw bytes: CPython sees a path as a str decoded with
//! surrogateescape, and every operation it applies (`rfind('/')`,
//! `rpartition('.')`, `rstrip('/')`, joins) acts on ASCII characters, so the
//! byte-level version gives the same result. `std::path` is avoided on purpose:
//! it would collapse `a//b` and drop `./`, which CPython keeps.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

const SEP: u8 = b'/';
const PYCACHE: &[u8] = b"__pycache__";

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
    /// prefix is set and the absolute head is shorter than two characters:
    /// `''` (a source in the cwd, or in `/`, with cwd `/`) or `'/'` (a source
    /// spelled `//foo.py`, whatever the cwd). 3.14 no longer crashes.
    #[error("IndexError: string index out of range")]
    EmptyHead,
}

impl Layout {
    /// The pyc path for `source` at optimization suffix `optimization`
    /// (`""` for level 0, `"1"`, `"2"`; compileall maps 0 to `""`).
    pub fn cache_path(&self, source: &[u8], optimization: &str) -> Result<PathBuf, LayoutError> {
        if self.legacy {
            // compileall: `cfile = fullname + 'c'`, whatever the suffix.
            let mut pyc = source.to_vec();
            pyc.push(b'c');
            return Ok(into_path(pyc));
        }
        debug_assert!(
            optimization.bytes().all(|b| b.is_ascii_alphanumeric()),
            "CPython raises ValueError for optimization {optimization:?}"
        );
        let (head, tail) = split_at_last_sep(source);
        let filename = self.cache_filename(tail, optimization);
        let pyc = match self.active_prefix() {
            None => join(&[head, PYCACHE, &filename]),
            Some(prefix) => {
                let head = self.mirrored_head(head)?;
                join(&[prefix, &head, &filename])
            }
        };
        Ok(into_path(pyc))
    }

    /// The prefix pycs are written under: none in `-b` mode or before 3.8.
    pub fn written_prefix(&self) -> Option<&[u8]> {
        if self.legacy { None } else { self.active_prefix() }
    }

    /// `sys.pycache_prefix` arrived in 3.8; 3.7's `cache_from_source` never
    /// looks at it.
    fn active_prefix(&self) -> Option<&[u8]> {
        if self.version < (3, 8) {
            return None;
        }
        self.prefix.as_deref()
    }

    /// `stem` + `sep` + tag [+ `.opt-N`] + `.pyc`, where the tail is split at
    /// its last dot and an empty base means the part after the dot is the stem
    /// (`.hidden` -> `hidden.TAG.pyc`, `foo` -> `fooTAG.pyc`).
    fn cache_filename(&self, tail: &[u8], optimization: &str) -> Vec<u8> {
        let (stem, dot) = match tail.iter().rposition(|&b| b == b'.') {
            Some(0) => (&tail[1..], &b"."[..]),
            Some(i) => (&tail[..i], &b"."[..]),
            None => (tail, &b""[..]),
        };
        let mut name = [stem, dot, self.cache_tag.as_bytes()].concat();
        if !optimization.is_empty() {
            name.extend_from_slice(b".opt-");
            name.extend_from_slice(optimization.as_bytes());
        }
        name.extend_from_slice(b".pyc");
        name
    }

    /// The source's directory as it appears under the prefix: made absolute
    /// against the cwd, then made root-relative by stripping leading `/`.
    fn mirrored_head(&self, head: &[u8]) -> Result<Vec<u8>, LayoutError> {
        let absolute = self.absolute_head(head);
        // The Windows drive check indexes `head[1]` before 3.14 (slices since),
        // so a head under two characters raises. With an absolute cwd the head
        // is '' or starts with `/` (bytes = characters), so the drive strip
        // itself never applies on POSIX.
        if self.version < (3, 14) && absolute.len() < 2 {
            return Err(LayoutError::EmptyHead);
        }
        let start = absolute.iter().position(|&b| b != SEP);
        Ok(start.map_or_else(Vec::new, |i| absolute[i..].to_vec()))
    }

    /// `_path_join(os.getcwd(), head)` for a relative head; 3.12 added
    /// `_path_abspath`, which first drops one leading `./`.
    fn absolute_head(&self, head: &[u8]) -> Vec<u8> {
        if head.first() == Some(&SEP) {
            return head.to_vec();
        }
        let head = match head.strip_prefix(b"./") {
            Some(rest) if self.version >= (3, 12) => rest,
            _ => head,
        };
        join(&[&self.cwd, head])
    }
}

/// CPython's `_path_split`: split at the last `/`; no `/` means an empty head.
fn split_at_last_sep(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == SEP) {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// CPython's POSIX `_path_join`: drop empty parts, strip trailing `/` from
/// each remaining part (which may leave it empty), join with `/`. Separators
/// inside a part are kept, so `//abs` and `.//x` survive.
fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut joined = Vec::new();
    for (i, part) in parts.iter().filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            joined.push(SEP);
        }
        let end = part.iter().rposition(|&b| b != SEP).map_or(0, |i| i + 1);
        joined.extend_from_slice(&part[..end]);
    }
    joined
}

fn into_path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::process::{Command, Stdio};

    const CWD: &[u8] = b"/tmp/proj";
    const NO: Option<&[u8]> = None;
    const PFX: Option<&[u8]> = Some(b"/pfx");

    fn layout(version: (u32, u32), prefix: Option<&[u8]>, cwd: &[u8]) -> Layout {
        Layout {
            cache_tag: format!("cpython-{}{}", version.0, version.1),
            version,
            prefix: prefix.map(<[u8]>::to_vec),
            cwd: cwd.to_vec(),
            legacy: false,
        }
    }

    fn show(bytes: &[u8]) -> String {
        format!("{:?}", OsStr::from_bytes(bytes))
    }

    fn show_prefix(prefix: Option<&[u8]>) -> String {
        prefix.map_or_else(|| "None".to_owned(), show)
    }

    /// `None` stands for CPython's `IndexError`.
    fn outcome(result: Result<PathBuf, LayoutError>) -> Option<Vec<u8>> {
        result.ok().map(|p| p.into_os_string().into_vec())
    }

    /// (minor, source, optimization, prefix, cwd, expected; `None` = IndexError).
    #[rustfmt::skip]
    type Row = (u32, &'static [u8], &'static str, Option<&'static [u8]>, &'static [u8], Option<&'static [u8]>);

    /// Every expected value was printed by `importlib.util.cache_from_source`
    /// after `os.chdir(cwd)` and `sys.pycache_prefix = prefix`: CPython
    /// 3.8.18–3.13.0 (pyenv builds), and 3.14.2 under Node (Pyodide 314.0.7).
    /// 3.8–3.10 gave the same results as 3.11 on every row; 3.13 as 3.12.
    #[rustfmt::skip]
    const RECORDED: &[Row] = &[
        (11, b"foo.py", "", NO, CWD, Some(b"__pycache__/foo.cpython-311.pyc")),
        (11, b"a//b.py", "", NO, CWD, Some(b"a/__pycache__/b.cpython-311.pyc")),
        (11, b"//abs/foo.py", "", NO, CWD, Some(b"//abs/__pycache__/foo.cpython-311.pyc")),
        (11, b"./foo.py", "", NO, CWD, Some(b"./__pycache__/foo.cpython-311.pyc")),
        (11, b"../foo.py", "", NO, CWD, Some(b"../__pycache__/foo.cpython-311.pyc")),
        (11, b"/foo.py", "", NO, CWD, Some(b"__pycache__/foo.cpython-311.pyc")),
        (11, b"//foo.py", "", NO, CWD, Some(b"/__pycache__/foo.cpython-311.pyc")),
        (11, b"foo", "", NO, CWD, Some(b"__pycache__/foocpython-311.pyc")),
        (11, b".hidden", "", NO, CWD, Some(b"__pycache__/hidden.cpython-311.pyc")),
        (11, b".hidden.py", "", NO, CWD, Some(b"__pycache__/.hidden.cpython-311.pyc")),
        (11, b".py", "", NO, CWD, Some(b"__pycache__/py.cpython-311.pyc")),
        (11, b"foo.bar.py", "", NO, CWD, Some(b"__pycache__/foo.bar.cpython-311.pyc")),
        (11, b"foo.pyw", "", NO, CWD, Some(b"__pycache__/foo.cpython-311.pyc")),
        (11, b"dir/", "", NO, CWD, Some(b"dir/__pycache__/cpython-311.pyc")),
        (11, b".", "", NO, CWD, Some(b"__pycache__/.cpython-311.pyc")),
        (11, b"", "", NO, CWD, Some(b"__pycache__/cpython-311.pyc")),
        (11, b"foo.py", "1", NO, CWD, Some(b"__pycache__/foo.cpython-311.opt-1.pyc")),
        (11, b"a/foo.py", "2", NO, CWD, Some(b"a/__pycache__/foo.cpython-311.opt-2.pyc")),
        (11, b"foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/foo.cpython-311.pyc")),
        (11, b"a/b/foo.py", "1", PFX, CWD, Some(b"/pfx/tmp/proj/a/b/foo.cpython-311.opt-1.pyc")),
        (11, b"/abs/dir/foo.py", "", PFX, CWD, Some(b"/pfx/abs/dir/foo.cpython-311.pyc")),
        (11, b"//abs/foo.py", "", PFX, CWD, Some(b"/pfx/abs/foo.cpython-311.pyc")),
        (11, b"/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/foo.cpython-311.pyc")),
        (11, b"../foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/../foo.cpython-311.pyc")),
        (11, b"/a/../../../x/foo.py", "", PFX, CWD, Some(b"/pfx/a/../../../x/foo.cpython-311.pyc")),
        (11, b"foo.py", "", Some(b"/pfx/"), CWD, Some(b"/pfx/tmp/proj/foo.cpython-311.pyc")),
        (11, b"foo.py", "", Some(b"rel/pp"), CWD, Some(b"rel/pp/tmp/proj/foo.cpython-311.pyc")),
        (11, b"foo.py", "", Some(b""), CWD, Some(b"tmp/proj/foo.cpython-311.pyc")),
        (11, b"foo.py", "", Some(b"/"), CWD, Some(b"/tmp/proj/foo.cpython-311.pyc")),
        (11, b"./foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/./foo.cpython-311.pyc")),
        (11, b"./", "", PFX, CWD, Some(b"/pfx/tmp/proj/./cpython-311.pyc")),
        (11, b"./x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/./x/foo.cpython-311.pyc")),
        (11, b".//x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/.//x/foo.cpython-311.pyc")),
        (11, b"././x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/././x/foo.cpython-311.pyc")),
        (12, b"./x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/x/foo.cpython-312.pyc")),
        (12, b".//x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj//x/foo.cpython-312.pyc")),
        (12, b"././x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/./x/foo.cpython-312.pyc")),
        (12, b"./foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/./foo.cpython-312.pyc")),
        (14, b"./x/foo.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/x/foo.cpython-314.pyc")),
        // cwd `/`: the head collapses to '' or '/', which crashes before 3.14.
        (8, b"foo.py", "", PFX, b"/", None),
        (11, b"foo.py", "", PFX, b"/", None),
        (11, b"/foo.py", "", PFX, b"/", None),
        (11, b"//foo.py", "", PFX, CWD, None),
        (11, b"x/foo.py", "", PFX, b"/", Some(b"/pfx/x/foo.cpython-311.pyc")),
        (11, b"./foo.py", "", PFX, b"/", Some(b"/pfx/./foo.cpython-311.pyc")),
        (11, b".//foo.py", "", PFX, b"/", Some(b"/pfx/./foo.cpython-311.pyc")),
        (12, b".//foo.py", "", PFX, b"/", None),
        (13, b"foo.py", "", PFX, b"/", None),
        (13, b"//foo.py", "", PFX, CWD, None),
        (14, b"foo.py", "", PFX, b"/", Some(b"/pfx/foo.cpython-314.pyc")),
        (14, b"/foo.py", "", PFX, b"/", Some(b"/pfx/foo.cpython-314.pyc")),
        (14, b"//foo.py", "", PFX, CWD, Some(b"/pfx/foo.cpython-314.pyc")),
        (14, b".//foo.py", "", PFX, b"/", Some(b"/pfx/foo.cpython-314.pyc")),
        (14, b"dir/", "", NO, CWD, Some(b"dir/__pycache__/cpython-314.pyc")),
        // Non-UTF-8 bytes travel through as surrogate escapes.
        (11, b"\xff/\xfe.py", "", NO, CWD, Some(b"\xff/__pycache__/\xfe.cpython-311.pyc")),
        (11, b"caf\xc3\xa9/\xff.py", "2", Some(b"/p\xff"), CWD,
            Some(b"/p\xff/tmp/proj/caf\xc3\xa9/\xff.cpython-311.opt-2.pyc")),
        (11, b"\xc3/x.py", "", PFX, CWD, Some(b"/pfx/tmp/proj/\xc3/x.cpython-311.pyc")),
    ];

    #[test]
    fn cache_path_matches_recorded_cpython() {
        let mut mismatches = Vec::new();
        for &(minor, source, opt, prefix, cwd, want) in RECORDED {
            let got = outcome(layout((3, minor), prefix, cwd).cache_path(source, opt));
            if got.as_deref() != want {
                mismatches.push(format!(
                    "3.{minor} {} opt={opt:?} prefix={} cwd={}: got {:?}, want {:?}",
                    show(source),
                    show_prefix(prefix),
                    show(cwd),
                    got.as_deref().map(show),
                    want.map(show),
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }

    /// compileall writes `fullname + 'c'` under `-b`; checked with
    /// `python3.11 -X pycache_prefix=P -m compileall -b -o 2 ./lt//b.py`, which
    /// wrote `lt/b.pyc` and nothing under P.
    #[test]
    fn legacy_appends_c_and_ignores_prefix_and_optimization() {
        let mut legacy = layout((3, 11), PFX, CWD);
        legacy.legacy = true;
        for (source, want) in [
            (&b"./lt//b.py"[..], &b"./lt//b.pyc"[..]),
            (b"t/a.py", b"t/a.pyc"),
            (b"foo", b"fooc"),
        ] {
            let got = outcome(legacy.cache_path(source, "2"));
            assert_eq!(got.as_deref(), Some(want), "{}", show(source));
        }
    }

    #[test]
    fn python_37_ignores_prefix() {
        // 3.7.16 with sys.pycache_prefix = '/pfx' printed __pycache__/foo.cpython-37.pyc.
        let got = outcome(layout((3, 7), PFX, b"/").cache_path(b"foo.py", ""));
        assert_eq!(got.as_deref(), Some(&b"__pycache__/foo.cpython-37.pyc"[..]));
    }

    /// Runs in the interpreter under test. Reads `source opt prefix cwd` lines
    /// (hex bytes, `-` for no prefix); prints `major minor cache_tag`, then per
    /// line the physical cwd and the result as hex, or `IndexError`.
    const ORACLE_SCRIPT: &str = r#"
import os, sys, importlib.util as u
print(sys.version_info[0], sys.version_info[1], sys.implementation.cache_tag)
for line in sys.stdin:
    src, opt, pfx, cwd = line.rstrip('\n').split('\t')
    os.chdir(os.fsdecode(bytes.fromhex(cwd)))
    sys.pycache_prefix = None if pfx == '-' else os.fsdecode(bytes.fromhex(pfx))
    try:
        pyc = u.cache_from_source(os.fsdecode(bytes.fromhex(src)), optimization=opt)
        out = os.fsencode(pyc).hex()
    except IndexError:
        out = 'IndexError'
    print(os.getcwdb().hex(), out)
"#;

    const ORACLE_VERSIONS: &[&str] = &["3.7.16", "3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0"];

    #[rustfmt::skip]
    const ORACLE_SOURCES: &[&[u8]] = &[
        b"foo.py", b"a/b/foo.py", b"a//b.py", b"//abs/foo.py", b"./foo.py", b"../foo.py",
        b"/foo.py", b"//foo.py", b"///foo.py", b"/x//foo.py", b"foo", b".hidden", b".hidden.py",
        b".py", b"foo.bar.py", b"foo.pyw", b"foo.PY", b"foo.", b"foo..py", b"dir/", b"a/b/",
        b".", b"./", b"", b"/", b"x/.", b"x/..", b"./x/foo.py", b".//x/foo.py", b"././x/foo.py",
        b"./..", b"/abs/dir/foo.py", b"/a/../../../x/foo.py", b"a:b/foo.py", b"C:/x/foo.py",
        b"\xff/\xfe.py", b"caf\xc3\xa9/\xff.py", b"\xc3/x.py", b"\xe2\x82/y.py", b"./\xff/z.py",
    ];

    #[rustfmt::skip]
    const ORACLE_PREFIXES: &[Option<&[u8]>] = &[
        None, Some(b"/pfx"), Some(b"/pfx/"), Some(b"rel/pp"), Some(b""), Some(b"/"), Some(b"//"),
        Some(b"/p\xff"), Some(b"./rel"), Some(b"//pfx//"),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("oracle printed bad hex"))
            .collect()
    }

    /// Pyenv interpreters, plus any listed in `PRECOMPYLE_TEST_PYTHONS`
    /// (colon-separated), each run as `PY -I -B -c SCRIPT`.
    fn oracle_interpreters() -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let mut found = Vec::new();
        for version in ORACLE_VERSIONS {
            let python = home.join(".pyenv/versions").join(version).join("bin/python3");
            if python.is_file() {
                found.push(python);
            } else {
                eprintln!(
                    "skipping cache_from_source oracle {version}: {} not found",
                    python.display()
                );
            }
        }
        let extra = std::env::var_os("PRECOMPYLE_TEST_PYTHONS").unwrap_or_default();
        found.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
        found
    }

    pub(super) struct OracleCase {
        pub(super) source: Vec<u8>,
        pub(super) opt: &'static str,
        pub(super) prefix: Option<Vec<u8>>,
        pub(super) cwd: Vec<u8>,
    }

    impl OracleCase {
        fn line(&self) -> String {
            let prefix = self.prefix.as_deref().map_or_else(|| "-".to_owned(), hex);
            let (source, cwd) = (hex(&self.source), hex(&self.cwd));
            format!("{source}\t{}\t{prefix}\t{cwd}\n", self.opt)
        }
    }

    /// Every (source, optimization, prefix, cwd) combination.
    fn oracle_cases(cwds: &[Vec<u8>]) -> Vec<OracleCase> {
        let mut cases = Vec::new();
        for &source in ORACLE_SOURCES {
            for opt in ["", "1", "2"] {
                for &prefix in ORACLE_PREFIXES {
                    for cwd in cwds {
                        let cwd = cwd.clone();
                        cases.push(OracleCase {
                            source: source.to_vec(),
                            opt,
                            prefix: prefix.map(<[u8]>::to_vec),
                            cwd,
                        });
                    }
                }
            }
        }
        cases
    }

    /// What one interpreter said: its version and tag, and per case the
    /// physical cwd it ran in and its answer (hex path or `IndexError`).
    struct OracleRun {
        version: (u32, u32),
        cache_tag: String,
        answers: Vec<(Vec<u8>, String)>,
    }

    /// Feeds every case to `python` in one process.
    fn run_oracle(python: &Path, input: &Path) -> OracleRun {
        let output = Command::new(python)
            .args(["-I", "-B", "-c", ORACLE_SCRIPT])
            .stdin(fs_err::File::open(input).unwrap().into_parts().0)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
        assert!(output.status.success(), "{}: {}", python.display(), output.status);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = stdout.lines();
        let header: Vec<&str> = lines.next().expect("no header").split(' ').collect();
        let answers = lines
            .map(|line| {
                let (cwd, answer) = line.split_once(' ').expect("malformed oracle line");
                (unhex(cwd), answer.to_owned())
            })
            .collect();
        OracleRun {
            version: (header[0].parse().unwrap(), header[1].parse().unwrap()),
            cache_tag: header[2].to_owned(),
            answers,
        }
    }

    /// One line per case where `cache_path` disagrees with the interpreter.
    fn mismatches(python: &Path, run: &OracleRun, cases: &[OracleCase]) -> Vec<String> {
        let mut found = Vec::new();
        for (case, (cwd, want)) in cases.iter().zip(&run.answers) {
            let mut layout = layout(run.version, case.prefix.as_deref(), cwd);
            layout.cache_tag.clone_from(&run.cache_tag);
            let got = match layout.cache_path(&case.source, case.opt) {
                Ok(pyc) => hex(pyc.as_os_str().as_bytes()),
                Err(LayoutError::EmptyHead) => "IndexError".to_owned(),
            };
            if &got != want {
                found.push(format!(
                    "{}: {} opt={:?} prefix={} cwd={}: got {}, want {}",
                    python.display(),
                    show(&case.source),
                    case.opt,
                    show_prefix(case.prefix.as_deref()),
                    show(cwd),
                    show_answer(&got),
                    show_answer(want),
                ));
            }
        }
        found
    }

    fn show_answer(answer: &str) -> String {
        if answer == "IndexError" {
            answer.to_owned()
        } else {
            show(&unhex(answer))
        }
    }

    /// cwds under `tmp`, which must outlive their use: a plain directory, a
    /// non-UTF-8 one, and `/` (the crash case).
    pub(super) fn oracle_cwds(tmp: &Path) -> Vec<Vec<u8>> {
        let plain = tmp.join("cwd");
        let non_utf8 = tmp.join(OsStr::from_bytes(b"d\xff"));
        fs_err::create_dir(&plain).unwrap();
        fs_err::create_dir(&non_utf8).unwrap();
        [plain.as_os_str(), non_utf8.as_os_str(), OsStr::new("/")]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect()
    }

    /// Every case through every interpreter present, one process each; one
    /// line per disagreement. The input file goes in `tmp`.
    pub(super) fn oracle_mismatches(tmp: &Path, cases: &[OracleCase]) -> Vec<String> {
        let input = tmp.join("cases.txt");
        fs_err::write(&input, cases.iter().map(OracleCase::line).collect::<String>()).unwrap();
        let mut all = Vec::new();
        for python in oracle_interpreters() {
            let run = run_oracle(&python, &input);
            assert_eq!(run.answers.len(), cases.len(), "{}", python.display());
            all.extend(mismatches(&python, &run, cases));
        }
        all
    }

    #[test]
    fn cache_path_matches_every_interpreter_present() {
        let tmp = tempfile::tempdir().unwrap();
        let cases = oracle_cases(&oracle_cwds(tmp.path()));
        let all = oracle_mismatches(tmp.path(), &cases);
        assert!(all.is_empty(), "{} mismatches:\n{}", all.len(), all.join("\n"));
    }
}
