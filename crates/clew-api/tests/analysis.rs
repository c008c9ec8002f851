//! Trace analyses of the native API (critical path, comparison) driven with `oneshot` over the
//! real embedded engine, on two hand-built traces whose answers are known exactly.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use axum::http::StatusCode;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::otlp::trace::v1::status::StatusCode as OtlpStatus;
use clew_model::otlp::trace::v1::{ResourceSpans, Status};
use clew_storage::Storage;
use common::{app_with, get, hex, json, on_node_1, span, App, SpanSpec, MILLI};
use serde_json::{json, Value};

const BEFORE: [u8; 16] = [0xa1; 16];
const AFTER: [u8; 16] = [0xb2; 16];
const UNKNOWN: [u8; 16] = [0xcd; 16];
const BASE: u64 = 1_700_000_000_000_000_000;

/// A span of trace `trace` from `start` to `end` milliseconds after `base`.
fn spec(trace: [u8; 16], id: u8, parent: Option<u8>, name: &str, base: u64, start: u64, end: u64) -> SpanSpec<'_> {
    SpanSpec {
        parent,
        kind: if parent.is_some() { SpanKind::Client } else { SpanKind::Server },
        ..common::spec(trace, id, name, base + start * MILLI, (end - start) * MILLI)
    }
}

/// The spans of `service` (each `(id, parent, name, start ms, end ms)`) in `trace` at `base`.
fn service(trace: [u8; 16], base: u64, service: &str, spans: &[(u8, Option<u8>, &str, u64, u64)]) -> ResourceSpans {
    let spans =
        spans.iter().map(|&(id, parent, name, start, end)| span(spec(trace, id, parent, name, base, start, end)));
    on_node_1(service, spans.collect())
}

/// Before: frontend `GET /cart` 0..100 ms → cart `GetCart` 10..60 (→ redis `GET` 20..30 and
/// 30..50), then pricing `Quote` 60..90.
fn before() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![
            service(BEFORE, BASE, "frontend", &[(1, None, "GET /cart", 0, 100)]),
            service(BEFORE, BASE, "cart", &[(2, Some(1), "GetCart", 10, 60)]),
            service(BEFORE, BASE, "redis", &[(3, Some(2), "GET", 20, 30), (4, Some(2), "GET", 30, 50)]),
            service(BEFORE, BASE, "pricing", &[(5, Some(1), "Quote", 60, 90)]),
        ],
    }
}

/// After, a second later: `GET /cart` 0..130 → `GetCart` 10..100 with a third redis `GET`
/// 50..65; no pricing; a failed recommendations `List` 100..120.
fn after() -> ExportTraceServiceRequest {
    let base = BASE + 1_000 * MILLI;
    let mut recommendations = service(AFTER, base, "recommendations", &[(7, Some(1), "List", 100, 120)]);
    recommendations.scope_spans[0].spans[0].status =
        Some(Status { code: OtlpStatus::Error as i32, message: "timeout".into() });
    ExportTraceServiceRequest {
        resource_spans: vec![
            service(AFTER, base, "frontend", &[(1, None, "GET /cart", 0, 130)]),
            service(AFTER, base, "cart", &[(2, Some(1), "GetCart", 10, 100)]),
            service(
                AFTER,
                base,
                "redis",
                &[(3, Some(2), "GET", 20, 30), (4, Some(2), "GET", 30, 50), (6, Some(2), "GET", 50, 65)],
            ),
            recommendations,
        ],
    }
}

fn span_id(id: u8) -> String {
    format!("{id:02x}").repeat(8)
}

fn millis(ms: u64) -> String {
    (ms * MILLI).to_string()
}

