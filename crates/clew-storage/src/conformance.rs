//! The conformance suite: what every backend must do, run against each of them unchanged.
//!
//! A backend's test file opens its store through a [`Harness`] and expands
//! [`conformance_tests!`](crate::conformance_tests), which makes one test per case, so that a
//! failure names its case and does not hide the others. Each case runs on a store of its own
//! and uses its own tenants.

use async_trait::async_trait;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use clew_model::{assemble, day_of, TenantId, TraceId};

use crate::{
    Condition, DayUsage, DynStorage, Family, FindRequest, Op, RollupQuery, Target, Test, TimeRange, Value as V,
};

/// Opens the backend under test.
#[async_trait]
pub trait Harness: Send {
    /// Opens the store; after [`crate::Storage::close`], opens the same data again.
    async fn open(&mut self) -> DynStorage;
}

/// One test per conformance case: `conformance_tests!(harness, #[tokio::test])`, where
/// `harness` is an expression giving `Option<impl Harness>` (`None` skips, for a server that
/// is not there outside CI), evaluated afresh for each case.
#[macro_export]
macro_rules! conformance_tests {
    (@cases [$($attr:tt)*] $harness:expr;) => {};
    (@cases [$($attr:tt)*] $harness:expr; $case:ident $($rest:ident)*) => {
        $($attr)*
        async fn $case() {
            let Some(mut harness) = $harness else { return };
            $crate::conformance::case(&mut harness, stringify!($case)).await;
        }
        $crate::conformance_tests!(@cases [$($attr)*] $harness; $($rest)*);
    };
    ($harness:expr, $(#[$attr:meta])*) => {
        $crate::conformance_tests!(@cases [$(#[$attr])*] $harness;
            lossless_round_trip unknown_trace_is_empty tenants_are_isolated
            trace_written_in_parts_reads_whole find_by_conditions catalog_and_values
            rollups_pair_calls days_report_usage drop_day_deletes_the_day);
    };
}

/// Runs case `name` on a store `harness` opens: its writes and checks, then the store closed,
/// opened again and, for the cases that say what must survive, checked again.
pub async fn case(harness: &mut impl Harness, name: &str) {
    let store = harness.open().await;
    match name {
        "lossless_round_trip" => lossless_round_trip(&store).await,
        "unknown_trace_is_empty" => unknown_trace_is_empty(&store).await,
        "tenants_are_isolated" => tenants_are_isolated(&store).await,
        "trace_written_in_parts_reads_whole" => trace_written_in_parts_reads_whole(&store).await,
        "find_by_conditions" => find_by_conditions(&store).await,
        "catalog_and_values" => catalog_and_values(&store).await,
        "rollups_pair_calls" => rollups_pair_calls(&store).await,
        "days_report_usage" => days_report_usage(&store).await,
        "drop_day_deletes_the_day" => drop_day_deletes_the_day(&store).await,
        other => panic!("no conformance case {other:?}"),
    }
    store.close().await.expect("close");
    let store = harness.open().await;
    match name {
        "lossless_round_trip" => survives_reopen(&store, "conformance-lossless", [1; 16]).await,
        "trace_written_in_parts_reads_whole" => survives_reopen(&store, "conformance-parts", [3; 16]).await,
        "rollups_pair_calls" => rollups_survive_reopen(&store).await,
        "drop_day_deletes_the_day" => dropped_day_stays_dropped(&store).await,
        _ => {}
    }
    store.close().await.expect("close");
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn s(value: &str) -> Value {
    Value::StringValue(value.into())
}

/// A span with every OTLP field set, including every attribute type.
pub fn every_field_span(trace: [u8; 16], span_id: u8, parent: Option<u8>, start: u64) -> Span {
    let attributes = vec![
        kv("http.request.method", s("GET")),
        kv("http.response.status_code", Value::IntValue(503)),
        kv("retry", Value::BoolValue(true)),
        kv("ratio", Value::DoubleValue(0.25)),
        kv("payload", Value::BytesValue(vec![0, 159, 146, 150])),
        kv(
            "tags",
            Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(s("a")) }, AnyValue { value: Some(Value::IntValue(-7)) }],
            }),
        ),
        kv(
            "nested",
            Value::KvlistValue(KeyValueList { values: vec![kv("inner", s("x")), kv("deep", Value::BoolValue(false))] }),
        ),
        kv("large", Value::IntValue(i64::MAX)),
        KeyValue { key: "empty".into(), value: None, ..Default::default() },
    ];
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![span_id; 8],
        trace_state: "vendor=value,other=1".into(),
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        flags: 0x301,
        name: format!("GET /orders/{span_id}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_500_000,
        attributes,
        dropped_attributes_count: 2,
        events: vec![span::Event {
            time_unix_nano: start + 10,
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("IOError")), kv("exception.stacktrace", s("at a\nat b"))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            trace_state: "k=v".into(),
            attributes: vec![kv("link.kind", s("follows"))],
            dropped_attributes_count: 4,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(Status { message: "upstream unavailable".into(), code: 2 }),
    }
}

/// A request with one resource, two scopes and three spans of one trace, every field set.
pub fn every_field_request(trace: [u8; 16], start: u64) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            kv("service.name", s("checkout")),
            kv("host.name", s("node-1")),
            kv("process.pid", Value::IntValue(4242)),
        ],
        dropped_attributes_count: 1,
        ..Default::default()
    };
    let scope = |name: &str| InstrumentationScope {
        name: name.into(),
        version: "1.2.3".into(),
        attributes: vec![kv("scope.attr", Value::BoolValue(true))],
        dropped_attributes_count: 6,
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(scope("http")),
                    spans: vec![
                        every_field_span(trace, 1, None, start),
                        every_field_span(trace, 2, Some(1), start + 100),
                    ],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                },
                ScopeSpans {
                    scope: Some(scope("db")),
                    spans: vec![every_field_span(trace, 3, Some(2), start + 200)],
                    schema_url: String::new(),
                },
            ],
            schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
        }],
    }
}

