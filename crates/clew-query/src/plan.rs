//! From a TraceQL query to what a backend can evaluate: one storage [`Condition`] per spanset
//! filter that a matching trace must satisfy with at least one span.
//!
//! Every translation is conservative (it may admit spans the query rejects, never the
//! reverse): trace-level intrinsics, IDs and negations of attribute tests become `True`, and the
//! exact query runs on the traces the backend returns.

use clew_storage::{Condition, FindRequest, Op, Target, Test, TimeRange, Value};
use clew_traceql::{CmpOp, Field, FieldExpr, Intrinsic, KindValue, Query, Scope, SpansetExpr, Static, StatusValue};

/// The candidate search for `query` within `range`.
pub fn plan(query: &Query, range: TimeRange) -> FindRequest {
    let mut conditions = Vec::new();
    requirements(&query.root, &mut conditions);
    conditions.retain(|c| !matches!(c, Condition::True));
    FindRequest { range, conditions }
}

/// Conditions each of which some span of a matching trace satisfies.
fn requirements(expr: &SpansetExpr, out: &mut Vec<Condition>) {
    match expr {
        SpansetExpr::Filter(filter) => out.push(condition(filter)),
        // Both sides must have matched for either operator.
        SpansetExpr::And(a, b) | SpansetExpr::Structural(_, a, b) => {
            requirements(a, out);
            requirements(b, out);
        }
        SpansetExpr::Or(a, b) => {
            let (mut left, mut right) = (Vec::new(), Vec::new());
            requirements(a, &mut left);
            requirements(b, &mut right);
            for side in [&mut left, &mut right] {
                side.retain(|c| !matches!(c, Condition::True));
            }
            // A matching trace meets every requirement of one side (each perhaps with another
            // span), so some span of it meets `l or r` for every pair; a side without
            // requirements admits every trace.
            for l in &left {
                for r in &right {
                    out.push(Condition::Any(vec![l.clone(), r.clone()]));
                }
            }
        }
        // Stages only narrow what their source matched.
        SpansetExpr::Pipeline(source, _) => requirements(source, out),
    }
}

fn condition(expr: &FieldExpr) -> Condition {
    match expr {
        FieldExpr::And(a, b) => Condition::All(vec![condition(a), condition(b)]),
        FieldExpr::Or(a, b) => Condition::Any(vec![condition(a), condition(b)]),
        FieldExpr::Not(inner) => negated(inner),
        FieldExpr::Compare { field, op, value } => compare(field, *op, value),
        FieldExpr::Exists { field, exists } => match target_of(field) {
            Some(target) => Condition::Test { target, test: Test::Exists(*exists) },
            None => Condition::True,
        },
        FieldExpr::Truthy(field) => compare(field, CmpOp::Eq, &Static::Bool(true)),
        FieldExpr::Static(Static::Bool(false)) => Condition::Any(Vec::new()),
        FieldExpr::Static(_) => Condition::True,
    }
}

/// `!expr`, pushed down to the tests where that is exact: intrinsics every span has can flip
/// their operator; an attribute test cannot (a missing attribute fails both `=` and `!=`).
fn negated(expr: &FieldExpr) -> Condition {
    match expr {
        FieldExpr::Not(inner) => condition(inner),
        FieldExpr::And(a, b) => Condition::Any(vec![negated(a), negated(b)]),
        FieldExpr::Or(a, b) => Condition::All(vec![negated(a), negated(b)]),
        FieldExpr::Compare { field: field @ Field::Intrinsic(_), op, value } => {
            let flipped = match op {
                CmpOp::Eq => CmpOp::Ne,
                CmpOp::Ne => CmpOp::Eq,
                CmpOp::Gt => CmpOp::Le,
                CmpOp::Ge => CmpOp::Lt,
                CmpOp::Lt => CmpOp::Ge,
                CmpOp::Le => CmpOp::Gt,
                CmpOp::Match => CmpOp::NotMatch,
                CmpOp::NotMatch => CmpOp::Match,
            };
            compare(field, flipped, value)
        }
        FieldExpr::Static(Static::Bool(b)) => condition(&FieldExpr::Static(Static::Bool(!b))),
        _ => Condition::True,
    }
}

