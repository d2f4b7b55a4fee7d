//! Sources nested past what CPython compiles, natively with PATH emptied:
//! the run survives them (serc used to abort the process on a stack
//! overflow, or run for minutes), fails just those files the way 3.12.1's
//! and 3.13.0's compileall do, and compiles every other file.

use std::path::Path;
use std::process::{Command, Output};

use crate::native::without_python;
use crate::support::{self, compileall, pycs_under, run, scratch};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[path = "../../src/backend/native/guard/chains.rs"]
mod chains;
use chains::chain;

/// `NAME.py` with N links of chain NAME, for each (NAME, N).
fn chain_tree(root: &Path, chains: &[(&str, usize)]) {
    std::fs::create_dir_all(root).unwrap();
    for &(name, n) in chains {
        std::fs::write(root.join(format!("{name}.py")), chain(name, n)).unwrap();
    }
}

/// The chains of `hostile_tree` that CPython refuses, in compileall's order.
const REFUSED: [&str; 11] = [
    "add",
    "brace",
    "elif",
    "field",
    "lambda",
    "list",
    "minus",
    "not",
    "paren",
    "subscript",
    "ternary",
];

/// Hostile chains of 20,000 links (CPython refuses all but the flat `and`
/// chain; brackets already at the 201st), and one ordinary module.
fn hostile_tree(root: &Path) {
    let links = |name| (name, 20_000);
    chain_tree(root, &[links("and")]);
    chain_tree(root, &REFUSED.map(links));
    std::fs::write(root.join("good.py"), "def f(x):\n    return x + 1\n").unwrap();
}

fn native(dir: &Path, target: &str) -> Output {
    run(without_python(dir).args(["-q", "--backend", "native", "--target", target, "."]))
}

/// `ours` printed what `python -m compileall -q .` prints in `theirs` (so
/// the same exception for each file it refuses), wrote the same pycs, and
/// they load in `python`.
fn assert_like_compileall(python: &Path, ours: &Path, theirs: &Path, out: &Output) {
    let oracle = compileall(python, theirs, &["-q".as_ref(), ".".as_ref()]);
    assert_eq!(text(&out.stdout), text(&oracle.stdout), "against {}", python.display());
    let pycs = pycs_under(ours);
    assert_eq!(
        pycs.keys().collect::<Vec<_>>(),
        pycs_under(theirs).keys().collect::<Vec<_>>()
    );
    let load = "import marshal, sys\nfor p in sys.argv[1:]: marshal.loads(open(p, 'rb').read()[16:])";
    let load = run(Command::new(python)
        .args(["-c", load])
        .args(pycs.keys().map(|p| ours.join(p))));
    assert!(load.status.success(), "{}", text(&load.stderr));
}

/// `*** Error compiling './F'...` lines and the exception line after each.
fn failures(stdout: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = stdout.lines().collect();
    lines
        .windows(2)
        .filter_map(|pair| {
            let name = pair[0].strip_prefix("*** Error compiling '")?.strip_suffix("'...")?;
            Some((name.to_owned(), pair[1].to_owned()))
        })
        .collect()
}

#[test]
fn hostile_nesting_fails_only_its_files_as_compileall_does() {
    for minor in ["3.12", "3.13"] {
        let dir = scratch();
        let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
        hostile_tree(&ours);
        hostile_tree(&theirs);
        let started = std::time::Instant::now();
        let out = native(&ours, minor);
        let took = started.elapsed();
        // An exit code, not a signal: the process survived every file.
        assert_eq!(out.status.code(), Some(1), "{minor}: {}", text(&out.stderr));
        assert!(took.as_secs() < 60, "{minor}: {took:?}");
        let stdout = text(&out.stdout);
        let failed = failures(&stdout);
        let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, REFUSED.map(|name| format!("./{name}.py")), "{minor}: {stdout}");
        let brackets = ["./brace.py", "./field.py", "./list.py", "./paren.py"];
        for (name, error) in &failed {
            if brackets.contains(&name.as_str()) {
                assert_eq!(error, &format!("  File \"{name}\", line 1"), "{minor}");
                continue;
            }
            assert!(
                error.starts_with("Sorry: MemoryError: ") || error.starts_with("Sorry: RecursionError: "),
                "{minor} {name}: {error}"
            );
        }
        assert_eq!(stdout.matches("SyntaxError: too many nested parentheses").count(), 4);
        let tag = minor.replace('.', "");
        let written: Vec<String> = pycs_under(&ours).keys().map(|p| p.display().to_string()).collect();
        assert_eq!(
            written,
            ["and", "good"].map(|name| format!("__pycache__/{name}.cpython-{tag}.pyc"))
        );

        let Some(python) = support::pyenv(minor) else {
            println!("SKIPPED: {minor} against compileall, no pyenv {minor}");
            continue;
        };
        assert_like_compileall(&python, &ours, &theirs, &out);
    }
}

/// At the deepest nesting compileall accepts, native compiles too, and the
/// pycs load in the interpreter: the guard refuses nothing CPython
/// compiles. (`not` and `lambda` chains are left out here: serc takes
/// minutes on them near the limit; the guard's unit tests cover them.)
#[test]
fn nesting_at_compileall_limits_compiles_natively_and_loads() {
    // Brackets: 200 open at once, a field's `{` counted (3.12 and 3.13).
    let limits: [(&str, [(&str, usize); 8]); 2] = [
        (
            "3.12",
            [
                ("elif", 2986),
                ("ternary", 2986),
                ("subscript", 2986),
                ("power", 2983),
                ("minus", 2986),
                ("paren", 200),
                ("list", 200),
                ("field", 199),
            ],
        ),
        (
            "3.13",
            [
                ("elif", 5965),
                ("ternary", 5967),
                ("attribute", 9992),
                ("power", 2983),
                ("minus", 5966),
                ("paren", 200),
                ("list", 200),
                ("field", 199),
            ],
        ),
    ];
    for (minor, chains) in limits {
        let dir = scratch();
        let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
        chain_tree(&ours, &chains);
        chain_tree(&theirs, &chains);
        let out = native(&ours, minor);
        let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{minor}: {printed}");
        assert_eq!(pycs_under(&ours).len(), chains.len(), "{minor}");

        let Some(python) = support::pyenv(minor) else {
            println!("SKIPPED: {minor} against compileall, no pyenv {minor}");
            continue;
        };
        assert_like_compileall(&python, &ours, &theirs, &out);
    }
}
