//! TraceQL, the trace query language of Grafana Tempo, for Clew.
//!
//! Owns the language: [`parse`] turns query text into a typed syntax tree ([`Query`]), `Display`
//! prints the canonical text back (`parse(&q.to_string()) == Ok(q)`), and [`evaluate`] runs a
//! query against one [`Trace`] with Tempo's semantics. The tree is public and plain so that
//! planners can walk it to push conditions down to storage.
//!
//! The supported subset: spanset filters `{ ... }` with intrinsics, span/resource/unscoped
//! attributes, `&&`, `||`, `!`, comparisons, regexes and `nil` checks; spanset `&&`/`||`; the
//! structural operators `>`, `>>`, `<`, `<<`, `~`; pipelines with filters, `count`/`avg`/`min`/
//! `max`/`sum` comparisons and `select(...)`. Everything else Tempo accepts (arithmetic,
//! field-to-field comparisons, `by()`, `coalesce()`, metrics functions, hints, negated and union
//! structural operators, event/link/instrumentation scopes) is a [`ParseError`] whose message
//! starts with `not supported:`, never silently ignored.
//!
//! This crate does no I/O and depends on no other Clew crate.

mod ast;
mod eval;
mod lexer;
mod parser;
mod trace;

pub use ast::{
    AggFunc, CmpOp, Field, FieldExpr, Intrinsic, IntrinsicType, KindValue, Pattern, PatternError, Query, Scope,
    SpansetExpr, Stage, Static, StatusValue, StructuralOp,
};
pub use eval::{evaluate, FieldValue, Spanset};
pub use trace::{Span, Trace, Value};

/// Why query text is not a supported TraceQL query. `line` and `column` are 1-based and count
/// characters; the message says what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses and type-checks a TraceQL query.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    parser::parse(input)
}

impl std::str::FromStr for Query {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Query, ParseError> {
        parse(input)
    }
}
