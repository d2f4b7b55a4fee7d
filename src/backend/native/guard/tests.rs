use super::bytes::*;
use super::*;
use chains::chain;

#[path = "chains.rs"]
mod chains;

/// (version, chain, the most links `compile()` accepts from `python -c`
/// (the fewest frames below it), what it raises with one more).
/// Measured on 3.12.1 and 3.13.0 by `scripts/nesting-limits.py`.
const CPYTHON: &[(PythonVersion, &str, usize, Excess)] = &[
    (PythonVersion::Py312, "elif", 2992, Excess::Recursion),
    (PythonVersion::Py312, "lambda", 2983, Excess::ParserStack),
    (PythonVersion::Py312, "not", 2992, Excess::Recursion),
    (PythonVersion::Py312, "minus", 2992, Excess::Recursion),
    (PythonVersion::Py312, "ternary", 2992, Excess::Recursion),
    (PythonVersion::Py312, "power", 2983, Excess::ParserStack),
    (PythonVersion::Py312, "add", 2992, Excess::Recursion),
    (PythonVersion::Py312, "subscript", 2992, Excess::Recursion),
    (PythonVersion::Py312, "attribute", 2992, Excess::Recursion),
    (PythonVersion::Py312, "call", 2992, Excess::Recursion),
    (PythonVersion::Py313, "elif", 5965, Excess::ParserStack),
    (PythonVersion::Py313, "lambda", 2983, Excess::ParserStack),
    (PythonVersion::Py313, "not", 5967, Excess::ParserStack),
    (PythonVersion::Py313, "minus", 5966, Excess::ParserStack),
    (PythonVersion::Py313, "ternary", 5967, Excess::ParserStack),
    (PythonVersion::Py313, "power", 2983, Excess::ParserStack),
    (PythonVersion::Py313, "add", 9995, Excess::Recursion),
    (PythonVersion::Py313, "subscript", 9995, Excess::Recursion),
    (PythonVersion::Py313, "attribute", 9995, Excess::Recursion),
    (PythonVersion::Py313, "call", 9995, Excess::Recursion),
];

/// How many links past CPython's first refusal the guard may still let
/// through: CPython counts the frames below `compile()` (3 to 12 levels;
/// the guard assumes none) and the guard's parser base is its lowest.
const GAP: usize = 10;

fn first_refused(version: PythonVersion, name: &str, from: usize) -> (usize, Option<Refusal>) {
    let limits = Limits::of(version);
    (from..from + 100)
        .map(|n| (n, check(&chain(name, n), limits)))
        .find(|(_, refusal)| refusal.is_some())
        .expect("refused within 100 links")
}

#[test]
fn accepts_what_cpython_compiles_and_refuses_just_past_it_as_cpython_does() {
    for &(version, name, accepted, excess) in CPYTHON {
        let limits = Limits::of(version);
        assert_eq!(
            check(&chain(name, accepted), limits),
            None,
            "{version:?} {name} x {accepted}"
        );
        let (n, refusal) = first_refused(version, name, accepted);
        assert!(n <= accepted + 1 + GAP, "{version:?} {name}: first refused at {n}");
        assert_eq!(
            refusal,
            Some(Refusal { excess, measured: true }),
            "{version:?} {name} x {n}"
        );
    }
}

#[test]
fn far_past_the_limits_the_error_is_the_parsers_where_cpythons_is() {
    // 3.12 at 100,000 links: the parser gives up before the AST passes.
    for (name, excess) in [
        ("elif", Excess::ParserStack),
        ("not", Excess::ParserStack),
        ("minus", Excess::ParserStack),
        ("lambda", Excess::ParserStack),
        ("ternary", Excess::ParserStack),
        ("add", Excess::Recursion),
        ("subscript", Excess::Recursion),
    ] {
        let refusal = check(&chain(name, 100_000), Limits::of(PythonVersion::Py312));
        assert_eq!(refusal.map(|r| r.excess), Some(excess), "{name}");
    }
}

#[test]
fn versions_without_an_interpreter_are_refused_without_claiming_cpythons_verdict() {
    let refusal = check(&chain("add", 20_000), Limits::of(PythonVersion::Py314));
    assert_eq!(
        refusal,
        Some(Refusal {
            excess: Excess::Recursion,
            measured: false
        })
    );
}

