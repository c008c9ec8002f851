//! The HTTP API listener: the native JSON API under `/api/v1`, the Jaeger, Tempo and Zipkin
//! query APIs under their own prefixes, health probes and Prometheus metrics. Reads through
//! [`Storage`] and the query layer; never names a backend.
//!
//! Every failure becomes an [`ApiError`], turned into a status and a JSON body in exactly one
//! place ([`ApiError::into_response`]).

mod jaeger;
mod native;
mod params;
mod settings;
mod tempo;
mod ui;
mod zipkin;

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clew_model::otlp::trace::v1::TracesData;
use clew_model::{assemble, TenantId, TraceId};
use clew_pipeline::PipelineSettings;
use clew_query::{Limits, QueryError, TimeRange};
use clew_storage::{Storage, StorageError, Target, Value};
use clew_tenancy::{AccessError, Tenancy};
use clew_traceql::{Field, Intrinsic};

use crate::settings::Reader;
use prometheus_client::registry::Registry;

/// Why an API request failed, in the small set of outcomes a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Authentication, authorization, unknown projects.
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(message) => Self::BadRequest(message),
            QueryError::Storage(e) => Self::Storage(e),
        }
    }
}

impl ApiError {
    pub(crate) fn internal(context: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Storage(StorageError::internal(context, e))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Storage(e) if e.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Access(e) => match e {
                AccessError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
                AccessError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                AccessError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                AccessError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                AccessError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                AccessError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                AccessError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl From<clew_tenancy::MetadataError> for ApiError {
    fn from(e: clew_tenancy::MetadataError) -> Self {
        Self::Access(e.into())
    }
}

impl From<clew_jaeger::JaegerError> for ApiError {
    fn from(e: clew_jaeger::JaegerError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

/// How one API family writes a failure: the native API's JSON, Jaeger's envelope, Tempo's and
/// Zipkin's plain text.
pub(crate) trait ErrorFormat {
    /// Names the API in logs.
    const API: &'static str;
    fn body(status: StatusCode, code: &'static str, message: String) -> Response;
}

/// An [`ApiError`] answered in format `F`: the status of [`ApiError::status_and_code`],
/// `Retry-After` when a retry can succeed; internal failures are logged here and shown to the
/// client only by their kind.
#[derive(Debug)]
pub(crate) struct Failure<F>(ApiError, PhantomData<F>);

impl<F> Failure<F> {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self(ApiError::BadRequest(message.into()), PhantomData)
    }
}

impl<F, E: Into<ApiError>> From<E> for Failure<F> {
    fn from(e: E) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<F: ErrorFormat> IntoResponse for Failure<F> {
    fn into_response(self) -> Response {
        let (status, code) = self.0.status_and_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(api = F::API, error = %self.0, "api request failed");
            "internal error; see the server log".to_owned()
        } else {
            self.0.to_string()
        };
        let mut response = F::body(status, code, message);
        if let ApiError::Storage(e) = &self.0 {
            if let Some(retry_after) = e.retry_after() {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            }
        }
        response
    }
}

/// The native API's format: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub(crate) struct Native;

impl ErrorFormat for Native {
    const API: &'static str = "native";

    fn body(status: StatusCode, code: &'static str, message: String) -> Response {
        (status, Json(serde_json::json!({ "error": { "code": code, "message": message } }))).into_response()
    }
}

/// Tempo's and Zipkin's format: the message as plain text.
#[derive(Debug)]
pub(crate) struct PlainText;

impl ErrorFormat for PlainText {
    const API: &'static str = "tempo/zipkin";

    fn body(status: StatusCode, _: &'static str, message: String) -> Response {
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Failure::<Native>::from(self).into_response()
    }
}

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
    Router::new()
        .route("/api/v1/traces/{trace_id}", get(trace_by_id))
        .merge(native::routes())
        .merge(jaeger::routes())
        .merge(tempo::routes())
        .merge(zipkin::routes())
        .merge(settings::routes())
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(ui::fallback)
        .with_state(AppState {
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

async fn trace_by_id(
    State(state): State<AppState>,
    Reader(tenant): Reader,
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
