//! Splits TraceQL text into tokens, each with the 1-based line and column where it starts.
//!
//! Attribute names are lexed whole (`span.http.status_code`, `resource."a b"`), since what ends
//! a name depends only on the characters, not on the grammar.

use crate::ast::{is_attribute_char, Scope};
use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

pub(crate) fn error(pos: Pos, message: impl Into<String>) -> ParseError {
    ParseError { line: pos.line, column: pos.column, message: message.into() }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    AndAnd,
    OrOr,
    Bang,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `=~`
    Match,
    /// `!~`: a negated regex inside `{ }`, the not-sibling operator between spansets.
    NotMatch,
    /// `>>`
    Desc,
    /// `<<`
    Anc,
    Tilde,
    /// `!>`, `!<`, `!>>`, `!<<` and `&>`, `&<`, `&>>`, `&<<`, `&~`: Tempo's negated and union
    /// structural operators, which we recognise only to reject.
    UnsupportedStructural,
    /// `+ - * / % ^`
    Arithmetic(char),
    Ident(String),
    Attr {
        scope: Scope,
        name: String,
    },
    /// `scope:name`, such as `span:duration`.
    Scoped {
        scope: String,
        name: String,
    },
    Str(String),
    /// An unsigned integer; the parser applies any leading `-`.
    Int(u64),
    Float(f64),
    Duration(u64),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: Pos,
    /// The source text of the token, for messages.
    pub(crate) text: String,
}

impl Token {
    /// How an error message names this token: "`}`", or "end of input".
    pub(crate) fn describe(&self) -> String {
        if self.tok == Tok::Eof {
            return "end of input".to_owned();
        }
        quote_snippet(&self.text)
    }
}

/// Backticked source text, shortened when long.
pub(crate) fn quote_snippet(text: &str) -> String {
    const MAX: usize = 40;
    let shown: String = text.chars().take(MAX).collect::<String>().escape_debug().to_string();
    if text.chars().count() > MAX {
        format!("`{shown}…`")
    } else {
        format!("`{shown}`")
    }
}

fn describe_char(c: Option<char>) -> String {
    match c {
        None => "end of input".to_owned(),
        Some(c) => format!("`{}`", c.escape_debug()),
    }
}

pub(crate) struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    column: usize,
}