#[test]
fn flat_chains_cpython_compiles_are_not_refused() {
    let limits = Limits::of(PythonVersion::Py312);
    for source in [
        format!("x = a{}\n", " and a".repeat(100_000)),
        format!("x = a{}\n", " < a".repeat(100_000)),
        format!("x = 'a'{}\n", " 'a'".repeat(100_000)),
        format!("x = [{}]\n", "-1, ".repeat(100_000)),
        format!("x = {}1\n", "-1, ".repeat(100_000)),
        format!("a = {}1\n", "a = ".repeat(100_000)),
    ] {
        assert_eq!(check(&source, limits), None, "{}", &source[..40]);
    }
}

#[test]
fn a_run_of_prefix_operators_is_refused_without_parsing() {
    let scan = nesting_bound(chain("minus", 10_000).as_bytes(), false);
    assert_eq!(scan.unary_run, 9_999);
    let scan = nesting_bound(chain("not", 10_000).as_bytes(), false);
    assert_eq!(scan.unary_run, 9_999);
}

/// Text the scan must skip: strings, comments, numbers. (source, at most
/// this bound, at most this run)
#[test]
fn strings_comments_and_numbers_are_not_nesting() {
    let dashes = "-".repeat(10_000);
    let cases = [
        format!("'''{dashes}'''\n"),
        format!("x = '{dashes}'\n"),
        format!("x = r'\\'{dashes}'\n"),
        format!("x = b\"\"\"\n{dashes}\n\"\"\"\n"),
        format!("# {dashes}\nx = 1\n"),
        format!("x = f'{dashes}{{a}}{dashes}'\n"),
        format!("x = f'{{a:{dashes}}}'\n"),
        format!("x = f'{{{{{dashes}}}}}'\n"),
        format!("x = f'\\N{{EM DASH}}{dashes}'\n"),
        format!("x = f'{{f\"{{a}}\"}}{dashes}'\n"),
        format!("x = [{}]\n", "1e-5, 0x1e, 2.5e+3j, ".repeat(5_000)),
        format!("x = t'{dashes}'\n"),
    ];
    for source in &cases {
        let scan = nesting_bound(source.as_bytes(), false);
        assert!(scan.bound < 30 && scan.unary_run == 0, "{scan:?}: {}", &source[..30]);
    }
}

#[test]
fn code_inside_f_string_fields_is_nesting() {
    let not = "not ".repeat(10_000);
    for source in [
        format!("x = f'{{{not}a}}'\n"),
        format!("x = f'{{a:{{{not}b}}}}'\n"),
        format!("x = f'''{{\n{not}a}}'''\n"),
        format!("x = f'{{a}}' f\"{{f'{{{not}a}}'}}\"\n"),
    ] {
        let scan = nesting_bound(source.as_bytes(), false);
        assert!(scan.unary_run >= 9_999, "{scan:?}: {}", &source[..30]);
    }
}

#[test]
fn lambda_parameters_do_not_separate_siblings() {
    let source = format!("x = ({}1)\n", "lambda a, b: ".repeat(1_000));
    let scan = nesting_bound(source.as_bytes(), false);
    let depths = measure(&source, Limits::of(PythonVersion::Py313)).unwrap();
    assert!(
        scan.bound >= depths.ast && scan.bound >= depths.parser,
        "{scan:?} {depths:?}"
    );
}

