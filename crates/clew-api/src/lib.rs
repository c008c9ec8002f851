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
use clew_model::{assemble, Code, Coded, TenantId, TraceId};
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
}

impl Coded for ApiError {
    fn code(&self) -> Code {
        match self {
            Self::BadRequest(_) => Code::BadRequest,
            Self::NotFound(_) => Code::NotFound,
            Self::Storage(e) => e.code(),
            Self::Access(e) => e.code(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Storage(e) => e.retry_after(),
            Self::Access(e) => e.retry_after(),
            _ => None,
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
    fn body(status: StatusCode, code: Code, message: String) -> Response;
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
        let code = self.0.code();
        if code == Code::Internal {
            tracing::error!(api = F::API, error = %ErrorChain(&self.0), "api request failed");
        }
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = F::body(status, code, self.0.public_message());
        if let Some(retry_after) = self.0.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        response
    }
}

/// An error and each of its causes, `: `-separated, for the log.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The native API's failure: `{"error": {"code": "not_found", "message": "..."}}`.
#[derive(serde::Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize)]
struct ErrorDetail {
    /// [`Code::name`].
    code: &'static str,
    message: String,
}

/// The native API's format: [`ErrorBody`].
#[derive(Debug)]
pub(crate) struct Native;

impl ErrorFormat for Native {
    const API: &'static str = "native";

    fn body(status: StatusCode, code: Code, message: String) -> Response {
        (status, Json(ErrorBody { error: ErrorDetail { code: code.name(), message } })).into_response()
    }
}

/// Tempo's and Zipkin's format: the message as plain text.
#[derive(Debug)]
pub(crate) struct PlainText;

impl ErrorFormat for PlainText {
    const API: &'static str = "tempo/zipkin";

    fn body(status: StatusCode, _: Code, message: String) -> Response {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clew_tenancy::RateLimited;

    use super::*;

    fn answered(e: impl Into<ApiError>) -> Response {
        Failure::<Native>::from(e.into()).into_response()
    }

    #[test]
    fn a_failure_is_answered_with_its_code_status_and_retry_delay() {
        let too_large = answered(AccessError::RateLimited(RateLimited::TooLarge {
            namespace: 1,
            bytes: 10,
            allowance: 5,
            bytes_per_second: 5,
        }));
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE, "as on ingest");
        assert!(too_large.headers().get(header::RETRY_AFTER).is_none());

        let limited = answered(AccessError::RateLimited(RateLimited::OverLimit {
            namespace: 1,
            bytes_per_second: 5,
            retry_after: Duration::from_millis(1500),
        }));
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "1");

        let overloaded =
            answered(StorageError::Overloaded { reason: "head full".into(), retry_after: Duration::from_secs(3) });
        assert_eq!(overloaded.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(overloaded.headers()[header::RETRY_AFTER], "3");

        assert_eq!(answered(AccessError::Unauthenticated("who?".into())).status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn internal_faults_keep_their_cause_for_the_log_and_not_for_the_client() {
        let e = ApiError::from(AccessError::internal("hash a password", std::io::Error::other("secret detail")));
        assert_eq!(e.code(), Code::Internal);
        assert!(!e.public_message().contains("secret"));
        assert!(ErrorChain(&e).to_string().contains("hash a password: secret detail"), "{}", ErrorChain(&e));
        let chained = ApiError::internal("read a segment", std::io::Error::other("disk gone"));
        assert!(std::error::Error::source(&chained).is_some(), "the cause stays a source, not a string");
    }
}
