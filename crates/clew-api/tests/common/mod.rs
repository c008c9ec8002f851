//! What the API tests share: the router over a real embedded engine in a temporary directory,
//! requests sent with `oneshot`, and builders for the OTLP traces the tests write.

#![allow(dead_code)] // each test binary uses only some of these
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::span::{Event, SpanKind};
use clew_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use clew_model::TenantId;
use clew_storage::SpanWriter;
use clew_store_local::{EngineOptions, LocalEngine};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use tower::ServiceExt;

/// A millisecond in nanoseconds.
pub(crate) const MILLI: u64 = 1_000_000;

pub(crate) struct App {
    pub(crate) router: axum::Router,
    pub(crate) engine: Arc<LocalEngine>,
    /// Set to make `/health/ready` answer that the server is shutting down.
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) _dir: tempfile::TempDir,
}

/// The API router over an empty engine.
pub(crate) async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let engine = Arc::new(LocalEngine::open(EngineOptions::new(dir.path()), &mut registry).await.unwrap());
    router_over(dir, engine, registry).await
}

/// The API router over `engine` in single-user mode (authentication off).
pub(crate) async fn router_over(dir: tempfile::TempDir, engine: Arc<LocalEngine>, registry: Registry) -> App {
    let draining = Arc::new(AtomicBool::new(false));
    let options = clew_tenancy::TenancyOptions::default();
    let tenancy = clew_tenancy::Tenancy::local(
        clew_tenancy::Metadata::sqlite(&dir.path().join("metadata.sqlite")).await.unwrap(),
        options,
    )
    .await
    .unwrap();
    let router = clew_api::router(clew_api::Api {
        storage: engine.clone(),
        tenancy,
        registry: Arc::new(registry),
        draining: draining.clone(),
        secure_cookies: false,
        pipeline: clew_pipeline::PipelineSettings::default(),
        listeners: LISTENERS,
        dependencies: Vec::new(),
    });
    App { router, engine, draining, _dir: dir }
}

/// The addresses the test router reports in `/api/v1/status`.
pub(crate) const LISTENERS: clew_api::Listeners = clew_api::Listeners {
    http: std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4320),
    otlp_grpc: std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4317),
    otlp_http: std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4318),
};

/// The API router over an engine that holds these requests, written in order.
pub(crate) async fn app_with(requests: impl IntoIterator<Item = ExportTraceServiceRequest>) -> App {
    let app = app().await;
    for request in requests {
        write(&app.engine, request).await;
    }
    app
}

/// Writes `request` for the default tenant.
pub(crate) async fn write(engine: &LocalEngine, request: ExportTraceServiceRequest) {
    engine.write(&TenantId::default_tenant(), request.into()).await.unwrap();
}

/// An answer, read whole.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// The `Content-Type` header, empty when there is none.
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as UTF-8.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

pub(crate) async fn send(router: &axum::Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, content_type, body }
}

pub(crate) fn get_request(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// `GET uri`: the status and the body as text.
pub(crate) async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let reply = send(router, get_request(uri)).await;
    (reply.status, reply.text())
}

pub(crate) fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

/// A trace ID in lower-case hex.
pub(crate) fn hex(trace: [u8; 16]) -> String {
    trace.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

pub(crate) fn text(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.into())
}

/// The spans of `service`: its resource has `service.name`, then `extra`.
pub(crate) fn resource_spans(service: &str, extra: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    let mut attributes = vec![kv("service.name", text(service))];
    attributes.extend(extra);
    ResourceSpans {
        resource: Some(Resource { attributes, ..Default::default() }),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    }
}

/// The spans of `service` running on host `node-1`.
pub(crate) fn on_node_1(service: &str, spans: Vec<Span>) -> ResourceSpans {
    resource_spans(service, vec![kv("host.name", text("node-1"))], spans)
}

/// A span to write; span IDs (and the parent's) are the byte repeated eight times.
pub(crate) struct SpanSpec<'a> {
    pub(crate) trace: [u8; 16],
    pub(crate) id: u8,
    pub(crate) parent: Option<u8>,
    pub(crate) name: &'a str,
    pub(crate) kind: SpanKind,
    /// Unix nanoseconds.
    pub(crate) start: u64,
    /// Nanoseconds.
    pub(crate) duration: u64,
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) events: Vec<Event>,
    pub(crate) status: Option<Status>,
}

/// A root server span with no attributes, events or status; change the rest with `..spec(..)`.
pub(crate) fn spec(trace: [u8; 16], id: u8, name: &str, start: u64, duration: u64) -> SpanSpec<'_> {
    SpanSpec {
        trace,
        id,
        parent: None,
        name,
        kind: SpanKind::Server,
        start,
        duration,
        attributes: Vec::new(),
        events: Vec::new(),
        status: None,
    }
}

/// A span of `millis` milliseconds of `kind`, child of `parent`, with no attributes or status.
pub(crate) fn timed(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: SpanKind,
    start: u64,
    millis: u64,
) -> SpanSpec<'_> {
    SpanSpec { parent, kind, ..spec(trace, id, name, start, millis * MILLI) }
}

pub(crate) fn span(spec: SpanSpec<'_>) -> Span {
    Span {
        trace_id: spec.trace.to_vec(),
        span_id: vec![spec.id; 8],
        parent_span_id: spec.parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: spec.name.into(),
        kind: spec.kind as i32,
        start_time_unix_nano: spec.start,
        end_time_unix_nano: spec.start + spec.duration,
        attributes: spec.attributes,
        events: spec.events,
        status: spec.status,
        ..Default::default()
    }
}
