//! Test sources: N links of each nesting chain, as
//! `scripts/nesting-limits.py` writes them. Shared by the guard's unit tests
//! and `tests/it/hostile.rs` (included there by path).

pub fn chain(name: &str, n: usize) -> String {
    match name {
        "elif" => format!("if a: pass\n{}", "elif a: pass\n".repeat(n)),
        "lambda" => format!("x = {}1\n", "lambda: ".repeat(n)),
        "not" => format!("x = {}a\n", "not ".repeat(n)),
        "minus" => format!("x = {}1\n", "-".repeat(n)),
        "ternary" => format!("x = {}c\n", "a if b else ".repeat(n)),
        "power" => format!("x = a{}\n", " ** a".repeat(n)),
        "add" => format!("x = a{}\n", " + a".repeat(n)),
        "subscript" => format!("x = a{}\n", "[0]".repeat(n)),
        "attribute" => format!("x = a{}\n", ".b".repeat(n)),
        "call" => format!("x = f{}\n", "()".repeat(n)),
        "and" => format!("x = a{}\n", " and a".repeat(n)),
        "paren" => format!("x = {}1{}\n", "(".repeat(n), ")".repeat(n)),
        "list" => format!("x = {}{}\n", "[".repeat(n), "]".repeat(n)),
        "brace" => format!("x = {}{}\n", "{".repeat(n), "}".repeat(n)),
        "field" => format!("x = f'{{{}{}}}'\n", "[".repeat(n), "]".repeat(n)),
        _ => unreachable!("{name}"),
    }
}
