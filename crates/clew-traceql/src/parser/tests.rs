use crate::{
    parse, AggFunc, CmpOp, Field, FieldExpr, Intrinsic, KindValue, ParseError, Pattern, Query, Scope, SpansetExpr,
    Stage, Static, StatusValue, StructuralOp,
};

fn ok(query: &str) -> Query {
    let parsed = parse(query).unwrap_or_else(|e| panic!("{query:?} should parse: {e}"));
    let printed = parsed.to_string();
    assert_eq!(parse(&printed), Ok(parsed.clone()), "{query:?} printed as {printed:?} does not parse back");
    parsed
}

fn cond(query: &str) -> FieldExpr {
    match ok(query).root {
        SpansetExpr::Filter(cond) => cond,
        other => panic!("{query:?} is not a single filter: {other:?}"),
    }
}

fn err(query: &str) -> ParseError {
    match parse(query) {
        Ok(q) => panic!("{query:?} should not parse, got {q:?}"),
        Err(e) => e,
    }
}

fn err_contains(query: &str, expected: &str) -> ParseError {
    let e = err(query);
    assert!(e.message.contains(expected), "{query:?}: {:?} does not contain {expected:?}", e.message);
    e
}

fn unsupported(query: &str) {
    let e = err(query);
    assert!(e.message.starts_with("not supported: "), "{query:?}: {e}");
}

fn canonical(query: &str) -> String {
    ok(query).to_string()
}

fn cmp(field: Field, op: CmpOp, value: Static) -> FieldExpr {
    FieldExpr::Compare { field, op, value }
}

fn intrinsic(i: Intrinsic) -> Field {
    Field::Intrinsic(i)
}

fn filter(cond: FieldExpr) -> SpansetExpr {
    SpansetExpr::Filter(cond)
}

fn truthy(name: &str) -> FieldExpr {
    FieldExpr::Truthy(Field::any(name))
}

fn all() -> SpansetExpr {
    filter(FieldExpr::Static(Static::Bool(true)))
}

fn str_(s: &str) -> Static {
    Static::Str(s.to_owned())
}

fn b<T>(t: T) -> Box<T> {
    Box::new(t)
}

// ---------------------------------------------------------------------------------------------
// Filters, fields and literals
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_and_true_filters_are_the_same() {
    for q in ["{}", "{ }", "{ true }", "  {\n}\n"] {
        assert_eq!(ok(q).root, all(), "{q}");
    }
    assert_eq!(canonical("{ true }"), "{}");
    assert_eq!(cond("{ false }"), FieldExpr::Static(Static::Bool(false)));
    assert_eq!(canonical("{ false }"), "{ false }");
}