/// The error code and message of a native error body.
fn error(body: &str) -> (String, String) {
    let body = json(body);
    (body["error"]["code"].as_str().unwrap().to_owned(), body["error"]["message"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn critical_path_follows_the_last_finishing_child() {
    let App { router, engine, _dir, .. } = app_with([before(), after()]).await;
    let (status, body) = get(&router, &format!("/api/v1/traces/{}/critical-path", hex(BEFORE))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // (span, service, name, start ms, end ms)
    let segments = [
        (1, "frontend", "GET /cart", 0, 10),
        (2, "cart", "GetCart", 10, 20),
        (3, "redis", "GET", 20, 30),
        (4, "redis", "GET", 30, 50),
        (2, "cart", "GetCart", 50, 60),
        (5, "pricing", "Quote", 60, 90),
        (1, "frontend", "GET /cart", 90, 100),
    ];
    let segments: Vec<Value> = segments
        .iter()
        .map(|&(id, service, name, start, end)| {
            json!({
                "spanId": span_id(id),
                "service": service,
                "name": name,
                "startUnixNano": (BASE + start * MILLI).to_string(),
                "endUnixNano": (BASE + end * MILLI).to_string(),
                "selfTimeNanos": millis(end - start),
            })
        })
        .collect();
    // Most self time first; ties in order of first appearance.
    let spans = [
        (5, "pricing", "Quote", 30, 1),
        (1, "frontend", "GET /cart", 20, 2),
        (2, "cart", "GetCart", 20, 2),
        (4, "redis", "GET", 20, 1),
        (3, "redis", "GET", 10, 1),
    ];
    let spans: Vec<Value> = spans
        .iter()
        .map(|&(id, service, name, ms, count)| {
            json!({"spanId": span_id(id), "service": service, "name": name, "selfTimeNanos": millis(ms), "segments": count})
        })
        .collect();
    assert_eq!(
        json(&body),
        json!({
            "traceId": hex(BEFORE),
            "rootSpanId": span_id(1),
            "rootMissing": false,
            "startUnixNano": BASE.to_string(),
            "durationNanos": millis(100),
            "segments": segments,
            "spans": spans,
        })
    );

    // After: the failed recommendations call ended last, then GetCart waited on the third GET.
    let (status, body) = get(&router, &format!("/api/v1/traces/{}/critical-path", hex(AFTER))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = json(&body);
    let outline: Vec<(String, String, String)> = path["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |key: &str| s[key].as_str().unwrap().to_owned();
            (text("spanId"), text("startUnixNano"), text("selfTimeNanos"))
        })
        .collect();
    let base = BASE + 1_000 * MILLI;
    let expected: Vec<(String, String, String)> =
        [(1, 0, 10), (2, 10, 20), (3, 20, 30), (4, 30, 50), (6, 50, 65), (2, 65, 100), (7, 100, 120), (1, 120, 130)]
            .iter()
            .map(|&(id, start, end)| (span_id(id), (base + start * MILLI).to_string(), millis(end - start)))
            .collect();
    assert_eq!(outline, expected);
    assert_eq!(path["durationNanos"], millis(130));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn compare_matches_spans_by_path_and_flags_the_changes() {
    let App { router, engine, _dir, .. } = app_with([before(), after()]).await;
    let (status, body) = get(&router, &format!("/api/v1/traces/{}/compare/{}", hex(BEFORE), hex(AFTER))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let comparison = json(&body);
    assert_eq!((&comparison["traceIdA"], &comparison["traceIdB"]), (&json!(hex(BEFORE)), &json!(hex(AFTER))));
    assert_eq!(
        comparison["totals"],
        json!({
            "durationNanosA": millis(100),
            "durationNanosB": millis(130),
            "diffNanos": millis(30),
            "ratio": 1.3,
            "change": "slower",
            "spansA": 5,
            "spansB": 6,
            "errorsA": 0,
            "errorsB": 1,
            "matchedSpans": 4,
            "addedSpans": 2,
            "missingSpans": 1,
        })
    );
    let paths = comparison["paths"].as_array().unwrap();
    let outline: Vec<Value> = paths
        .iter()
        .map(|p| json!([p["path"], p["depth"], p["status"], p["countA"], p["countB"], p["change"]]))
        .collect();
    assert_eq!(
        outline,
        [
            json!(["frontend:GET /cart", 0, "matched", 1, 1, "slower"]),
            json!(["frontend:GET /cart > cart:GetCart", 1, "matched", 1, 1, "slower"]),
            json!(["frontend:GET /cart > cart:GetCart > redis:GET", 2, "matched", 2, 3, "slower"]),
            json!(["frontend:GET /cart > pricing:Quote", 1, "missing", 1, 0, null]),
            json!(["frontend:GET /cart > recommendations:List", 1, "added", 0, 1, null]),
        ]
    );
    let compared = |id: u8, start: u64, end: u64, error: bool| json!({"spanId": span_id(id), "startOffsetNanos": millis(start), "durationNanos": millis(end - start), "error": error});
    assert_eq!(
        paths[2],
        json!({
            "path": "frontend:GET /cart > cart:GetCart > redis:GET",
            "parentPath": "frontend:GET /cart > cart:GetCart",
            "depth": 2,
            "service": "redis",
            "name": "GET",
            "status": "matched",
            "countA": 2,
            "countB": 3,
            "errorsA": 0,
            "errorsB": 0,
            "durationNanosA": millis(30),
            "durationNanosB": millis(45),
            "diffNanos": millis(15),
            "ratio": 1.5,
            "change": "slower",
            "spans": [
                {"a": compared(3, 20, 30, false), "b": compared(3, 20, 30, false)},
                {"a": compared(4, 30, 50, false), "b": compared(4, 30, 50, false)},
                {"a": null, "b": compared(6, 50, 65, false)},
            ],
        })
    );
    assert_eq!(
        paths[3],
        json!({
            "path": "frontend:GET /cart > pricing:Quote",
            "parentPath": "frontend:GET /cart",
            "depth": 1,
            "service": "pricing",
            "name": "Quote",
            "status": "missing",
            "countA": 1,
            "countB": 0,
            "errorsA": 0,
            "errorsB": 0,
            "durationNanosA": millis(30),
            "durationNanosB": "0",
            "diffNanos": "-30000000",
            "ratio": 0.0,
            "change": null,
            "spans": [{"a": compared(5, 60, 90, false), "b": null}],
        })
    );
    let added = &paths[4];
    assert_eq!((&added["errorsA"], &added["errorsB"], &added["ratio"]), (&json!(0), &json!(1), &Value::Null));
    assert_eq!(added["spans"], json!([{"a": null, "b": compared(7, 100, 120, true)}]));

    // The other way round, the changes flip.
    let (_, body) = get(&router, &format!("/api/v1/traces/{}/compare/{}", hex(AFTER), hex(BEFORE))).await;
    let reverse = json(&body);
    assert_eq!(reverse["totals"]["change"], "faster");
    assert_eq!(reverse["totals"]["diffNanos"], "-30000000");
    assert_eq!(reverse["paths"][3]["status"], "added");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_named() {
    let App { router, engine, _dir, .. } = app_with([before()]).await;
    let (known, unknown) = (hex(BEFORE), hex(UNKNOWN));
    // The trace itself is still served beside its analyses.
    assert_eq!(get(&router, &format!("/api/v1/traces/{known}")).await.0, StatusCode::OK);

    let cases = [
        (
            "/api/v1/traces/xyz/critical-path".to_owned(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid trace ID \"xyz\": trace ID must be 16 bytes (32 hex characters), got 1 bytes".to_owned(),
        ),
        (
            format!("/api/v1/traces/{unknown}/critical-path"),
            StatusCode::NOT_FOUND,
            "not_found",
            format!("trace {unknown} not found"),
        ),
        (
            format!("/api/v1/traces/xyz/compare/{known}"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid trace ID \"xyz\" for trace A: trace ID must be 16 bytes (32 hex characters), got 1 bytes"
                .to_owned(),
        ),
        (
            format!("/api/v1/traces/{known}/compare/{}", "0".repeat(32)),
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid trace ID {:?} for trace B: trace ID must not be all zeros", "0".repeat(32)),
        ),
        (
            // Both malformed: A is named first.
            "/api/v1/traces/x/compare/y".to_owned(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid trace ID \"x\" for trace A: trace ID must be 16 bytes (32 hex characters), got 0 bytes".to_owned(),
        ),
        (
            format!("/api/v1/traces/{unknown}/compare/{known}"),
            StatusCode::NOT_FOUND,
            "not_found",
            format!("trace A {unknown} not found"),
        ),
        (
            format!("/api/v1/traces/{known}/compare/{unknown}"),
            StatusCode::NOT_FOUND,
            "not_found",
            format!("trace B {unknown} not found"),
        ),
    ];
    for (uri, status, code, message) in cases {
        let (actual, body) = get(&router, &uri).await;
        assert_eq!(actual, status, "{uri}: {body}");
        assert_eq!(error(&body), (code.to_owned(), message), "{uri}");
    }
    engine.close().await.unwrap();
}
