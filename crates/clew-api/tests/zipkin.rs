#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

//! Zipkin's v2 query API (`/zipkin/api/v2`) driven with `oneshot` over the real embedded engine:
//! spans written as OTLP, read back in Zipkin's JSON shape.

mod common;

use axum::http::StatusCode;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value, KeyValue};
use clew_model::otlp::trace::v1::span::{Event, SpanKind};
use clew_model::otlp::trace::v1::status::StatusCode as OtlpStatus;
use clew_model::otlp::trace::v1::Status;
use clew_storage::Storage;
use common::{hex, kv, resource_spans, span, spec, App, SpanSpec, MILLI};
use serde_json::{json, Value};

/// frontend GET /checkout → frontend POST /pay (client, peer.service payments, failed) →
/// payments charge (failed).
const CHECKOUT: [u8; 16] = [0xa1; 16];
/// frontend GET /health alone, a millisecond long.
const HEALTH: [u8; 16] = [0xb2; 16];
/// A 64-bit trace ID (upper half zero): audit export, calling `ledger`.
const LEGACY: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3];

/// A string attribute.
fn text(key: &str, value: &str) -> KeyValue {
    kv(key, common::text(value))
}

/// A span status.
fn status(code: OtlpStatus, message: &str) -> Option<Status> {
    Some(Status { code: code as i32, message: message.into() })
}

/// The router over the test traces, and the start of the checkout trace, Unix nanoseconds (ten
/// minutes ago).
async fn app() -> (App, u64) {
    let base = clew_query::now_nanos() - 600_000 * MILLI;

    let frontend = vec![
        span(SpanSpec {
            attributes: vec![
                text("http.request.method", "GET"),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
            ],
            ..spec(CHECKOUT, 1, "GET /checkout", base, 10 * MILLI)
        }),
        span(SpanSpec {
            parent: Some(1),
            kind: SpanKind::Client,
            attributes: vec![text("peer.service", "payments"), text("network.peer.address", "10.0.0.2")],
            events: vec![Event { time_unix_nano: base + 2 * MILLI, name: "retry".into(), ..Default::default() }],
            status: status(OtlpStatus::Error, "card declined"),
            ..spec(CHECKOUT, 2, "POST /pay", base + MILLI, 8 * MILLI)
        }),
        span(spec(HEALTH, 1, "GET /health", base + 60_000 * MILLI, MILLI)),
    ];
    let payments = vec![span(SpanSpec {
        parent: Some(2),
        attributes: vec![text("card.brand", "visa")],
        status: status(OtlpStatus::Error, ""),
        ..spec(CHECKOUT, 3, "charge", base + 2 * MILLI, 5 * MILLI)
    })];
    let audit = vec![span(SpanSpec {
        kind: SpanKind::Client,
        attributes: vec![text("peer.service", "ledger")],
        ..spec(LEGACY, 1, "export", base - 60_000 * MILLI, 3 * MILLI)
    })];
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", Vec::new(), frontend),
            resource_spans("payments", vec![text("host.name", "node-2")], payments),
            resource_spans("audit", Vec::new(), audit),
        ],
    };
    (common::app_with([request]).await, base)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.content_type, "application/json");
        serde_json::from_str(&self.body).unwrap()
    }

    /// A plain-text failure with this status.
    fn failure(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "text/plain; charset=utf-8");
        &self.body
    }
}

/// `GET /zipkin/api/v2{uri}`.
async fn get(router: &axum::Router, uri: &str) -> Answer {
    let reply = common::send(router, common::get_request(&format!("/zipkin/api/v2{uri}"))).await;
    let body = reply.text();
    Answer { status: reply.status, content_type: reply.content_type, body }
}

/// The IDs of the traces a `/traces` answer holds, in order.
fn trace_ids(answer: &Answer) -> Vec<String> {
    answer
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| {
            let id = trace[0]["traceId"].as_str().unwrap().to_owned();
            assert!(trace.as_array().unwrap().iter().all(|s| s["traceId"] == id.as_str()), "one trace per list");
            id
        })
        .collect()
}

#[tokio::test]
async fn names_are_listed() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    assert_eq!(get(&router, "/services").await.json(), json!(["audit", "frontend", "payments"]));
    assert_eq!(
        get(&router, "/spans?serviceName=frontend").await.json(),
        json!(["GET /checkout", "GET /health", "POST /pay"])
    );
    assert_eq!(get(&router, "/spans?serviceName=nobody").await.json(), json!([]));
    assert_eq!(get(&router, "/remoteServices?serviceName=frontend").await.json(), json!(["payments"]));
    assert_eq!(get(&router, "/remoteServices?serviceName=audit").await.json(), json!(["ledger"]));
    assert_eq!(get(&router, "/remoteServices?serviceName=payments").await.json(), json!([]));
    for uri in ["/spans", "/remoteServices?serviceName="] {
        assert_eq!(get(&router, uri).await.failure(StatusCode::BAD_REQUEST), "serviceName is required", "{uri}");
    }
    engine.close().await.unwrap();
}