fn tenant(name: &str) -> TenantId {
    name.parse().expect("valid tenant")
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

async fn read(store: &DynStorage, tenant: &TenantId, trace: [u8; 16]) -> Vec<ResourceSpans> {
    let rows = store.trace(tenant, TraceId::from_bytes(trace).expect("non-zero")).await.expect("read trace");
    assemble(rows).expect("stored rows decode")
}

async fn lossless_round_trip(store: &DynStorage) {
    let t = tenant("conformance-lossless");
    let request = every_field_request([1; 16], now_nanos());
    store.write(&t, request.clone().into()).await.expect("write");
    assert_eq!(read(store, &t, [1; 16]).await, request.resource_spans, "lossless_round_trip: head");
    store.flush().await.expect("flush");
    assert_eq!(read(store, &t, [1; 16]).await, request.resource_spans, "lossless_round_trip: after flush");
}

async fn unknown_trace_is_empty(store: &DynStorage) {
    let t = tenant("conformance-unknown");
    assert!(read(store, &t, [0xee; 16]).await.is_empty(), "unknown_trace_is_empty");
}

async fn tenants_are_isolated(store: &DynStorage) {
    let (a, b) = (tenant("conformance-a"), tenant("conformance-b"));
    let request = every_field_request([2; 16], now_nanos());
    store.write(&a, request.clone().into()).await.expect("write");
    assert!(read(store, &b, [2; 16]).await.is_empty(), "tenants_are_isolated: other tenant sees head data");
    store.flush().await.expect("flush");
    assert!(read(store, &b, [2; 16]).await.is_empty(), "tenants_are_isolated: other tenant sees segment data");
    assert_eq!(read(store, &a, [2; 16]).await, request.resource_spans, "tenants_are_isolated: owner");
}

async fn trace_written_in_parts_reads_whole(store: &DynStorage) {
    let t = tenant("conformance-parts");
    let whole = every_field_request([3; 16], now_nanos());
    let mut first = whole.clone();
    first.resource_spans[0].scope_spans.truncate(1);
    let mut second = whole.clone();
    second.resource_spans[0].scope_spans.remove(0);
    store.write(&t, first.into()).await.expect("write first part");
    store.flush().await.expect("flush");
    store.write(&t, second.into()).await.expect("write second part");
    assert_eq!(read(store, &t, [3; 16]).await, whole.resource_spans, "trace_written_in_parts_reads_whole");
}

async fn survives_reopen(store: &DynStorage, tenant_name: &str, trace: [u8; 16]) {
    let spans: usize =
        read(store, &tenant(tenant_name), trace).await.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(spans, 3, "survives_reopen: {tenant_name}");
}

fn test(target: Target, test: Test) -> Condition {
    Condition::Test { target, test }
}

fn eq(target: Target, value: V) -> Condition {
    test(target, Test::Compare(Op::Eq, value))
}

/// Trace IDs `find` returns, sorted.
async fn found(store: &DynStorage, t: &TenantId, range: TimeRange, conditions: Vec<Condition>) -> Vec<TraceId> {
    let request = FindRequest { range, conditions };
    let mut ids: Vec<TraceId> =
        store.find(t, &request).await.expect("find").into_iter().map(|hit| hit.trace_id).collect();
    ids.sort();
    ids
}

async fn find_by_conditions(store: &DynStorage) {
    let t = tenant("conformance-find");
    let start = now_nanos();
    let range = TimeRange { start: start - 1_000_000_000, end: start + 60_000_000_000 };
    let (a, b) = ([0xa1; 16], [0xb2; 16]);
    store.write(&t, every_field_request(a, start).into()).await.expect("write");
    let mut other = every_field_request(b, start + 1_000);
    for span in other.resource_spans[0].scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
        span.name = "SELECT orders".into();
        span.kind = 3;
        span.status = None;
        span.end_time_unix_nano = span.start_time_unix_nano + 50_000_000;
        span.attributes.retain(|kv| kv.key != "retry");
    }
    store.write(&t, other.into()).await.expect("write");
    let id = |bytes| TraceId::from_bytes(bytes).expect("non-zero");
    let (a, b) = (id(a), id(b));
    let regex = regex::Regex::new("^(?:GET /orders/.*)$").expect("regex");
    for phase in ["head", "segments"] {
        let check = |name: &str, got: Vec<TraceId>, want: &[TraceId]| {
            assert_eq!(got, want, "find_by_conditions ({phase}): {name}");
        };
        check("no condition", found(store, &t, range, vec![]).await, &[a, b]);
        check("name", found(store, &t, range, vec![eq(Target::Name, V::Str("SELECT orders".into()))]).await, &[b]);
        check("service", found(store, &t, range, vec![eq(Target::Service, V::Str("checkout".into()))]).await, &[a, b]);
        check("kind", found(store, &t, range, vec![eq(Target::Kind, V::Int(2))]).await, &[a]);
        check("status", found(store, &t, range, vec![eq(Target::Status, V::Int(2))]).await, &[a]);
        check(
            "duration",
            found(store, &t, range, vec![test(Target::Duration, Test::Compare(Op::Ge, V::Int(10_000_000)))]).await,
            &[b],
        );
        check(
            "int attribute compares as a number",
            found(
                store,
                &t,
                range,
                vec![test(
                    Target::SpanAttribute("http.response.status_code".into()),
                    Test::Compare(Op::Gt, V::Float(502.5)),
                )],
            )
            .await,
            &[a, b],
        );
        check(
            "attribute exists",
            found(store, &t, range, vec![test(Target::SpanAttribute("retry".into()), Test::Exists(true))]).await,
            &[a],
        );
        check(
            "attribute absent",
            found(store, &t, range, vec![test(Target::SpanAttribute("retry".into()), Test::Exists(false))]).await,
            &[b],
        );
        check(
            "resource attribute",
            found(store, &t, range, vec![eq(Target::ResourceAttribute("process.pid".into()), V::Int(4242))]).await,
            &[a, b],
        );
        check(
            "any attribute",
            found(store, &t, range, vec![eq(Target::AnyAttribute("host.name".into()), V::Str("node-1".into()))]).await,
            &[a, b],
        );
        check(
            "regex",
            found(store, &t, range, vec![test(Target::Name, Test::Regex { regex: regex.clone(), negate: false })])
                .await,
            &[a],
        );
        check(
            "every condition on some span",
            found(
                store,
                &t,
                range,
                vec![eq(Target::Kind, V::Int(2)), eq(Target::Name, V::Str("SELECT orders".into()))],
            )
            .await,
            &[],
        );
        check(
            "any of",
            found(
                store,
                &t,
                range,
                vec![Condition::Any(vec![eq(Target::Kind, V::Int(3)), eq(Target::Name, V::Str("nothing".into()))])],
            )
            .await,
            &[b],
        );
        let before = TimeRange { start: start - 2_000_000_000, end: start - 1_000_000_000 };
        check("outside the range", found(store, &t, before, vec![]).await, &[]);
        let hits = store.find(&t, &FindRequest { range, conditions: vec![] }).await.expect("find");
        let hit = hits.iter().find(|h| h.trace_id == b).expect("hit b");
        assert_eq!(
            (hit.start_unix_nano, hit.end_unix_nano),
            (start + 1_000, start + 1_200 + 50_000_000),
            "find_by_conditions ({phase}): extent"
        );
        assert!(
            found(store, &tenant("conformance-find-other"), range, vec![]).await.is_empty(),
            "find_by_conditions ({phase}): tenants are isolated"
        );
        store.flush().await.expect("flush");
    }
}

