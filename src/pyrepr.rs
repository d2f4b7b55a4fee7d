//! How Python shows things: `repr()` of a path string, `str` ordering of file
//! names, and the text of an `OSError`. Paths are raw bytes here; Python sees
//! them through surrogateescape (an undecodable byte b is the code point
//! U+DC00+b).
//!
//! "Printable" uses Unicode 14.0 (the `unicode-general-category` 0.5.1 tables),
//! the database of CPython 3.11. Other targets differ only for code points
//! assigned after (or, for 3.8–3.10, in) Unicode 14: 3.8 uses 12.1, 3.9/3.10
//! 13.0, 3.12 15.0, 3.13 15.1.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{self, AtomicU32};

/// `repr(os.fsdecode(path))` as CPython prints it, e.g. `'t/a.py'`,
/// `"it's.py"`, `'bad\udcffname.py'`.
pub fn repr_path(path: &[u8]) -> String {
    // CPython switches to double quotes only when that avoids escaping.
    let quote = if path.contains(&b'\'') && !path.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(path.len() + 2);
    out.push(quote);
    for cp in code_points(path) {
        push_repr_char(&mut out, cp, quote);
    }
    out.push(quote);
    out
}

/// One code point of `unicode_repr` (Objects/unicodeobject.c).
fn push_repr_char(out: &mut String, cp: u32, quote: char) {
    match cp {
        0x5c => out.push_str("\\\\"),
        0x09 => out.push_str("\\t"),
        0x0a => out.push_str("\\n"),
        0x0d => out.push_str("\\r"),
        _ if cp == quote as u32 => {
            out.push('\\');
            out.push(quote);
        }
        0x00..=0x1f | 0x7f => write!(out, "\\x{cp:02x}").unwrap(),
        0x20..=0x7e => out.push(cp as u8 as char),
        _ => match char::from_u32(cp) {
            Some(ch) if is_printable(ch) => out.push(ch),
            _ if cp <= 0xff => write!(out, "\\x{cp:02x}").unwrap(),
            _ if cp <= 0xffff => write!(out, "\\u{cp:04x}").unwrap(),
            _ => write!(out, "\\U{cp:08x}").unwrap(),
        },
    }
}

/// The target's minor version, which decides its Unicode database (3.9/3.10:
/// 13.0, 3.11: 14.0, 3.12: 15.0, 3.13: 15.1, 3.14: 16.0). Set once at start.
static TARGET_MINOR: AtomicU32 = AtomicU32::new(11);

/// Show paths as the target interpreter `(major, minor)` would.
pub fn set_target_version(version: (u32, u32)) {
    TARGET_MINOR.store(version.1, atomic::Ordering::Relaxed);
}

/// `str.isprintable()` for one non-ASCII character: not "Other" (Cc, Cf, Cs,
/// Co, Cn) and not a separator (Zs, Zl, Zp), in the target's Unicode version.
/// 3.8 (Unicode 12.1) uses the 13.0 table.
fn is_printable(ch: char) -> bool {
    macro_rules! printable_in {
        ($ucd:ident) => {{
            use $ucd::GeneralCategory as G;
            !matches!(
                $ucd::get_general_category(ch),
                G::Control
                    | G::Format
                    | G::Surrogate
                    | G::PrivateUse
                    | G::Unassigned
                    | G::SpaceSeparator
                    | G::LineSeparator
                    | G::ParagraphSeparator
            )
        }};
    }
    match TARGET_MINOR.load(atomic::Ordering::Relaxed) {
        ..=10 => printable_in!(ucd13),
        11 => printable_in!(ucd14),
        12 => printable_in!(ucd15),
        // Unicode 15.1 added CJK Extension I and a few symbols, all printable.
        13 => printable_in!(ucd15) || matches!(ch, '\u{2EBF0}'..='\u{2EE5D}' | '\u{2FFC}'..='\u{2FFF}' | '\u{31EF}'),
        _ => printable_in!(ucd16),
    }
}

