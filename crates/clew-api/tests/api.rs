//! The API router driven with `oneshot` over the real embedded engine.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clew_model::TenantId;
use clew_storage::conformance::every_field_request;
use clew_storage::Storage;
use clew_store_local::{EngineOptions, LocalEngine};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    engine: Arc<LocalEngine>,
    draining: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let engine = Arc::new(LocalEngine::open(EngineOptions::new(dir.path()), &mut registry).await.unwrap());
    let draining = Arc::new(AtomicBool::new(false));
    let router = clew_api::router(engine.clone(), Arc::new(registry), draining.clone());
    App { router, engine, draining, _dir: dir }
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn trace_by_id_returns_otlp_json() {
    let App { router, engine, _dir, .. } = app().await;
    use clew_storage::SpanWriter;
    engine
        .write(&TenantId::default_tenant(), every_field_request([0xab; 16], 1_700_000_000_000_000_000))
        .await
        .unwrap();
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
    assert_eq!(get(&router, "/nope").await.0, StatusCode::NOT_FOUND);
}