impl Lexer {
    pub(crate) fn new(input: &str) -> Lexer {
        Lexer { chars: input.chars().collect(), i: 0, line: 1, column: 1 }
    }

    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.column }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn text_from(&self, start: usize) -> String {
        self.chars[start..self.i].iter().collect()
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let pos = self.pos();
        let start = self.i;
        let Some(c) = self.peek() else {
            return Ok(Token { tok: Tok::Eof, pos, text: String::new() });
        };
        let tok = match c {
            '"' => self.string(pos)?,
            '`' => self.raw_string(pos)?,
            '.' => {
                self.bump();
                Tok::Attr { scope: Scope::Any, name: self.attribute_name(".")? }
            }
            c if c.is_ascii_digit() => self.number(pos, start)?,
            c if c.is_alphabetic() || c == '_' => self.word(pos)?,
            _ => {
                self.bump();
                self.operator(c, pos)?
            }
        };
        Ok(Token { tok, pos, text: self.text_from(start) })
    }

    /// Operators and punctuation; `c` has been consumed. Longest match wins, as in Tempo.
    fn operator(&mut self, c: char, pos: Pos) -> Result<Tok, ParseError> {
        let tok = match c {
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '~' => Tok::Tilde,
            '+' | '-' | '*' | '/' | '%' | '^' => Tok::Arithmetic(c),
            '|' if self.eat('|') => Tok::OrOr,
            '|' => Tok::Pipe,
            '=' if self.eat('~') => Tok::Match,
            '=' => Tok::Eq,
            '>' if self.eat('=') => Tok::Ge,
            '>' if self.eat('>') => Tok::Desc,
            '>' => Tok::Gt,
            '<' if self.eat('=') => Tok::Le,
            '<' if self.eat('<') => Tok::Anc,
            '<' => Tok::Lt,
            '!' if self.eat('=') => Tok::Ne,
            '!' if self.eat('~') => Tok::NotMatch,
            '!' if self.eat('>') => {
                self.eat('>');
                Tok::UnsupportedStructural
            }
            '!' if self.eat('<') => {
                self.eat('<');
                Tok::UnsupportedStructural
            }
            '!' => Tok::Bang,
            '&' if self.eat('&') => Tok::AndAnd,
            '&' if self.eat('~') => Tok::UnsupportedStructural,
            '&' if self.eat('>') => {
                self.eat('>');
                Tok::UnsupportedStructural
            }
            '&' if self.eat('<') => {
                self.eat('<');
                Tok::UnsupportedStructural
            }
            '&' => return Err(error(pos, format!("expected `&&` after `&`, found {}", describe_char(self.peek())))),
            other => return Err(error(pos, format!("unexpected character {}", describe_char(Some(other))))),
        };
        Ok(tok)
    }

    /// A keyword, an intrinsic (`duration`, `span:duration`) or a scoped attribute (`span.x`).
    fn word(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        let word = self.identifier();
        match (self.peek(), word.as_str()) {
            (Some('.'), "span" | "resource") => {
                self.bump();
                let scope = if word == "span" { Scope::Span } else { Scope::Resource };
                Ok(Tok::Attr { scope, name: self.attribute_name(&format!("{word}."))? })
            }
            (Some('.'), "event" | "link" | "instrumentation" | "parent") => Err(error(
                pos,
                format!("not supported: the `{word}.` attribute scope; use `span.`, `resource.` or `.`"),
            )),
            (Some(':'), _) => {
                self.bump();
                Ok(Tok::Scoped { scope: word, name: self.identifier() })
            }
            _ => Ok(Tok::Ident(word)),
        }
    }

    fn identifier(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            word.push(c);
            self.bump();
        }
        word
    }

    /// The name after `span.`, `resource.` or `.`: attribute characters and `"quoted"` parts.
    fn attribute_name(&mut self, prefix: &str) -> Result<String, ParseError> {
        let mut name = String::new();
        let mut quoted = false;
        loop {
            match self.peek() {
                Some('"') => {
                    quoted = true;
                    self.quoted_name_part(&mut name)?;
                }
                Some(c) if is_attribute_char(c) => {
                    name.push(c);
                    self.bump();
                }
                _ => break,
            }
        }
        if name.is_empty() {
            let message = if quoted {
                format!("expected an attribute name after `{prefix}`, found an empty name")
            } else {
                format!("expected an attribute name after `{prefix}`, found {}", describe_char(self.peek()))
            };
            return Err(error(self.pos(), message));
        }
        Ok(name)
    }

    fn quoted_name_part(&mut self, name: &mut String) -> Result<(), ParseError> {
        let open = self.pos();
        self.bump();
        loop {
            let here = self.pos();
            match self.bump() {
                None => {
                    return Err(error(
                        open,
                        "unterminated quoted attribute name: expected a closing `\"`, found end of input",
                    ))
                }
                Some('"') => return Ok(()),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => name.push(c),
                    other => {
                        return Err(error(
                            here,
                            format!(
                                "expected `\\\"` or `\\\\` in a quoted attribute name, found `\\` followed by {}",
                                describe_char(other)
                            ),
                        ))
                    }
                },
                Some(c) => name.push(c),
            }
        }
    }

    fn string(&mut self, open: Pos) -> Result<Tok, ParseError> {
        self.bump();
        let mut s = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None => return Err(error(open, "unterminated string: expected a closing `\"`, found end of input")),
                Some('"') => return Ok(Tok::Str(s)),
                Some('\\') => {
                    let escaped = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        other => {
                            return Err(error(
                                here,
                                format!(
                                    "expected one of the escapes \\\" \\\\ \\' \\n \\r \\t, found `\\` followed by {}",
                                    describe_char(other)
                                ),
                            ))
                        }
                    };
                    s.push(escaped);
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn raw_string(&mut self, open: Pos) -> Result<Tok, ParseError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(error(open, "unterminated raw string: expected a closing '`', found end of input")),
                Some('`') => return Ok(Tok::Str(s)),
                Some(c) => s.push(c),
            }
        }
    }

    fn digits(&mut self) -> String {
        let mut digits = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            digits.push(c);
            self.bump();
        }
        digits
    }

    fn fraction(&mut self) -> Option<String> {
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            Some(self.digits())
        } else {
            None
        }
    }

    /// Integers, floats (`1.5`, `2e-3`) and durations (`100ms`, `1.5s`, `1h30m`).
    fn number(&mut self, pos: Pos, start: usize) -> Result<Tok, ParseError> {
        let int = self.digits();
        let frac = self.fraction();
        let mut exponent = false;
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                for _ in 0..=sign {
                    self.bump();
                }
                self.digits();
                exponent = true;
            }
        }
        if !exponent && self.peek().is_some_and(is_unit_start) {
            return self.duration(pos, start, int, frac);
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return Err(self.bad_literal(pos, start, "number"));
        }
        let text = self.text_from(start);
        if frac.is_none() && !exponent {
            return text.parse::<u64>().map(Tok::Int).map_err(|_| {
                error(pos, format!("integer `{text}` is too large; integers are 64-bit (at most {})", i64::MAX))
            });
        }
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Tok::Float(value)),
            _ => Err(error(pos, format!("float `{text}` is out of range"))),
        }
    }

    /// Consumes the rest of a malformed literal so the message can show all of it.
    fn bad_literal(&mut self, pos: Pos, start: usize, what: &str) -> ParseError {
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            self.bump();
        }
        let text = self.text_from(start);
        error(
            pos,
            format!("invalid {what} `{text}`; durations are a number and a unit (ns, us, µs, ms, s, m, h), like 1.5s"),
        )
    }

    /// The rest of a duration whose first number (`int`.`frac`) has been read.
    fn duration(
        &mut self,
        pos: Pos,
        start: usize,
        first_int: String,
        first_frac: Option<String>,
    ) -> Result<Tok, ParseError> {
        let (mut int, mut frac) = (first_int, first_frac);
        let mut total: u128 = 0;
        loop {
            let Some(unit) = self.unit() else {
                return Err(self.bad_literal(pos, start, "duration"));
            };
            total = total.saturating_add(segment_nanos(&int, frac.as_deref(), unit));
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                break;
            }
            int = self.digits();
            frac = self.fraction();
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return Err(self.bad_literal(pos, start, "duration"));
        }
        u64::try_from(total).map(Tok::Duration).map_err(|_| {
            let text = self.text_from(start);
            error(pos, format!("duration `{text}` is too large; durations are at most about 584 years"))
        })
    }

    /// A duration unit, in nanoseconds.
    fn unit(&mut self) -> Option<u128> {
        const SECOND: u128 = 1_000_000_000;
        let (nanos, len) = match (self.peek()?, self.peek_at(1)) {
            ('n', Some('s')) => (1, 2),
            ('u' | 'µ' | 'μ', Some('s')) => (1_000, 2),
            ('m', Some('s')) => (1_000_000, 2),
            ('s', _) => (SECOND, 1),
            ('m', _) => (60 * SECOND, 1),
            ('h', _) => (3_600 * SECOND, 1),
            ('d', _) => (86_400 * SECOND, 1),
            ('w', _) => (7 * 86_400 * SECOND, 1),
            ('y', _) => (365 * 86_400 * SECOND, 1),
            _ => return None,
        };
        for _ in 0..len {
            self.bump();
        }
        Some(nanos)
    }
}

fn is_unit_start(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'μ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

/// `int.frac` units, in nanoseconds, saturating; fraction digits beyond 20 are below a nanosecond.
fn segment_nanos(int: &str, frac: Option<&str>, unit: u128) -> u128 {
    let whole = int
        .bytes()
        .fold(0u128, |acc, d| acc.saturating_mul(10).saturating_add(u128::from(d - b'0')))
        .saturating_mul(unit);
    let Some(frac) = frac else { return whole };
    let digits = &frac.as_bytes()[..frac.len().min(20)];
    let numerator = digits.iter().fold(0u128, |acc, d| acc * 10 + u128::from(d - b'0'));
    // numerator < 10^20 and unit < 4e16, so the product fits in u128.
    let denominator = 10u128.pow(digits.len() as u32);
    whole.saturating_add(numerator * unit / denominator)
}
