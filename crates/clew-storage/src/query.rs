//! What queries may ask of a backend: find candidate traces by span conditions within a time
//! range, and list what is stored (services, operations, attribute names and values).
//!
//! Conditions here are a small closed set that every backend can evaluate natively (column
//! filters for the embedded engine, `WHERE` clauses for ClickHouse). The query layer
//! translates its language into them *conservatively*: a backend may return traces that do
//! not match the query in the end, never miss one that does; the query layer evaluates the
//! full query on the traces it is given.

use std::cmp::Ordering;
use std::fmt;

use clew_model::otlp::common::v1::{any_value, AnyValue};
use clew_model::TraceId;

/// Half-open range `[start, end)` of Unix nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub start: u64,
    pub end: u64,
}

impl TimeRange {
    pub fn contains(&self, unix_nano: u64) -> bool {
        self.start <= unix_nano && unix_nano < self.end
    }
}

/// A span field a condition reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Name,
    /// The `service.name` resource attribute.
    Service,
    /// OTLP `SpanKind` number.
    Kind,
    /// OTLP `Status.code` number.
    Status,
    StatusMessage,
    /// End minus start, in nanoseconds.
    Duration,
    SpanAttribute(String),
    ResourceAttribute(String),
    /// A span attribute of that name, or else a resource attribute.
    AnyAttribute(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value as conditions compare it. Attribute values of other types (bytes, arrays, maps)
/// are [`Value::Other`]: they exist, and compare with nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl Value {
    pub fn from_any(value: &AnyValue) -> Self {
        match &value.value {
            Some(any_value::Value::StringValue(s)) => Self::Str(s.clone()),
            Some(any_value::Value::IntValue(i)) => Self::Int(*i),
            Some(any_value::Value::DoubleValue(f)) => Self::Float(*f),
            Some(any_value::Value::BoolValue(b)) => Self::Bool(*b),
            _ => Self::Other,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Other => f.write_str("(complex value)"),
        }
    }
}

/// A borrowed [`Value`], as evaluators read it from columns without copying.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl<'a> ValueRef<'a> {
    pub fn from_any(value: &'a AnyValue) -> Self {
        match &value.value {
            Some(any_value::Value::StringValue(s)) => Self::Str(s),
            Some(any_value::Value::IntValue(i)) => Self::Int(*i),
            Some(any_value::Value::DoubleValue(f)) => Self::Float(*f),
            Some(any_value::Value::BoolValue(b)) => Self::Bool(*b),
            _ => Self::Other,
        }
    }

    pub fn to_owned(self) -> Value {
        match self {
            Self::Str(s) => Value::Str(s.to_owned()),
            Self::Int(i) => Value::Int(i),
            Self::Float(f) => Value::Float(f),
            Self::Bool(b) => Value::Bool(b),
            Self::Other => Value::Other,
        }
    }

    /// How `self` orders against `other`, when they are comparable: numbers with numbers
    /// (an int attribute compares numerically with a float), strings with strings, booleans
    /// with booleans.
    pub fn compare(self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Self::Str(a), Value::Str(b)) => Some(a.cmp(b.as_str())),
            (Self::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Self::Int(a), Value::Float(b)) => (a as f64).partial_cmp(b),
            (Self::Float(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Self::Float(a), Value::Float(b)) => a.partial_cmp(b),
            (Self::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Self::Str(s) => ValueRef::Str(s),
            Self::Int(i) => ValueRef::Int(*i),
            Self::Float(f) => ValueRef::Float(*f),
            Self::Bool(b) => ValueRef::Bool(*b),
            Self::Other => ValueRef::Other,
        }
    }
}

/// A condition on one span.
#[derive(Clone, Debug)]
pub enum Condition {
    /// Every span.
    True,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Test {
        target: Target,
        test: Test,
    },
}

/// What a [`Condition::Test`] asks of one field.
#[derive(Clone, Debug)]
pub enum Test {
    /// The field exists and compares with the value as the operator says; values of other
    /// types never match.
    Compare(Op, Value),
    /// The field is a string that the regex matches (`negate`: does not match). Anchor the
    /// pattern to match whole values.
    Regex { regex: regex::Regex, negate: bool },
    /// The field is present (`true`) or absent.
    Exists(bool),
}

impl Test {
    /// Whether a field that reads `value` (`None`: absent) passes.
    pub fn passes(&self, value: Option<ValueRef<'_>>) -> bool {
        match (self, value) {
            (Self::Exists(exists), v) => v.is_some() == *exists,
            (Self::Compare(op, expected), Some(v)) => op.holds(v, expected),
            (Self::Regex { regex, negate }, Some(ValueRef::Str(s))) => regex.is_match(s) != *negate,
            _ => false,
        }
    }
}

