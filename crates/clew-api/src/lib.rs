//! The HTTP API listener: the native JSON API under `/api/v1`, the Jaeger, Tempo and Zipkin
//! query APIs under their own prefixes, health probes and Prometheus metrics. Reads through
//! [`Storage`] and the query layer; never names a backend.
//!
//! Every failure becomes an [`ApiError`] with its [`clew_model::Code`], answered in the format
//! of the API asked (module `error`).

mod error;
mod jaeger;
mod native;
mod params;
mod reader;
mod routes;
mod settings;
mod tempo;
mod ui;
mod zipkin;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use clew_model::otlp::trace::v1::TracesData;
use clew_model::{assemble, TenantId, TraceId};
use clew_pipeline::PipelineSettings;
use clew_query::{Limits, TimeRange};
use clew_storage::{Storage, StorageError, Target, Value};
use clew_tenancy::Tenancy;
use clew_traceql::{Field, Intrinsic};

pub use crate::error::ApiError;
use crate::params::Path;
use crate::reader::Reader;
use crate::routes::Routes;
use prometheus_client::registry::Registry;

#[derive(Clone)]
struct AppState {
    storage: Arc<dyn Storage>,
    tenancy: Tenancy,
    /// Session cookies are marked `Secure` even without `X-Forwarded-Proto: https`.
    secure_cookies: bool,
    registry: Arc<Registry>,
    draining: Arc<AtomicBool>,
    limits: Limits,
    pipeline: Arc<PipelineSettings>,
    listeners: Listeners,
    dependencies: Arc<Vec<Arc<dyn Dependency>>>,
}

/// The addresses a node listens on, bound: `/api/v1/status` tells clients where to send spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listeners {
    /// The HTTP API and UI.
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
}

/// Something the node needs to serve (ClickHouse, PostgreSQL, Redis), as `/health/ready`
/// reports it.
#[async_trait::async_trait]
pub trait Dependency: Send + Sync {
    /// What it is and where, e.g. `clickhouse http://10.0.0.5:8123`.
    fn name(&self) -> String;
    /// Whether it answers now, else why not.
    async fn check(&self) -> Result<(), String>;
}

/// How long `/health/ready` waits for a dependency to answer.
const DEPENDENCY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What the HTTP API listener serves from.
pub struct Api {
    pub storage: Arc<dyn Storage>,
    pub tenancy: Tenancy,
    /// What `/metrics` serves.
    pub registry: Arc<Registry>,
    /// Once set (shutdown has begun), `/health/ready` answers 503 so load balancers stop
    /// sending.
    pub draining: Arc<AtomicBool>,
    /// Mark session cookies `Secure` (when a TLS proxy does not say `X-Forwarded-Proto`).
    pub secure_cookies: bool,
    /// The server's pipeline settings, to which projects add their own.
    pub pipeline: PipelineSettings,
    pub listeners: Listeners,
    /// Checked by `/health/ready`, each reported on a line of its own.
    pub dependencies: Vec<Arc<dyn Dependency>>,
}

/// The router for the HTTP API listener.
pub fn router(api: Api) -> Router {
    let Api { storage, tenancy, registry, draining, secure_cookies, pipeline, listeners, dependencies } = api;
    let (router, _) = routes().into_parts();
    router.fallback(ui::fallback).with_state(AppState {
        storage,
        tenancy,
        secure_cookies,
        registry,
        draining,
        limits: Limits::default(),
        pipeline: Arc::new(pipeline),
        listeners,
        dependencies: Arc::new(dependencies),
    })
}

/// Every API route: the native and settings APIs, Jaeger's, Tempo's and Zipkin's, health and
/// metrics. (Any other GET is the web UI's.)
fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/traces/{trace_id}", trace_by_id)
        .merge(native::routes())
        .merge(jaeger::routes())
        .merge(tempo::routes())
        .merge(zipkin::routes())
        .merge(settings::routes())
        .get("/health/live", || async { "ok" })
        .get("/health/ready", ready)
        .get("/metrics", metrics)
}

/// The method and path of every API route, `{name}` marking a path parameter.
pub fn served_routes() -> Vec<(String, String)> {
    routes().into_parts().1.into_iter().map(|(method, path)| (method.to_string(), path)).collect()
}

async fn trace_by_id(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(trace_id): Path<String>,
) -> Result<Response, ApiError> {
    let id: TraceId =
        trace_id.parse().map_err(|e| ApiError::BadRequest(format!("invalid trace ID {trace_id:?}: {e}")))?;
    let rows = state.storage.trace(&tenant, id).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("trace {id} not found")));
    }
    let resource_spans =
        assemble(rows).map_err(|e| StorageError::Corrupt { location: format!("trace {id}"), reason: e.to_string() })?;
    let body = clew_model::otlp_json::encode_traces(&mut TracesData { resource_spans })
        .map_err(|e| StorageError::internal(format!("encode trace {id} as JSON"), e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// 200 when the node can take and serve spans, else 503; the body says, line by line, how the
/// storage and each dependency are.
async fn ready(State(state): State<AppState>) -> Response {
    if state.draining.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let mut healthy = state.storage.is_ready();
    let mut lines = vec![format!("storage: {}", if healthy { "ok" } else { "not accepting spans" })];
    // Checked at once, so that one slow dependency does not add to another's wait.
    let checks: Vec<_> = state
        .dependencies
        .iter()
        .map(|dependency| {
            let dependency = dependency.clone();
            tokio::spawn(async move {
                let outcome = match tokio::time::timeout(DEPENDENCY_TIMEOUT, dependency.check()).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("no answer within {}s", DEPENDENCY_TIMEOUT.as_secs())),
                };
                (dependency.name(), outcome)
            })
        })
        .collect();
    for check in checks {
        let (name, outcome) = check.await.unwrap_or_else(|e| ("health check".into(), Err(e.to_string())));
        match outcome {
            Ok(()) => lines.push(format!("{name}: ok")),
            Err(reason) => {
                healthy = false;
                lines.push(format!("{name}: {reason}"));
            }
        }
    }
    let (status, head) =
        if healthy { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") };
    (status, format!("{head}\n{}\n", lines.join("\n"))).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Values a field takes within `range`, for autocomplete: intrinsics and attributes alike
/// (status and kind as their TraceQL keywords).
async fn values(
    state: &AppState,
    tenant: &TenantId,
    field: &Field,
    range: TimeRange,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let target = match field {
        Field::Intrinsic(Intrinsic::RootServiceName) => Target::Service,
        Field::Intrinsic(Intrinsic::RootName) => Target::Name,
        other => clew_query::target_of(other).ok_or_else(|| {
            ApiError::BadRequest(format!("`{other}` has no value list; ask for an attribute or span intrinsic"))
        })?,
    };
    let values = state.storage.values(tenant, range, &target, limit).await?;
    let keyword = |v: Value, name: fn(i32) -> &'static str| match v {
        Value::Int(i) => Value::Str(name(i32::try_from(i).unwrap_or_default()).to_owned()),
        other => other,
    };
    Ok(match target {
        Target::Kind => values.into_iter().map(|v| keyword(v, clew_query::kind_name)).collect(),
        Target::Status => values.into_iter().map(|v| keyword(v, status_name)).collect(),
        _ => values,
    })
}

/// TraceQL's name for an OTLP status code.
fn status_name(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}
