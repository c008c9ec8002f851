#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

//! The Zipkin v2 receiver driven with `oneshot` over the real embedded engine: what it accepts,
//! what it refuses and with which status, and that accepted spans read back as sent.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use clew_ingest::Ingest;
use clew_model::{assemble, TenantId, TraceId};
use clew_pipeline::PipelineSettings;
use clew_storage::{SpanWriter, Storage, StorageError, TraceReader, WriteReceipt};
use clew_store_local::{EngineOptions, LocalEngine};
use clew_tenancy::{Metadata, Tenancy, TenancyOptions};
use clew_zipkin::{proto, Kind, ZipkinSpan};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use prost::Message;
use serde_json::json;
use tower::ServiceExt;

const PATH: &str = "/zipkin/api/v2/spans";
const TRACE_ID: &str = "5af7183fb1d4cf5f5af7183fb1d4cf5f";
/// 2024-05-01T00:00:00Z in microseconds.
const START_US: u64 = 1_714_521_600_000_000;

struct Harness {
    router: axum::Router,
    engine: Arc<LocalEngine>,
    _dir: tempfile::TempDir,
}

async fn harness(max_request_bytes: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let engine = Arc::new(LocalEngine::open(EngineOptions::new(dir.path()), &mut registry).await.unwrap());
    let tenancy =
        Tenancy::local(Metadata::sqlite(&dir.path().join("metadata.sqlite")).await.unwrap(), TenancyOptions::default())
            .await
            .unwrap();
    let ingest =
        Ingest::new(engine.clone(), tenancy, PipelineSettings::default(), None, max_request_bytes, &mut registry)
            .unwrap();
    Harness { router: ingest.zipkin_router(), engine, _dir: dir }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn post(router: &axum::Router, headers: &[(header::HeaderName, &str)], body: Vec<u8>) -> Answer {
    let mut request = Request::post(PATH);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = router.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body: String::from_utf8(body.to_vec()).unwrap() }
}

fn json_content() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "application/json")]
}

/// A server span and its client child calling `payments`, as a Zipkin reporter sends them.
fn sample_json() -> serde_json::Value {
    json!([
        {
            "traceId": TRACE_ID, "id": "0000000000000001", "kind": "SERVER", "name": "get /checkout",
            "timestamp": START_US, "duration": 2500,
            "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1", "port": 8080},
            "tags": {"http.method": "GET", "http.path": "/checkout"}
        },
        {
            "traceId": TRACE_ID, "parentId": "0000000000000001", "id": "0000000000000002", "kind": "CLIENT",
            "name": "post /pay", "timestamp": START_US + 100, "duration": 1800,
            "localEndpoint": {"serviceName": "frontend"},
            "remoteEndpoint": {"serviceName": "payments", "ipv4": "10.0.0.2", "port": 9000},
            "annotations": [{"timestamp": START_US + 150, "value": "wire.send"}],
            "tags": {"http.method": "POST", "error": "card declined"}
        }
    ])
}