/// Python `str` ordering of two file names decoded with surrogateescape
/// (code-point order, not byte order).
pub fn str_order(a: &[u8], b: &[u8]) -> Ordering {
    // Valid UTF-8 sorts the same bytewise and by code point; only escaped
    // bytes (U+DC80..U+DCFF, below U+E000) break that. ASCII names (nearly
    // all) compare as bytes; the rest decode lazily.
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    code_points(a).cmp(code_points(b))
}

/// The code points of `os.fsdecode(bytes)`: strict UTF-8, and every byte of
/// an invalid sequence becomes U+DC00+byte.
fn code_points(bytes: &[u8]) -> CodePoints<'_> {
    CodePoints { rest: bytes }
}

struct CodePoints<'a> {
    rest: &'a [u8],
}

impl Iterator for CodePoints<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (&lead, tail) = self.rest.split_first()?;
        if lead < 0x80 {
            self.rest = tail;
            return Some(u32::from(lead));
        }
        match decode_multibyte(self.rest) {
            Some((cp, len)) => {
                self.rest = &self.rest[len..];
                Some(cp)
            }
            None => {
                // Continuation bytes never start a valid sequence, so escaping
                // one byte at a time matches CPython's error ranges.
                self.rest = tail;
                Some(0xdc00 + u32::from(lead))
            }
        }
    }
}

/// Decode one non-ASCII UTF-8 sequence at the start of `bytes` (well-formed
/// per Unicode table 3-7: no overlongs, surrogates or values past U+10FFFF).
fn decode_multibyte(bytes: &[u8]) -> Option<(u32, usize)> {
    let lead = bytes[0];
    let (len, second): (usize, std::ops::RangeInclusive<u8>) = match lead {
        0xc2..=0xdf => (2, 0x80..=0xbf),
        0xe0 => (3, 0xa0..=0xbf),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80..=0xbf),
        0xed => (3, 0x80..=0x9f),
        0xf0 => (4, 0x90..=0xbf),
        0xf1..=0xf3 => (4, 0x80..=0xbf),
        0xf4 => (4, 0x80..=0x8f),
        _ => return None,
    };
    let seq = bytes.get(..len)?;
    if !second.contains(&seq[1]) || !seq[2..].iter().all(|b| (0x80..=0xbf).contains(b)) {
        return None;
    }
    let lead_bits = u32::from(lead) & (0x7f >> len);
    let cp = seq[1..]
        .iter()
        .fold(lead_bits, |acc, b| (acc << 6) | u32::from(b & 0x3f));
    Some((cp, len))
}

/// `str(exc)` prefixed by the class name, as compileall prints an OSError:
/// `PermissionError: [Errno 13] Permission denied: 't/x.py'`, or with two
/// file names `… : 'a' -> 'b'`. Errors without an errno print as
/// `OSError: <text>`.
pub fn os_error_text(err: &io::Error, filename: Option<&[u8]>, filename2: Option<&[u8]>) -> String {
    let Some(errno) = err.raw_os_error() else {
        return format!("OSError: {err}");
    };
    let mut text = format!("{}: [Errno {errno}] {}", os_error_class(errno), strerror(errno));
    // OSError.__str__ shows filename2 only alongside filename.
    if let Some(name) = filename {
        write!(text, ": {}", repr_path(name)).unwrap();
        if let Some(name2) = filename2 {
            write!(text, " -> {}", repr_path(name2)).unwrap();
        }
    }
    text
}