async fn catalog_and_values(store: &DynStorage) {
    let t = tenant("conformance-catalog");
    let start = now_nanos();
    let range = TimeRange { start: start - 1_000_000_000, end: start + 60_000_000_000 };
    store.write(&t, every_field_request([0xc3; 16], start).into()).await.expect("write");
    for phase in ["head", "segments"] {
        let catalog = store.catalog(&t, range).await.expect("catalog");
        assert_eq!(catalog.services(), ["checkout"], "catalog ({phase}): services");
        let names: Vec<&str> = catalog.operations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["GET /orders/1", "GET /orders/2", "GET /orders/3"], "catalog ({phase}): operations");
        assert!(catalog.operations.iter().all(|o| o.kind == 2), "catalog ({phase}): kinds");
        assert!(
            catalog.span_attributes.iter().any(|k| k == "http.request.method"),
            "catalog ({phase}): span attributes {:?}",
            catalog.span_attributes
        );
        assert_eq!(
            catalog.resource_attributes,
            ["host.name", "process.pid", "service.name"],
            "catalog ({phase}): resource attributes"
        );
        let values = store.values(&t, range, &Target::Name, 2).await.expect("values");
        assert_eq!(values.len(), 2, "values ({phase}): limit");
        let values = store
            .values(&t, range, &Target::SpanAttribute("http.response.status_code".into()), 10)
            .await
            .expect("values");
        assert_eq!(values, [V::Int(503)], "values ({phase}): typed attribute");
        let values = store.values(&t, range, &Target::ResourceAttribute("host.name".into()), 10).await.expect("values");
        assert_eq!(values, [V::Str("node-1".into())], "values ({phase}): resource attribute");
        let other = store.catalog(&tenant("conformance-catalog-other"), range).await.expect("catalog");
        assert!(other.operations.is_empty(), "catalog ({phase}): tenants are isolated");
        store.flush().await.expect("flush");
    }
}

