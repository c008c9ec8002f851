//! The conformance suite: what every backend must do, run against each of them unchanged.
//!
//! A backend's test opens its store through a [`Harness`] and calls [`run`]. Each case uses
//! its own tenant, so cases do not see each other's data.

use async_trait::async_trait;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use clew_model::{assemble, TenantId, TraceId};

use crate::{Condition, DynStorage, FindRequest, Op, Target, Test, TimeRange, Value as V};

/// Opens the backend under test.
#[async_trait]
pub trait Harness: Send {
    /// Opens the store; after [`crate::Storage::close`], opens the same data again.
    async fn open(&mut self) -> DynStorage;
}

/// Runs every case; panics with a message naming the case that failed.
pub async fn run(harness: &mut impl Harness) {
    let store = harness.open().await;
    lossless_round_trip(&store).await;
    unknown_trace_is_empty(&store).await;
    tenants_are_isolated(&store).await;
    trace_written_in_parts_reads_whole(&store).await;
    find_by_conditions(&store).await;
    catalog_and_values(&store).await;
    store.close().await.expect("close");
    let store = harness.open().await;
    survives_reopen(&store).await;
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
    store.write(&t, request.clone()).await.expect("write");
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
    store.write(&a, request.clone()).await.expect("write");
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
    store.write(&t, first).await.expect("write first part");
    store.flush().await.expect("flush");
    store.write(&t, second).await.expect("write second part");
    assert_eq!(read(store, &t, [3; 16]).await, whole.resource_spans, "trace_written_in_parts_reads_whole");
}

async fn survives_reopen(store: &DynStorage) {
    let t = tenant("conformance-lossless");
    let spans: usize = read(store, &t, [1; 16]).await.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(spans, 3, "survives_reopen");
    let t = tenant("conformance-parts");
    let spans: usize = read(store, &t, [3; 16]).await.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(spans, 3, "survives_reopen: parts");
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
    store.write(&t, every_field_request(a, start)).await.expect("write");
    let mut other = every_field_request(b, start + 1_000);
    for span in other.resource_spans[0].scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
        span.name = "SELECT orders".into();
        span.kind = 3;
        span.status = None;
        span.end_time_unix_nano = span.start_time_unix_nano + 50_000_000;
        span.attributes.retain(|kv| kv.key != "retry");
    }
    store.write(&t, other).await.expect("write");
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
    store.write(&t, every_field_request([0xc3; 16], start)).await.expect("write");
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
