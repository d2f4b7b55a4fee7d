//! The exact depths of a source that the byte scan's bound could not
//! clear: parsed by the parser serc uses, measured as CPython counts them.

use ruff_python_ast::visitor::{Visitor, transformer, walk_expr, walk_stmt};
use ruff_python_ast::{Expr, Operator, Stmt};

use super::Limits;

/// Depths of the parsed source as CPython counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Depths {
    /// Statements and expressions on the deepest path, `elif` as nested
    /// `If` (CPython's tree), f-string fields one level each (CPython has
    /// two: the `JoinedStr` and the `FormattedValue`).
    pub ast: u32,
    /// Parser frames the right-recursive rules need, at least: one per
    /// `not`, unary `-`/`+`/`~`, `else` of a conditional expression and
    /// `elif`; two per `lambda` body and right operand of `**`.
    pub parser: u32,
}

/// `None` if the source does not parse: serc reports the syntax error,
/// before compiling anything.
pub(super) fn measure(text: &str, limits: Limits) -> Option<Depths> {
    let options =
        ruff_python_parser::ParseOptions::from(ruff_python_parser::Mode::Module).with_target_version(limits.grammar);
    let parsed = ruff_python_parser::parse_unchecked(text, options).try_into_module()?;
    if !parsed.errors().is_empty() {
        dismantle(parsed.into_suite());
        return None;
    }
    let mut walk = DepthWalk::default();
    for stmt in parsed.suite() {
        walk.visit_stmt(stmt);
    }
    dismantle(parsed.into_suite());
    Some(walk.max)
}

/// Stack for the walk's recursion: grow by this much when less than the
/// red zone is left (the parser does the same).
const STACK_RED_ZONE: usize = 128 * 1024;
const STACK_GROWTH: usize = 2 * 1024 * 1024;

#[derive(Default)]
struct DepthWalk {
    now: Depths,
    max: Depths,
}

impl DepthWalk {
    fn nested(&mut self, ast: u32, parser: u32, inner: impl FnOnce(&mut Self)) {
        self.now.ast += ast;
        self.now.parser += parser;
        self.max.ast = self.max.ast.max(self.now.ast);
        self.max.parser = self.max.parser.max(self.now.parser);
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || inner(self));
        self.now.ast -= ast;
        self.now.parser -= parser;
    }
}

impl<'a> Visitor<'a> for DepthWalk {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        let Stmt::If(stmt_if) = stmt else {
            return self.nested(1, 0, |walk| walk_stmt(walk, stmt));
        };
        // `if`/`elif`/`else` is a chain of `If`s, each in the last's orelse.
        self.nested(1, 0, |walk| {
            walk.visit_expr(&stmt_if.test);
            walk.visit_body(&stmt_if.body);
            let mut elifs = 0;
            for clause in &stmt_if.elif_else_clauses {
                let extra = u32::from(clause.test.is_some());
                walk.nested(elifs + extra, elifs + extra, |walk| {
                    if let Some(test) = &clause.test {
                        walk.visit_expr(test);
                    }
                    walk.visit_body(&clause.body);
                });
                elifs += extra;
            }
        });
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        self.nested(1, 0, |walk| match expr {
            Expr::UnaryOp(unary) => walk.nested(0, 1, |walk| walk.visit_expr(&unary.operand)),
            Expr::If(conditional) => {
                walk.visit_expr(&conditional.test);
                walk.visit_expr(&conditional.body);
                walk.nested(0, 1, |walk| walk.visit_expr(&conditional.orelse));
            }
            Expr::Lambda(lambda) => {
                if let Some(parameters) = &lambda.parameters {
                    walk.visit_parameters(parameters);
                }
                walk.nested(0, 2, |walk| walk.visit_expr(&lambda.body));
            }
            Expr::BinOp(binary) if binary.op == Operator::Pow => {
                walk.visit_expr(&binary.left);
                walk.nested(0, 2, |walk| walk.visit_expr(&binary.right));
            }
            _ => walk_expr(walk, expr),
        });
    }
}

/// Drops a parsed module without recursing once per level: a deep
/// expression is emptied bottom-up, each node replaced by a leaf.
fn dismantle(mut suite: ruff_python_ast::Suite) {
    struct Empty;
    impl transformer::Transformer for Empty {
        fn visit_expr(&self, expr: &mut Expr) {
            if matches!(expr, Expr::Name(_) | Expr::NumberLiteral(_) | Expr::NoneLiteral(_)) {
                return;
            }
            stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || {
                transformer::walk_expr(self, expr);
                *expr = Expr::NoneLiteral(ruff_python_ast::ExprNoneLiteral::default());
            });
        }
        fn visit_stmt(&self, stmt: &mut Stmt) {
            stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || transformer::walk_stmt(self, stmt));
        }
    }
    for stmt in &mut suite {
        transformer::Transformer::visit_stmt(&Empty, stmt);
    }
}