#[test]
fn intrinsics_short_and_scoped() {
    let cases = [
        ("name", "span:name", Intrinsic::Name, str_("GET")),
        ("status", "span:status", Intrinsic::Status, Static::Status(StatusValue::Error)),
        ("statusMessage", "span:statusMessage", Intrinsic::StatusMessage, str_("boom")),
        ("kind", "span:kind", Intrinsic::Kind, Static::Kind(KindValue::Server)),
        ("duration", "span:duration", Intrinsic::Duration, Static::Duration(100_000_000)),
        ("rootServiceName", "trace:rootService", Intrinsic::RootServiceName, str_("gw")),
        ("rootName", "trace:rootName", Intrinsic::RootName, str_("GET")),
        ("traceDuration", "trace:duration", Intrinsic::TraceDuration, Static::Duration(100_000_000)),
    ];
    for (short, scoped, i, value) in cases {
        let expected = cmp(intrinsic(i), CmpOp::Eq, value.clone());
        assert_eq!(cond(&format!("{{ {short} = {value} }}")), expected);
        assert_eq!(cond(&format!("{{ {scoped} = {value} }}")), expected);
        assert_eq!(canonical(&format!("{{ {short} = {value} }}")), format!("{{ {scoped} = {value} }}"));
    }
    assert_eq!(
        cond(r#"{ span:id = "00f067aa0ba902b7" }"#),
        cmp(intrinsic(Intrinsic::SpanId), CmpOp::Eq, str_("00f067aa0ba902b7"))
    );
    assert_eq!(cond(r#"{ trace:id != "1234" }"#), cmp(intrinsic(Intrinsic::TraceId), CmpOp::Ne, str_("1234")));
}

#[test]
fn attribute_names() {
    let cases = [
        ("span.http.status_code", Field::span("http.status_code")),
        ("resource.service.name", Field::resource("service.name")),
        (".foo", Field::any("foo")),
        (r#"span."name with spaces""#, Field::span("name with spaces")),
        (r#"span.attribute."with space""#, Field::span("attribute.with space")),
        (r#"resource."quote \" and \\ slash""#, Field::resource(r#"quote " and \ slash"#)),
        ("span.a-b/c:d.e", Field::span("a-b/c:d.e")),
        (".span.x", Field::any("span.x")),
        ("span.数据", Field::span("数据")),
    ];
    for (text, field) in cases {
        assert_eq!(cond(&format!("{{ {text} = 1 }}")), cmp(field.clone(), CmpOp::Eq, Static::Int(1)), "{text}");
        // Attribute names end at operators, without spaces.
        assert_eq!(cond(&format!("{{{text}=1}}")), cmp(field, CmpOp::Eq, Static::Int(1)), "{text}");
    }
    assert_eq!(canonical(r#"{ span."a b" = 1 }"#), r#"{ span."a b" = 1 }"#);
    assert_eq!(canonical(r#"{ span."ab" = 1 }"#), "{ span.ab = 1 }");
    assert_eq!(cond("{ .a!=1 }"), cmp(Field::any("a"), CmpOp::Ne, Static::Int(1)));
    assert_eq!(cond("{ .a=~\"x\" }"), cmp(Field::any("a"), CmpOp::Match, Static::Regex(Pattern::new("x").unwrap())));
}

#[test]
fn string_literals() {
    assert_eq!(
        cond(r#"{ name = "a\"b\\c\nd\te\rf\'g" }"#),
        cmp(intrinsic(Intrinsic::Name), CmpOp::Eq, str_("a\"b\\c\nd\te\rf'g"))
    );
    assert_eq!(
        cond(r#"{ name = `raw \n "quoted"` }"#),
        cmp(intrinsic(Intrinsic::Name), CmpOp::Eq, str_(r#"raw \n "quoted""#))
    );
    assert_eq!(cond("{ name = \"multi\nline\" }"), cmp(intrinsic(Intrinsic::Name), CmpOp::Eq, str_("multi\nline")));
    assert_eq!(canonical(r#"{ name = `a"b` }"#), r#"{ span:name = "a\"b" }"#);
    err_contains(r#"{ name = "a\qb" }"#, "found `\\` followed by `q`");
}

#[test]
fn numeric_literals() {
    let value = |q: &str| match cond(q) {
        FieldExpr::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("{ .a = 42 }"), Static::Int(42));
    assert_eq!(value("{ .a = -42 }"), Static::Int(-42));
    assert_eq!(value("{ .a = - 42 }"), Static::Int(-42));
    assert_eq!(value("{ .a = 9223372036854775807 }"), Static::Int(i64::MAX));
    assert_eq!(value("{ .a = -9223372036854775808 }"), Static::Int(i64::MIN));
    assert_eq!(value("{ .a = minInt }"), Static::Int(i64::MIN));
    assert_eq!(value("{ .a = maxInt }"), Static::Int(i64::MAX));
    assert_eq!(value("{ .a = 1.5 }"), Static::Float(1.5));
    assert_eq!(value("{ .a = -0.25 }"), Static::Float(-0.25));
    assert_eq!(value("{ .a = 2e3 }"), Static::Float(2000.0));
    assert_eq!(value("{ .a = 2.5E-3 }"), Static::Float(0.0025));
    assert_eq!(value("{ .a = true }"), Static::Bool(true));
    assert_eq!(canonical("{ .a = 1.0 }"), "{ .a = 1.0 }");
    assert_eq!(canonical("{ .a = 1e300 }"), "{ .a = 1e300 }");
    err_contains("{ .a = 9223372036854775808 }", "too large");
    err_contains("{ .a = -9223372036854775809 }", "too small");
    err_contains("{ .a = 99999999999999999999999 }", "too large");
    err_contains("{ .a = 1e999 }", "out of range");
    err_contains("{ .a = 10x }", "invalid number `10x`");
    err_contains("{ .a = 1e }", "invalid number `1e`");
}

#[test]
fn durations() {
    let nanos = |q: &str| match cond(&format!("{{ duration > {q} }}")) {
        FieldExpr::Compare { value: Static::Duration(n), .. } => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(nanos("7ns"), 7);
    assert_eq!(nanos("7us"), 7_000);
    assert_eq!(nanos("7µs"), 7_000);
    assert_eq!(nanos("7ms"), 7_000_000);
    assert_eq!(nanos("7s"), 7_000_000_000);
    assert_eq!(nanos("7m"), 420_000_000_000);
    assert_eq!(nanos("7h"), 25_200_000_000_000);
    assert_eq!(nanos("1d"), 86_400_000_000_000);
    assert_eq!(nanos("1.5s"), 1_500_000_000);
    assert_eq!(nanos("0.000000001s"), 1);
    assert_eq!(nanos("1h30m"), 5_400_000_000_000);
    assert_eq!(nanos("1m30.5s"), 90_500_000_000);
    assert_eq!(nanos("0s"), 0);
    for (written, printed) in
        [("1.5s", "1500ms"), ("1h30m", "90m"), ("120m", "2h"), ("0ms", "0s"), ("1001ns", "1001ns")]
    {
        assert_eq!(canonical(&format!("{{ duration > {written} }}")), format!("{{ span:duration > {printed} }}"));
    }
    err_contains("{ duration > 1000000y }", "too large");
    err_contains("{ duration > 5sec }", "invalid duration `5sec`");
    err_contains("{ duration > 1m5 }", "invalid duration `1m5`");
    unsupported("{ duration > -5s }");
}

#[test]
fn statuses_kinds_and_booleans() {
    for (word, status) in [("ok", StatusValue::Ok), ("error", StatusValue::Error), ("unset", StatusValue::Unset)] {
        assert_eq!(
            cond(&format!("{{ status = {word} }}")),
            cmp(intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(status))
        );
    }
    for (word, kind) in [
        ("unspecified", KindValue::Unspecified),
        ("internal", KindValue::Internal),
        ("server", KindValue::Server),
        ("client", KindValue::Client),
        ("producer", KindValue::Producer),
        ("consumer", KindValue::Consumer),
    ] {
        assert_eq!(
            cond(&format!("{{ kind != {word} }}")),
            cmp(intrinsic(Intrinsic::Kind), CmpOp::Ne, Static::Kind(kind))
        );
    }
    assert_eq!(cond("{ span.is_cached = false }"), cmp(Field::span("is_cached"), CmpOp::Eq, Static::Bool(false)));
}

#[test]
fn every_comparison_operator() {
    for (sym, op) in
        [("=", CmpOp::Eq), ("!=", CmpOp::Ne), (">", CmpOp::Gt), (">=", CmpOp::Ge), ("<", CmpOp::Lt), ("<=", CmpOp::Le)]
    {
        assert_eq!(cond(&format!("{{ .a {sym} 1 }}")), cmp(Field::any("a"), op, Static::Int(1)));
        assert_eq!(cond(&format!("{{ name {sym} \"x\" }}")), cmp(intrinsic(Intrinsic::Name), op, str_("x")));
    }
    let pattern = Static::Regex(Pattern::new("GET.*").unwrap());
    assert_eq!(cond(r#"{ name =~ "GET.*" }"#), cmp(intrinsic(Intrinsic::Name), CmpOp::Match, pattern.clone()));
    assert_eq!(cond(r#"{ .m !~ "GET.*" }"#), cmp(Field::any("m"), CmpOp::NotMatch, pattern));
}

#[test]
fn literal_on_the_left_is_flipped() {
    assert_eq!(cond("{ 200 < span.code }"), cmp(Field::span("code"), CmpOp::Gt, Static::Int(200)));
    assert_eq!(
        cond("{ 1s >= duration }"),
        cmp(intrinsic(Intrinsic::Duration), CmpOp::Le, Static::Duration(1_000_000_000))
    );
    assert_eq!(
        cond("{ error = status }"),
        cmp(intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(StatusValue::Error))
    );
    unsupported(r#"{ "a.*" =~ name }"#);
}

#[test]
fn nil_checks() {
    assert_eq!(cond("{ span.foo != nil }"), FieldExpr::Exists { field: Field::span("foo"), exists: true });
    assert_eq!(cond("{ span.foo = nil }"), FieldExpr::Exists { field: Field::span("foo"), exists: false });
    assert_eq!(cond("{ nil != .foo }"), FieldExpr::Exists { field: Field::any("foo"), exists: true });
    assert_eq!(cond("{ name != nil }"), FieldExpr::Exists { field: intrinsic(Intrinsic::Name), exists: true });
    err_contains("{ .foo > nil }", "`nil` compares only with `=` and `!=`, not `>`");
    err_contains("{ nil }", "expected `=` or `!=` after `nil`, found `}`");
}

#[test]
fn boolean_attributes_and_negation() {
    assert_eq!(cond("{ span.is_cached }"), FieldExpr::Truthy(Field::span("is_cached")));
    assert_eq!(cond("{ !span.is_cached }"), FieldExpr::negate(FieldExpr::Truthy(Field::span("is_cached"))));
    assert_eq!(cond("{ !!.a }"), FieldExpr::negate(FieldExpr::negate(truthy("a"))));
    assert_eq!(cond("{ !(.a = 1) }"), FieldExpr::negate(cmp(Field::any("a"), CmpOp::Eq, Static::Int(1))));
    assert_eq!(cond("{ (.a) = 1 }"), cmp(Field::any("a"), CmpOp::Eq, Static::Int(1)));
    assert_eq!(canonical("{ !(.a = 1) }"), "{ !(.a = 1) }");
    assert_eq!(canonical("{ !(.a) }"), "{ !.a }");
    // `!` binds tighter than `=` (as in Tempo), so this would compare a negation.
    unsupported("{ !span.a = 1 }");
    unsupported("{ !name = \"x\" }");
    err_contains("{ name }", "expected a comparison operator after `name`, found `}`");
    err_contains("{ 1 }", "expected a condition, found the literal `1` on its own");
}

#[test]
fn field_expression_precedence() {
    let (a, b, c) = (truthy("a"), truthy("b"), truthy("c"));
    // `&&` and `||` bind equally and group from the left, as in Tempo's grammar.
    assert_eq!(cond("{ .a || .b && .c }"), FieldExpr::and(FieldExpr::or(a.clone(), b.clone()), c.clone()));
    assert_eq!(cond("{ .a || (.b && .c) }"), FieldExpr::or(a.clone(), FieldExpr::and(b.clone(), c.clone())));
    assert_eq!(cond("{ .a && .b || .c }"), FieldExpr::or(FieldExpr::and(a.clone(), b.clone()), c.clone()));
    assert_eq!(cond("{ (.a || .b) && .c }"), FieldExpr::and(FieldExpr::or(a.clone(), b.clone()), c.clone()));
    assert_eq!(cond("{ .a && .b && .c }"), FieldExpr::and(FieldExpr::and(a.clone(), b.clone()), c.clone()));
    assert_eq!(cond("{ .a && (.b && .c) }"), FieldExpr::and(a.clone(), FieldExpr::and(b.clone(), c.clone())));
    assert_eq!(cond("{ !.a && .b }"), FieldExpr::and(FieldExpr::negate(a.clone()), b.clone()));
    assert_eq!(
        cond("{ .x = 1 && .y = 2 || .z = 3 }"),
        FieldExpr::or(
            FieldExpr::and(
                cmp(Field::any("x"), CmpOp::Eq, Static::Int(1)),
                cmp(Field::any("y"), CmpOp::Eq, Static::Int(2))
            ),
            cmp(Field::any("z"), CmpOp::Eq, Static::Int(3)),
        )
    );
    assert_eq!(canonical("{ (.a || .b) && .c }"), "{ .a || .b && .c }");
    assert_eq!(canonical("{ .a || (.b && .c) }"), "{ .a || (.b && .c) }");
    assert_eq!(canonical("{ .a && (.b && .c) }"), "{ .a && (.b && .c) }");
    assert_eq!(canonical("{ ((.a)) }"), "{ .a }");
}

// ---------------------------------------------------------------------------------------------
// Spanset expressions and pipelines
// ---------------------------------------------------------------------------------------------

fn named(name: &str) -> SpansetExpr {
    filter(cmp(intrinsic(Intrinsic::Name), CmpOp::Eq, str_(name)))
}

#[test]
fn spanset_operators() {
    let (a, c) = (named("a"), named("c"));
    assert_eq!(ok(r#"{ name = "a" } && { name = "c" }"#).root, SpansetExpr::And(b(a.clone()), b(c.clone())));
    assert_eq!(ok(r#"{ name = "a" } || { name = "c" }"#).root, SpansetExpr::Or(b(a.clone()), b(c.clone())));
    for (sym, op) in [
        (">>", StructuralOp::Descendant),
        (">", StructuralOp::Child),
        ("<<", StructuralOp::Ancestor),
        ("<", StructuralOp::Parent),
        ("~", StructuralOp::Sibling),
    ] {
        let q = format!(r#"{{ name = "a" }} {sym} {{ name = "c" }}"#);
        assert_eq!(ok(&q).root, SpansetExpr::Structural(op, b(a.clone()), b(c.clone())), "{q}");
        let tight = format!(r#"{{name="a"}}{sym}{{name="c"}}"#);
        assert_eq!(ok(&tight).root, SpansetExpr::Structural(op, b(a.clone()), b(c.clone())), "{tight}");
    }
}

#[test]
fn spanset_precedence_follows_tempo() {
    let (x, y, z) = (named("x"), named("y"), named("z"));
    let s = |op, l, r| SpansetExpr::Structural(op, b(l), b(r));
    // Structural operators bind tighter than && and ||.
    assert_eq!(
        ok(r#"{ name = "x" } && { name = "y" } >> { name = "z" }"#).root,
        SpansetExpr::And(b(x.clone()), b(s(StructuralOp::Descendant, y.clone(), z.clone())))
    );
    assert_eq!(
        ok(r#"{ name = "x" } >> { name = "y" } && { name = "z" }"#).root,
        SpansetExpr::And(b(s(StructuralOp::Descendant, x.clone(), y.clone())), b(z.clone()))
    );
    // && and || bind equally, left to right.
    assert_eq!(
        ok(r#"{ name = "x" } || { name = "y" } && { name = "z" }"#).root,
        SpansetExpr::And(b(SpansetExpr::Or(b(x.clone()), b(y.clone()))), b(z.clone()))
    );
    assert_eq!(
        ok(r#"{ name = "x" } && { name = "y" } || { name = "z" }"#).root,
        SpansetExpr::Or(b(SpansetExpr::And(b(x.clone()), b(y.clone()))), b(z.clone()))
    );
    // Structural operators are left-associative among themselves.
    assert_eq!(
        ok(r#"{ name = "x" } ~ { name = "y" } >> { name = "z" }"#).root,
        s(StructuralOp::Descendant, s(StructuralOp::Sibling, x.clone(), y.clone()), z.clone())
    );
    assert_eq!(
        ok(r#"{ name = "x" } > ({ name = "y" } > { name = "z" })"#).root,
        s(StructuralOp::Child, x.clone(), s(StructuralOp::Child, y.clone(), z.clone()))
    );
    assert_eq!(
        canonical(r#"{ name = "x" } || ({ name = "y" } && { name = "z" })"#),
        r#"{ span:name = "x" } || ({ span:name = "y" } && { span:name = "z" })"#
    );
    assert_eq!(
        canonical(r#"({ name = "x" } || { name = "y" }) >> { name = "z" }"#),
        r#"({ span:name = "x" } || { span:name = "y" }) >> { span:name = "z" }"#
    );
    assert_eq!(canonical("{} >> {} > {}"), "{} >> {} > {}");
    assert_eq!(canonical("{} >> ({} > {})"), "{} >> ({} > {})");
}

#[test]
fn pipelines_and_aggregates() {
    let count = |op, value| Stage::Aggregate { func: AggFunc::Count, field: None, op, value };
    assert_eq!(
        ok(r#"{ name = "a" } | count() > 2"#).root,
        SpansetExpr::Pipeline(b(named("a")), vec![count(CmpOp::Gt, Static::Int(2))])
    );
    assert_eq!(ok("count() > 2").root, SpansetExpr::Pipeline(b(all()), vec![count(CmpOp::Gt, Static::Int(2))]));
    assert_eq!(canonical("count() >= 2.5"), "{} | count() >= 2.5");
    assert_eq!(
        ok("{ } | avg(duration) > 1s").root,
        SpansetExpr::Pipeline(
            b(all()),
            vec![Stage::Aggregate {
                func: AggFunc::Avg,
                field: Some(intrinsic(Intrinsic::Duration)),
                op: CmpOp::Gt,
                value: Static::Duration(1_000_000_000),
            }]
        )
    );
    for (name, func) in [("avg", AggFunc::Avg), ("min", AggFunc::Min), ("max", AggFunc::Max), ("sum", AggFunc::Sum)] {
        assert_eq!(
            ok(&format!("{{}} | {name}(span.bytes) >= 100")).root,
            SpansetExpr::Pipeline(
                b(all()),
                vec![Stage::Aggregate {
                    func,
                    field: Some(Field::span("bytes")),
                    op: CmpOp::Ge,
                    value: Static::Int(100)
                }]
            )
        );
    }
    assert_eq!(
        ok(r#"{ name = "a" } | { status = error } | select(span.x, resource.y, name) | count() = 1"#).root,
        SpansetExpr::Pipeline(
            b(named("a")),
            vec![
                Stage::Filter(cmp(intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(StatusValue::Error))),
                Stage::Select(vec![Field::span("x"), Field::resource("y"), intrinsic(Intrinsic::Name)]),
                count(CmpOp::Eq, Static::Int(1)),
            ]
        )
    );
    assert_eq!(ok("select(span.x)").root, SpansetExpr::Pipeline(b(all()), vec![Stage::Select(vec![Field::span("x")])]));
    assert_eq!(
        canonical(r#"{ status = error } | select(span.http.url, trace:id)"#),
        "{ span:status = error } | select(span.http.url, trace:id)"
    );
    assert_eq!(canonical("{} | count() > -1"), "{} | count() > -1");
}

#[test]
fn parenthesised_pipelines_combine() {
    let pipeline = SpansetExpr::Pipeline(
        b(named("a")),
        vec![Stage::Aggregate { func: AggFunc::Count, field: None, op: CmpOp::Gt, value: Static::Int(1) }],
    );
    assert_eq!(
        ok(r#"({ name = "a" } | count() > 1) && { name = "b" }"#).root,
        SpansetExpr::And(b(pipeline.clone()), b(named("b")))
    );
    assert_eq!(
        ok(r#"({ name = "a" } | count() > 1) | select(span.x)"#).root,
        SpansetExpr::Pipeline(b(pipeline.clone()), vec![Stage::Select(vec![Field::span("x")])])
    );
    assert_eq!(
        canonical(r#"({ name = "a" } | count() > 1) >> { name = "b" }"#),
        r#"({ span:name = "a" } | count() > 1) >> { span:name = "b" }"#
    );
    assert_eq!(ok(r#"(({ name = "a" }))"#).root, named("a"));
    assert_eq!(
        ok("(count() > 1)").root,
        SpansetExpr::Pipeline(
            b(all()),
            vec![Stage::Aggregate { func: AggFunc::Count, field: None, op: CmpOp::Gt, value: Static::Int(1) }]
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn error_display_names_line_column_expected_and_found() {
    assert_eq!(err("{ span.foo = }").to_string(), "line 1, column 14: expected a value after `=`, found `}`");
    assert_eq!(err("").to_string(), "line 1, column 1: expected a spanset `{ ... }` or `(`, found end of input");
    assert_eq!(err("{ .a = 1 ").to_string(), "line 1, column 10: expected `&&`, `||` or `}`, found end of input");
    assert_eq!(
        err("{ .a = 1 } {}").message,
        "expected end of query or an operator (`&&`, `||`, `>`, `>>`, `<`, `<<`, `~`, `|`), found `{`"
    );
    assert_eq!(
        err("{ .a = 1 } && }").to_string(),
        "line 1, column 15: expected a spanset `{ ... }` or `(` after `&&`, found `}`"
    );
    assert_eq!(err("{ .a = 1 && }").to_string(), "line 1, column 13: expected a condition after `&&`, found `}`");
    assert_eq!(err("{ .a = 1 } )").message, "expected end of query, found `)` without a matching `(`");
    assert_eq!(err("({}").message, "expected `)` to close the `(` at line 1, column 1, found end of input");
    assert_eq!(err("{} |").message, "expected a pipeline stage after `|` (`{ ... }`, `count() > 2`, `avg(span:duration) > 1s` or `select(...)`), found end of input");
    assert_eq!(err("{ span. = 1 }").message, "expected an attribute name after `span.`, found ` `");
    assert_eq!(err("{ span.\"\" = 1 }").message, "expected an attribute name after `span.`, found an empty name");
    assert_eq!(err("{ .a & .b }").message, "expected `&&` after `&`, found ` `");
    assert_eq!(err("{ .a = 1 ; }").message, "unexpected character `;`");
}

#[test]
fn error_positions_across_lines() {
    let e = err("{\n  span.a = 1 &&\n   }");
    assert_eq!((e.line, e.column), (3, 4), "{e}");
    assert_eq!(e.message, "expected a condition after `&&`, found `}`");

    let e = err("{ span.a = 1 }\n>>\n{ duration = \"slow\" }");
    assert_eq!(
        e.to_string(),
        "line 3, column 14: `duration` compares with a duration like 100ms, not a string `\"slow\"`"
    );

    let e = err("{ name = \"multi\nline\" } && { nope = 1 }");
    assert_eq!((e.line, e.column), (2, 14), "{e}");

    let e = err("{\tname =\n\n\t\t\"unterminated }");
    assert_eq!((e.line, e.column), (3, 3), "{e}");
    assert!(e.message.starts_with("unterminated string"), "{e}");

    let e = err("{ span.\"open }");
    assert_eq!((e.line, e.column), (1, 8), "{e}");

    let multi = "{\n  resource.service.name = \"frontend\" &&\n  span:duration > 1.5s\n}\n| count() > 2\n";
    ok(multi);
}

#[test]
fn type_errors() {
    err_contains(r#"{ duration = "x" }"#, "`duration` compares with a duration like 100ms, not a string");
    err_contains("{ span:duration > 100 }", "`span:duration` compares with a duration like 100ms, not an integer");
    err_contains("{ trace:duration > 1.5 }", "compares with a duration like 100ms, not a float");
    err_contains(r#"{ status = "error" }"#, "`status` compares with ok, error or unset, not a string");
    err_contains("{ status > ok }", "`status` compares only with `=` and `!=`, not `>`");
    err_contains(
        "{ kind = ok }",
        "`kind` compares with unspecified, internal, server, client, producer or consumer, not a status",
    );
    err_contains("{ kind < server }", "`kind` compares only with `=` and `!=`, not `<`");
    err_contains("{ name = 1 }", "`name` compares with a string like \"GET /\", not an integer");
    err_contains("{ name =~ 1 }", "`=~` needs a string regex, not an integer `1`");
    err_contains("{ .a !~ true }", "`!~` needs a string regex, not a boolean");
    err_contains(r#"{ duration =~ "1.*" }"#, "`=~` needs a string field; `duration` is a duration");
    err_contains(r#"{ span:id = "xyz" }"#, "`span:id` compares with a string of 1 to 16 hex digits");
    err_contains(r#"{ span:id = "00000000000000001" }"#, "1 to 16 hex digits");
    err_contains(&format!("{{ trace:id = \"{}\" }}", "a".repeat(33)), "1 to 32 hex digits");
    err_contains(r#"{ span:id > "01" }"#, "`span:id` compares only with `=` and `!=`");
    err_contains("{ trace:id = 1 }", "`trace:id` compares with a hex string");
    err_contains("{ span.a = error }", "`error` is a span status value");
    err_contains("{ span.a = server }", "`server` is a span kind value");
    err_contains("{ span.a > 1s }", "attributes have no duration type");
    err_contains("{ span.a > true }", "booleans compare only with `=` and `!=`, not `>`");
    err_contains("{} | avg(name) > 1", "`avg` needs a numeric field or a duration; `name` is a string");
    err_contains("{} | max(status) > 1", "`status` is a status");
    err_contains("{} | count() > 1s", "`count()` compares with a number, not a duration");
    err_contains("{} | avg(duration) > 1", "`avg(duration)` compares with a duration like 100ms, not an integer");
    err_contains(r#"{} | sum(span.x) > "a""#, "`sum(span.x)` compares with a number, not a string");
    err_contains("{} | count() =~ 1", "compares with =, !=, <, <=, > or >=, not `=~`");
    err_contains("{} | count(span.a) > 1", "count() takes no argument");
    err_contains("{} | avg() > 1", "expected a field inside `avg(...)`, found `)`");
    err_contains("{} | count() 1", "expected a comparison like `> 2` after `count()`, found `1`");
    err_contains("{} | select()", "expected a field inside `select(...)`, found `)`");
    err_contains("{} | select(span.a span.b)", "expected `,` or `)` in `select(...)`, found `span.b`");
    err_contains("{} | select(true)", "expected a field inside `select(...)`, found `true`");
}

#[test]
fn regex_literals_compile_anchored_or_fail_with_the_pattern_named() {
    let FieldExpr::Compare { value: Static::Regex(p), .. } = cond(r#"{ name =~ "GET|POST" }"#) else { panic!() };
    assert!(p.is_match("GET") && p.is_match("POST"));
    assert!(!p.is_match("GET /x") && !p.is_match("xPOST"));
    assert_eq!(p.as_str(), "GET|POST");
    let e = err_contains(r#"{ name =~ "a(b" }"#, "invalid regex \"a(b\"");
    assert_eq!((e.line, e.column), (1, 11));
    err_contains(r#"{ name =~ "(?x)a#" }"#, "ends inside an `(?x)` comment");
    err_contains(r#"{ name =~ "a)|(b" }"#, "invalid regex \"a)|(b\"");
    // A pattern that only compiles when wrapped must not sneak through.
    assert!(Pattern::new("a)|(b").is_err());
}

#[test]
fn unknown_intrinsics_are_named() {
    let e = err_contains("{ foo = 1 }", "unknown intrinsic `foo`; known: name, status,");
    assert!(e.message.contains("span:duration") && e.message.contains("trace:rootService"), "{e}");
    let e = err_contains("{ span:foo = 1 }", "unknown intrinsic `span:foo`; known:");
    assert!(e.message.starts_with("not supported: "), "{e}");
    err_contains("{ trace:rootServiceName = \"x\" }", "unknown intrinsic `trace:rootServiceName`");
    err_contains("{ foo:bar = 1 }", "unknown intrinsic scope `foo:`");
    err_contains("{ resource:name = \"x\" }", "unknown intrinsic scope `resource:`");
}

#[test]
fn unsupported_features_are_rejected_not_ignored() {
    for q in [
        "{ span.a + 1 > 2 }",
        "{ span.a > 10 * 1024 }",
        "{ span.a > 10 - 2 }",
        "{ -span.a > 1 }",
        "{ span.a = span.b }",
        "{ name = span.b }",
        "{ 1 = 2 }",
        "{ (.a = 1) = true }",
        "{} | rate()",
        "{} | count_over_time() by (span.a)",
        "{} | quantile_over_time(duration, .9)",
        "{} | histogram_over_time(duration)",
        "{} | by(span.a) | count() > 1",
        "{} | coalesce()",
        "{} | topk(10)",
        "{} with (most_recent=true)",
        "{ span:parentID = \"01\" }",
        "{ span:childCount > 1 }",
        "{ parent = nil }",
        "{ childCount > 1 }",
        "{ event:name = \"exception\" }",
        "{ link:traceID = \"01\" }",
        "{ instrumentation:name = \"grpc\" }",
        "{ event.exception.message = \"x\" }",
        "{ link.foo = 1 }",
        "{ instrumentation.language = \"java\" }",
        "{ parent.span.foo = 1 }",
        "{} !>> {}",
        "{} !> {}",
        "{} !<< {}",
        "{} !< {}",
        "{} !~ {}",
        "{} &>> {}",
        "{} &> {}",
        "{} &<< {}",
        "{} &< {}",
        "{} &~ {}",
        "{ .a } | count() > 1 && { .b }",
        "{ .a } | { .b } >> { .c }",
        "{ .a } | ({ .b } && { .c })",
        "{} | count() + 1 > 2",
        "{} | count() > 1 + 1",
        "{} | avg(span.a + span.b) > 1",
        "{} | 2 < count()",
        "{ count() > 1 }",
        "{} && count() > 1",
        "{ duration > -1s }",
        "{} | count() > span.a",
    ] {
        unsupported(q);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep_parens = format!("{}{{}}{}", "(".repeat(5000), ")".repeat(5000));
    err_contains(&deep_parens, "nests too deeply");
    let deep_not = format!("{{ {}.a }}", "!".repeat(5000));
    err_contains(&deep_not, "nests too deeply");
    let long_chain = format!("{{ {} }}", vec![".a = 1"; 5000].join(" || "));
    err_contains(&long_chain, "too deeply nested");
    let long_spansets = vec!["{}"; 5000].join(" >> ");
    err_contains(&long_spansets, "too deeply nested");
    // Long but reasonable chains are fine and print back.
    ok(&format!("{{ {} }}", vec![".a = 1"; 500].join(" || ")));
    ok(&vec!["{ .a = 1 }"; 300].join(" && "));
    ok(&format!("{}{{}}{}", "(".repeat(50), ")".repeat(50)));
}

#[test]
fn from_str_matches_parse() {
    let q: Query = "{ span.a = 1 } | count() > 1".parse().unwrap();
    assert_eq!(Ok(q), parse("{ span.a = 1 } | count() > 1"));
    assert!("{".parse::<Query>().is_err());
}

#[test]
fn canonical_text_of_a_rich_query() {
    let q = r#"
        { resource.service.name = "frontend" && (status = error || span.http.status_code >= 500) }
          >> { kind = client && !span.is_cached && .db.system != nil }
        | avg(duration) > 1.5s
        | select(span.http.url, trace:rootService)
    "#;
    assert_eq!(
        canonical(q),
        "{ resource.service.name = \"frontend\" && (span:status = error || span.http.status_code >= 500) } \
         >> { span:kind = client && !span.is_cached && .db.system != nil } \
         | avg(span:duration) > 1500ms | select(span.http.url, trace:rootService)"
    );
    assert_eq!(
        Scope::Any,
        match cond("{ .x = 1 }") {
            FieldExpr::Compare { field: Field::Attribute { scope, .. }, .. } => scope,
            _ => panic!(),
        }
    );
}