/// The OSError subclass CPython instantiates for `errno` (PEP 3151's map,
/// Objects/exceptions.c `_PyExc_InitState`).
pub fn os_error_class(errno: i32) -> &'static str {
    match errno {
        libc::EAGAIN | libc::EALREADY | libc::EINPROGRESS => "BlockingIOError",
        libc::ECHILD => "ChildProcessError",
        libc::EPIPE | libc::ESHUTDOWN => "BrokenPipeError",
        libc::ECONNABORTED => "ConnectionAbortedError",
        libc::ECONNREFUSED => "ConnectionRefusedError",
        libc::ECONNRESET => "ConnectionResetError",
        libc::EEXIST => "FileExistsError",
        libc::ENOENT => "FileNotFoundError",
        libc::EISDIR => "IsADirectoryError",
        libc::ENOTDIR => "NotADirectoryError",
        libc::EINTR => "InterruptedError",
        libc::EACCES | libc::EPERM => "PermissionError",
        libc::ESRCH => "ProcessLookupError",
        libc::ETIMEDOUT => "TimeoutError",
        _ => "OSError",
    }
}

/// Python's `errno.errorcode[errno]` for the errors a run meets on files,
/// so a JSON consumer can act on `ENOSPC` or `EROFS` without parsing text.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EDQUOT => "EDQUOT",
        libc::ESTALE => "ESTALE",
        _ => return None,
    })
}