/// The storage field a TraceQL field reads, for fields that belong to one span.
pub fn target_of(field: &Field) -> Option<Target> {
    Some(match field {
        Field::Intrinsic(Intrinsic::Name) => Target::Name,
        Field::Intrinsic(Intrinsic::Status) => Target::Status,
        Field::Intrinsic(Intrinsic::StatusMessage) => Target::StatusMessage,
        Field::Intrinsic(Intrinsic::Kind) => Target::Kind,
        Field::Intrinsic(Intrinsic::Duration) => Target::Duration,
        Field::Intrinsic(_) => return None,
        // The service column holds `service.name` whenever it is a string; otherwise it is
        // empty, which can only admit more spans.
        Field::Attribute { scope: Scope::Resource, name } if name == clew_model::SERVICE_NAME => Target::Service,
        Field::Attribute { scope: Scope::Span, name } => Target::SpanAttribute(name.clone()),
        Field::Attribute { scope: Scope::Resource, name } => Target::ResourceAttribute(name.clone()),
        Field::Attribute { scope: Scope::Any, name } => Target::AnyAttribute(name.clone()),
    })
}

/// The OTLP number of a status.
pub fn status_code(status: StatusValue) -> i64 {
    match status {
        StatusValue::Unset => 0,
        StatusValue::Ok => 1,
        StatusValue::Error => 2,
    }
}

/// The OTLP number of a span kind.
pub fn kind_code(kind: KindValue) -> i64 {
    match kind {
        KindValue::Unspecified => 0,
        KindValue::Internal => 1,
        KindValue::Server => 2,
        KindValue::Client => 3,
        KindValue::Producer => 4,
        KindValue::Consumer => 5,
    }
}

fn compare(field: &Field, op: CmpOp, value: &Static) -> Condition {
    let Some(target) = target_of(field) else {
        return Condition::True;
    };
    let is_service = target == Target::Service;
    let value = match value {
        Static::Regex(pattern) => {
            let Ok(regex) = regex::Regex::new(&format!("^(?:{})$", pattern.as_str())) else {
                return Condition::True;
            };
            return Condition::Test { target, test: Test::Regex { regex, negate: op == CmpOp::NotMatch } };
        }
        Static::Str(s) => Value::Str(s.clone()),
        Static::Int(i) => Value::Int(*i),
        Static::Float(f) => Value::Float(*f),
        Static::Bool(b) => Value::Bool(*b),
        Static::Duration(nanos) => Value::Int(i64::try_from(*nanos).unwrap_or(i64::MAX)),
        Static::Status(status) => Value::Int(status_code(*status)),
        Static::Kind(kind) => Value::Int(kind_code(*kind)),
    };
    // A non-string `service.name` reads as "" in the service column: only equality with a
    // string is exact there.
    if is_service && !matches!(value, Value::Str(_)) {
        return Condition::True;
    }
    let op = match op {
        CmpOp::Eq => Op::Eq,
        CmpOp::Ne => Op::Ne,
        CmpOp::Gt => Op::Gt,
        CmpOp::Ge => Op::Ge,
        CmpOp::Lt => Op::Lt,
        CmpOp::Le => Op::Le,
        CmpOp::Match | CmpOp::NotMatch => return Condition::True,
    };
    Condition::Test { target, test: Test::Compare(op, value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(q: &str) -> String {
        let query = clew_traceql::parse(q).expect("parses");
        format!("{:?}", plan(&query, TimeRange { start: 0, end: 1 }).conditions)
    }

    #[test]
    fn filters_become_conditions_and_trace_level_parts_are_left_to_evaluation() {
        assert_eq!(planned("{}"), "[]");
        assert!(planned(r#"{ resource.service.name = "api" && span:duration > 1s }"#).contains("Service"));
        assert!(planned(r#"{ trace:rootService = "api" }"#) == "[]");
        let structural = planned(r#"{ name = "a" } >> { name = "b" }"#);
        assert!(structural.contains("\"a\"") && structural.contains("\"b\""), "{structural}");
        assert!(planned(r#"{ name = "a" } || { name = "b" }"#).starts_with("[Any(["));
    }

    #[test]
    fn a_union_of_several_spans_needs_one_span_of_either_side_per_pair() {
        let query = clew_traceql::parse(r#"{ name = "a" } > { name = "b" } || { name = "c" }"#).expect("parses");
        let conditions = plan(&query, TimeRange { start: 0, end: 1 }).conditions;
        let name =
            |n: &str| Condition::Test { target: Target::Name, test: Test::Compare(Op::Eq, Value::Str(n.into())) };
        let expected = [Condition::Any(vec![name("a"), name("c")]), Condition::Any(vec![name("b"), name("c")])];
        assert_eq!(format!("{conditions:?}"), format!("{expected:?}"), "never one span for both a and b");
        assert_eq!(planned(r#"{ name = "a" } > { name = "b" } || {}"#), "[]");
    }

    #[test]
    fn negation_flips_intrinsics_but_not_attributes() {
        assert!(planned(r#"{ !(name = "a") }"#).contains("Ne"));
        assert_eq!(planned(r#"{ !(span.a = "x") }"#), "[]");
    }
}
