//! The API router driven with `oneshot` over the real embedded engine.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use axum::http::StatusCode;
use clew_storage::conformance::every_field_request;
use clew_storage::Storage;
use clew_store_local::LocalEngine;
use common::{app, get, json, write, App};

#[tokio::test]
async fn trace_by_id_returns_otlp_json() {
    let App { router, engine, _dir, .. } = app().await;
    write(&engine, every_field_request([0xab; 16], 1_700_000_000_000_000_000)).await;
    let (status, body) = get(&router, &format!("/api/v1/traces/{}", "ab".repeat(16))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "ab".repeat(16));
    assert_eq!(span["spanId"], "0101010101010101");
    assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["status"]["code"], 2);
    assert_eq!(span["attributes"][1]["value"]["intValue"], "503");
    assert_eq!(span["attributes"][4]["value"]["bytesValue"], "AJ+Slg==");
    assert_eq!(json["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "checkout");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_explained() {
    let App { router, _dir, .. } = app().await;
    let (status, body) = get(&router, &format!("/api/v1/traces/{}", "cd".repeat(16))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "not_found");
    assert_eq!(json["error"]["message"], format!("trace {} not found", "cd".repeat(16)));

    for (id, expected) in [
        ("xyz", "trace ID must be 16 bytes"),
        (&"0".repeat(32), "must not be all zeros"),
        (&"g".repeat(32), "not hexadecimal"),
    ] {
        let (status, body) = get(&router, &format!("/api/v1/traces/{id}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        assert!(body.contains(expected) && body.contains("bad_request"), "{id}: {body}");
    }
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let App { router, engine, draining, _dir } = app().await;
    assert_eq!(get(&router, "/health/live").await.0, StatusCode::OK);
    assert_eq!(get(&router, "/health/ready").await.0, StatusCode::OK);
    let (status, metrics) = get(&router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("clew_storage_wal_syncs_total"), "{metrics}");
    draining.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(get(&router, "/health/ready").await, (StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()));
    draining.store(false, std::sync::atomic::Ordering::Release);
    engine.close().await.unwrap();
    assert_eq!(get(&router, "/health/ready").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&router, "/api/nope").await.0, StatusCode::NOT_FOUND);
}

/// Writes `every_field_request` (service checkout, span names `GET /orders/{1,2,3}`, status
/// error, `http.response.status_code` 503) as it happens now, and returns its trace ID.
async fn recent_trace(engine: &LocalEngine) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    write(engine, every_field_request([0xcd; 16], now - 1_000_000_000)).await;
    "cd".repeat(16)
}

#[tokio::test]
async fn search_finds_traces_by_filters_and_traceql() {
    let App { router, engine, _dir, .. } = app().await;
    let trace_id = recent_trace(&engine).await;
    for query in [
        "service=checkout&name=GET%20/orders/2",
        "attr=http.response.status_code%3E%3D500&status=error&kind=server",
        "q=%7B%20resource.service.name%20%3D%20%22checkout%22%20%7D%20%3E%3E%20%7B%20name%20%3D%20%22GET%20/orders/3%22%20%7D",
        "minDuration=1ms&maxDuration=2ms&since=5m",
    ] {
        let (status, body) = get(&router, &format!("/api/v1/search?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let result = json(&body);
        let trace = &result["traces"][0];
        assert_eq!(trace["traceId"], trace_id, "{query}: {body}");
        assert_eq!(trace["rootService"], "checkout");
        assert_eq!(trace["rootName"], "GET /orders/1");
        assert_eq!(trace["spanCount"], 3);
        assert_eq!(trace["errorCount"], 3);
        assert_eq!(trace["services"][0]["name"], "checkout");
    }
    for query in ["service=payments", "attr=http.response.status_code%3C500", "since=1ms&end=1000"] {
        let (status, body) = get(&router, &format!("/api/v1/search?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(json(&body)["traces"], serde_json::json!([]), "{query}");
    }
}

#[tokio::test]
async fn bad_searches_are_400_with_the_problem_named() {
    let App { router, _dir, .. } = app().await;
    for (query, expected) in [
        ("q=%7B%20name%20%3D%20%7D", "line 1, column 10"),
        ("q=%7B%20foo%3Abar%20%3D%201%20%7D", "unknown intrinsic"),
        ("q=%7B%20duration%20%3D%20%22x%22%20%7D", "compares with a duration"),
        ("q=%7B%7D%20%7C%20rate()", "not supported"),
        ("limit=0", "limit must be between 1 and 1000"),
        ("limit=5000", "limit must be between 1 and 1000"),
        ("start=2024-01-01T00:00:00Z&end=2024-03-01T00:00:00Z", "longer than"),
        ("start=tomorrow", "`start` must be Unix seconds or an RFC 3339 time"),
        ("start=2000&end=1000", "after it ends"),
        ("order=random", "order must be"),
        ("cursor=zzz", "cursor"),
        ("minDuration=fast", "minDuration"),
        ("kind=sideways", "span kind"),
    ] {
        let (status, body) = get(&router, &format!("/api/v1/search?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let message = json(&body)["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(expected), "{query}: {message}");
    }
}

#[tokio::test]
async fn discovery_lists_services_operations_attributes_and_values() {
    let App { router, engine, _dir, .. } = app().await;
    recent_trace(&engine).await;
    let (_, body) = get(&router, "/api/v1/services").await;
    assert_eq!(json(&body)["services"], serde_json::json!(["checkout"]));
    let (_, body) = get(&router, "/api/v1/services/checkout/operations").await;
    assert_eq!(json(&body)["operations"][0], serde_json::json!({"name": "GET /orders/1", "kind": "server"}));
    let (_, body) = get(&router, "/api/v1/attributes?scope=resource").await;
    assert_eq!(json(&body), serde_json::json!({"resource": ["host.name", "process.pid", "service.name"]}));
    let (_, body) = get(&router, "/api/v1/attributes").await;
    assert!(json(&body)["span"].as_array().unwrap().contains(&serde_json::json!("http.request.method")), "{body}");
    let (_, body) = get(&router, "/api/v1/attributes/span.http.response.status_code/values").await;
    assert_eq!(json(&body)["values"], serde_json::json!([{"type": "int", "value": 503}]));
    let (_, body) = get(&router, "/api/v1/attributes/status/values").await;
    assert_eq!(json(&body)["values"], serde_json::json!([{"type": "string", "value": "error"}]));
    let (status, body) = get(&router, "/api/v1/attributes?scope=weird").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = get(&router, "/api/v1/attributes/trace:id/values").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
