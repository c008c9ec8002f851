//! Property tests: the parser never panics, and canonical text parses back to the same query.

#![allow(clippy::unwrap_used)]

use clew_traceql::{
    evaluate, parse, AggFunc, CmpOp, Field, FieldExpr, Intrinsic, IntrinsicType, KindValue, Pattern, Query, Scope,
    Span, SpansetExpr, Stage, Static, StatusValue, StructuralOp, Trace, Value,
};
use proptest::prelude::*;

const CASES: u32 = 256;

/// Pieces of TraceQL, valid and not, for building plausible and almost-plausible queries.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "{}",
    "(",
    ")",
    "&&",
    "||",
    "!",
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "=~",
    "!~",
    ">>",
    "<<",
    "~",
    "|",
    ",",
    "-",
    "+",
    "*",
    "&",
    "&>>",
    "!>",
    "span.foo",
    "span.http.status_code",
    "resource.service.name",
    ".x",
    "span.\"a b\"",
    "span.",
    "span:name",
    "span:id",
    "trace:id",
    "trace:rootService",
    "span:bogus",
    "event:name",
    "event.x",
    "name",
    "duration",
    "status",
    "kind",
    "statusMessage",
    "rootName",
    "traceDuration",
    "ok",
    "error",
    "unset",
    "server",
    "client",
    "internal",
    "nil",
    "true",
    "false",
    "minInt",
    "\"str\"",
    "\"a\\\"b\"",
    "`raw`",
    "\"(\"",
    "\".*\"",
    "\"0a1b\"",
    "1",
    "-2",
    "1.5",
    "1e3",
    "100ms",
    "1h30m",
    "1.5s",
    "0s",
    "99999999999999999999",
    "count()",
    "count",
    "avg(duration)",
    "sum(span.bytes)",
    "min",
    "max(",
    "select(",
    "select(span.a)",
    "by(",
    "rate()",
    "with",
    "coalesce()",
    "\n",
    " ",
    "µs",
    "\"",
    "`",
    "\\",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), prop::bool::ANY), 0..24).prop_map(|parts| {
        parts.into_iter().map(|(token, space)| if space { format!("{token} ") } else { token.to_owned() }).collect()
    })
}

/// Canonical text of a generated query with one edit: cut short, a token inserted, or a piece
/// removed. Near-valid input reaches deep into the parser, and often still parses.
fn mutated_query() -> impl Strategy<Value = String> {
    (query(), any::<prop::sample::Index>(), any::<prop::sample::Index>(), prop::sample::select(TOKENS), 0..3u8)
        .prop_map(|(q, at, len, token, edit)| {
            let chars: Vec<char> = q.to_string().chars().collect();
            let at = at.index(chars.len() + 1);
            let (head, tail) = chars.split_at(at);
            let head: String = head.iter().collect();
            match edit {
                0 => head,
                1 => format!("{head}{token}{}", tail.iter().collect::<String>()),
                _ => {
                    let skip = len.index(tail.len().min(8) + 1);
                    format!("{head}{}", tail[skip..].iter().collect::<String>())
                }
            }
        })
}

/// Whatever parses must print to text that parses back to the same query.
fn check_parse(input: &str) -> Result<(), TestCaseError> {
    if let Ok(query) = parse(input) {
        let printed = query.to_string();
        prop_assert_eq!(parse(&printed), Ok(query), "{:?} printed as {:?}", input, printed);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generated syntax trees
// ---------------------------------------------------------------------------------------------

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.:/-]{0,12}",
        "[a-z ]{1,6}\"[a-z\\\\]{0,3}",
        any::<String>().prop_filter("attribute names are not empty", |s| !s.is_empty()),
    ]
}

fn attribute() -> impl Strategy<Value = Field> {
    (prop_oneof![Just(Scope::Span), Just(Scope::Resource), Just(Scope::Any)], attribute_name())
        .prop_map(|(scope, name)| Field::Attribute { scope, name })
}

