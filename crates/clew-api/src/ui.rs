//! The web UI, built from `web/` by `build.rs` and embedded in the binary. Hashed assets are
//! cached for a year; every other path that is not an API answers with `index.html`, so each
//! page of the UI (`/trace/{id}`, `/map`, ...) has its own address.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A file of the built UI.
#[derive(Clone, Copy)]
pub(crate) struct Asset {
    path: &'static str,
    content: &'static [u8],
    /// The content gzip-compressed, when that is smaller.
    gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Paths that belong to the APIs: an unknown one is a JSON 404, never the UI.
const API_PREFIXES: &[&str] = &["/api/", "/jaeger/", "/tempo/", "/zipkin/", "/health/", "/metrics", "/v1/"];

/// The page may load only its own scripts and talk only to this server; it cannot be framed.
/// Styles may be inline: the editor and the charts set them from script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if !matches!(method, Method::GET | Method::HEAD) || API_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return ApiError::NotFound("no such endpoint".into()).into_response();
    }
    let name = path.trim_start_matches('/');
    let Asset { path: name, content, gzip } = match asset(name) {
        Some(found) => found,
        // A path with an extension names a file; anything else is a page of the UI.
        None if name.rsplit('/').next().is_some_and(|last| last.contains('.')) => {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
        None => asset("index.html").expect("build.rs checks that index.html exists"),
    };
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let cache = if name.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response_headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response_headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    let body = match gzip {
        Some(gz) if accepts_gzip => {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gz
        }
        _ => content,
    };
    (response_headers, body).into_response()
}

fn asset(name: &str) -> Option<Asset> {
    ASSETS.iter().find(|asset| asset.path == name).copied()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
