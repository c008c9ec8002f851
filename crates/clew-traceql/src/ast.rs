//! The TraceQL syntax tree and its canonical text form.
//!
//! `Display` prints canonical query text: scoped intrinsic names (`span:duration`), `{}` for the
//! always-true filter, durations in the largest unit that divides them exactly, strings in double
//! quotes, and only the parentheses that precedence requires. Parsing the printed text gives back
//! an equal tree.

use std::fmt::{self, Display, Formatter, Write as _};

/// A parsed TraceQL query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub root: SpansetExpr,
}

/// An expression whose value, for one trace, is a spanset (or nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpansetExpr {
    /// `{ cond }`: the spans of the trace matching `cond`. `{}` and `{ true }` are
    /// `Filter(FieldExpr::Static(Static::Bool(true)))`.
    Filter(FieldExpr),
    /// `a && b`: both sides matched; the union of their spans.
    And(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `a || b`: the union of whichever sides matched.
    Or(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `a > b` and friends: spans of the right side, kept by their relation to the left side.
    Structural(StructuralOp, Box<SpansetExpr>, Box<SpansetExpr>),
    /// `source | stage | stage ...`, with at least one stage.
    Pipeline(Box<SpansetExpr>, Vec<Stage>),
}

/// Structural spanset operators; each keeps spans of its right-hand side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StructuralOp {
    /// `a >> b`: spans of `b` with an ancestor in `a`.
    Descendant,
    /// `a > b`: spans of `b` whose parent is in `a`.
    Child,
    /// `a << b`: spans of `b` that are an ancestor of a span in `a`.
    Ancestor,
    /// `a < b`: spans of `b` that are the parent of a span in `a`.
    Parent,
    /// `a ~ b`: spans of `b` with a sibling (same parent, other span) in `a`.
    Sibling,
}

impl StructuralOp {
    pub fn symbol(self) -> &'static str {
        match self {
            StructuralOp::Descendant => ">>",
            StructuralOp::Child => ">",
            StructuralOp::Ancestor => "<<",
            StructuralOp::Parent => "<",
            StructuralOp::Sibling => "~",
        }
    }
}

/// One stage of a pipeline, applied to each spanset that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `| { cond }`: keeps the spans matching `cond`; drops the spanset if none do.
    Filter(FieldExpr),
    /// `| count() > 2`, `| avg(span:duration) > 1s`: keeps the spanset if the aggregate holds.
    /// `field` is `None` exactly for [`AggFunc::Count`].
    Aggregate { func: AggFunc, field: Option<Field>, op: CmpOp, value: Static },
    /// `| select(span.a, resource.b)`: attaches these fields' values to each span.
    Select(Vec<Field>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

impl AggFunc {
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Sum => "sum",
        }
    }
}

/// A condition on one span (the inside of `{ ... }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldExpr {
    And(Box<FieldExpr>, Box<FieldExpr>),
    Or(Box<FieldExpr>, Box<FieldExpr>),
    Not(Box<FieldExpr>),
    /// `field op value`. The parser guarantees `value`'s type suits `field` and `op`:
    /// `=~`/`!~` always carry a [`Static::Regex`], and nothing else does.
    Compare {
        field: Field,
        op: CmpOp,
        value: Static,
    },
    /// `field != nil` (`exists: true`) or `field = nil` (`exists: false`).
    Exists {
        field: Field,
        exists: bool,
    },
    /// A boolean attribute on its own, `{ span.is_cached }`: true when it is `true`.
    Truthy(Field),
    /// A literal condition; the parser only produces booleans here.
    Static(Static),
}

impl FieldExpr {
    pub fn and(a: FieldExpr, b: FieldExpr) -> FieldExpr {
        FieldExpr::And(Box::new(a), Box::new(b))
    }

    pub fn or(a: FieldExpr, b: FieldExpr) -> FieldExpr {
        FieldExpr::Or(Box::new(a), Box::new(b))
    }

    pub fn negate(a: FieldExpr) -> FieldExpr {
        FieldExpr::Not(Box::new(a))
    }

    pub fn compare(field: Field, op: CmpOp, value: Static) -> FieldExpr {
        FieldExpr::Compare { field, op, value }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `=~`, a regex that must match the whole value.
    Match,
    /// `!~`
    NotMatch,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Match => "=~",
            CmpOp::NotMatch => "!~",
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, CmpOp::Match | CmpOp::NotMatch)
    }

    pub fn is_equality(self) -> bool {
        matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// What a condition reads from a span.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Intrinsic(Intrinsic),
    /// `span.name`, `resource.name` or `.name`; `name` is never empty.
    Attribute {
        scope: Scope,
        name: String,
    },
}

