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

use crate::DynStorage;

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