/// The scan's bound is above the measured depths, so a file under it can
/// skip the parse: every chain, mixed chains, and (when pyenv's 3.12.1 is
/// there) every file of its standard library.
#[test]
fn the_bound_is_never_below_the_measured_depths() {
    let limits = Limits::of(PythonVersion::Py313);
    let holds = |source: &str, what: &str| {
        let Some(depths) = measure(source, limits) else {
            return false;
        };
        let scan = nesting_bound(source.as_bytes(), false);
        assert!(
            scan.bound >= depths.ast && scan.bound >= depths.parser,
            "{what}: {scan:?} < {depths:?}"
        );
        true
    };
    let names = [
        "elif",
        "lambda",
        "not",
        "minus",
        "ternary",
        "power",
        "add",
        "subscript",
        "attribute",
        "call",
    ];
    for name in names {
        assert!(holds(&chain(name, 700), name));
    }
    let mixed = [
        format!(
            "def f():\n    if a:\n        pass\n{}",
            "    elif b:\n        x = a[-(not b) if c else lambda: d ** -e]\n".repeat(300)
        ),
        format!("x = {}a{}\n", "(lambda: -a.b(c)[".repeat(150), "])".repeat(150)),
        format!("x = f'{{{}a{}}}'\n", "not -(".repeat(150), ")".repeat(150)),
        format!(
            "class A:\n    def f(self):\n        return {}1\n",
            "a if b else lambda: ".repeat(300)
        ),
    ];
    for (i, source) in mixed.iter().enumerate() {
        assert!(holds(source, &format!("mixed {i}")));
    }
    let Some(python) = crate::pyrepr::oracle::interpreter("3.12") else {
        println!("SKIPPED: stdlib part, no pyenv 3.12 interpreter");
        return;
    };
    let lib = python.parent().unwrap().parent().unwrap().join("lib/python3.12");
    let mut parsed = 0;
    let walk = walkdir::WalkDir::new(&lib)
        .into_iter()
        .filter_entry(|e| e.file_name() != "site-packages");
    for entry in walk.filter_map(Result::ok) {
        if entry.path().extension().is_some_and(|e| e == "py")
            && let Ok(text) = std::fs::read_to_string(entry.path())
        {
            parsed += usize::from(holds(&text, &entry.path().display().to_string()));
        }
    }
    assert!(parsed > 1000, "{parsed} files of {lib:?}");
}

/// The vector test of word bytes (and the one other architectures run)
/// agrees with the `WORD` table for every byte at every position of a
/// block, and `word_at` ends where the table says.
#[test]
fn word_bytes_are_the_word_table() {
    for b in 0..=255u8 {
        for k in 0..16 {
            let mut block = [b'x'; 16];
            block[k] = b;
            let expected = if WORD[usize::from(b)] { u16::MAX } else { !(1 << k) };
            assert_eq!(word_bytes(&block), expected, "byte {b:#04x} at {k}");
            assert_eq!(class_bits(&block, &WORD), expected, "by table: byte {b:#04x} at {k}");
        }
    }
    for len in 0..40 {
        for stop in [b' ', b'.', b'(', b'\n', b'"', b'\x7f', b'`'] {
            let mut text = vec![b'_'; len];
            text.extend_from_slice(&[stop, b'a', b'b']);
            assert_eq!(word_at(&text, 0).len(), len, "{len} then {stop:#04x}");
            assert_eq!(word_at(&text[..len], 0).len(), len);
        }
    }
}

/// The vector test of string bodies (and the one other architectures
/// run) agrees with `TRIPLE_BODY` and `SINGLE_BODY` for every byte at
/// every position, and `skip_body` stops where `skip_while` on the table
/// does, within a block and past one.
#[test]
fn string_stops_are_the_body_tables() {
    for (triple, ordinary) in [(true, &TRIPLE_BODY), (false, &SINGLE_BODY)] {
        for b in 0..=255u8 {
            for k in 0..16 {
                let mut block = [b'x'; 16];
                block[k] = b;
                let expected = if ordinary[usize::from(b)] { 0 } else { 1 << k };
                assert_eq!(
                    string_stops(&block, triple),
                    expected,
                    "byte {b:#04x} at {k}, triple {triple}"
                );
                assert_eq!(
                    !class_bits(&block, ordinary),
                    expected,
                    "by table: byte {b:#04x} at {k}, triple {triple}"
                );
            }
        }
        for len in 0..40 {
            for stop in [b'\\', b'\'', b'"', b'\n', b'\r'] {
                let mut text = vec![b'a'; len];
                text.extend_from_slice(&[stop, b'b']);
                assert_eq!(
                    skip_body(&text, 0, triple),
                    skip_while(&text, 0, ordinary),
                    "{len} then {stop:#04x}"
                );
            }
            let text = vec![b' '; len];
            assert_eq!(skip_body(&text, 0, triple), len);
        }
    }
}