fn intrinsic() -> impl Strategy<Value = Intrinsic> {
    prop::sample::select(Intrinsic::ALL.to_vec())
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![attribute(), intrinsic().prop_map(Field::Intrinsic)]
}

fn finite_float() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()), Just(-0.0), Just(0.5), Just(1e300), Just(5e-324)]
}

fn any_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne, CmpOp::Gt, CmpOp::Ge, CmpOp::Lt, CmpOp::Le])
}

fn equality_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne])
}

fn regex_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![CmpOp::Match, CmpOp::NotMatch])
}

fn pattern() -> impl Strategy<Value = Static> {
    prop_oneof![
        prop::sample::select(vec!["GET|POST", ".*foo.*", "(?i)abc", "a+b?", "[0-9]{3}", "", "\\d+\\.\\d+"])
            .prop_map(str::to_owned),
        any::<String>().prop_map(|s| regex::escape(&s)),
    ]
    .prop_map(|source| Static::Regex(Pattern::new(&source).unwrap()))
}

fn status() -> impl Strategy<Value = Static> {
    prop::sample::select(vec![StatusValue::Ok, StatusValue::Error, StatusValue::Unset]).prop_map(Static::Status)
}

fn kind() -> impl Strategy<Value = Static> {
    prop::sample::select(vec![
        KindValue::Unspecified,
        KindValue::Internal,
        KindValue::Server,
        KindValue::Client,
        KindValue::Producer,
        KindValue::Consumer,
    ])
    .prop_map(Static::Kind)
}

fn hex_id(max_digits: usize) -> impl Strategy<Value = Static> {
    prop::collection::vec(prop::sample::select("0123456789abcdefABCDEF".chars().collect::<Vec<_>>()), 1..=max_digits)
        .prop_map(|digits| Static::Str(digits.into_iter().collect()))
}

/// A comparison the parser accepts: the value's type suits the field and the operator.
fn comparison() -> impl Strategy<Value = FieldExpr> {
    let on_attribute = (
        attribute(),
        prop_oneof![
            (any_op(), any::<String>().prop_map(Static::Str)),
            (any_op(), any::<i64>().prop_map(Static::Int)),
            (any_op(), finite_float().prop_map(Static::Float)),
            (equality_op(), any::<bool>().prop_map(Static::Bool)),
            (regex_op(), pattern()),
        ],
    )
        .prop_map(|(field, (op, value))| FieldExpr::Compare { field, op, value });
    let on_intrinsic = intrinsic().prop_flat_map(|i| {
        let field = Field::Intrinsic(i);
        let op_value = match i.value_type() {
            IntrinsicType::Str => {
                prop_oneof![(any_op(), any::<String>().prop_map(Static::Str)), (regex_op(), pattern())].boxed()
            }
            IntrinsicType::Duration => (any_op(), any::<u64>().prop_map(Static::Duration)).boxed(),
            IntrinsicType::Status => (equality_op(), status()).boxed(),
            IntrinsicType::Kind => (equality_op(), kind()).boxed(),
            IntrinsicType::Id { max_digits } => (equality_op(), hex_id(max_digits)).boxed(),
        };
        op_value.prop_map(move |(op, value)| FieldExpr::Compare { field: field.clone(), op, value })
    });
    prop_oneof![on_attribute, on_intrinsic]
}

fn condition() -> impl Strategy<Value = FieldExpr> {
    let leaf = prop_oneof![
        4 => comparison(),
        1 => (field(), any::<bool>()).prop_map(|(field, exists)| FieldExpr::Exists { field, exists }),
        1 => attribute().prop_map(FieldExpr::Truthy),
        1 => any::<bool>().prop_map(|b| FieldExpr::Static(Static::Bool(b))),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| FieldExpr::and(a, b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| FieldExpr::or(a, b)),
            inner.prop_map(FieldExpr::negate),
        ]
    })
}