#[tokio::test]
async fn a_trace_reads_back_in_zipkin_shape() {
    let (App { router, engine, _dir, .. }, base) = app().await;
    let spans = get(&router, &format!("/trace/{}", hex(CHECKOUT))).await.json();
    let spans = spans.as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let by_name = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap().clone();
    let root = by_name("GET /checkout");
    assert_eq!(root["traceId"], hex(CHECKOUT));
    assert_eq!(root["id"], "0101010101010101");
    assert!(root.get("parentId").is_none());
    assert_eq!(root["kind"], "SERVER");
    assert_eq!(root["timestamp"], base / 1000);
    assert_eq!(root["duration"], 10_000);
    assert_eq!(root["localEndpoint"], json!({"serviceName": "frontend"}));
    assert_eq!(root["tags"], json!({"http.request.method": "GET", "http.response.status_code": "200"}));

    let client = by_name("POST /pay");
    assert_eq!(client["parentId"], "0101010101010101");
    assert_eq!(client["kind"], "CLIENT");
    assert_eq!(client["remoteEndpoint"], json!({"serviceName": "payments", "ipv4": "10.0.0.2"}));
    assert_eq!(client["annotations"], json!([{"timestamp": base / 1000 + 2000, "value": "retry"}]));
    assert_eq!(client["tags"], json!({"otel.status_code": "ERROR", "error": "card declined"}));

    let server = by_name("charge");
    assert_eq!(server["localEndpoint"]["serviceName"], "payments");
    assert_eq!(server["tags"]["host.name"], "node-2", "resource attributes are tags");
    assert_eq!(server["tags"]["error"], "true");

    // A 64-bit ID, asked for with 16 or 32 characters.
    let legacy = get(&router, "/trace/c3c3c3c3c3c3c3c3").await.json();
    assert_eq!(legacy[0]["traceId"], "c3c3c3c3c3c3c3c3");
    assert_eq!(get(&router, &format!("/trace/{}", hex(LEGACY))).await.json(), legacy);
    assert_eq!(
        get(&router, &format!("/trace/{}", hex(CHECKOUT).to_uppercase())).await.json().as_array().unwrap().len(),
        3
    );
    engine.close().await.unwrap();
}

#[tokio::test]
async fn unknown_and_malformed_trace_ids_are_404_and_400() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let unknown = "d4".repeat(16);
    assert_eq!(
        get(&router, &format!("/trace/{unknown}")).await.failure(StatusCode::NOT_FOUND),
        format!("trace {unknown} not found")
    );
    for bad in ["xyz", &"a".repeat(33), &"0".repeat(32)] {
        let answer = get(&router, &format!("/trace/{bad}")).await;
        assert!(answer.failure(StatusCode::BAD_REQUEST).contains("trace ID"), "{bad}: {}", answer.body);
    }
    engine.close().await.unwrap();
}