impl Field {
    pub fn span(name: impl Into<String>) -> Field {
        Field::Attribute { scope: Scope::Span, name: name.into() }
    }

    pub fn resource(name: impl Into<String>) -> Field {
        Field::Attribute { scope: Scope::Resource, name: name.into() }
    }

    pub fn any(name: impl Into<String>) -> Field {
        Field::Attribute { scope: Scope::Any, name: name.into() }
    }
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `span.` attributes only.
    Span,
    /// `resource.` attributes only.
    Resource,
    /// A leading `.`: the span attribute, or else the resource attribute.
    Any,
}

/// Fields every span has, independent of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    RootServiceName,
    RootName,
    TraceDuration,
    SpanId,
    TraceId,
}

/// The type of an intrinsic's values, which decides what it may be compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntrinsicType {
    Str,
    Duration,
    Status,
    Kind,
    /// A hex ID of at most this many hex digits.
    Id {
        max_digits: usize,
    },
}

impl Intrinsic {
    pub const ALL: [Intrinsic; 10] = [
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::StatusMessage,
        Intrinsic::Kind,
        Intrinsic::Duration,
        Intrinsic::RootServiceName,
        Intrinsic::RootName,
        Intrinsic::TraceDuration,
        Intrinsic::SpanId,
        Intrinsic::TraceId,
    ];

    /// The canonical (scoped) spelling, e.g. `span:duration`.
    pub fn canonical_name(self) -> &'static str {
        match self {
            Intrinsic::Name => "span:name",
            Intrinsic::Status => "span:status",
            Intrinsic::StatusMessage => "span:statusMessage",
            Intrinsic::Kind => "span:kind",
            Intrinsic::Duration => "span:duration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::RootServiceName => "trace:rootService",
            Intrinsic::RootName => "trace:rootName",
            Intrinsic::TraceDuration => "trace:duration",
            Intrinsic::TraceId => "trace:id",
        }
    }

    /// The older unscoped spelling, where Tempo has one (`span:id` and `trace:id` have none).
    pub fn short_name(self) -> Option<&'static str> {
        match self {
            Intrinsic::Name => Some("name"),
            Intrinsic::Status => Some("status"),
            Intrinsic::StatusMessage => Some("statusMessage"),
            Intrinsic::Kind => Some("kind"),
            Intrinsic::Duration => Some("duration"),
            Intrinsic::RootServiceName => Some("rootServiceName"),
            Intrinsic::RootName => Some("rootName"),
            Intrinsic::TraceDuration => Some("traceDuration"),
            Intrinsic::SpanId | Intrinsic::TraceId => None,
        }
    }

    pub fn value_type(self) -> IntrinsicType {
        match self {
            Intrinsic::Name | Intrinsic::StatusMessage | Intrinsic::RootServiceName | Intrinsic::RootName => {
                IntrinsicType::Str
            }
            Intrinsic::Duration | Intrinsic::TraceDuration => IntrinsicType::Duration,
            Intrinsic::Status => IntrinsicType::Status,
            Intrinsic::Kind => IntrinsicType::Kind,
            Intrinsic::SpanId => IntrinsicType::Id { max_digits: 16 },
            Intrinsic::TraceId => IntrinsicType::Id { max_digits: 32 },
        }
    }

    /// Whether the value is the same for every span of a trace.
    pub fn is_trace_level(self) -> bool {
        matches!(self, Intrinsic::RootServiceName | Intrinsic::RootName | Intrinsic::TraceDuration | Intrinsic::TraceId)
    }
}

/// A literal value.
///
/// Equality compares floats bit for bit, so it is a true equivalence; the parser never produces
/// NaN or infinite floats.
#[derive(Debug, Clone)]
pub enum Static {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(u64),
    Status(StatusValue),
    Kind(KindValue),
    /// The compiled right-hand side of `=~` / `!~`.
    Regex(Pattern),
}

