//! A recursive-descent TraceQL parser with type checking.
//!
//! Grammar and precedence, loosest first:
//!
//! ```text
//! query     := pipeline EOF
//! pipeline  := spanset ('|' stage)*  |  stage ('|' stage)*      -- `count() > 2` alone means `{} | count() > 2`
//! spanset   := spanset ('&&' | '||') spanset                    -- level 1, left-associative
//!            | spanset ('>' | '>>' | '<' | '<<' | '~') spanset  -- level 2, left-associative
//!            | '{' cond? '}'  |  '(' pipeline ')'
//! stage     := '{' cond? '}'  |  agg cmp literal  |  'select' '(' field (',' field)* ')'
//! cond      := cond '||' cond  <  cond '&&' cond  <  field cmp literal  <  '!' cond | '(' cond ')' | atom
//! ```
//!
//! Between spansets this follows Tempo's grammar (`%left AND OR` below `%left ... GT DESC TILDE`):
//! structural operators bind tighter than `&&` and `||`, and `&&` and `||` bind equally and
//! associate to the left, so `{a} || {b} && {c}` is `({a} || {b}) && {c}`. A pipeline binds
//! loosest and must be parenthesised to be combined: `({a} | count() > 1) && {b}`.
//!
//! Inside `{ }`, `!` binds tighter than comparisons (as in Tempo, so `!span.a = 1` would compare
//! `!span.a`; we reject that and ask for `!(span.a = 1)`), comparisons bind tighter than `&&`,
//! and `&&` binds tighter than `||`. Tempo itself gives `&&` and `||` equal precedence there;
//! we use the conventional order, which only differs for unparenthesised mixes.

use crate::ast::{
    AggFunc, CmpOp, Field, FieldExpr, Intrinsic, IntrinsicType, KindValue, Pattern, Query, SpansetExpr, Stage, Static,
    StatusValue, StructuralOp,
};
use crate::lexer::{error, Lexer, Pos, Tok, Token};
use crate::ParseError;

/// How deeply parentheses and `!` may nest (bounds the parser's recursion).
const MAX_NESTING: usize = 100;
/// How deep the syntax tree may grow, counting operator chains (bounds every later recursion).
const MAX_DEPTH: usize = 1000;

type Result<T> = std::result::Result<T, ParseError>;

pub(crate) fn parse(input: &str) -> Result<Query> {
    let mut parser = Parser { lexer: Lexer::new(input), peeked: None, nesting: 0 };
    let (root, _) = parser.pipeline()?;
    parser.end()?;
    Ok(Query { root })
}

/// The left or right side of a comparison, before we know which it is.
enum Operand {
    Field {
        field: Field,
        text: String,
        pos: Pos,
    },
    Literal {
        value: Static,
        text: String,
        pos: Pos,
    },
    Nil {
        pos: Pos,
    },
    /// A negation or a parenthesised condition: usable as a condition, not as a comparison side.
    Condition {
        expr: FieldExpr,
        depth: usize,
        negated: bool,
    },
}

struct Parser {
    lexer: Lexer,
    peeked: Option<Token>,
    nesting: usize,
}

impl Parser {
    fn peek(&mut self) -> Result<&Token> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn expect(&mut self, tok: &Tok, message: impl FnOnce(&Token) -> String) -> Result<Token> {
        let token = self.next()?;
        if &token.tok == tok {
            Ok(token)
        } else {
            Err(error(token.pos, message(&token)))
        }
    }

