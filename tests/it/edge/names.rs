//! File names Python shows with `repr()`, undecodable bytes, code-point
//! order against byte order.

use super::*;

/// Names Python shows with `repr()`: quotes, newlines, tabs, CR, escape and
/// DEL, undecodable bytes (surrogateescape), non-printable and printable
/// non-ASCII (including U+1FAE8, printable only from Unicode 15 = 3.12), a
/// set whose code-point order differs from byte order, and sources with
/// errors under such names (the error text repeats the raw name).
fn names_tree(s: &Scratch) -> PathBuf {
    let tree = s.empty_tree("n");
    let ok: &[&[u8]] = &[
        b"q'uote.py",
        b"dq\"uote.py",
        b"both'\".py",
        b"nl\nname.py",
        b"tab\tx.py",
        b"cr\rname.py",
        b"back\\slash.py",
        b"sp ace.py",
        b"esc\x1b.py",
        b"del\x7f.py",
        b"bad\xffname.py",
        b"bad\xe9latin.py",
        b"caf\xc3\xa9.py",
        b"\xee\x80\x80pua.py",
        b"emoji\xf0\x9f\x98\x80.py",
        b"shaking\xf0\x9f\xab\xa8.py",
        b"zw\xe2\x80\x8bsp.py",
        b"nbsp\xc2\xa0x.py",
        b".hidden.py",
        b".py",
        b"noext",
        b"UPPER.PY",
        b"w.pyw",
        b"sort\xff.py",
        b"sort\xee\x80\x80.py",
        b"sortA.py",
        b"sort\xc3\xa9.py",
        b"sort_.py",
        b"sort\xf0\x9f\x98\x80.py",
        b"dir\nnl/in.py",
        b"dir\xfe/in\xfd.py",
        b"Upper/u.py",
    ];
    for name in ok {
        write(&tree, name, b"x = 1\n");
    }
    write(&tree, b"err\xff\nna\"me'.py", b"def f(:\n");
    write(&tree, b"ind\xe9nt.py", b"if 1:\npass\n");
    write(&tree, b"caf\xc3\xa9\t.py", b"if 1:\npass\n");
    tree
}

#[test]
fn odd_file_names_311() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = names_tree(&s);
    let py = python3();
    let p = f.check_str(&py, &tree, &s.work, &["n"]);
    for needle in [
        "Compiling 'n/nl\\nname.py'...",
        "Compiling \"n/q'uote.py\"...",
        "Compiling 'n/both\\'\".py'...",
        "Compiling 'n/bad\\udcffname.py'...",
        "Compiling 'n/sort\\udcff.py'...\nCompiling 'n/sort\\ue000.py'...",
        "File \"n/err\\udcff\nna\"me'.py\", line 1",
        "(ind\\udce9nt.py, line 2)",
    ] {
        assert_oracle_printed("names", &p, needle);
    }
    f.check_str(&py, &tree, &s.work, &["-q", "n"]);
    f.check_str(&py, &tree, &s.work, &["-qq", "n"]);
    let raw: Vec<OsString> = [
        &b"n/nl\nname.py"[..],
        b"n/bad\xffname.py",
        b"n/err\xff\nna\"me'.py",
        b"n/dir\nnl",
        b"n/dir\xfe",
        b"n/q'uote.py",
        b"n/w.pyw",
        b"n/missing\xff\n.py",
    ]
    .iter()
    .map(|b| OsString::from_vec(b.to_vec()))
    .collect();
    let args: Vec<&OsStr> = raw.iter().map(OsString::as_os_str).collect();
    f.check(&py, &tree, &s.work, &args);
    f.finish();
}

#[test]
fn odd_file_names_across_versions() {
    let mut f = Findings::default();
    let s = Scratch::new();
    let tree = names_tree(&s);
    for minor in MINORS {
        if let Some(py) = support::pyenv(minor) {
            f.check_str(&py, &tree, &s.work, &["n"]);
        }
    }
    f.finish();
}