impl PartialEq for Static {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Static::Str(a), Static::Str(b)) => a == b,
            (Static::Int(a), Static::Int(b)) => a == b,
            (Static::Float(a), Static::Float(b)) => a.to_bits() == b.to_bits(),
            (Static::Bool(a), Static::Bool(b)) => a == b,
            (Static::Duration(a), Static::Duration(b)) => a == b,
            (Static::Status(a), Static::Status(b)) => a == b,
            (Static::Kind(a), Static::Kind(b)) => a == b,
            (Static::Regex(a), Static::Regex(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Static {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusValue {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusValue {
    pub fn keyword(self) -> &'static str {
        match self {
            StatusValue::Unset => "unset",
            StatusValue::Ok => "ok",
            StatusValue::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KindValue {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl KindValue {
    pub fn keyword(self) -> &'static str {
        match self {
            KindValue::Unspecified => "unspecified",
            KindValue::Internal => "internal",
            KindValue::Server => "server",
            KindValue::Client => "client",
            KindValue::Producer => "producer",
            KindValue::Consumer => "consumer",
        }
    }
}

/// A regex compiled once, at parse time, anchored at both ends as Tempo anchors them: `=~ "ab"`
/// matches exactly `ab`, not `xaby`. Equality and `Debug` go by the source text.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    anchored: regex::Regex,
}

/// Why a regex literal was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regex {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, PatternError> {
        let invalid = |e: regex::Error| PatternError { pattern: source.to_owned(), reason: regex_reason(&e) };
        // Validate the pattern alone first: wrapping an unbalanced pattern such as `a)|(b` could
        // otherwise compile into something with different meaning.
        regex::Regex::new(source).map_err(invalid)?;
        // A well-formed pattern inside a group stays well-formed; the only way the wrapper fails
        // is an `(?x)` comment running into it.
        let anchored = regex::Regex::new(&format!("^(?:{source})$")).map_err(|_| PatternError {
            pattern: source.to_owned(),
            reason: "it ends inside an `(?x)` comment".to_owned(),
        })?;
        Ok(Pattern { source: source.to_owned(), anchored })
    }

    /// The pattern as written in the query, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }
}

/// The last line of a regex syntax error carries the reason; the rest is an ASCII-art pointer.
fn regex_reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            text.lines().rev().find_map(|line| line.strip_prefix("error: ")).map_or_else(|| text.clone(), str::to_owned)
        }
        regex::Error::CompiledTooBig(_) => "the compiled regex is too big".to_owned(),
        other => other.to_string(),
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical text
// ---------------------------------------------------------------------------------------------

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_spanset(f, &self.root, 0)
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_spanset(f, self, 0)
    }
}

/// Binding strength of spanset expressions: pipelines loosest, then `&&`/`||`, then structural
/// operators, then filters. Must agree with the parser.
fn spanset_precedence(e: &SpansetExpr) -> u8 {
    match e {
        SpansetExpr::Pipeline(..) => 0,
        SpansetExpr::And(..) | SpansetExpr::Or(..) => 1,
        SpansetExpr::Structural(..) => 2,
        SpansetExpr::Filter(_) => 3,
    }
}

fn write_spanset(f: &mut Formatter<'_>, e: &SpansetExpr, min: u8) -> fmt::Result {
    if spanset_precedence(e) < min {
        f.write_char('(')?;
        write_spanset(f, e, 0)?;
        return f.write_char(')');
    }
    // Binary operators are left-associative, so a right operand of the same strength needs
    // parentheses to keep its shape.
    match e {
        SpansetExpr::Filter(cond) => write_filter(f, cond),
        SpansetExpr::And(l, r) => {
            write_spanset(f, l, 1)?;
            f.write_str(" && ")?;
            write_spanset(f, r, 2)
        }
        SpansetExpr::Or(l, r) => {
            write_spanset(f, l, 1)?;
            f.write_str(" || ")?;
            write_spanset(f, r, 2)
        }
        SpansetExpr::Structural(op, l, r) => {
            write_spanset(f, l, 2)?;
            write!(f, " {} ", op.symbol())?;
            write_spanset(f, r, 3)
        }
        SpansetExpr::Pipeline(source, stages) => {
            write_spanset(f, source, 1)?;
            for stage in stages {
                write!(f, " | {stage}")?;
            }
            Ok(())
        }
    }
}

