//! The first pass of the guard: an upper bound on a source's nesting,
//! from its bytes alone, in one read (see the top of `guard.rs`).

use super::bytes::{
    BLANK, KEYWORD_START, NAME_START, SINGLE_BODY, TRIPLE_BODY, is_string_prefix, skip_body, skip_while, word_at,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// At least the deepest nesting of statements and expressions.
    pub bound: u32,
    /// The longest run of prefix operators (`-`, `+`, `~`, `not`) with
    /// nothing but blanks between: all but the first nest for certain.
    pub unary_run: u32,
    /// Where the first bracket past [`MAX_BRACKETS`] opens, if one does.
    pub bracket_excess: Option<usize>,
}

/// `MAXLEVEL` of CPython's tokenizer: brackets and f-string replacement
/// fields open at once (3.12.1 and 3.13.0 compile 200, refuse 201).
const MAX_BRACKETS: usize = 200;

/// Nesting inside one bracket, or one f-string replacement field.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    /// The bound where this level was opened.
    base: u32,
    /// Counted bytes since the level opened or since its last comma.
    count: u32,
    /// `lambda`s whose parameter list is still open here: their commas
    /// do not separate siblings.
    lambda_params: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quote {
    byte: u8,
    triple: bool,
    raw: bool,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The literal text of an f-string (or t-string).
    Literal(Quote),
    /// Code in a replacement field whose level is `levels[level]`.
    Field { level: usize },
    /// A format spec after `:` in the field at `levels[level]`.
    Spec { level: usize, quote: Quote },
}

/// The upper bound, from bytes: a tokenizer that knows strings, comments,
/// brackets and f-strings (PEP 701), and counts every byte that can open
/// a level of nesting (operators, brackets, the keywords of expressions).
/// Elements separated by commas inside brackets are siblings, so a comma
/// there starts the count again from the bracket's level.
pub(crate) fn nesting_bound(text: &[u8], templates: bool) -> Scan {
    Scanner {
        text,
        templates,
        i: 0,
        levels: vec![Level::default()],
        modes: Vec::new(),
        blocks: vec![Block::default()],
        statements: 1,
        line_start: true,
        previous_unary: false,
        run: 0,
        scan: Scan::default(),
    }
    .run()
}

/// One indented block and the `elif`s of the `if` chain last started in it:
/// each `elif` is one more `If` deep in CPython's tree.
#[derive(Debug, Clone, Copy, Default)]
struct Block {
    width: u32,
    elifs: u32,
}

struct Scanner<'a> {
    text: &'a [u8],
    templates: bool,
    i: usize,
    levels: Vec<Level>,
    modes: Vec<Mode>,
    blocks: Vec<Block>,
    /// Sum over `blocks` of 1 + elifs: the statements above this line.
    statements: u32,
    line_start: bool,
    previous_unary: bool,
    run: u32,
    scan: Scan,
}

/// Slack for what no byte is counted for: the leaf at the end of a path and
/// a simple statement after a compound statement's colon.
const LEAF_SLACK: u32 = 2;