impl Condition {
    /// Whether the condition holds for a span whose fields `field` reads.
    pub fn holds<'v>(&self, field: &mut impl FnMut(&Target) -> Option<ValueRef<'v>>) -> bool {
        match self {
            Self::True => true,
            Self::All(all) => all.iter().all(|c| c.holds(field)),
            Self::Any(any) => any.iter().any(|c| c.holds(field)),
            Self::Test { target, test } => test.passes(field(target)),
        }
    }

    /// The targets the condition reads, each once.
    pub fn targets(&self) -> Vec<&Target> {
        let mut out = Vec::new();
        self.collect_targets(&mut out);
        out
    }

    fn collect_targets<'a>(&'a self, out: &mut Vec<&'a Target>) {
        match self {
            Self::True => {}
            Self::All(cs) | Self::Any(cs) => cs.iter().for_each(|c| c.collect_targets(out)),
            Self::Test { target, .. } => {
                if !out.contains(&target) {
                    out.push(target);
                }
            }
        }
    }
}

impl Op {
    /// `actual op expected`; false when the two are not comparable.
    pub fn holds(self, actual: ValueRef<'_>, expected: &Value) -> bool {
        let Some(ordering) = actual.compare(expected) else {
            return false;
        };
        match self {
            Self::Eq => ordering == Ordering::Equal,
            Self::Ne => ordering != Ordering::Equal,
            Self::Lt => ordering == Ordering::Less,
            Self::Le => ordering != Ordering::Greater,
            Self::Gt => ordering == Ordering::Greater,
            Self::Ge => ordering != Ordering::Less,
        }
    }
}

/// Traces to find: those with, for each condition, at least one span that starts within
/// `range` and satisfies it.
#[derive(Clone, Debug)]
pub struct FindRequest {
    pub range: TimeRange,
    pub conditions: Vec<Condition>,
}

/// A trace [`crate::TraceReader::find`] returned: its extent over all of its spans the store
/// holds in the days the range touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHit {
    pub trace_id: TraceId,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl TraceHit {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }
}

/// An operation: a span name a service uses, with the span kind it uses it with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    pub service: String,
    pub name: String,
    pub kind: i32,
}

/// What the store holds within a time range (at day granularity: a backend may report what
/// any day the range touches holds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Sorted, distinct.
    pub operations: Vec<Operation>,
    /// Sorted, distinct.
    pub span_attributes: Vec<String>,
    /// Sorted, distinct.
    pub resource_attributes: Vec<String>,
}

impl Catalog {
    /// Distinct service names, sorted; spans without a `service.name` name no service.
    pub fn services(&self) -> Vec<&str> {
        let mut services: Vec<&str> =
            self.operations.iter().map(|o| o.service.as_str()).filter(|s| !s.is_empty()).collect();
        services.dedup();
        services
    }

    /// Adds another catalog's entries, keeping everything sorted and distinct.
    pub fn merge(&mut self, other: Catalog) {
        fn union<T: Ord>(a: &mut Vec<T>, b: Vec<T>) {
            a.extend(b);
            a.sort();
            a.dedup();
        }
        union(&mut self.operations, other.operations);
        union(&mut self.span_attributes, other.span_attributes);
        union(&mut self.resource_attributes, other.resource_attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_int_and_float_but_not_with_strings() {
        assert!(Op::Gt.holds(ValueRef::Int(500), &Value::Float(499.5)));
        assert!(Op::Eq.holds(ValueRef::Float(2.0), &Value::Int(2)));
        assert!(!Op::Eq.holds(ValueRef::Int(500), &Value::Str("500".into())));
        assert!(!Op::Ne.holds(ValueRef::Int(500), &Value::Str("500".into())), "incomparable is never a match");
        assert!(!Op::Eq.holds(ValueRef::Float(f64::NAN), &Value::Float(f64::NAN)));
    }

    #[test]
    fn conditions_combine_and_read_each_target_once() {
        let c = Condition::All(vec![
            Condition::Test { target: Target::Name, test: Test::Compare(Op::Eq, Value::Str("GET".into())) },
            Condition::Any(vec![
                Condition::Test { target: Target::SpanAttribute("a".into()), test: Test::Exists(false) },
                Condition::Test { target: Target::Name, test: Test::Compare(Op::Ne, Value::Str("x".into())) },
            ]),
        ]);
        assert_eq!(c.targets(), [&Target::Name, &Target::SpanAttribute("a".into())]);
        let mut fields = |t: &Target| match t {
            Target::Name => Some(ValueRef::Str("GET")),
            _ => None,
        };
        assert!(c.holds(&mut fields));
    }

    #[test]
    fn catalog_merge_keeps_entries_sorted_and_distinct() {
        let op = |s: &str, n: &str| Operation { service: s.into(), name: n.into(), kind: 2 };
        let mut a = Catalog { operations: vec![op("b", "x")], span_attributes: vec!["k".into()], ..Default::default() };
        a.merge(Catalog { operations: vec![op("a", "y"), op("b", "x")], ..Default::default() });
        assert_eq!(a.operations, [op("a", "y"), op("b", "x")]);
        assert_eq!(a.services(), ["a", "b"]);
    }
}