fn write_filter(f: &mut Formatter<'_>, cond: &FieldExpr) -> fmt::Result {
    if matches!(cond, FieldExpr::Static(Static::Bool(true))) {
        f.write_str("{}")
    } else {
        write!(f, "{{ {cond} }}")
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Filter(cond) => write_filter(f, cond),
            Stage::Aggregate { func, field, op, value } => {
                write!(f, "{}(", func.name())?;
                if let Some(field) = field {
                    write!(f, "{field}")?;
                }
                write!(f, ") {} {value}", op.symbol())
            }
            Stage::Select(fields) => {
                f.write_str("select(")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{field}")?;
                }
                f.write_char(')')
            }
        }
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_field_expr(f, self, 0)
    }
}

/// Binding strength inside `{ }`: `&&` and `||` (equal, grouping from the left, as in Tempo)
/// < comparisons < `!` and atoms. Must agree with the parser.
fn field_precedence(e: &FieldExpr) -> u8 {
    match e {
        FieldExpr::Or(..) | FieldExpr::And(..) => 1,
        FieldExpr::Compare { .. } | FieldExpr::Exists { .. } => 3,
        FieldExpr::Not(_) | FieldExpr::Truthy(_) | FieldExpr::Static(_) => 4,
    }
}

fn write_field_expr(f: &mut Formatter<'_>, e: &FieldExpr, min: u8) -> fmt::Result {
    if field_precedence(e) < min {
        f.write_char('(')?;
        write_field_expr(f, e, 0)?;
        return f.write_char(')');
    }
    match e {
        FieldExpr::Or(l, r) => {
            write_field_expr(f, l, 1)?;
            f.write_str(" || ")?;
            write_field_expr(f, r, 2)
        }
        FieldExpr::And(l, r) => {
            write_field_expr(f, l, 1)?;
            f.write_str(" && ")?;
            write_field_expr(f, r, 2)
        }
        // `!` binds tighter than comparisons, so anything but an atom needs parentheses.
        FieldExpr::Not(inner) => {
            f.write_char('!')?;
            write_field_expr(f, inner, 4)
        }
        FieldExpr::Compare { field, op, value } => write!(f, "{field} {} {value}", op.symbol()),
        FieldExpr::Exists { field, exists: true } => write!(f, "{field} != nil"),
        FieldExpr::Exists { field, exists: false } => write!(f, "{field} = nil"),
        FieldExpr::Truthy(field) => write!(f, "{field}"),
        FieldExpr::Static(value) => write!(f, "{value}"),
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Field::Intrinsic(intrinsic) => f.write_str(intrinsic.canonical_name()),
            Field::Attribute { scope, name } => {
                f.write_str(match scope {
                    Scope::Span => "span.",
                    Scope::Resource => "resource.",
                    Scope::Any => ".",
                })?;
                write_attribute_name(f, name)
            }
        }
    }
}

impl Display for Intrinsic {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical_name())
    }
}

/// Characters that may appear in an unquoted attribute name (Tempo's rule): anything but
/// whitespace and the characters that start operators or punctuation.
pub(crate) fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(c, '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',' | '"')
}

fn write_attribute_name(f: &mut Formatter<'_>, name: &str) -> fmt::Result {
    if !name.is_empty() && name.chars().all(is_attribute_char) {
        return f.write_str(name);
    }
    // Quoted attribute names know only two escapes, as in Tempo.
    f.write_char('"')?;
    for c in name.chars() {
        if matches!(c, '"' | '\\') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Str(s) => write_string(f, s),
            Static::Int(i) => write!(f, "{i}"),
            // `Debug` prints the shortest text that parses back to the same float, and always
            // with a `.` or an exponent, so it is never mistaken for an integer.
            Static::Float(x) => write!(f, "{x:?}"),
            Static::Bool(b) => write!(f, "{b}"),
            Static::Duration(nanos) => write_duration(f, *nanos),
            Static::Status(s) => f.write_str(s.keyword()),
            Static::Kind(k) => f.write_str(k.keyword()),
            Static::Regex(p) => write_string(f, p.as_str()),
        }
    }
}

fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

const NANOS_PER_UNIT: [(u64, &str); 6] = [
    (3_600_000_000_000, "h"),
    (60_000_000_000, "m"),
    (1_000_000_000, "s"),
    (1_000_000, "ms"),
    (1_000, "us"),
    (1, "ns"),
];

fn write_duration(f: &mut Formatter<'_>, nanos: u64) -> fmt::Result {
    if nanos == 0 {
        return f.write_str("0s");
    }
    for (unit, suffix) in NANOS_PER_UNIT {
        if nanos.is_multiple_of(unit) {
            return write!(f, "{}{suffix}", nanos / unit);
        }
    }
    write!(f, "{nanos}ns")
}