    fn enter(&mut self, pos: Pos) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(error(pos, format!("query nests too deeply: more than {MAX_NESTING} levels of `(` or `!`")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn end(&mut self) -> Result<()> {
        let token = self.next()?;
        match &token.tok {
            Tok::Eof => Ok(()),
            Tok::Ident(word) if word == "with" => Err(error(token.pos, "not supported: query hints `with(...)`")),
            Tok::RParen => Err(error(token.pos, "expected end of query, found `)` without a matching `(`")),
            _ => Err(error(
                token.pos,
                format!(
                    "expected end of query or an operator (`&&`, `||`, `>`, `>>`, `<`, `<<`, `~`, `|`), found {}",
                    token.describe()
                ),
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Spanset expressions and pipelines
    // -----------------------------------------------------------------------------------------

    fn pipeline(&mut self) -> Result<(SpansetExpr, usize)> {
        let starts_with_stage = matches!(&self.peek()?.tok, Tok::Ident(word) if is_stage_word(word));
        let mut stages = Vec::new();
        let (source, mut depth) = if starts_with_stage {
            let (stage, depth) = self.stage()?;
            stages.push(stage);
            (SpansetExpr::Filter(FieldExpr::Static(Static::Bool(true))), depth)
        } else {
            self.spanset(0, None)?
        };
        while self.peek()?.tok == Tok::Pipe {
            let pipe = self.next()?;
            let (stage, stage_depth) = self.stage()?;
            depth = combined_depth(depth, stage_depth, pipe.pos)?;
            stages.push(stage);
        }
        if stages.is_empty() {
            return Ok((source, depth));
        }
        let after = self.peek()?;
        if let Some(op) = spanset_operator_text(&after.tok) {
            return Err(error(
                after.pos,
                format!(
                    "not supported: `{op}` after a pipeline stage; parenthesise the pipeline, \
                     as in `({{ ... }} | count() > 1) {op} {{ ... }}`"
                ),
            ));
        }
        let pos = after.pos;
        Ok((SpansetExpr::Pipeline(Box::new(source), stages), combined_depth(depth, 0, pos)?))
    }

    /// Precedence climbing over `&&`/`||` (level 1) and structural operators (level 2); `after` is
    /// the operator before this operand, for messages.
    fn spanset(&mut self, min_level: u8, after: Option<&Token>) -> Result<(SpansetExpr, usize)> {
        let (mut lhs, mut depth) = self.spanset_primary(after)?;
        loop {
            let token = self.peek()?;
            let (level, op) = match &token.tok {
                Tok::AndAnd => (1, None),
                Tok::OrOr => (1, None),
                Tok::Gt => (2, Some(StructuralOp::Child)),
                Tok::Lt => (2, Some(StructuralOp::Parent)),
                Tok::Desc => (2, Some(StructuralOp::Descendant)),
                Tok::Anc => (2, Some(StructuralOp::Ancestor)),
                Tok::Tilde => (2, Some(StructuralOp::Sibling)),
                Tok::NotMatch | Tok::UnsupportedStructural => {
                    let kind = if token.text.starts_with('!') { "negated" } else { "union" };
                    return Err(error(
                        token.pos,
                        format!("not supported: the {kind} structural operator `{}`", token.text),
                    ));
                }
                _ => break,
            };
            if level < min_level {
                break;
            }
            let op_token = self.next()?;
            let (rhs, rhs_depth) = self.spanset(level + 1, Some(&op_token))?;
            depth = combined_depth(depth, rhs_depth, op_token.pos)?;
            let (l, r) = (Box::new(lhs), Box::new(rhs));
            lhs = match (op, &op_token.tok) {
                (Some(op), _) => SpansetExpr::Structural(op, l, r),
                (None, Tok::AndAnd) => SpansetExpr::And(l, r),
                (None, _) => SpansetExpr::Or(l, r),
            };
        }
        Ok((lhs, depth))
    }

    fn spanset_primary(&mut self, after: Option<&Token>) -> Result<(SpansetExpr, usize)> {
        let token = self.peek()?;
        match &token.tok {
            Tok::LBrace => {
                let (cond, depth) = self.braces()?;
                Ok((SpansetExpr::Filter(cond), depth))
            }
            Tok::LParen => {
                let open = self.next()?;
                self.enter(open.pos)?;
                let (inner, depth) = self.pipeline()?;
                self.expect(&Tok::RParen, |t| {
                    format!(
                        "expected `)` to close the `(` at line {}, column {}, found {}",
                        open.pos.line,
                        open.pos.column,
                        t.describe()
                    )
                })?;
                self.leave();
                Ok((inner, depth))
            }
            Tok::Ident(word) if is_stage_word(word) => Err(error(
                token.pos,
                format!(
                    "not supported: `{word}` here; aggregates and select(...) follow `|`, \
                     as in `{{ ... }} | count() > 2`"
                ),
            )),
            _ => {
                let after = after.map(|op| format!(" after `{}`", op.text)).unwrap_or_default();
                Err(error(
                    token.pos,
                    format!("expected a spanset `{{ ... }}` or `(`{after}, found {}", token.describe()),
                ))
            }
        }
    }

    /// `{ }` or `{ cond }`.
    fn braces(&mut self) -> Result<(FieldExpr, usize)> {
        let open = self.next()?;
        if self.peek()?.tok == Tok::RBrace {
            self.next()?;
            return Ok((FieldExpr::Static(Static::Bool(true)), 1));
        }
        self.enter(open.pos)?;
        let (cond, depth) = self.or_condition(Some(&open))?;
        self.expect(&Tok::RBrace, |t| format!("expected `&&`, `||` or `}}`, found {}", t.describe()))?;
        self.leave();
        Ok((cond, depth))
    }

    // -----------------------------------------------------------------------------------------
    // Pipeline stages
    // -----------------------------------------------------------------------------------------

    fn stage(&mut self) -> Result<(Stage, usize)> {
        let token = self.peek()?;
        let pos = token.pos;
        match &token.tok {
            Tok::LBrace => {
                let (cond, depth) = self.braces()?;
                Ok((Stage::Filter(cond), depth))
            }
            Tok::Ident(word) => match word.as_str() {
                "count" | "avg" | "min" | "max" | "sum" => Ok((self.aggregate()?, 1)),
                "select" => Ok((self.select()?, 1)),
                "by" => Err(error(pos, "not supported: grouping with `by(...)`")),
                "coalesce" => Err(error(pos, "not supported: `coalesce()`")),
                w if is_metrics_word(w) => Err(error(pos, format!("not supported: the metrics function `{w}()`"))),
                _ => Err(error(pos, expected_stage(token))),
            },
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Arithmetic('-') => Err(error(
                pos,
                "not supported: a number before an aggregate; put the aggregate first, as in `count() > 2`",
            )),
            Tok::LParen => Err(error(
                pos,
                "not supported: a parenthesised expression as a pipeline stage; stages are `{ ... }`, \
                 aggregates and select(...)",
            )),
            _ => Err(error(pos, expected_stage(token))),
        }
    }

    /// `count() > 2`, `avg(span:duration) >= 1s`, `sum(span.bytes) > 100`.
    fn aggregate(&mut self) -> Result<Stage> {
        let name = self.next()?;
        let func = match name.text.as_str() {
            "count" => AggFunc::Count,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            _ => AggFunc::Sum,
        };
        let fname = func.name();
        self.expect(&Tok::LParen, |t| format!("expected `(` after `{fname}`, found {}", t.describe()))?;
        let (field, shown) = if func == AggFunc::Count {
            self.expect(&Tok::RParen, |t| {
                format!("expected `)` after `count(`: count() takes no argument, found {}", t.describe())
            })?;
            (None, "count()".to_owned())
        } else {
            let (field, text, pos) = self.field_only(&format!("inside `{fname}(...)`"))?;
            let close = self.next()?;
            if let Tok::Arithmetic(c) = close.tok {
                return Err(error(close.pos, format!("not supported: arithmetic (`{c}`) inside `{fname}(...)`")));
            }
            if close.tok != Tok::RParen {
                return Err(error(
                    close.pos,
                    format!("expected `)` after `{fname}({text}`, found {}", close.describe()),
                ));
            }
            if let Field::Intrinsic(intrinsic) = &field {
                let ty = intrinsic.value_type();
                if ty != IntrinsicType::Duration {
                    return Err(error(
                        pos,
                        format!("`{fname}` needs a numeric field or a duration; `{text}` is {}", type_name(ty)),
                    ));
                }
            }
            (Some(field), format!("{fname}({text})"))
        };
        self.reject_arithmetic(&format!("on aggregates (`{shown}`)"))?;
        let op_token = self.next()?;
        let op = match comparison_op(&op_token.tok) {
            Some(op) if !op.is_regex() => op,
            Some(_) => {
                return Err(error(
                    op_token.pos,
                    format!("`{shown}` compares with =, !=, <, <=, > or >=, not `{}`", op_token.text),
                ))
            }
            None => {
                return Err(error(
                    op_token.pos,
                    format!("expected a comparison like `> 2` after `{shown}`, found {}", op_token.describe()),
                ))
            }
        };
        let value = match self.operand(Some(&op_token))? {
            Operand::Literal { value, text, pos } => {
                let ok = match (&field, &value) {
                    (Some(Field::Intrinsic(_)), Static::Duration(_)) => true,
                    (Some(Field::Intrinsic(_)), _) => false,
                    (_, Static::Int(_) | Static::Float(_)) => true,
                    _ => false,
                };
                if !ok {
                    let wanted =
                        if matches!(field, Some(Field::Intrinsic(_))) { "a duration like 100ms" } else { "a number" };
                    return Err(error(
                        pos,
                        format!("`{shown}` compares with {wanted}, not {} `{text}`", static_type_name(&value)),
                    ));
                }
                value
            }
            Operand::Field { text, pos, .. } => {
                return Err(error(pos, format!("not supported: comparing `{shown}` with the field `{text}`")))
            }
            Operand::Nil { pos } => return Err(error(pos, format!("`{shown}` cannot be compared with `nil`"))),
            Operand::Condition { .. } => {
                return Err(error(op_token.pos, format!("expected a number after `{}`", op_token.text)))
            }
        };
        self.reject_arithmetic("in aggregate comparisons")?;
        Ok(Stage::Aggregate { func, field, op, value })
    }

    fn select(&mut self) -> Result<Stage> {
        self.next()?;
        self.expect(&Tok::LParen, |t| format!("expected `(` after `select`, found {}", t.describe()))?;
        let mut fields = Vec::new();
        loop {
            let (field, _, _) = self.field_only("inside `select(...)`")?;
            fields.push(field);
            let token = self.next()?;
            match token.tok {
                Tok::Comma => {}
                Tok::RParen => return Ok(Stage::Select(fields)),
                _ => {
                    return Err(error(
                        token.pos,
                        format!("expected `,` or `)` in `select(...)`, found {}", token.describe()),
                    ))
                }
            }
        }
    }

    /// A field where only a field may stand (aggregate and select arguments).
    fn field_only(&mut self, context: &str) -> Result<(Field, String, Pos)> {
        let token = self.next()?;
        let operand = match &token.tok {
            Tok::Attr { .. } | Tok::Scoped { .. } | Tok::Ident(_) => self.word_operand(token.clone())?,
            _ => return Err(error(token.pos, format!("expected a field {context}, found {}", token.describe()))),
        };
        match operand {
            Operand::Field { field, text, pos } => Ok((field, text, pos)),
            _ => Err(error(token.pos, format!("expected a field {context}, found {}", token.describe()))),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Conditions inside `{ }`
    // -----------------------------------------------------------------------------------------

    /// `&&` and `||` inside `{ }` bind equally and group from the left, as in Tempo's grammar:
    /// `{ a || b && c }` is `{ (a || b) && c }`.
    fn or_condition(&mut self, after: Option<&Token>) -> Result<(FieldExpr, usize)> {
        let (mut lhs, mut depth) = self.comparison(after)?;
        while matches!(self.peek()?.tok, Tok::AndAnd | Tok::OrOr) {
            let op = self.next()?;
            let (rhs, rhs_depth) = self.comparison(Some(&op))?;
            depth = combined_depth(depth, rhs_depth, op.pos)?;
            lhs = if op.tok == Tok::AndAnd { FieldExpr::and(lhs, rhs) } else { FieldExpr::or(lhs, rhs) };
        }
        Ok((lhs, depth))
    }

    /// `operand [cmp operand]`.
    fn comparison(&mut self, after: Option<&Token>) -> Result<(FieldExpr, usize)> {
        let left = self.operand(after)?;
        self.reject_arithmetic("in field expressions")?;
        let Some(op) = comparison_op(&self.peek()?.tok) else {
            return self.condition_of(left);
        };
        let op_token = self.next()?;
        let right = self.operand(Some(&op_token))?;
        self.reject_arithmetic("in field expressions")?;
        let expr = self.build_comparison(left, op, &op_token, right)?;
        Ok((expr, 1))
    }

    /// An operand standing alone as a condition.
    fn condition_of(&mut self, operand: Operand) -> Result<(FieldExpr, usize)> {
        match operand {
            Operand::Field { field: field @ Field::Attribute { .. }, .. } => Ok((FieldExpr::Truthy(field), 1)),
            Operand::Field { text, .. } => {
                let next = self.peek()?;
                Err(error(
                    next.pos,
                    format!("expected a comparison operator after `{text}`, found {}", next.describe()),
                ))
            }
            Operand::Literal { value: Static::Bool(b), .. } => Ok((FieldExpr::Static(Static::Bool(b)), 1)),
            Operand::Literal { text, pos, .. } => {
                Err(error(pos, format!("expected a condition, found the literal `{text}` on its own")))
            }
            Operand::Nil { .. } => {
                let next = self.peek()?;
                Err(error(next.pos, format!("expected `=` or `!=` after `nil`, found {}", next.describe())))
            }
            Operand::Condition { expr, depth, .. } => Ok((expr, depth)),
        }
    }

    /// Arithmetic is not supported; `context` says where it was found ("in field expressions").
    fn reject_arithmetic(&mut self, context: &str) -> Result<()> {
        let token = self.peek()?;
        if let Tok::Arithmetic(c) = token.tok {
            return Err(error(token.pos, format!("not supported: arithmetic (`{c}`) {context}")));
        }
        Ok(())
    }

    /// One side of a comparison, or a condition; `after` is the preceding operator, for messages.
    fn operand(&mut self, after: Option<&Token>) -> Result<Operand> {
        let token = self.next()?;
        let pos = token.pos;
        match token.tok {
            Tok::Bang => {
                self.enter(pos)?;
                let inner = self.operand(Some(&token))?;
                if let Some(op) = comparison_op(&self.peek()?.tok) {
                    let op = op.symbol();
                    return Err(error(
                        pos,
                        format!(
                            "not supported: `!` binds tighter than `{op}`, so this would compare a negation; \
                             write `!(a {op} b)` to negate a comparison"
                        ),
                    ));
                }
                let (expr, depth) = self.condition_of(inner)?;
                self.leave();
                Ok(Operand::Condition {
                    expr: FieldExpr::negate(expr),
                    depth: combined_depth(depth, 0, pos)?,
                    negated: true,
                })
            }
            Tok::LParen => {
                self.enter(pos)?;
                let (expr, depth) = self.or_condition(Some(&token))?;
                self.expect(&Tok::RParen, |t| {
                    format!(
                        "expected `)` to close the `(` at line {}, column {}, found {}",
                        pos.line,
                        pos.column,
                        t.describe()
                    )
                })?;
                self.leave();
                match expr {
                    // `(span.a) = 1` compares the field.
                    FieldExpr::Truthy(field) => Ok(Operand::Field { text: field.to_string(), field, pos }),
                    expr => Ok(Operand::Condition { expr, depth, negated: false }),
                }
            }
            Tok::Attr { .. } | Tok::Scoped { .. } | Tok::Ident(_) => self.word_operand(token),
            Tok::Str(s) => Ok(Operand::Literal { value: Static::Str(s), text: token.text, pos }),
            Tok::Int(v) => match i64::try_from(v) {
                Ok(v) => Ok(Operand::Literal { value: Static::Int(v), text: token.text, pos }),
                Err(_) => Err(error(pos, format!("integer `{v}` is too large; the largest is {}", i64::MAX))),
            },
            Tok::Float(v) => Ok(Operand::Literal { value: Static::Float(v), text: token.text, pos }),
            Tok::Duration(v) => Ok(Operand::Literal { value: Static::Duration(v), text: token.text, pos }),
            Tok::Arithmetic('-') => self.negative_number(pos),
            Tok::Arithmetic(c) => Err(error(pos, format!("not supported: arithmetic (`{c}`) in field expressions"))),
            _ => {
                let hint = match (after, &token.tok) {
                    (Some(op), Tok::Eq) if op.tok == Tok::Eq => " (equality is a single `=`)",
                    _ => "",
                };
                let (expected, after) = match after {
                    Some(op) if comparison_op(&op.tok).is_some() => ("a value", format!(" after `{}`", op.text)),
                    Some(op) if op.tok != Tok::LBrace => ("a condition", format!(" after `{}`", op.text)),
                    _ => ("a condition", String::new()),
                };
                Err(error(pos, format!("expected {expected}{after}, found {}{hint}", token.describe())))
            }
        }
    }

    /// A number after a `-` sign.
    fn negative_number(&mut self, minus: Pos) -> Result<Operand> {
        let token = self.next()?;
        let text = format!("-{}", token.text);
        let value = match token.tok {
            Tok::Int(v) if v <= i64::MIN.unsigned_abs() => Static::Int(0i64.wrapping_sub_unsigned(v)),
            Tok::Int(_) => {
                return Err(error(minus, format!("integer `{text}` is too small; the smallest is {}", i64::MIN)))
            }
            Tok::Float(v) => Static::Float(-v),
            Tok::Duration(_) => return Err(error(minus, format!("not supported: negative durations (`{text}`)"))),
            _ => {
                return Err(error(
                    minus,
                    format!("not supported: `-` before {}; only numbers may be negated", token.describe()),
                ))
            }
        };
        Ok(Operand::Literal { value, text, pos: minus })
    }

    /// An attribute, an intrinsic or a keyword literal.
    fn word_operand(&mut self, token: Token) -> Result<Operand> {
        let pos = token.pos;
        let field = |intrinsic: Intrinsic| -> Result<Operand> {
            Ok(Operand::Field { field: Field::Intrinsic(intrinsic), text: token.text.clone(), pos })
        };
        let literal =
            |value: Static| -> Result<Operand> { Ok(Operand::Literal { value, text: token.text.clone(), pos }) };
        match &token.tok {
            Tok::Attr { scope, name } => Ok(Operand::Field {
                field: Field::Attribute { scope: *scope, name: name.clone() },
                text: token.text.clone(),
                pos,
            }),
            Tok::Scoped { scope, name } => field(scoped_intrinsic(scope, name, pos)?),
            Tok::Ident(word) => match word.as_str() {
                "true" => literal(Static::Bool(true)),
                "false" => literal(Static::Bool(false)),
                "nil" => Ok(Operand::Nil { pos }),
                "ok" => literal(Static::Status(StatusValue::Ok)),
                "error" => literal(Static::Status(StatusValue::Error)),
                "unset" => literal(Static::Status(StatusValue::Unset)),
                "unspecified" => literal(Static::Kind(KindValue::Unspecified)),
                "internal" => literal(Static::Kind(KindValue::Internal)),
                "server" => literal(Static::Kind(KindValue::Server)),
                "client" => literal(Static::Kind(KindValue::Client)),
                "producer" => literal(Static::Kind(KindValue::Producer)),
                "consumer" => literal(Static::Kind(KindValue::Consumer)),
                "minInt" => literal(Static::Int(i64::MIN)),
                "maxInt" => literal(Static::Int(i64::MAX)),
                "parent" | "childCount" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent" => {
                    Err(error(pos, format!("not supported: the intrinsic `{word}`")))
                }
                w if is_stage_word(w) => Err(error(
                    pos,
                    format!("not supported: `{w}` inside `{{ }}`; aggregates and select(...) follow `|`"),
                )),
                w => match Intrinsic::ALL.into_iter().find(|i| i.short_name() == Some(w)) {
                    Some(intrinsic) => field(intrinsic),
                    None => Err(error(pos, format!("unknown intrinsic `{w}`; known: {}", known_intrinsics()))),
                },
            },
            _ => Err(error(pos, format!("expected a field, found {}", token.describe()))),
        }
    }

    fn build_comparison(&mut self, left: Operand, op: CmpOp, op_token: &Token, right: Operand) -> Result<FieldExpr> {
        let sym = op.symbol();
        match (left, right) {
            (Operand::Field { field, text, .. }, Operand::Literal { value, text: value_text, pos }) => {
                typed_comparison(field, &text, op, op_token.pos, value, &value_text, pos)
            }
            (Operand::Literal { value, text: value_text, pos }, Operand::Field { field, text, .. }) => {
                let Some(flipped) = flip(op) else {
                    return Err(error(
                        op_token.pos,
                        format!(
                            "not supported: a regex with the field on the right; write `{text} {sym} {value_text}`"
                        ),
                    ));
                };
                typed_comparison(field, &text, flipped, op_token.pos, value, &value_text, pos)
            }
            (Operand::Field { field, .. }, Operand::Nil { .. })
            | (Operand::Nil { .. }, Operand::Field { field, .. }) => match op {
                CmpOp::Eq => Ok(FieldExpr::Exists { field, exists: false }),
                CmpOp::Ne => Ok(FieldExpr::Exists { field, exists: true }),
                _ => Err(error(op_token.pos, format!("`nil` compares only with `=` and `!=`, not `{sym}`"))),
            },
            (Operand::Field { text: a, .. }, Operand::Field { text: b, .. }) => Err(error(
                op_token.pos,
                format!("not supported: comparing two fields (`{a} {sym} {b}`); compare a field with a literal"),
            )),
            (Operand::Condition { negated: true, .. }, _) => Err(error(
                op_token.pos,
                format!("not supported: comparing the result of `!`; write `!(a {sym} b)` to negate a comparison"),
            )),
            (Operand::Condition { .. }, _) | (_, Operand::Condition { .. }) => Err(error(
                op_token.pos,
                format!(
                    "not supported: `{sym}` between a condition and a value; comparisons take a field and a literal"
                ),
            )),
            _ => Err(error(
                op_token.pos,
                format!("not supported: `{sym}` between two literals; comparisons take a field and a literal"),
            )),
        }
    }
}

/// Checks that `value` suits `field` and `op`, and compiles regexes.
fn typed_comparison(
    field: Field,
    field_text: &str,
    op: CmpOp,
    op_pos: Pos,
    value: Static,
    value_text: &str,
    value_pos: Pos,
) -> Result<FieldExpr> {
    let sym = op.symbol();
    let value_kind = static_type_name(&value);
    let value = match (&field, op.is_regex()) {
        (_, true) => {
            if let Field::Intrinsic(intrinsic) = &field {
                let ty = intrinsic.value_type();
                if ty != IntrinsicType::Str {
                    return Err(error(
                        op_pos,
                        format!("`{sym}` needs a string field; `{field_text}` is {}", type_name(ty)),
                    ));
                }
            }
            let Static::Str(source) = value else {
                return Err(error(value_pos, format!("`{sym}` needs a string regex, not {value_kind} `{value_text}`")));
            };
            let pattern = Pattern::new(&source).map_err(|e| error(value_pos, e.to_string()))?;
            Static::Regex(pattern)
        }
        (Field::Intrinsic(intrinsic), false) => {
            let ty = intrinsic.value_type();
            let fits = matches!(
                (ty, &value),
                (IntrinsicType::Str, Static::Str(_))
                    | (IntrinsicType::Duration, Static::Duration(_))
                    | (IntrinsicType::Status, Static::Status(_))
                    | (IntrinsicType::Kind, Static::Kind(_))
                    | (IntrinsicType::Id { .. }, Static::Str(_))
            );
            if !fits {
                return Err(error(
                    value_pos,
                    format!("`{field_text}` compares with {}, not {value_kind} `{value_text}`", expected_value(ty)),
                ));
            }
            let equality_only = matches!(ty, IntrinsicType::Status | IntrinsicType::Kind | IntrinsicType::Id { .. });
            if equality_only && !op.is_equality() {
                return Err(error(op_pos, format!("`{field_text}` compares only with `=` and `!=`, not `{sym}`")));
            }
            if let (IntrinsicType::Id { max_digits }, Static::Str(hex)) = (ty, &value) {
                let valid = (1..=max_digits).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit());
                if !valid {
                    return Err(error(
                        value_pos,
                        format!(
                            "`{field_text}` compares with a string of 1 to {max_digits} hex digits, not `{value_text}`"
                        ),
                    ));
                }
            }
            value
        }
        (Field::Attribute { .. }, false) => {
            match &value {
                Static::Status(_) | Static::Kind(_) => {
                    let intrinsic = if matches!(value, Static::Status(_)) { "status" } else { "kind" };
                    return Err(error(
                        value_pos,
                        format!(
                            "`{value_text}` is a span {intrinsic} value and compares only with `{intrinsic}`; \
                             to compare the attribute `{field_text}` with text, quote it: \"{value_text}\""
                        ),
                    ));
                }
                Static::Duration(_) => {
                    return Err(error(
                        value_pos,
                        format!(
                        "attributes have no duration type; compare `{field_text}` with a number, not `{value_text}`"
                    ),
                    ))
                }
                Static::Bool(_) if !op.is_equality() => {
                    return Err(error(op_pos, format!("booleans compare only with `=` and `!=`, not `{sym}`")))
                }
                _ => {}
            }
            value
        }
    };
    Ok(FieldExpr::Compare { field, op, value })
}

/// `a op b` as `b op' a`, for a literal written on the left.
fn flip(op: CmpOp) -> Option<CmpOp> {
    match op {
        CmpOp::Eq => Some(CmpOp::Eq),
        CmpOp::Ne => Some(CmpOp::Ne),
        CmpOp::Gt => Some(CmpOp::Lt),
        CmpOp::Ge => Some(CmpOp::Le),
        CmpOp::Lt => Some(CmpOp::Gt),
        CmpOp::Le => Some(CmpOp::Ge),
        CmpOp::Match | CmpOp::NotMatch => None,
    }
}

fn scoped_intrinsic(scope: &str, name: &str, pos: Pos) -> Result<Intrinsic> {
    let found = match (scope, name) {
        ("span", "name") => Intrinsic::Name,
        ("span", "status") => Intrinsic::Status,
        ("span", "statusMessage") => Intrinsic::StatusMessage,
        ("span", "kind") => Intrinsic::Kind,
        ("span", "duration") => Intrinsic::Duration,
        ("span", "id") => Intrinsic::SpanId,
        ("trace", "rootService") => Intrinsic::RootServiceName,
        ("trace", "rootName") => Intrinsic::RootName,
        ("trace", "duration") => Intrinsic::TraceDuration,
        ("trace", "id") => Intrinsic::TraceId,
        ("span", "parentID" | "childCount") => {
            return Err(error(pos, format!("not supported: the intrinsic `{scope}:{name}`")))
        }
        ("event" | "link" | "instrumentation", _) => {
            return Err(error(pos, format!("not supported: the `{scope}:` intrinsic scope (`{scope}:{name}`)")))
        }
        ("span" | "trace", _) => {
            return Err(error(
                pos,
                format!("not supported: unknown intrinsic `{scope}:{name}`; known: {}", known_intrinsics()),
            ))
        }
        _ => return Err(error(pos, format!("unknown intrinsic scope `{scope}:`; known: `span:` and `trace:`"))),
    };
    Ok(found)
}

fn known_intrinsics() -> String {
    let short = Intrinsic::ALL.iter().filter_map(|i| i.short_name());
    let scoped = Intrinsic::ALL.iter().map(|i| i.canonical_name());
    short.chain(scoped).collect::<Vec<_>>().join(", ")
}

fn comparison_op(tok: &Tok) -> Option<CmpOp> {
    Some(match tok {
        Tok::Eq => CmpOp::Eq,
        Tok::Ne => CmpOp::Ne,
        Tok::Gt => CmpOp::Gt,
        Tok::Ge => CmpOp::Ge,
        Tok::Lt => CmpOp::Lt,
        Tok::Le => CmpOp::Le,
        Tok::Match => CmpOp::Match,
        Tok::NotMatch => CmpOp::NotMatch,
        _ => return None,
    })
}

fn spanset_operator_text(tok: &Tok) -> Option<&'static str> {
    Some(match tok {
        Tok::AndAnd => "&&",
        Tok::OrOr => "||",
        Tok::Gt => ">",
        Tok::Lt => "<",
        Tok::Desc => ">>",
        Tok::Anc => "<<",
        Tok::Tilde => "~",
        _ => return None,
    })
}

/// Words that begin a pipeline stage (supported or not).
fn is_stage_word(word: &str) -> bool {
    matches!(word, "count" | "avg" | "min" | "max" | "sum" | "select" | "by" | "coalesce") || is_metrics_word(word)
}

fn is_metrics_word(word: &str) -> bool {
    matches!(
        word,
        "rate"
            | "count_over_time"
            | "min_over_time"
            | "max_over_time"
            | "avg_over_time"
            | "sum_over_time"
            | "quantile_over_time"
            | "histogram_over_time"
            | "compare"
            | "topk"
            | "bottomk"
    )
}

fn expected_stage(found: &Token) -> String {
    format!(
        "expected a pipeline stage after `|` (`{{ ... }}`, `count() > 2`, `avg(span:duration) > 1s` or `select(...)`), found {}",
        found.describe()
    )
}

fn combined_depth(a: usize, b: usize, pos: Pos) -> Result<usize> {
    let depth = 1 + a.max(b);
    if depth > MAX_DEPTH {
        return Err(error(pos, format!("query is too deeply nested: more than {MAX_DEPTH} levels of operators")));
    }
    Ok(depth)
}

fn type_name(ty: IntrinsicType) -> &'static str {
    match ty {
        IntrinsicType::Str => "a string",
        IntrinsicType::Duration => "a duration",
        IntrinsicType::Status => "a status",
        IntrinsicType::Kind => "a span kind",
        IntrinsicType::Id { .. } => "an ID",
    }
}

fn expected_value(ty: IntrinsicType) -> &'static str {
    match ty {
        IntrinsicType::Str => "a string like \"GET /\"",
        IntrinsicType::Duration => "a duration like 100ms",
        IntrinsicType::Status => "ok, error or unset",
        IntrinsicType::Kind => "unspecified, internal, server, client, producer or consumer",
        IntrinsicType::Id { .. } => "a hex string like \"00f067aa0ba902b7\"",
    }
}

fn static_type_name(value: &Static) -> &'static str {
    match value {
        Static::Str(_) | Static::Regex(_) => "a string",
        Static::Int(_) => "an integer",
        Static::Float(_) => "a float",
        Static::Bool(_) => "a boolean",
        Static::Duration(_) => "a duration",
        Static::Status(_) => "a status",
        Static::Kind(_) => "a span kind",
    }
}

#[cfg(test)]
mod tests;