/// The C library's message for `errno`, which is what Python shows.
fn strerror(errno: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the XSI strerror_r writes a
    // NUL-terminated string into it (truncated if needed).
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {errno}");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Helpers for tests that ask a real interpreter (shared by discover and dfile).
#[cfg(test)]
pub(crate) mod oracle {
    use std::io::Write as _;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    /// `~/.pyenv/versions/<version>*/bin/python3`, if installed; otherwise
    /// prints why the caller is skipping.
    pub(crate) fn interpreter(version: &str) -> Option<PathBuf> {
        let root = PathBuf::from(std::env::var_os("HOME")?).join(".pyenv/versions");
        let found = std::fs::read_dir(&root).ok().and_then(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.strip_prefix(version).is_some_and(|rest| rest.starts_with('.'))
                })
                .map(|p| p.join("bin/python3"))
                .filter(|exe| exe.exists())
        });
        if found.is_none() {
            eprintln!("SKIP: no CPython {version} under {}", root.display());
        }
        found
    }

    /// Run `script` with `stdin`, in `cwd`, and return stdout (panics on failure).
    pub(crate) fn run(exe: &std::path::Path, cwd: &std::path::Path, script: &str, stdin: &str) -> String {
        let mut child = Command::new(exe)
            .args(["-I", "-c", script])
            .current_dir(cwd)
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python");
        // Written from a thread: a child that answers while it reads would
        // fill the stdout pipe and block on it while we block on its stdin.
        // A write error means the child died; its stderr says why.
        let mut input = child.stdin.take().unwrap();
        let out = std::thread::scope(|scope| {
            scope.spawn(move || input.write_all(stdin.as_bytes()));
            child.wait_with_output().unwrap()
        });
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::{hex, interpreter, run};
    use super::*;

    // Expected values printed by CPython 3.11.7: `repr(os.fsdecode(b))`.
    const REPR_CASES: &[(&[u8], &str)] = &[
        (b"t/a.py", r"'t/a.py'"),
        (b"", r"''"),
        (b"it's.py", r#""it's.py""#),
        (b"q\"u.py", r#"'q"u.py'"#),
        (b"both'\".py", r#"'both\'".py'"#),
        (b"back\\slash", r"'back\\slash'"),
        (b"nl\nname", r"'nl\nname'"),
        (b"tab\tx\rcr", r"'tab\tx\rcr'"),
        (b"\x00\x01\x1b\x7f", r"'\x00\x01\x1b\x7f'"),
        (b"bad\xffname.py", r"'bad\udcffname.py'"),
        (b"\x80\xc3", r"'\udc80\udcc3'"),
        (b"\xed\xa0\x80", r"'\udced\udca0\udc80'"),
        (b"\xc0\xaf", r"'\udcc0\udcaf'"),
        (b"\xf0\x9f\x98", r"'\udcf0\udc9f\udc98'"),
        ("é.py".as_bytes(), "'é.py'"),
        ("e\u{301}".as_bytes(), "'e\u{301}'"),
        ("nb\u{a0}sp".as_bytes(), r"'nb\xa0sp'"),
        ("\u{ad}".as_bytes(), r"'\xad'"),
        ("zw\u{200b}sp".as_bytes(), r"'zw\u200bsp'"),
        ("\u{2028}\u{3000}".as_bytes(), r"'\u2028\u3000'"),
        ("\u{e000}".as_bytes(), r"'\ue000'"),
        ("\u{1f600}".as_bytes(), "'\u{1f600}'"),
        ("\u{f0000}\u{e0001}".as_bytes(), r"'\U000f0000\U000e0001'"),
        ("\u{378}".as_bytes(), r"'\u0378'"),
    ];

    /// The helper wrote all of stdin before reading stdout, so a script that
    /// answers line by line hung once its answers filled the pipe (seen with
    /// 100,000 random sources in `pyc::proptests`).
    #[test]
    fn oracle_run_does_not_deadlock_on_large_input_and_output() {
        let Some(python) = interpreter("3.11") else {
            return;
        };
        let stdin = "0123456789abcdef\n".repeat(100_000);
        let script = "import sys\nfor line in sys.stdin: sys.stdout.write(line)";
        let out = run(&python, std::path::Path::new("/"), script, &stdin);
        assert_eq!(out, stdin);
    }

    #[test]
    fn repr_path_table() {
        for (input, expected) in REPR_CASES {
            assert_eq!(repr_path(input), *expected, "input {input:?}");
        }
    }

    // Order given by CPython 3.11.7 `sorted(map(os.fsdecode, names))`.
    #[test]
    fn str_order_table() {
        let sorted: &[&[u8]] = &[
            b".hidden.py",
            b"Upper",
            b"Z.py",
            b"_u.py",
            b"a.py",
            b"a\xff.py",
            "a\u{e000}.py".as_bytes(),
            "é.py".as_bytes(),
            b"\xff",
            "\u{1f600}".as_bytes(),
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(str_order(a, b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }

    /// Byte strings covering quoting, escapes, undecodable bytes and
    /// non-ASCII categories, checked against the interpreter in one process.
    fn oracle_inputs() -> Vec<Vec<u8>> {
        let mut inputs: Vec<Vec<u8>> = REPR_CASES.iter().map(|(b, _)| b.to_vec()).collect();
        inputs.extend((0u8..=0xff).map(|b| vec![b'x', b, b'y']));
        inputs.extend((0x80u8..=0xff).map(|b| vec![b, 0x80, 0x80, 0x80]));
        for text in [
            "\u{a0}",
            "\u{200b}",
            "\u{e000}",
            "\u{1f600}",
            "é",
            "e\u{301}\u{20dd}",
            "\u{ffff}",
        ] {
            inputs.push(format!("n{text}.py").into_bytes());
        }
        inputs.extend([
            b"'\"\\\n\t\x7f".to_vec(),
            b"\xe2\x82".to_vec(),
            b"\xf4\x90\x80\x80".to_vec(),
        ]);
        inputs
    }

    #[test]
    fn repr_and_order_match_python() {
        let Some(exe) = interpreter("3.11") else {
            return;
        };
        let inputs = oracle_inputs();
        let stdin: String = inputs.iter().map(|b| hex(b) + "\n").collect();
        let script = r#"
import os, sys
names = [os.fsdecode(bytes.fromhex(l)) for l in sys.stdin.read().split('\n')[:-1]]
for n in names: print(repr(n))
order = sorted(range(len(names)), key=lambda i: (names[i], i))
print(' '.join(map(str, order)))
"#;
        let out = run(&exe, std::path::Path::new("/"), script, &stdin);
        let lines: Vec<&str> = out.lines().collect();
        for (input, expected) in inputs.iter().zip(&lines) {
            assert_eq!(repr_path(input), *expected, "input {input:?}");
        }
        let mut ours: Vec<usize> = (0..inputs.len()).collect();
        ours.sort_by(|&i, &j| str_order(&inputs[i], &inputs[j]).then(i.cmp(&j)));
        let theirs: Vec<usize> = lines[inputs.len()].split(' ').map(|n| n.parse().unwrap()).collect();
        assert_eq!(ours, theirs);
    }

    /// Every code point's printability against `str.isprintable` of the
    /// interpreter whose Unicode database (14.0) our tables carry.
    #[test]
    fn printable_matches_python_311_for_every_code_point() {
        let Some(exe) = interpreter("3.11") else {
            return;
        };
        let script = r#"
import sys, unicodedata
assert unicodedata.unidata_version == '14.0.0'
sys.stdout.write(''.join('1' if chr(c).isprintable() else '0' for c in range(0x80, 0x110000)))
"#;
        let out = run(&exe, std::path::Path::new("/"), script, "");
        for (cp, flag) in (0x80u32..0x110000).zip(out.bytes()) {
            let ours = char::from_u32(cp).is_some_and(is_printable);
            assert_eq!(ours, flag == b'1', "U+{cp:04X}");
        }
    }

    /// errno, filename, filename2, expected text.
    type ErrnoCase = (i32, Option<&'static [u8]>, Option<&'static [u8]>, &'static str);

    #[test]
    fn errno_names_are_pythons() {
        let Some(exe) = interpreter("3.11") else {
            return;
        };
        let script = "import errno\nfor n in range(1, 134): print(n, errno.errorcode.get(n, '-'))";
        let table = run(&exe, std::path::Path::new("/"), script, "");
        let mut named = 0;
        for line in table.lines() {
            let (number, name) = line.split_once(' ').unwrap();
            if let Some(ours) = errno_name(number.parse().unwrap()) {
                assert_eq!(ours, name, "errno {number}");
                named += 1;
            }
        }
        assert_eq!(named, 24, "every name in the table was compared");
    }

    #[test]
    fn os_error_text_table() {
        // Texts printed by CPython 3.11.7 for OSError(errno, strerror, 'f', None, 'g').
        let cases: &[ErrnoCase] = &[
            (
                13,
                Some(b"t/x.py"),
                None,
                "PermissionError: [Errno 13] Permission denied: 't/x.py'",
            ),
            (
                2,
                Some(b"t/a.pyc"),
                Some(b"t/a.pyc"),
                "FileNotFoundError: [Errno 2] No such file or directory: 't/a.pyc' -> 't/a.pyc'",
            ),
            (20, None, None, "NotADirectoryError: [Errno 20] Not a directory"),
            (
                28,
                Some(b"bad\xff"),
                None,
                r"OSError: [Errno 28] No space left on device: 'bad\udcff'",
            ),
            (
                1,
                None,
                Some(b"g"),
                "PermissionError: [Errno 1] Operation not permitted",
            ),
        ];
        for &(errno, f1, f2, expected) in cases {
            assert_eq!(os_error_text(&io::Error::from_raw_os_error(errno), f1, f2), expected);
        }
        let custom = io::Error::other("os.write() didn't write the full pyc file");
        assert_eq!(
            os_error_text(&custom, Some(b"x"), None),
            "OSError: os.write() didn't write the full pyc file"
        );
    }

    #[test]
    fn os_error_text_matches_python_for_every_errno() {
        let Some(exe) = interpreter("3.11") else {
            return;
        };
        let script = r#"
import os
for e in range(0, 200):
    x = OSError(e, os.strerror(e), 'f', None, 'g')
    print(type(x).__name__ + ': ' + str(x))
"#;
        let out = run(&exe, std::path::Path::new("/"), script, "");
        for (errno, expected) in (0..200).zip(out.lines()) {
            if errno == 0 {
                continue; // Python's OSError(0, …) is not an OS error; ours never has errno 0.
            }
            let err = io::Error::from_raw_os_error(errno);
            assert_eq!(os_error_text(&err, Some(b"f"), Some(b"g")), expected, "errno {errno}");
        }
    }
}
