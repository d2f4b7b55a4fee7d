use std::process::Command;

use super::*;

/// Whether the interpreter's own `compile()` of `source` gives the code
/// object `body` unmarshals to: `==` (bytecode, constants, names, line and
/// exception tables), or with `positions` false, every field of it and its
/// nested code but the line table.
fn interpreter_agrees(python: &std::path::Path, source: &str, body: &[u8], optimize: i64, positions: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), body).unwrap();
    std::fs::write(dir.path().join("source.py"), source).unwrap();
    let script = "import sys, marshal\n\
        d, level, positions = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'\n\
        ours = marshal.loads(open(d + '/body', 'rb').read())\n\
        theirs = compile(open(d + '/source.py', 'rb').read(), 'pkg/mod.py', 'exec', dont_inherit=True, optimize=level)\n\
        def same(a, b):\n\
        \x20   if not hasattr(a, 'co_code'):\n\
        \x20       return type(a) is type(b) and a == b\n\
        \x20   if positions:\n\
        \x20       return a == b and a.co_filename == b.co_filename\n\
        \x20   fields = ('co_code', 'co_names', 'co_varnames', 'co_cellvars', 'co_freevars', 'co_exceptiontable', 'co_flags',\n\
        \x20             'co_stacksize', 'co_argcount', 'co_kwonlyargcount', 'co_qualname', 'co_filename')\n\
        \x20   return all(getattr(a, f) == getattr(b, f) for f in fields) and len(a.co_consts) == len(b.co_consts) \\\n\
        \x20       and all(same(x, y) for x, y in zip(a.co_consts, b.co_consts))\n\
        print(same(ours, theirs))";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(dir.path())
        .arg(optimize.to_string())
        .arg(if positions { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{python:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout == b"True\n"
}

/// Small sources covering most statement kinds. Bytes are not compared:
/// the releases intern differently (3.12.1 writes `<module>` as a plain
/// string, serc's 3.12.14 as interned), and 3.12's line tables changed
/// after 3.12.1 (asserts, inlined comprehensions), so for 3.12 positions
/// are left out. Left out of the sources altogether, because their code
/// changed between these releases (see docs/exactness.md, the differential check):
/// inlined comprehensions (3.13) and nested f-string format specs (3.12).
const SOURCES: &[&str] = &[
    "x = 1\n",
    "'''doc'''\nassert x, 'm'\nimport os\nfrom a import (b, c)\n",
    "def f(a, /, b=2, *c, d, **e):\n    '''doc'''\n    return g(a, *c, d=d, **e)\n",
    "class C(Base, metaclass=M):\n    def m(self):\n        return super().m() + __class__.__name__\n",
    "async def g():\n    async with a as b:\n        async for x in b:\n            yield x\n",
    "try:\n    pass\nexcept (ValueError, TypeError) as e:\n    raise RuntimeError from e\nfinally:\n    print(1)\n",
    "match p:\n    case {'k': [1, *rest]} if rest:\n        pass\n    case Point(x=0) | None:\n        pass\n",
    "s = f'{a!r:>10} {b=}'\nt = (1, 2.5, 3j, b'x', None, ..., frozenset({1}))\n",
];

#[test]
fn code_objects_match_the_interpreter() {
    let mut compared = 0;
    for (minor, positions) in [(12, false), (13, true)] {
        let Some(python) = crate::pyrepr::oracle::interpreter(&format!("3.{minor}")) else {
            continue;
        };
        let backend = NativeBackend::new(version_for((3, minor)).unwrap());
        for source in SOURCES {
            for optimize in 0..=2 {
                let job = CompileJob {
                    source: source.as_bytes(),
                    filename: b"pkg/mod.py",
                    optimize,
                };
                let body = backend.compile(job).unwrap();
                assert!(
                    interpreter_agrees(&python, source, &body, optimize, positions),
                    "3.{minor} -o {optimize}: {source:?}"
                );
                compared += 1;
            }
        }
    }
    eprintln!("{compared} code objects compared");
}

/// The `File`/line/caret block of a SyntaxError and the one-line
/// IndentationError, as 3.12's compileall prints them (checked with
/// `python3.12 -m compileall -q`); a SyntaxError's message itself is the
/// parser's own and differs from CPython's.
#[test]
fn syntax_errors_name_file_and_line() {
    let backend = NativeBackend::new(PythonVersion::Py312);
    // 101 nested `if`s: the 100th indented block is one level too many.
    let mut too_deep_indentation: String = (0..=100).map(|i| format!("{}if x:\n", " ".repeat(i))).collect();
    too_deep_indentation += &format!("{}pass\n", " ".repeat(101));
    let cases: &[(&str, &str)] = &[
        (
            "x = 1\ndef f(:\n    pass\n",
            "  File \"./bad.py\", line 2\n    def f(:\n          ^\nSyntaxError: ",
        ),
        (
            "x = 1\n  y = 2\n",
            "Sorry: IndentationError: unexpected indent (bad.py, line 2)",
        ),
        (
            "if x:\n        a\n    b\n",
            "Sorry: IndentationError: unindent does not match any outer indentation level (bad.py, line 3)",
        ),
        ("if x:\npass\n", "Sorry: IndentationError: expected an indented block"),
        ("a\0b\n", "SyntaxError: source code string cannot contain null bytes\n"),
        (
            &too_deep_indentation,
            "Sorry: IndentationError: too many levels of indentation (bad.py, line 101)",
        ),
    ];
    for (source, expected_start) in cases {
        let job = CompileJob {
            source: source.as_bytes(),
            filename: b"./bad.py",
            optimize: 0,
        };
        let failure = backend.compile(job).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Compile);
        assert!(
            failure.message.starts_with(expected_start),
            "{source:?} gave {:?}",
            failure.message
        );
        // compileall leaves a blank line after a SyntaxError block (the
        // message ends with a newline), none after the `Sorry:` line.
        assert_eq!(failure.message.ends_with('\n'), !failure.message.starts_with("Sorry:"));
    }
}

#[test]
fn encodings_serc_lacks_are_unsupported_not_syntax_errors() {
    let backend = NativeBackend::new(PythonVersion::Py313);
    let job = CompileJob {
        source: b"# -*- coding: cp1250 -*-\nx = '\xe9'\n",
        filename: b"enc.py",
        optimize: 0,
    };
    let failure = backend.compile(job).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Unsupported, "{}", failure.message);
    assert!(failure.message.contains("--backend cpython"));
}

