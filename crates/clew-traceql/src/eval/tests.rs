use crate::{evaluate, parse, Field, FieldValue, Intrinsic, KindValue, Span, Spanset, StatusValue, Trace, Value};

const MS: u64 = 1_000_000;

fn id(n: u8) -> [u8; 8] {
    [0, 0, 0, 0, 0, 0, 0, n]
}

fn attrs(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn span(n: u8, parent: Option<u8>, name: &str, service: &str, start_ms: u64, end_ms: u64) -> Span {
    Span {
        span_id: id(n),
        parent_span_id: parent.map(id),
        name: name.to_owned(),
        service_name: service.to_owned(),
        start_unix_nano: start_ms * MS,
        end_unix_nano: end_ms * MS,
        ..Span::default()
    }
}

/// ```text
/// 0 GET /      server ok     frontend 0..100ms
/// ├─ 1 auth    client        auth     10..30ms
/// │  └─ 5 cache internal     auth     12..14ms
/// └─ 2 db query client error db       20..90ms
///    ├─ 3 db.read  internal  db       30..40ms
///    └─ 4 db.write internal error db  40..80ms
/// ```
fn trace() -> Trace {
    let mut root = span(1, None, "GET /", "frontend", 0, 100);
    root.kind = KindValue::Server;
    root.status = StatusValue::Ok;
    root.span_attributes = attrs(&[("http.status_code", Value::Int(200)), ("http.method", Value::Str("GET".into()))]);
    root.resource_attributes = attrs(&[("deployment.environment", Value::Str("prod".into()))]);

    let mut auth = span(2, Some(1), "auth", "auth", 10, 30);
    auth.kind = KindValue::Client;
    auth.span_attributes = attrs(&[("is_cached", Value::Bool(true)), ("retries", Value::Int(3))]);
    auth.resource_attributes = attrs(&[("service.name", Value::Str("auth-svc".into()))]);

    let mut db = span(3, Some(1), "db query", "db", 20, 90);
    db.kind = KindValue::Client;
    db.status = StatusValue::Error;
    db.span_attributes = attrs(&[("db.system", Value::Str("postgresql".into())), ("rows", Value::Float(12.5))]);

    let mut read = span(4, Some(3), "db.read", "db", 30, 40);
    read.kind = KindValue::Internal;
    read.span_attributes = attrs(&[("bytes", Value::Int(100)), ("tags", Value::Other)]);

    let mut write = span(5, Some(3), "db.write", "db", 40, 80);
    write.kind = KindValue::Internal;
    write.status = StatusValue::Error;
    write.status_message = "disk full".into();
    write.span_attributes = attrs(&[("bytes", Value::Int(300)), ("http.method", Value::Int(7))]);

    let mut cache = span(6, Some(2), "cache", "auth", 12, 14);
    cache.kind = KindValue::Internal;
    cache.span_attributes = attrs(&[("is_cached", Value::Bool(false))]);

    let mut trace_id = [0u8; 16];
    trace_id[15] = 0xab;
    Trace { trace_id, spans: vec![root, auth, db, read, write, cache] }
}

fn run_on(trace: &Trace, query: &str) -> Option<Spanset> {
    let q = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut sets = evaluate(&q, trace)?;
    assert_eq!(sets.len(), 1, "{query}");
    let set = sets.remove(0);
    assert!(!set.spans.is_empty(), "{query}: a match has spans");
    assert_eq!(set.spans.len(), set.selected.len());
    assert!(set.spans.windows(2).all(|w| w[0] < w[1]), "{query}: ascending");
    Some(set)
}

fn spans_on(trace: &Trace, query: &str) -> Vec<usize> {
    run_on(trace, query).map(|s| s.spans).unwrap_or_default()
}

fn spans(query: &str) -> Vec<usize> {
    spans_on(&trace(), query)
}

#[test]
fn filters_on_intrinsics() {
    assert_eq!(spans("{}"), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans("{ false }"), Vec::<usize>::new());
    assert_eq!(spans(r#"{ name = "auth" }"#), vec![1]);
    assert_eq!(spans(r#"{ span:name != "auth" }"#), vec![0, 2, 3, 4, 5]);
    assert_eq!(spans(r#"{ name >= "db" && name < "dc" }"#), vec![2, 3, 4]);
    assert_eq!(spans("{ status = error }"), vec![2, 4]);
    assert_eq!(spans("{ status = unset }"), vec![1, 3, 5]);
    assert_eq!(spans("{ status != ok }"), vec![1, 2, 3, 4, 5]);
    assert_eq!(spans(r#"{ statusMessage = "disk full" }"#), vec![4]);
    assert_eq!(spans("{ kind = client }"), vec![1, 2]);
    assert_eq!(spans("{ span:kind = server }"), vec![0]);
    assert_eq!(spans("{ duration > 50ms }"), vec![0, 2]);
    assert_eq!(spans("{ duration <= 10ms }"), vec![3, 5]);
    assert_eq!(spans("{ span:duration = 40ms }"), vec![4]);
    assert_eq!(spans("{ trace:duration = 100ms }"), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans("{ traceDuration > 100ms }"), Vec::<usize>::new());
    assert_eq!(spans(r#"{ rootName = "GET /" && trace:rootService = "frontend" }"#), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans(r#"{ span:id = "0000000000000003" }"#), vec![2]);
    assert_eq!(spans(r#"{ span:id = "3" }"#), vec![2]);
    assert_eq!(spans(r#"{ span:id != "03" }"#), vec![0, 1, 3, 4, 5]);
    assert_eq!(spans(r#"{ trace:id = "AB" && span:id = "1" }"#), vec![0]);
    assert_eq!(spans(r#"{ trace:id = "000000000000000000000000000000ab" }"#).len(), 6);
    assert_eq!(spans(r#"{ trace:id = "ac" }"#), Vec::<usize>::new());
}

#[test]
fn filters_on_attributes() {
    assert_eq!(spans("{ span.http.status_code = 200 }"), vec![0]);
    assert_eq!(spans("{ .http.status_code >= 200 && .http.status_code < 300 }"), vec![0]);
    assert_eq!(spans(r#"{ span.db.system = "postgresql" }"#), vec![2]);
    // Span attributes are not resource attributes.
    assert_eq!(spans(r#"{ resource.db.system = "postgresql" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ resource.deployment.environment = "prod" }"#), vec![0]);
    // Unscoped: the span attribute, else the resource attribute.
    assert_eq!(spans(r#"{ .deployment.environment = "prod" }"#), vec![0]);
    // `service.name` falls back to the span's service name, unless the resource has its own.
    assert_eq!(spans(r#"{ resource.service.name = "db" }"#), vec![2, 3, 4]);
    assert_eq!(spans(r#"{ .service.name = "frontend" }"#), vec![0]);
    assert_eq!(spans(r#"{ resource.service.name = "auth-svc" }"#), vec![1]);
    assert_eq!(spans(r#"{ span.service.name = "db" }"#), Vec::<usize>::new());
}

#[test]
fn dynamic_typing_of_attributes() {
    // Int attribute against a float literal, and the other way round, compare as numbers.
    assert_eq!(spans("{ span.retries = 3.0 }"), vec![1]);
    assert_eq!(spans("{ span.retries < 3.5 }"), vec![1]);
    assert_eq!(spans("{ span.rows > 12 }"), vec![2]);
    assert_eq!(spans("{ span.rows = 12.5 }"), vec![2]);
    // Other types never match, whatever the operator.
    assert_eq!(spans(r#"{ span.retries = "3" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ span.retries != "3" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ span.http.method = "GET" }"#), vec![0]);
    assert_eq!(spans("{ span.http.method = 7 }"), vec![4]);
    assert_eq!(spans("{ span.is_cached = true }"), vec![1]);
    assert_eq!(spans("{ span.is_cached != true }"), vec![5]);
    assert_eq!(spans("{ span.tags = 1 }"), Vec::<usize>::new());
}

#[test]
fn not_equal_skips_spans_without_the_attribute_but_not_negates() {
    // Only spans that have the attribute can be unequal (Tempo)...
    assert_eq!(spans(r#"{ span.http.method != "POST" }"#), vec![0]);
    assert_eq!(spans(r#"{ span.http.method !~ "P.*" }"#), vec![0]);
    // ...while `!` negates the whole condition.
    assert_eq!(spans(r#"{ !(span.http.method = "POST") }"#), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans(r#"{ !(span.http.method = "GET") }"#), vec![1, 2, 3, 4, 5]);
}

#[test]
fn existence_and_boolean_attributes() {
    assert_eq!(spans("{ span.bytes != nil }"), vec![3, 4]);
    assert_eq!(spans("{ span.bytes = nil }"), vec![0, 1, 2, 5]);
    assert_eq!(spans("{ span.tags != nil }"), vec![3]);
    assert_eq!(spans("{ .service.name != nil }"), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans("{ span.is_cached }"), vec![1]);
    assert_eq!(spans("{ !span.is_cached }"), vec![0, 2, 3, 4, 5]);
    assert_eq!(spans("{ span.retries }"), Vec::<usize>::new());
    assert_eq!(spans("{ name != nil }").len(), 6);
}

#[test]
fn regexes_are_fully_anchored() {
    assert_eq!(spans(r#"{ name =~ "db" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ name =~ "db.*" }"#), vec![2, 3, 4]);
    assert_eq!(spans(r#"{ name =~ ".*read|.*write" }"#), vec![3, 4]);
    assert_eq!(spans(r#"{ name !~ "db.*" }"#), vec![0, 1, 5]);
    assert_eq!(spans(r#"{ span.db.system =~ "postgresql|mysql" }"#), vec![2]);
    assert_eq!(spans(r#"{ span.retries =~ "3" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ name =~ "(?i)AUTH" }"#), vec![1]);
}

#[test]
fn boolean_logic_in_filters() {
    assert_eq!(spans(r#"{ kind = internal && status = error }"#), vec![4]);
    assert_eq!(spans(r#"{ kind = server || status = error }"#), vec![0, 2, 4]);
    assert_eq!(spans(r#"{ kind = internal && (status = error || span.bytes = 100) }"#), vec![3, 4]);
    assert_eq!(spans(r#"{ !(kind = internal) }"#), vec![0, 1, 2]);
    assert_eq!(spans(r#"{ true && !false }"#).len(), 6);
}

#[test]
fn spanset_and_or() {
    assert_eq!(spans(r#"{ name = "auth" } && { name = "cache" }"#), vec![1, 5]);
    assert_eq!(spans(r#"{ name = "auth" } && { name = "nope" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ name = "auth" } || { name = "nope" }"#), vec![1]);
    assert_eq!(spans(r#"{ name = "nope" } || { kind = client }"#), vec![1, 2]);
    assert_eq!(spans(r#"{ name = "nope" } || { name = "nada" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ kind = client } && { status = error }"#), vec![1, 2, 4]);
}

#[test]
fn structural_operators() {
    assert_eq!(spans(r#"{ name = "GET /" } > { }"#), vec![1, 2]);
    assert_eq!(spans(r#"{ name = "GET /" } >> { }"#), vec![1, 2, 3, 4, 5]);
    assert_eq!(spans(r#"{ name = "auth" } >> { }"#), vec![5]);
    assert_eq!(spans(r#"{ resource.service.name = "frontend" } >> { status = error }"#), vec![2, 4]);
    assert_eq!(spans(r#"{ name = "auth" } > { name = "db.read" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ kind = internal } < { }"#), vec![1, 2]);
    assert_eq!(spans(r#"{ name = "db.write" } << { }"#), vec![0, 2]);
    assert_eq!(spans(r#"{ kind = internal } << { kind = client }"#), vec![1, 2]);
    assert_eq!(spans(r#"{ name = "db.read" } ~ { }"#), vec![4]);
    assert_eq!(spans(r#"{ kind = client } ~ { kind = client }"#), vec![1, 2]);
    // A span is not its own sibling, and the root has none.
    assert_eq!(spans(r#"{ name = "cache" } ~ { }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ } ~ { name = "GET /" }"#), Vec::<usize>::new());
    // Leaf spans: Tempo's `{ } !< { }` written with supported operators is not possible, but
    // parents of leaves are.
    assert_eq!(spans(r#"{ status = error } < { }"#), vec![0, 2]);
    // Chains associate to the left: the spans of the last filter.
    assert_eq!(spans(r#"{ name = "GET /" } > { kind = client } > { }"#), vec![3, 4, 5]);
    assert_eq!(spans(r#"{ name = "GET /" } > { kind = client } > { status = error }"#), vec![4]);
    assert_eq!(spans(r#"{ name = "nope" } >> { }"#), Vec::<usize>::new());
}

#[test]
fn pipelines_and_aggregates() {
    assert_eq!(spans("{ kind = internal } | count() = 3"), vec![3, 4, 5]);
    assert_eq!(spans("{ kind = internal } | count() > 3"), Vec::<usize>::new());
    assert_eq!(spans("count() > 5"), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans("count() >= 6.5"), Vec::<usize>::new());
    // Durations 100, 20, 70, 10, 40, 2 ms: the mean is just over 40ms.
    assert_eq!(spans("{ } | avg(duration) > 40ms").len(), 6);
    assert_eq!(spans("{ } | avg(duration) > 41ms").len(), 0);
    assert_eq!(spans("{ } | max(duration) = 100ms").len(), 6);
    assert_eq!(spans("{ } | min(span:duration) = 2ms").len(), 6);
    assert_eq!(spans("{ } | sum(duration) = 242ms").len(), 6);
    assert_eq!(spans("{ span.bytes != nil } | sum(span.bytes) = 400"), vec![3, 4]);
    assert_eq!(spans("{ } | sum(span.bytes) = 400"), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(spans("{ } | min(span.bytes) = 100 | max(span.bytes) = 300").len(), 6);
    assert_eq!(spans("{ } | avg(span.bytes) = 200.0").len(), 6);
    assert_eq!(spans("{ } | sum(.rows) > 12.4").len(), 6);
    // Nothing to aggregate: no value, no match.
    assert_eq!(spans("{ } | avg(span.nope) > 0"), Vec::<usize>::new());
    assert_eq!(spans("{ } | avg(span.nope) != 0"), Vec::<usize>::new());
    assert_eq!(spans("{ } | { status = error }"), vec![2, 4]);
    assert_eq!(spans("{ } | { status = error } | count() = 2"), vec![2, 4]);
    assert_eq!(spans(r#"{ } | { name = "zzz" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"({ kind = client } | count() = 2) && { name = "cache" }"#), vec![1, 2, 5]);
    assert_eq!(spans(r#"({ kind = client } | count() = 1) || { name = "cache" }"#), vec![5]);
    assert_eq!(spans(r#"({ name = "GET /" } | count() = 1) >> { kind = internal }"#), vec![3, 4, 5]);
}

#[test]
fn select_attaches_values_per_span() {
    let set = run_on(
        &trace(),
        "{ status = error } | select(span.bytes, span:duration, resource.service.name, span:id, trace:id, kind)",
    )
    .unwrap();
    assert_eq!(set.spans, vec![2, 4]);
    let trace_id = FieldValue::Str("000000000000000000000000000000ab".into());
    assert_eq!(
        set.selected[0],
        vec![
            (Field::Intrinsic(Intrinsic::Duration), FieldValue::Duration(70 * MS)),
            (Field::resource("service.name"), FieldValue::Str("db".into())),
            (Field::Intrinsic(Intrinsic::SpanId), FieldValue::Str("0000000000000003".into())),
            (Field::Intrinsic(Intrinsic::TraceId), trace_id.clone()),
            (Field::Intrinsic(Intrinsic::Kind), FieldValue::Kind(KindValue::Client)),
        ]
    );
    assert_eq!(set.selected[1][0], (Field::span("bytes"), FieldValue::Int(300)));
    let collected: Vec<usize> = set.iter().map(|(i, _)| i).collect();
    assert_eq!(collected, vec![2, 4]);

    // Selections follow their spans through unions and later stages, without duplicates.
    let set = run_on(
        &trace(),
        r#"({ name = "auth" } | select(span.retries, status)) || ({ kind = client } | select(span.rows, span.retries)) | select(.tags)"#,
    )
    .unwrap();
    assert_eq!(set.spans, vec![1, 2]);
    assert_eq!(
        set.selected[0],
        vec![
            (Field::span("retries"), FieldValue::Int(3)),
            (Field::Intrinsic(Intrinsic::Status), FieldValue::Status(StatusValue::Unset)),
        ]
    );
    assert_eq!(set.selected[1], vec![(Field::span("rows"), FieldValue::Float(12.5))]);
    let set = run_on(&trace(), r#"{ name = "db.read" } | select(.tags, name)"#).unwrap();
    assert_eq!(
        set.selected[0],
        vec![
            (Field::any("tags"), FieldValue::Other),
            (Field::Intrinsic(Intrinsic::Name), FieldValue::Str("db.read".into()))
        ]
    );
    assert!(run_on(&trace(), "{ kind = server }").unwrap().selected[0].is_empty());
}

#[test]
fn missing_or_multiple_roots() {
    // No span without a parent: the earliest span stands in for the root.
    let mut orphaned = trace();
    orphaned.spans[0].parent_span_id = Some(id(99));
    orphaned.spans[1].start_unix_nano = 0;
    orphaned.spans[0].start_unix_nano = 5 * MS;
    assert_eq!(spans_on(&orphaned, r#"{ trace:rootName = "auth" }"#).len(), 6);
    assert_eq!(spans_on(&orphaned, r#"{ trace:rootService = "auth" }"#).len(), 6);
    // The orphan keeps its children.
    assert_eq!(spans_on(&orphaned, r#"{ name = "GET /" } > { }"#), vec![1, 2]);

    // Several roots: the earliest.
    let mut two_roots = trace();
    two_roots.spans[2].parent_span_id = None;
    two_roots.spans[2].start_unix_nano = 0;
    assert_eq!(spans_on(&two_roots, r#"{ trace:rootName = "GET /" }"#).len(), 6);
    two_roots.spans[0].start_unix_nano = MS;
    assert_eq!(spans_on(&two_roots, r#"{ trace:rootName = "db query" }"#).len(), 6);
    assert_eq!(spans_on(&two_roots, r#"{ } ~ { name = "db query" }"#), Vec::<usize>::new());

    // An all-zero parent ID means no parent.
    let mut zero_parent = trace();
    zero_parent.spans[0].parent_span_id = Some([0; 8]);
    assert_eq!(spans_on(&zero_parent, r#"{ rootName = "GET /" }"#).len(), 6);

    assert_eq!(spans_on(&Trace::default(), "{}"), Vec::<usize>::new());
    assert_eq!(spans_on(&Trace::default(), "count() = 0"), Vec::<usize>::new());
}

#[test]
fn malformed_traces_do_not_hang() {
    let mut cyclic = trace();
    cyclic.spans[0].parent_span_id = Some(id(6)); // GET / -> cache -> auth -> GET /
    for q in ["{} >> {}", "{} << {}", "{} > {}", "{} < {}", "{} ~ {}", "{ rootName != nil }"] {
        let _ = spans_on(&cyclic, q);
    }
    assert_eq!(spans_on(&cyclic, r#"{ name = "cache" } >> { name = "auth" }"#), vec![1]);
    assert_eq!(spans_on(&cyclic, r#"{ name = "auth" } << { name = "cache" }"#), vec![5]);

    let mut self_parent = trace();
    self_parent.spans[3].parent_span_id = Some(id(4));
    assert_eq!(spans_on(&self_parent, r#"{ name = "db.read" } >> { name = "db.read" }"#), Vec::<usize>::new());

    let mut duplicate = trace();
    duplicate.spans[5].span_id = id(2);
    assert_eq!(spans_on(&duplicate, r#"{ name = "auth" } > { }"#), vec![5]);
}

#[test]
fn structural_operators_scale_to_large_traces() {
    const N: usize = 10_000;
    let named = |i: usize, parent: Option<usize>| Span {
        span_id: (i as u64 + 1).to_be_bytes(),
        parent_span_id: parent.map(|p| (p as u64 + 1).to_be_bytes()),
        name: format!("s{i}"),
        start_unix_nano: i as u64,
        end_unix_nano: i as u64 + 10,
        ..Span::default()
    };
    // A chain: each span the parent of the next.
    let chain = Trace { trace_id: [1; 16], spans: (0..N).map(|i| named(i, i.checked_sub(1))).collect() };
    assert_eq!(spans_on(&chain, r#"{ name = "s0" } >> { name = "s9999" }"#), vec![N - 1]);
    assert_eq!(spans_on(&chain, r#"{ name = "s9999" } << { }"#).len(), N - 1);
    assert_eq!(spans_on(&chain, "{} >> {}").len(), N - 1);
    assert_eq!(spans_on(&chain, "{} << {}").len(), N - 1);
    assert_eq!(spans_on(&chain, "{} > {} > {}").len(), N - 2);
    assert_eq!(spans_on(&chain, "{} ~ {}").len(), 0);
    assert_eq!(spans_on(&chain, "{ trace:duration = 10009ns } | count() = 10000").len(), N);

    // A star: one root with every other span as its child.
    let star = Trace { trace_id: [2; 16], spans: (0..N).map(|i| named(i, (i > 0).then_some(0))).collect() };
    assert_eq!(spans_on(&star, "{} ~ {}").len(), N - 1);
    assert_eq!(spans_on(&star, "{} < {}"), vec![0]);
    assert_eq!(spans_on(&star, r#"{ name = "s0" } > { }"#).len(), N - 1);
    assert_eq!(spans_on(&star, r#"{ name = "s5" } ~ { name =~ "s1.*" }"#).len(), 1111);
}