/// The stored trace, read back in Zipkin's shape and sorted by span ID.
async fn read_back(engine: &LocalEngine, trace_id: &str) -> Vec<ZipkinSpan> {
    let id: TraceId = format!("{trace_id:0>32}").parse().unwrap();
    let rows = engine.trace(&TenantId::default_tenant(), id).await.unwrap();
    let mut spans = clew_zipkin::to_zipkin(&assemble(rows).unwrap());
    spans.sort_by(|a, b| a.id.cmp(&b.id));
    spans
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn json_spans_are_accepted_and_read_back_as_sent() {
    let Harness { router, engine, _dir } = harness(1 << 20).await;
    let sent = sample_json();
    let answer = post(&router, &json_content(), serde_json::to_vec(&sent).unwrap()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body, "", "Zipkin answers 202 with an empty body");

    let spans = read_back(&engine, TRACE_ID).await;
    let expected: Vec<ZipkinSpan> = serde_json::from_value(sent).unwrap();
    assert_eq!(spans, expected);
    assert_eq!(spans[1].remote_endpoint.as_ref().unwrap().service_name.as_deref(), Some("payments"));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn json_is_assumed_when_no_content_type_is_sent() {
    let Harness { router, engine, _dir } = harness(1 << 20).await;
    let answer = post(&router, &[], serde_json::to_vec(&sample_json()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(read_back(&engine, TRACE_ID).await.len(), 2);
    let answer = post(&router, &json_content(), b"[]".to_vec()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "an empty list is accepted: {}", answer.body);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn protobuf_spans_are_accepted_and_read_back() {
    let Harness { router, engine, _dir } = harness(1 << 20).await;
    let list = proto::ListOfSpans {
        spans: vec![proto::Span {
            // A 64-bit trace ID.
            trace_id: vec![0, 0, 0, 0, 0, 0, 0xab, 0xcd],
            id: vec![0, 0, 0, 0, 0, 0, 0, 7],
            kind: proto::Kind::Producer as i32,
            name: "send order".into(),
            timestamp: START_US,
            duration: 42,
            local_endpoint: Some(proto::Endpoint {
                service_name: "orders".into(),
                ipv4: vec![192, 168, 0, 1],
                ..Default::default()
            }),
            tags: [("messaging.system".to_owned(), "kafka".to_owned())].into(),
            ..Default::default()
        }],
    };
    let headers = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let answer = post(&router, &headers, list.encode_to_vec()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);

    let spans = read_back(&engine, "000000000000abcd").await;
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!((span.trace_id.as_str(), span.id.as_str()), ("000000000000abcd", "0000000000000007"));
    assert_eq!(span.kind, Some(Kind::Producer));
    assert_eq!(span.name.as_deref(), Some("send order"));
    assert_eq!((span.timestamp, span.duration), (Some(START_US), Some(42)));
    let local = span.local_endpoint.as_ref().unwrap();
    assert_eq!((local.service_name.as_deref(), local.ipv4.as_deref()), (Some("orders"), Some("192.168.0.1")));
    assert_eq!(span.tags["messaging.system"], "kafka");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn gzip_bodies_are_accepted() {
    let Harness { router, engine, _dir } = harness(1 << 20).await;
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CONTENT_ENCODING, "gzip")];
    let answer = post(&router, &headers, gzip(&serde_json::to_vec(&sample_json()).unwrap())).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(read_back(&engine, TRACE_ID).await.len(), 2);

    let answer = post(&router, &headers, b"not gzip".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.starts_with("decode Zipkin JSON request: gunzip body:"), "{}", answer.body);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn other_content_types_and_encodings_are_415() {
    let Harness { router, _dir, .. } = harness(1 << 20).await;
    let body = serde_json::to_vec(&sample_json()).unwrap();
    let answer = post(&router, &[(header::CONTENT_TYPE, "application/x-thrift")], body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.body.contains("\"application/x-thrift\""), "{}", answer.body);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");

    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CONTENT_ENCODING, "br")];
    let answer = post(&router, &headers, body).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.body.contains("\"br\""), "{}", answer.body);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_before_and_after_gunzip() {
    let body = serde_json::to_vec(&sample_json()).unwrap();
    let Harness { router, engine, _dir } = harness(body.len() - 1).await;
    let answer = post(&router, &json_content(), body.clone()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.body.contains(&format!("limit of {} bytes", body.len() - 1)), "{}", answer.body);

    // Small on the wire, too large once decompressed.
    let compressed = gzip(&body);
    assert!(compressed.len() < body.len() - 1);
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CONTENT_ENCODING, "gzip")];
    let answer = post(&router, &headers, compressed).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.body.contains("once decompressed"), "{}", answer.body);
    assert!(read_back(&engine, TRACE_ID).await.is_empty(), "nothing was stored");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_problem_named() {
    let Harness { router, _dir, .. } = harness(1 << 20).await;
    for (body, expected) in [
        (&b"{\"traceId\": 1}"[..], "decode Zipkin JSON request: invalid JSON at line 1"),
        (br#"[{"traceId": "xyz", "id": "0000000000000001"}]"#, "decode Zipkin JSON request: span 0: "),
        (br#"[{"id": "0000000000000001"}]"#, "decode Zipkin JSON request: span 0: traceId is required"),
    ] {
        let answer = post(&router, &json_content(), body.to_vec()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(answer.body.starts_with(expected), "{expected:?} is not the start of {:?}", answer.body);
        assert_eq!(answer.headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }
    let headers = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let answer = post(&router, &headers, vec![0xff, 0xff, 0xff]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.starts_with("decode Zipkin protobuf request: invalid protobuf"), "{}", answer.body);
}

#[tokio::test]
async fn spans_the_validator_rejects_are_400_only_when_none_is_left() {
    let Harness { router, engine, _dir } = harness(1 << 20).await;
    // Zipkin allows a span without a timestamp; Clew cannot store one.
    let untimed = json!({"traceId": TRACE_ID, "id": "00000000000000aa", "name": "late tags",
        "localEndpoint": {"serviceName": "frontend"}});
    let answer = post(&router, &json_content(), serde_json::to_vec(&json!([untimed])).unwrap()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let expected = "no span was stored: 1 span(s) rejected: span \"late tags\" (span ID 00000000000000aa)";
    assert!(answer.body.starts_with(expected), "{}", answer.body);
    assert!(answer.body.contains("start time is missing"), "{}", answer.body);

    let mut mixed = sample_json();
    mixed.as_array_mut().unwrap().push(untimed);
    let answer = post(&router, &json_content(), serde_json::to_vec(&mixed).unwrap()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(read_back(&engine, TRACE_ID).await.len(), 2, "the valid spans were stored");
    engine.close().await.unwrap();
}

/// A store that is always overloaded.
struct Overloaded;

#[async_trait::async_trait]
impl SpanWriter for Overloaded {
    async fn write(&self, _: &TenantId, _: clew_model::SpanBatch) -> clew_storage::Result<WriteReceipt> {
        Err(StorageError::Overloaded { reason: "head is full".into(), retry_after: Duration::from_secs(3) })
    }
}

#[tokio::test]
async fn overload_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let tenancy =
        Tenancy::local(Metadata::sqlite(&dir.path().join("metadata.sqlite")).await.unwrap(), TenancyOptions::default())
            .await
            .unwrap();
    let ingest = Ingest::new(
        Arc::new(Overloaded),
        tenancy,
        PipelineSettings::default(),
        None,
        1 << 20,
        &mut Registry::default(),
    )
    .unwrap();
    let router = ingest.zipkin_router();
    let answer = post(&router, &json_content(), serde_json::to_vec(&sample_json()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers[header::RETRY_AFTER], "3");
    assert!(answer.body.contains("overloaded"), "{}", answer.body);
}

#[tokio::test]
async fn only_post_is_routed() {
    let Harness { router, _dir, .. } = harness(1 << 20).await;
    let response = router.clone().oneshot(Request::get(PATH).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