/// One resource's spans: (span id, parent id or 0, kind, start offset ms, duration ms, error,
/// attributes).
type SpanSpec<'a> = (u8, u8, span::SpanKind, u64, u64, bool, Vec<KeyValue>);

fn service_request(service: &str, trace: [u8; 16], start: u64, spans: Vec<SpanSpec<'_>>) -> ExportTraceServiceRequest {
    let spans = spans
        .into_iter()
        .map(|(id, parent, kind, offset_ms, ms, error, attributes)| Span {
            trace_id: trace.to_vec(),
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { Vec::new() } else { vec![parent; 8] },
            name: format!("{service} op"),
            kind: kind as i32,
            start_time_unix_nano: start + offset_ms * 1_000_000,
            end_time_unix_nano: start + (offset_ms + ms) * 1_000_000,
            attributes,
            status: error.then(|| Status { code: 2, message: "failed".into() }),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service)), kv("deployment.environment", s("prod"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// (family, client, server, count, errors) of the calls in the whole rollup range.
async fn calls(store: &DynStorage, t: &TenantId, start: u64) -> Vec<(Family, String, String, f64, f64)> {
    let mut query = RollupQuery::minutes(start - 60_000_000_000, start + 120_000_000_000);
    query.families = Family::EDGES.to_vec();
    query.step_minutes = 10;
    let mut calls: Vec<_> = store
        .rollups(t, &query)
        .await
        .expect("rollups")
        .into_sorted()
        .into_iter()
        .map(|(k, s)| (k.family, k.service.to_string(), k.name.to_string(), s.count, s.errors))
        .collect();
    calls.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    calls
}

async fn span_counts(
    store: &DynStorage,
    t: &TenantId,
    start: u64,
    filters: Vec<(String, String)>,
) -> Vec<(String, f64, f64)> {
    let mut query = RollupQuery::minutes(start - 60_000_000_000, start + 120_000_000_000);
    query.families = vec![Family::Span];
    query.step_minutes = 10;
    query.filters = filters;
    let mut per_service: Vec<(String, f64, f64)> = Vec::new();
    for (key, stats) in store.rollups(t, &query).await.expect("rollups").into_sorted() {
        match per_service.iter_mut().find(|(s, _, _)| **s == *key.service) {
            Some(entry) => {
                entry.1 += stats.count;
                entry.2 += stats.errors;
            }
            None => per_service.push((key.service.to_string(), stats.count, stats.errors)),
        }
    }
    per_service
}

const ROLLUP_TRACE: [u8; 16] = [0xd1; 16];

/// The call frontend → cart arrives server side first; cart's call to redis waits for an
/// answer that never comes, so it counts only once the wait ends (at the latest, at close).
async fn rollups_pair_calls(store: &DynStorage) {
    use span::SpanKind::{Client, Server};
    let t = tenant("conformance-rollups");
    let start = now_nanos();
    let cart = service_request(
        "cart",
        ROLLUP_TRACE,
        start,
        vec![(3, 2, Server, 10, 40, true, vec![]), (4, 3, Client, 20, 10, false, vec![kv("db.system", s("redis"))])],
    );
    let frontend = service_request(
        "frontend",
        ROLLUP_TRACE,
        start,
        vec![(1, 0, Server, 0, 100, false, vec![]), (2, 1, Client, 5, 50, false, vec![])],
    );
    store.write(&t, cart.into()).await.expect("write");
    store.write(&t, frontend.into()).await.expect("write");
    for phase in ["head", "segments"] {
        let call = (Family::Call, "frontend".to_owned(), "cart".to_owned(), 1.0, 1.0);
        assert_eq!(calls(store, &t, start).await, [call], "rollups ({phase}): calls");
        let spans = span_counts(store, &t, start, vec![]).await;
        assert_eq!(
            spans,
            [("cart".to_owned(), 2.0, 1.0), ("frontend".to_owned(), 2.0, 0.0)],
            "rollups ({phase}): spans"
        );
        let filtered = span_counts(store, &t, start, vec![("deployment.environment".into(), "dev".into())]).await;
        assert!(filtered.is_empty(), "rollups ({phase}): dimension filter");
        assert!(
            calls(store, &tenant("conformance-rollups-other"), start).await.is_empty(),
            "rollups ({phase}): tenants"
        );
        store.flush().await.expect("flush");
    }
}

async fn rollups_survive_reopen(store: &DynStorage) {
    let t = tenant("conformance-rollups");
    let trace = TraceId::from_bytes(ROLLUP_TRACE).expect("non-zero");
    let start = store.trace(&t, trace).await.expect("read").iter().map(|r| r.start_unix_nano).min().expect("stored");
    let got = calls(store, &t, start).await;
    assert_eq!(
        got,
        [
            (Family::Call, "frontend".to_owned(), "cart".to_owned(), 1.0, 1.0),
            (Family::Database, "cart".to_owned(), "redis".to_owned(), 1.0, 0.0),
        ],
        "rollups after reopen"
    );
}

const DAY_NANOS: u64 = 86_400_000_000_000;
/// Days well in the past (2022-04-15 and on), as retention drops them.
const OLD_DAY_START: u64 = 19_097 * DAY_NANOS;

/// A day's whole range.
fn day_range(day: u32) -> TimeRange {
    TimeRange { start: u64::from(day) * DAY_NANOS, end: u64::from(day + 1) * DAY_NANOS }
}

async fn span_total(store: &DynStorage, t: &TenantId, trace: [u8; 16]) -> usize {
    read(store, t, trace).await.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

async fn days_report_usage(store: &DynStorage) {
    let (a, b) = (tenant("conformance-days-a"), tenant("conformance-days-b"));
    let first = OLD_DAY_START + 3_600_000_000_000;
    let second = first + DAY_NANOS;
    store.write(&a, every_field_request([0x41; 16], first).into()).await.expect("write");
    store.write(&a, every_field_request([0x42; 16], second).into()).await.expect("write");
    store.write(&a, every_field_request([0x43; 16], second + 1_000).into()).await.expect("write");
    store.write(&b, every_field_request([0x41; 16], second).into()).await.expect("write");
    store.flush().await.expect("flush");
    let days = store.days(&a).await.expect("days");
    let counted: Vec<(u32, u64)> = days.iter().map(|d| (d.day, d.spans)).collect();
    assert_eq!(counted, [(day_of(first), 3), (day_of(second), 6)], "days_report_usage: days of a, oldest first");
    assert!(days.iter().all(|d| d.bytes > 0), "days_report_usage: bytes {days:?}");
    let days = store.days(&b).await.expect("days");
    assert_eq!(
        days.iter().map(|d| (d.day, d.spans)).collect::<Vec<_>>(),
        [(day_of(second), 3)],
        "days_report_usage: b"
    );
    assert!(
        store.days(&tenant("conformance-days-none")).await.expect("days").is_empty(),
        "days_report_usage: a tenant without data"
    );
    let tenants = store.tenants().await.expect("tenants");
    assert!(tenants.contains(&a) && tenants.contains(&b), "days_report_usage: tenants {tenants:?}");
    assert!(tenants.windows(2).all(|w| w[0] < w[1]), "days_report_usage: tenants sorted {tenants:?}");
}

const DROP_OLD: [u8; 16] = [0x51; 16];
const DROP_CALLS: [u8; 16] = [0x52; 16];
const DROP_KEPT: [u8; 16] = [0x53; 16];
const DROP_UNFLUSHED: [u8; 16] = [0x54; 16];

/// Everything about `day` that `t` can read: spans of `traces`, search, catalog and rollups.
async fn assert_day_gone(store: &DynStorage, t: &TenantId, day: u32, traces: &[[u8; 16]], context: &str) {
    for trace in traces {
        assert!(read(store, t, *trace).await.is_empty(), "{context}: trace {trace:?} still reads");
    }
    let range = day_range(day);
    assert!(found(store, t, range, vec![]).await.is_empty(), "{context}: search finds the day");
    let catalog = store.catalog(t, range).await.expect("catalog");
    assert!(catalog.operations.is_empty(), "{context}: catalog {:?}", catalog.operations);
    let rollups = store.rollups(t, &RollupQuery::minutes(range.start, range.end)).await.expect("rollups");
    assert!(rollups.is_empty(), "{context}: rollups {:?}", rollups.into_sorted());
    let days = store.days(t).await.expect("days");
    assert!(days.iter().all(|d| d.day != day), "{context}: days {days:?}");
}

async fn drop_day_deletes_the_day(store: &DynStorage) {
    use span::SpanKind::{Client, Server};
    let (t, other) = (tenant("conformance-drop"), tenant("conformance-drop-other"));
    let old = OLD_DAY_START + 7_200_000_000_000;
    let (old_day, next) = (day_of(old), old + DAY_NANOS);
    store.write(&t, every_field_request(DROP_OLD, old).into()).await.expect("write");
    // A call to a database that nothing answers: it counts once its wait ends.
    let calls = service_request(
        "cart",
        DROP_CALLS,
        old,
        vec![(1, 0, Server, 0, 40, false, vec![]), (2, 1, Client, 10, 10, false, vec![kv("db.system", s("redis"))])],
    );
    store.write(&t, calls.into()).await.expect("write");
    store.write(&t, every_field_request(DROP_KEPT, next).into()).await.expect("write");
    store.write(&other, every_field_request(DROP_OLD, old).into()).await.expect("write");
    store.flush().await.expect("flush");
    let before = store.days(&t).await.expect("days");
    assert_eq!(before.iter().map(|d| (d.day, d.spans)).collect::<Vec<_>>(), [(old_day, 5), (old_day + 1, 3)]);

    let freed = store.drop_day(&t, old_day).await.expect("drop_day");
    assert_eq!(freed, before[0], "drop_day_deletes_the_day: what was freed");
    assert_day_gone(store, &t, old_day, &[DROP_OLD, DROP_CALLS], "drop_day_deletes_the_day").await;
    assert_eq!(span_total(store, &t, DROP_KEPT).await, 3, "drop_day_deletes_the_day: the other day");
    let kept = found(store, &t, day_range(old_day + 1), vec![]).await;
    assert_eq!(kept, [TraceId::from_bytes(DROP_KEPT).expect("non-zero")], "drop_day_deletes_the_day: search");
    assert_eq!(store.days(&t).await.expect("days"), before[1..], "drop_day_deletes_the_day: days left");
    assert_eq!(span_total(store, &other, DROP_OLD).await, 3, "drop_day_deletes_the_day: other tenant");
    assert_eq!(store.days(&other).await.expect("days").len(), 1, "drop_day_deletes_the_day: other tenant's days");

    // Acknowledged and not flushed yet: dropped too.
    store.write(&t, every_field_request(DROP_UNFLUSHED, old + 1_000).into()).await.expect("write");
    let freed = store.drop_day(&t, old_day).await.expect("drop_day");
    assert_eq!((freed.day, freed.spans), (old_day, 3), "drop_day_deletes_the_day: unflushed spans");
    assert_day_gone(store, &t, old_day, &[DROP_OLD, DROP_CALLS, DROP_UNFLUSHED], "drop_day_deletes_the_day: unflushed")
        .await;

    let empty = store.drop_day(&t, old_day - 30).await.expect("drop an empty day");
    assert_eq!(empty, DayUsage { day: old_day - 30, bytes: 0, spans: 0 }, "drop_day_deletes_the_day: empty day");
}

async fn dropped_day_stays_dropped(store: &DynStorage) {
    let t = tenant("conformance-drop");
    let old_day = day_of(OLD_DAY_START + 7_200_000_000_000);
    assert_day_gone(store, &t, old_day, &[DROP_OLD, DROP_CALLS, DROP_UNFLUSHED], "dropped_day_stays_dropped").await;
    assert_eq!(span_total(store, &t, DROP_KEPT).await, 3, "dropped_day_stays_dropped: the other day");
    assert_eq!(span_total(store, &tenant("conformance-drop-other"), DROP_OLD).await, 3, "dropped_day_stays_dropped");
}
