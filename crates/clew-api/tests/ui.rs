//! The embedded web UI: pages at their own addresses, hashed assets cached and compressed, and
//! unknown API paths still answered as API errors, never with the UI.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{app, get, json, LISTENERS};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn fetch(router: &axum::Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn every_page_address_serves_the_app_and_assets_are_cached_and_compressed() {
    let app = app().await;
    let (status, headers, index) = fetch(&app.router, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
    let index = String::from_utf8(index).unwrap();
    assert!(index.contains(r#"<div id="app">"#), "{index}");

    for page in [
        "/search?service=a",
        "/trace/0123456789abcdef0123456789abcdef",
        "/map",
        "/services/cart",
        "/compare/a/b",
        "/settings",
    ] {
        let (status, body) = get(&app.router, page).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, index.as_str()), "{page}");
    }

    // The script the page loads: hashed, so cached for good, and sent gzipped when accepted.
    let script = index.split(r#"src="/"#).nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    assert!(script.starts_with("assets/") && script.ends_with(".js"), "{script}");
    let (status, headers, plain) =
        fetch(&app.router, Request::get(format!("/{script}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    let request = Request::get(format!("/{script}"))
        .header(header::ACCEPT_ENCODING, "br, gzip;q=0.9")
        .body(Body::empty())
        .unwrap();
    let (status, headers, gzipped) = fetch(&app.router, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert!(gzipped.len() < plain.len() / 2, "{} of {} bytes", gzipped.len(), plain.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(gzipped.as_slice()).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
}

#[tokio::test]
async fn api_paths_and_missing_files_are_not_answered_with_the_app() {
    let app = app().await;
    for path in
        ["/api/v1/nope", "/jaeger/api/nope", "/tempo/api/nope", "/zipkin/api/v2/nope", "/health/nope", "/metrics/x"]
    {
        let (status, body) = get(&app.router, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json(&body)["error"]["code"], "not_found", "{path}: {body}");
    }
    let (status, body) = get(&app.router, "/assets/missing-1234.js").await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "not found"));
    let (status, _, body) = fetch(&app.router, Request::post("/search").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(std::str::from_utf8(&body).unwrap())["error"]["code"], "not_found");
}

#[tokio::test]
async fn status_says_where_to_send_spans() {
    let app = app().await;
    let (status, body) = get(&app.router, "/api/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    let status = json(&body);
    assert_eq!(status["otlp_grpc"], LISTENERS.otlp_grpc.to_string());
    assert_eq!(status["otlp_http"], LISTENERS.otlp_http.to_string());
    assert_eq!(status["http"], LISTENERS.http.to_string());
    assert_eq!(status["auth_required"], false);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}