#[tokio::test]
async fn several_traces_are_read_at_once() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let answer =
        get(&router, &format!("/traceMany?traceIds={},{},{}", hex(CHECKOUT), hex(HEALTH), "d4".repeat(16))).await;
    let traces = answer.json();
    assert_eq!(traces.as_array().unwrap().len(), 2, "unknown IDs are left out");
    assert_eq!(traces[0].as_array().unwrap().len(), 3);
    assert_eq!(traces[1][0]["name"], "GET /health");
    let answer = get(&router, &format!("/traceMany?traceIds={}", hex(CHECKOUT))).await;
    assert!(answer.failure(StatusCode::BAD_REQUEST).contains("at least two"), "{}", answer.body);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn trace_search_keeps_zipkin_meaning() {
    let (App { router, engine, _dir, .. }, base) = app().await;
    let (checkout, health, legacy) = (hex(CHECKOUT), hex(HEALTH), "c3c3c3c3c3c3c3c3".to_owned());
    let end_ts = clew_query::now_nanos() / MILLI;
    for (query, expected) in [
        ("serviceName=frontend", vec![&health, &checkout]),
        ("", vec![&health, &checkout, &legacy]),
        ("serviceName=frontend&limit=1", vec![&health]),
        ("serviceName=frontend&spanName=POST%20/pay", vec![&checkout]),
        ("serviceName=frontend&spanName=all", vec![&health, &checkout]),
        ("serviceName=payments&spanName=POST%20/pay", vec![]),
        ("remoteServiceName=payments", vec![&checkout]),
        ("serviceName=frontend&remoteServiceName=ledger", vec![]),
        // An annotation value, a tag key, tags of any attribute type, tags from the status and
        // the resource.
        ("annotationQuery=retry", vec![&checkout]),
        ("annotationQuery=card.brand", vec![&checkout]),
        ("annotationQuery=http.response.status_code%3D200%20and%20http.request.method%3DGET", vec![&checkout]),
        ("annotationQuery=http.response.status_code%3D404", vec![]),
        ("serviceName=frontend&annotationQuery=error%3Dcard%20declined", vec![&checkout]),
        ("serviceName=payments&annotationQuery=error%3Dtrue%20and%20host.name%3Dnode-2", vec![&checkout]),
        ("serviceName=frontend&annotationQuery=otel.status_code%3DERROR", vec![&checkout]),
        // Every condition on a span of the service: card.brand is a payments tag.
        ("serviceName=frontend&annotationQuery=card.brand%3Dvisa", vec![]),
        ("serviceName=frontend&annotationQuery=retry%20and%20http.request.method%3DGET", vec![&checkout]),
        // Durations in microseconds.
        ("minDuration=9000", vec![&checkout]),
        ("minDuration=500&maxDuration=1000", vec![&health]),
        ("serviceName=payments&minDuration=6000", vec![]),
    ] {
        let answer = get(&router, &format!("/traces?{query}")).await;
        let expected: Vec<&str> = expected.into_iter().map(String::as_str).collect();
        assert_eq!(trace_ids(&answer), expected, "{query}: {}", answer.body);
    }
    // The window: endTs and lookback in milliseconds.
    let before_checkout = base / MILLI - 1;
    for (query, expected) in [
        (format!("endTs={end_ts}&lookback=300000"), vec![]),
        (format!("endTs={before_checkout}&lookback=3600000"), vec![&legacy]),
        (format!("endTs={}&lookback=1", base / MILLI), vec![&checkout]),
    ] {
        let answer = get(&router, &format!("/traces?{query}")).await;
        let expected: Vec<&str> = expected.into_iter().map(String::as_str).collect();
        assert_eq!(trace_ids(&answer), expected, "{query}: {}", answer.body);
    }
    // Whole traces, every span.
    let traces = get(&router, "/traces?remoteServiceName=payments").await.json();
    assert_eq!(traces[0].as_array().unwrap().len(), 3);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn bad_searches_are_400_with_the_problem_named() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    for (query, expected) in [
        ("maxDuration=10", "maxDuration is only valid with minDuration"),
        ("minDuration=0", "minDuration must be a positive number"),
        ("minDuration=10&maxDuration=5", "maxDuration must not be below minDuration"),
        ("minDuration=fast", "`minDuration` must be a whole number from 0 to"),
        ("endTs=yesterday", "`endTs` must be a whole number from 0 to"),
        ("lookback=0", "lookback must be a positive number"),
        ("limit=0", "limit must be positive"),
        ("annotationQuery=%3Dx", "has no key"),
    ] {
        let answer = get(&router, &format!("/traces?{query}")).await;
        assert!(answer.failure(StatusCode::BAD_REQUEST).contains(expected), "{query}: {}", answer.body);
    }
    engine.close().await.unwrap();
}

#[tokio::test]
async fn dependencies_link_services_that_call_each_other() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let end_ts = clew_query::now_nanos() / MILLI;
    assert_eq!(
        get(&router, &format!("/dependencies?endTs={end_ts}")).await.json(),
        json!([{"parent": "frontend", "child": "payments", "callCount": 1, "errorCount": 1}])
    );
    assert_eq!(get(&router, &format!("/dependencies?endTs={end_ts}&lookback=60000")).await.json(), json!([]));
    assert_eq!(get(&router, "/dependencies").await.failure(StatusCode::BAD_REQUEST), "endTs is required");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn tag_keys_and_values_autocomplete() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let keys = get(&router, "/autocompleteKeys").await.json();
    let keys: Vec<&str> = keys.as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(keys, ["card.brand", "http.request.method", "http.response.status_code"], "peer.service is no tag");
    assert_eq!(get(&router, "/autocompleteValues?key=http.response.status_code").await.json(), json!(["200"]));
    assert_eq!(get(&router, "/autocompleteValues?key=card.brand").await.json(), json!(["visa"]));
    assert_eq!(get(&router, "/autocompleteValues?key=nothing").await.json(), json!([]));
    assert_eq!(get(&router, "/autocompleteValues").await.failure(StatusCode::BAD_REQUEST), "key is required");
    engine.close().await.unwrap();
}