impl Scanner<'_> {
    fn run(mut self) -> Scan {
        while self.i < self.text.len() {
            match self.modes.last().copied() {
                Some(Mode::Literal(quote)) => self.literal(quote),
                Some(Mode::Spec { level, quote }) => self.spec(level, quote),
                Some(Mode::Field { level }) => self.code(Some(level)),
                None => {
                    if self.line_start {
                        self.indentation();
                    } else {
                        self.code(None);
                    }
                }
            }
        }
        self.scan
    }

    fn at(&self, offset: usize) -> u8 {
        self.text.get(self.i + offset).copied().unwrap_or(0)
    }

    fn count(&mut self, n: u32) {
        let level = self.levels.last_mut().expect("the statement level");
        level.count = level.count.saturating_add(n);
        let depth = level.base.saturating_add(level.count).saturating_add(LEAF_SLACK);
        self.scan.bound = self.scan.bound.max(depth);
    }

    fn open(&mut self, counted: u32) {
        self.count(counted);
        let outer = self.levels.last().expect("the statement level");
        let base = outer.base.saturating_add(outer.count);
        self.levels.push(Level {
            base,
            ..Level::default()
        });
    }

    fn unary(&mut self, is_unary: bool) {
        if is_unary {
            self.run = if self.previous_unary { self.run + 1 } else { 1 };
            self.scan.unary_run = self.scan.unary_run.max(self.run.saturating_sub(1));
        }
        self.previous_unary = is_unary;
    }

    /// The start of a logical line: its indentation decides its block.
    fn indentation(&mut self) {
        let mut width = 0u32;
        while let Some(&b) = self.text.get(self.i) {
            match b {
                b' ' => width += 1,
                b'\t' => width = (width / 8 + 1) * 8,
                b'\x0c' => width = 0,
                _ => break,
            }
            self.i += 1;
        }
        // Blank and comment-only lines have no indentation.
        if matches!(self.at(0), b'\n' | b'\r' | b'#' | 0) {
            self.code(None);
            return;
        }
        while self.blocks.len() > 1 && self.blocks.last().is_some_and(|b| b.width > width) {
            let block = self.blocks.pop().expect("more than one block");
            self.statements -= 1 + block.elifs;
        }
        if self.blocks.last().is_some_and(|b| b.width < width) {
            self.blocks.push(Block { width, elifs: 0 });
            self.statements += 1;
        }
        let word = word_at(self.text, self.i);
        let block = self.blocks.last_mut().expect("the module block");
        if word == b"elif" {
            block.elifs += 1;
            self.statements += 1;
        } else if word == b"if" {
            self.statements -= block.elifs;
            block.elifs = 0;
        }
        self.line_start = false;
        self.levels.truncate(1);
        self.levels[0] = Level {
            base: self.statements,
            ..Level::default()
        };
        self.scan.bound = self.scan.bound.max(self.statements + LEAF_SLACK);
    }

    /// One token of code; `field` is the level of the replacement field
    /// this code is in, if any.
    fn code(&mut self, field: Option<usize>) {
        let mut b = self.at(0);
        // Blanks between tokens go with the token after them: one trip
        // through the caller's loop for both.
        if BLANK[usize::from(b)] {
            self.i = skip_while(self.text, self.i + 1, &BLANK);
            if self.i == self.text.len() {
                return;
            }
            b = self.text[self.i];
        }
        let in_brackets = self.levels.len() > field.map_or(1, |level| level + 1);
        // Names are the commonest token: decided before the match.
        if NAME_START[usize::from(b)] {
            self.word(in_brackets);
            return;
        }
        match b {
            b'\n' | b'\r' => {
                self.i += 1;
                if field.is_none() && !in_brackets {
                    self.line_start = true;
                    self.previous_unary = false;
                }
            }
            b'#' => {
                let rest = &self.text[self.i..];
                self.i += memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
            }
            b'\\' => {
                // A continuation joins the next line; elsewhere an error.
                self.i += 1;
                if self.at(0) == b'\r' {
                    self.i += 1;
                }
                if self.at(0) == b'\n' {
                    self.i += 1;
                }
            }
            b'\'' | b'"' => self.string(b""),
            b'0'..=b'9' => {
                self.number();
                self.unary(false);
            }
            b'.' if self.at(1).is_ascii_digit() => {
                self.number();
                self.unary(false);
            }
            b'(' | b'[' | b'{' => {
                self.i += 1;
                // Two: the bracket's node, and a tuple or generator inside
                // that has no bracket of its own (`a[b, c]`, `f(x for x in y)`).
                self.open(2);
                self.note_bracket();
                self.unary(false);
            }
            b')' | b']' | b'}' => {
                self.i += 1;
                if b == b'}' && !in_brackets && field.is_some() {
                    self.levels.pop();
                    self.modes.pop();
                } else if in_brackets {
                    self.levels.pop();
                }
                self.unary(false);
            }
            b',' => {
                self.i += 1;
                let level = self.levels.last_mut().expect("the statement level");
                if (in_brackets || field.is_some()) && level.lambda_params == 0 {
                    level.count = 0;
                }
                self.unary(false);
            }
            b';' => {
                self.i += 1;
                if field.is_none() && !in_brackets {
                    self.levels[0].count = 0;
                }
                self.unary(false);
            }
            b':' if field.is_some() && !in_brackets => {
                // In a replacement field a bare colon always starts the spec.
                self.i += 1;
                let level = field.expect("in a field");
                let quote = self.field_quote();
                *self.modes.last_mut().expect("in a field") = Mode::Spec { level, quote };
            }
            b':' => {
                self.i += 1;
                self.count(1);
                let walrus = self.at(0) == b'=';
                let level = self.levels.last_mut().expect("the statement level");
                if !walrus && level.lambda_params > 0 {
                    level.lambda_params -= 1;
                }
                self.unary(false);
            }
            _ => {
                // Operators; `-`, `+` and `~` may be prefix operators.
                self.i += 1;
                self.count(1);
                let prefix = matches!(b, b'-' | b'+' | b'~');
                let power = b == b'*' && self.at(0) == b'*';
                self.unary(prefix && !power);
            }
        }
    }

    /// The quote of the f-string whose replacement field this is.
    fn field_quote(&self) -> Quote {
        self.modes
            .iter()
            .rev()
            .find_map(|mode| match mode {
                Mode::Literal(quote) => Some(*quote),
                _ => None,
            })
            .expect("a field is inside an f-string")
    }

    fn number(&mut self) {
        let text = self.text;
        let digits = |i: &mut usize| {
            while text.get(*i).is_some_and(|b| b.is_ascii_digit() || *b == b'_') {
                *i += 1;
            }
        };
        let mut i = self.i;
        if text[i] == b'0' && matches!(self.at(1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
            i += 2;
            while text.get(i).is_some_and(|b| b.is_ascii_hexdigit() || *b == b'_') {
                i += 1;
            }
        } else {
            digits(&mut i);
            if text.get(i) == Some(&b'.') {
                i += 1;
                digits(&mut i);
            }
            if matches!(text.get(i), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(text.get(i + 1), Some(b'+' | b'-')));
                if text.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                    i += 1 + sign;
                    digits(&mut i);
                }
            }
            if matches!(text.get(i), Some(b'j' | b'J')) {
                i += 1;
            }
        }
        self.i = i;
    }

    fn word(&mut self, in_brackets: bool) {
        let start = self.i;
        let word = word_at(self.text, start);
        self.i += word.len();
        if matches!(self.at(0), b'\'' | b'"') && is_string_prefix(word) {
            self.string(word);
            return;
        }
        // Only a short word starting with one of these letters can be one
        // of the keywords below: most names are out after two loads.
        let counted = word.len() <= 6
            && KEYWORD_START[usize::from(word[0])]
            && matches!(
                word,
                b"not"
                    | b"and"
                    | b"or"
                    | b"in"
                    | b"is"
                    | b"if"
                    | b"else"
                    | b"lambda"
                    | b"await"
                    | b"yield"
                    | b"for"
                    | b"from"
                    | b"async"
            );
        if counted {
            self.count(1);
        }
        if word == b"lambda" && in_brackets {
            self.levels.last_mut().expect("the statement level").lambda_params += 1;
        }
        self.unary(word == b"not");
    }

    /// A string literal starting at the quote under `i`, with its prefix.
    fn string(&mut self, prefix: &[u8]) {
        let byte = self.at(0);
        let triple = self.at(1) == byte && self.at(2) == byte;
        let raw = prefix.iter().any(|b| b.eq_ignore_ascii_case(&b'r'));
        let formatted = prefix
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&b'f') || (self.templates && b.eq_ignore_ascii_case(&b't')));
        let quote = Quote { byte, triple, raw };
        self.i += if triple { 3 } else { 1 };
        self.unary(false);
        if formatted {
            // The JoinedStr; its fields count where they open.
            self.count(1);
            self.modes.push(Mode::Literal(quote));
            return;
        }
        // A leaf: skip to its end, in strides over the bytes that cannot end it.
        let ordinary = if triple { &TRIPLE_BODY } else { &SINGLE_BODY };
        while let Some(&b) = self.text.get(self.i) {
            if ordinary[usize::from(b)] {
                self.i = skip_body(self.text, self.i + 1, triple);
                continue;
            }
            if b == b'\\' {
                self.i += 2;
            } else if self.closes(quote) {
                return;
            } else if !triple && matches!(b, b'\n' | b'\r') {
                return; // unterminated; the compiler says so
            } else {
                self.i += 1;
            }
        }
        self.i = self.i.min(self.text.len());
    }

    /// Whether `quote` ends here; if so, steps past it.
    fn closes(&mut self, quote: Quote) -> bool {
        let n = if quote.triple { 3 } else { 1 };
        if self
            .text
            .get(self.i..self.i + n)
            .is_some_and(|s| s.iter().all(|&b| b == quote.byte))
        {
            self.i += n;
            true
        } else {
            false
        }
    }

    /// Leaves the f-string whose literal mode is the innermost one.
    fn end_f_string(&mut self) {
        while let Some(mode) = self.modes.pop() {
            match mode {
                Mode::Literal(_) => break,
                Mode::Field { level } | Mode::Spec { level, .. } => self.levels.truncate(level.max(1)),
            }
        }
    }

    fn literal(&mut self, quote: Quote) {
        let b = self.at(0);
        if b == quote.byte && self.closes(quote) {
            self.modes.pop();
            return;
        }
        match b {
            // Unterminated: the compiler reports it; the newline is code's.
            b'\n' | b'\r' if !quote.triple => {
                self.modes.pop();
            }
            b'\\' => {
                let next = self.at(1);
                if !quote.raw && next == b'N' && self.at(2) == b'{' {
                    // `\N{NAME}` is an escape, not a field.
                    while !matches!(self.at(0), b'}' | 0) {
                        self.i += 1;
                    }
                    self.i += 1;
                } else if matches!(next, b'\\' | b'\n' | b'\r')
                    || next == quote.byte
                    || (!quote.raw && !matches!(next, b'{' | b'}'))
                {
                    self.i += 2;
                } else {
                    self.i += 1;
                }
            }
            b'{' if self.at(1) == b'{' => self.i += 2,
            b'}' if self.at(1) == b'}' => self.i += 2,
            b'{' => {
                self.i += 1;
                self.open_field();
            }
            _ => self.i += 1,
        }
        self.i = self.i.min(self.text.len());
    }

    /// After opening a bracket or field whose `{` is the byte before `i`:
    /// every level above the statement's is one of them.
    fn note_bracket(&mut self) {
        if self.levels.len() - 1 > MAX_BRACKETS && self.scan.bracket_excess.is_none() {
            self.scan.bracket_excess = Some(self.i - 1);
        }
    }

    fn open_field(&mut self) {
        // The FormattedValue and the tuple a bare comma would make.
        self.open(2);
        self.note_bracket();
        let level = self.levels.len() - 1;
        self.modes.push(Mode::Field { level });
        self.previous_unary = false;
    }

    fn spec(&mut self, level: usize, quote: Quote) {
        let b = self.at(0);
        if b == quote.byte && self.closes(quote) {
            self.end_f_string();
            return;
        }
        match b {
            b'\n' | b'\r' if !quote.triple => self.end_f_string(),
            b'{' => {
                self.i += 1;
                self.open_field();
            }
            b'}' => {
                self.i += 1;
                self.levels.truncate(level.max(1));
                self.modes.pop();
            }
            _ => self.i += 1,
        }
    }
}