/// Around the depth where marshal gives up, each body is refused exactly
/// when CPython's own `marshal.dumps` of the same code refuses it, and
/// what is kept loads there. Nested `lambda`s nest two levels each (a code
/// object and its constants); a def inside a class inside a def mixes in
/// the other nestings code objects have.
#[test]
fn bodies_too_deep_for_marshal_are_refused_as_cpython_refuses_them() {
    let mut sources: Vec<String> = (998..=999)
        .map(|n| format!("f = {}1\n", "lambda: ".repeat(n)))
        .collect();
    sources
        .extend((996..=997).map(|n| format!("class C:\n    def m(self):\n        return {}1\n", "lambda: ".repeat(n))));
    for (minor, version) in [(12, PythonVersion::Py312), (13, PythonVersion::Py313)] {
        let Some(python) = crate::pyrepr::oracle::interpreter(&format!("3.{minor}")) else {
            continue;
        };
        let script = "import marshal, sys\n\
            for line in sys.stdin:\n\
            \x20   code = compile(bytes.fromhex(line.strip()), 'pkg/mod.py', 'exec', dont_inherit=True)\n\
            \x20   try:\n\
            \x20       print(marshal.dumps(code).hex())\n\
            \x20   except ValueError as err:\n\
            \x20       print('ValueError:', err)\n";
        let stdin: String = sources
            .iter()
            .map(|s| crate::pyrepr::oracle::hex(s.as_bytes()) + "\n")
            .collect();
        let cpython = crate::pyrepr::oracle::run(&python, Path::new("."), script, &stdin);
        let backend = NativeBackend::new(version);
        let mut refused = 0;
        let mut kept = Vec::new();
        for (source, theirs) in sources.iter().zip(cpython.lines()) {
            let job = CompileJob {
                source: source.as_bytes(),
                filename: b"pkg/mod.py",
                optimize: 0,
            };
            let links = source.matches("lambda").count();
            match backend.compile(job) {
                Ok(body) => {
                    assert!(
                        !theirs.starts_with("ValueError"),
                        "3.{minor}, {links} lambdas: CPython says {theirs}"
                    );
                    kept.push(body);
                }
                Err(failure) => {
                    assert_eq!(failure.kind, FailureKind::Marshal, "{}", failure.message);
                    assert_eq!(failure.message, theirs, "3.{minor}, {links} lambdas");
                    refused += 1;
                }
            }
        }
        // What is kept loads there. (Comparing it with CPython's code is
        // left to the tests above: `==` of code this deep takes minutes.)
        let check = "import marshal, sys\n\
            for line in sys.stdin:\n\
            \x20   marshal.loads(bytes.fromhex(line.strip()))\n\
            \x20   print('loaded')\n";
        let stdin: String = kept
            .iter()
            .map(|body| crate::pyrepr::oracle::hex(body) + "\n")
            .collect();
        let loaded = crate::pyrepr::oracle::run(&python, Path::new("."), check, &stdin);
        assert_eq!(loaded.lines().count(), kept.len(), "3.{minor}");
        // Which of them marshal refuses is CPython's to say; at these
        // counts it refuses one of each pair (2n+3 and 2n+7 levels).
        assert_eq!(refused, 2, "3.{minor}");
    }
}

/// `--version` names the serc release that is really compiled in: the
/// constant follows the exact pin in Cargo.toml and the lock file.
#[test]
fn serc_version_is_the_pinned_one() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("serc = \"={SERC_VERSION}\"")),
        "Cargo.toml does not pin serc ={SERC_VERSION}"
    );
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    assert!(lock.contains(&format!("name = \"serc\"\nversion = \"{SERC_VERSION}\"")));
    assert_eq!(
        describe(),
        format!("serc {SERC_VERSION}: CPython 3.12.14, 3.13.15, 3.14.5, 3.15.0rc2")
    );
}
