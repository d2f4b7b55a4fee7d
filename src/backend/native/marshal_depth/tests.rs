use crate::pyrepr::oracle::{hex, interpreter, run, unhex};

use super::*;

/// Objects of every type marshal writes, as data (dict, list and set are
/// not constants of code, but `marshal.dumps` writes them the same way)
/// and as code: constants of every kind, nested functions and classes.
const DUMPS: &str = r#"
import marshal, sys
source = '''
import os
def f(a, /, b=2.5, *c, d=3j, **e):
    return lambda: (b'x', None, ..., 10**40, -10**40, frozenset({1, 'a'}), ('t', 1))
class C:
    def m(self): return 'caf\u00e9' + 'x' * 300
'''
code = compile(source, 'pkg/m.py', 'exec')
data = [1, -1, 2**31, -2**63, 10**100, 0.5, float('inf'), 1+2j, b'', b'x' * 70000, '', 'a' * 300,
        '\u20ac' * 3, ('x',) * 300, [1, [2, [3]]], {'k': {1: None}, 2: []}, {1, 2}, frozenset(),
        True, False, None, ..., StopIteration, code]
shared = 'shared-but-not-interned' * 2
data.append([shared, shared])
for obj in data:
    for version in range(marshal.version + 1):
        print(marshal.dumps(obj, version).hex())
"#;

#[test]
fn every_body_cpython_writes_is_read_to_its_end() {
    let mut read = 0;
    for minor in ["3.12", "3.13"] {
        let Some(python) = interpreter(minor) else { continue };
        let out = run(&python, std::path::Path::new("."), DUMPS, "");
        for line in out.lines() {
            assert_eq!(check(&unhex(line)), Ok(()), "{minor}: {line:.80}");
            read += 1;
        }
    }
    assert!(read > 100 || read == 0, "{read} bodies read");
}

/// `levels` objects inside one another, the innermost None, each shape a
/// container marshal counts as one level per object.
fn nested(shape: &str, levels: usize) -> Vec<u8> {
    let (open, close): (&[u8], &[u8]) = match shape {
        "small tuple" => (b")\x01", b""),
        "list" => (b"[\x01\x00\x00\x00", b""),
        // A dict whose one value is the next level: the key sits beside it.
        "dict" => (b"{z\x01k", b"0"),
        // A referenced frozenset.
        "ref-flagged frozenset" => (b"\xbe\x01\x00\x00\x00", b""),
        _ => unreachable!("{shape}"),
    };
    let mut body = open.repeat(levels - 1);
    body.push(b'N');
    body.extend(close.repeat(levels - 1));
    body
}

/// What CPython's `marshal.loads` says of each hand-made body is what the
/// walk says: loadable up to 2,000 levels, `recursion limit exceeded` past.
#[test]
fn the_depth_limit_is_where_marshal_loads_gives_up() {
    let Some(python) = interpreter("3.12") else { return };
    let shapes = ["small tuple", "list", "dict", "ref-flagged frozenset"];
    let levels = [1, 2, 1999, 2000, 2001, 2002, 5000];
    let mut bodies = Vec::new();
    for shape in shapes {
        for n in levels {
            bodies.push((shape, n, nested(shape, n)));
        }
    }
    let script = "import marshal, sys\n\
        for line in sys.stdin:\n\
        \x20   try:\n\
        \x20       marshal.loads(bytes.fromhex(line.strip()))\n\
        \x20       print('ok')\n\
        \x20   except ValueError as err:\n\
        \x20       print(err)\n";
    let stdin: String = bodies.iter().map(|(_, _, body)| hex(body) + "\n").collect();
    let verdicts = run(&python, std::path::Path::new("."), script, &stdin);
    let verdicts: Vec<&str> = verdicts.lines().collect();
    assert_eq!(verdicts.len(), bodies.len());
    for ((shape, n, body), cpython) in bodies.iter().zip(verdicts) {
        let ours = match check(body) {
            Ok(()) => "ok",
            Err(Unloadable::TooDeep) => "recursion limit exceeded",
            Err(other) => panic!("{shape} x {n}: {other:?}"),
        };
        assert_eq!(ours, cpython, "{shape} x {n}");
    }
}

#[test]
fn truncated_or_trailing_bytes_are_malformed() {
    let body = nested("dict", 4);
    for end in 0..body.len() {
        assert!(
            matches!(check(&body[..end]), Err(Unloadable::Malformed { .. })),
            "prefix of {end} bytes"
        );
    }
    let mut longer = body.clone();
    longer.push(b'N');
    assert_eq!(
        check(&longer),
        Err(Unloadable::Malformed {
            offset: body.len(),
            what: "bytes after the object"
        })
    );
    assert!(matches!(check(b"\x01"), Err(Unloadable::Malformed { offset: 0, .. })));
    assert!(matches!(
        check(b"(\xff\xff\xff\xffN"),
        Err(Unloadable::Malformed { offset: 1, .. })
    ));
}