fn aggregate() -> impl Strategy<Value = Stage> {
    let number = prop_oneof![any::<i64>().prop_map(Static::Int), finite_float().prop_map(Static::Float)];
    let count = (any_op(), number.clone()).prop_map(|(op, value)| Stage::Aggregate {
        func: AggFunc::Count,
        field: None,
        op,
        value,
    });
    let func = prop::sample::select(vec![AggFunc::Avg, AggFunc::Min, AggFunc::Max, AggFunc::Sum]);
    let over_attribute = (func.clone(), attribute(), any_op(), number)
        .prop_map(|(func, field, op, value)| Stage::Aggregate { func, field: Some(field), op, value });
    let over_duration =
        (func, prop::sample::select(vec![Intrinsic::Duration, Intrinsic::TraceDuration]), any_op(), any::<u64>())
            .prop_map(|(func, i, op, nanos)| Stage::Aggregate {
                func,
                field: Some(Field::Intrinsic(i)),
                op,
                value: Static::Duration(nanos),
            });
    prop_oneof![count, over_attribute, over_duration]
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        condition().prop_map(Stage::Filter),
        aggregate(),
        prop::collection::vec(field(), 1..4).prop_map(Stage::Select),
    ]
}

fn structural_op() -> impl Strategy<Value = StructuralOp> {
    prop::sample::select(vec![
        StructuralOp::Descendant,
        StructuralOp::Child,
        StructuralOp::Ancestor,
        StructuralOp::Parent,
        StructuralOp::Sibling,
    ])
}

fn spanset() -> impl Strategy<Value = SpansetExpr> {
    condition().prop_map(SpansetExpr::Filter).prop_recursive(4, 16, 2, |inner| {
        let boxed = |e| Box::new(e);
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(move |(a, b)| SpansetExpr::And(boxed(a), boxed(b))),
            (inner.clone(), inner.clone()).prop_map(move |(a, b)| SpansetExpr::Or(boxed(a), boxed(b))),
            (structural_op(), inner.clone(), inner.clone()).prop_map(move |(op, a, b)| SpansetExpr::Structural(
                op,
                boxed(a),
                boxed(b)
            )),
            (inner, prop::collection::vec(stage(), 1..3))
                .prop_map(move |(source, stages)| SpansetExpr::Pipeline(boxed(source), stages)),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    spanset().prop_map(|root| Query { root })
}

fn small_trace() -> Trace {
    let span = |n: u8, parent: Option<u8>, name: &str| Span {
        span_id: [0, 0, 0, 0, 0, 0, 0, n],
        parent_span_id: parent.map(|p| [0, 0, 0, 0, 0, 0, 0, p]),
        name: name.to_owned(),
        start_unix_nano: u64::from(n) * 10,
        end_unix_nano: u64::from(n) * 10 + 25,
        service_name: "svc".to_owned(),
        span_attributes: vec![
            ("foo".to_owned(), Value::Int(i64::from(n))),
            ("x".to_owned(), Value::Bool(n.is_multiple_of(2))),
        ],
        resource_attributes: vec![("service.name".to_owned(), Value::Str("svc".to_owned()))],
        ..Span::default()
    };
    Trace {
        trace_id: [7; 16],
        spans: vec![span(1, None, "root"), span(2, Some(1), "a"), span(3, Some(1), "b"), span(4, Some(3), "c")],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(input in any::<String>()) {
        check_parse(&input)?;
    }

    #[test]
    fn parse_never_panics_on_token_soup(input in token_soup()) {
        check_parse(&input)?;
    }

    #[test]
    fn parse_never_panics_on_edited_queries(input in mutated_query()) {
        check_parse(&input)?;
    }

    #[test]
    fn canonical_text_round_trips(q in query()) {
        let text = q.to_string();
        prop_assert_eq!(parse(&text), Ok(q), "canonical text: {}", text);
    }

    #[test]
    fn evaluation_never_panics_and_returns_ascending_spans(q in query()) {
        let trace = small_trace();
        for set in evaluate(&q, &trace).unwrap_or_default() {
            prop_assert!(set.spans.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(set.spans.iter().all(|&i| i < trace.spans.len()));
            prop_assert_eq!(set.spans.len(), set.selected.len());
        }
    }
}
