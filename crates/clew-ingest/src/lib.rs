//! Receivers: how spans get into Clew.
//!
//! Owns OTLP/gRPC (`TraceService/Export`), OTLP/HTTP (`POST /v1/traces`, protobuf and
//! JSON, gzip) and the Zipkin v2 receiver (`POST /zipkin/api/v2/spans`, translated by
//! `clew-zipkin`), GitLab's per-project path (`POST /v3/{namespace}/{project}/ingest/traces`),
//! who may send to which project and the namespace rate limit (asked of `clew-tenancy`),
//! request limits, per-span validation with OTLP partial success, the pipeline stages of
//! `clew-pipeline` (drop rules, redaction, limits; the server's settings with each project's
//! additions) before anything is written, tail sampling through `clew-sampler` when a
//! project's pipeline turns it on, and the mapping of failures to HTTP and gRPC status codes
//! (each in exactly one function). Writes go to a [`SpanWriter`]; this crate never names a
//! storage backend.

mod error;
mod grpc;
mod http;
mod metrics;
mod validate;
mod zipkin;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use clew_model::otlp::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use clew_model::SpanBatch;
use clew_pipeline::{Pipeline, PipelineSettings, ProjectPipeline, RuleError};
use clew_sampler::Sampler;
use clew_storage::SpanWriter;
use clew_tenancy::{AccessError, ProjectRef, Refusal, Target, Tenancy};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;

pub use error::IngestError;
pub use grpc::{normalize_status, GrpcReceiver};
pub use validate::{validate, Rejections};
pub use zipkin::SPANS_PATH as ZIPKIN_SPANS_PATH;

use crate::metrics::IngestMetrics;

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// The wire a request came in on, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Grpc,
    Http,
    Zipkin,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
            Self::Zipkin => "zipkin",
        }
    }
}

/// The ingest path shared by every receiver. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Arc<dyn SpanWriter>,
    tenancy: Tenancy,
    /// The server's pipeline settings and, built from them, the pipeline of projects that have
    /// no settings of their own.
    settings: PipelineSettings,
    pipeline: Arc<Pipeline>,
    /// Pipelines of projects with settings of their own, by project ID, with the settings
    /// (JSON) they were built from.
    projects: Mutex<HashMap<i64, (String, Arc<Pipeline>)>>,
    /// Without one, sampling settings are ignored and every span is stored.
    sampler: Option<Sampler>,
    max_request_bytes: usize,
    metrics: IngestMetrics,
}

impl Ingest {
    pub fn new(
        writer: Arc<dyn SpanWriter>,
        tenancy: Tenancy,
        settings: PipelineSettings,
        sampler: Option<Sampler>,
        max_request_bytes: usize,
        registry: &mut Registry,
    ) -> Result<Self, RuleError> {
        let pipeline = Arc::new(settings.build()?);
        let metrics = IngestMetrics::register(registry);
        let projects = Mutex::new(HashMap::new());
        let inner = Inner { writer, tenancy, settings, pipeline, projects, sampler, max_request_bytes, metrics };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The pipeline of `target`'s project: the server's, with the project's additions when it
    /// has settings of its own (built once per change of them).
    fn pipeline(&self, target: &Target) -> Result<Arc<Pipeline>> {
        let Some(json) = &target.project.pipeline else { return Ok(self.inner.pipeline.clone()) };
        let mut projects = self.inner.projects.lock();
        if let Some((built_from, pipeline)) = projects.get(&target.project.id) {
            if built_from == json {
                return Ok(pipeline.clone());
            }
        }
        let built = project_pipeline(&self.inner.settings, json).map_err(|reason| {
            let id = target.project.id;
            AccessError::internal(
                format!("apply the pipeline settings of project {id} (correct them with PUT /api/v1/projects/{id}/pipeline)"),
                reason,
            )
        })?;
        let pipeline = Arc::new(built);
        projects.insert(target.project.id, (json.clone(), pipeline.clone()));
        Ok(pipeline)
    }

    /// The project a request's spans go to: who sent it (token or session in `headers`), the
    /// project named by the path (`/v3/{namespace}/{project}/...`) or the `X-Clew-Project`
    /// header, checked for the right to send spans there.
    pub async fn target(&self, headers: &HeaderMap, path_project: Option<ProjectRef>) -> Result<Target> {
        let tenancy = &self.inner.tenancy;
        let credentials = clew_tenancy::headers::credentials(headers);
        let caller = tenancy.authenticate(&credentials).await?;
        // A browser's session may send spans only with the session's CSRF token.
        tenancy.check_csrf(&caller, &credentials)?;
        let project = match path_project {
            Some(project) => Some(project),
            None => clew_tenancy::headers::project(headers)?,
        };
        Ok(tenancy.write_target(&caller, project.as_ref()).await?)
    }

    /// Counts a request of `wire_bytes` against its namespace's ingest rate limit; over it,
    /// nothing of the request may be stored.
    pub async fn admit(&self, target: &Target, wire_bytes: usize) -> Result<()> {
        Ok(self.inner.tenancy.admit(target, wire_bytes as u64).await?)
    }

    /// Counts a request refused after its project was known (undecodable, storage failure).
    pub(crate) fn refused(&self, target: &Target, error: &IngestError, wire_bytes: usize) {
        let reason = match error {
            IngestError::Access(_) => return,
            IngestError::Storage(_) => Refusal::Unavailable,
            _ => Refusal::Invalid,
        };
        self.inner.tenancy.usage().refused(target.namespace.id, reason, wire_bytes as u64);
    }

    pub fn max_request_bytes(&self) -> usize {
        self.inner.max_request_bytes
    }

    /// Decodes an encoded export request (OTLP protobuf) in place, then validates and stores
    /// it as [`Ingest::export`] does.
    pub async fn export_encoded(
        &self,
        protocol: Protocol,
        target: &Target,
        bytes: Bytes,
        wire_bytes: usize,
    ) -> Result<ExportTraceServiceResponse> {
        let batch = SpanBatch::decode(bytes)
            .map_err(|e| IngestError::Malformed { format: "OTLP/protobuf", reason: e.to_string() })
            .inspect_err(|e| self.refused(target, e, wire_bytes))?;
        self.export(protocol, target, batch, wire_bytes).await
    }

    /// Validates and stores one export request. Spans that fail validation are reported in
    /// the response's partial success; the others are durable when this returns `Ok`.
    pub async fn export(
        &self,
        protocol: Protocol,
        target: &Target,
        batch: SpanBatch,
        wire_bytes: usize,
    ) -> Result<ExportTraceServiceResponse> {
        let stored = self.store(protocol, target, batch, wire_bytes).await;
        match &stored {
            Ok((_, spans)) => self.inner.tenancy.usage().ingested(target.namespace.id, wire_bytes as u64, *spans),
            Err(e) => self.refused(target, e, wire_bytes),
        }
        stored.map(|(response, _)| response)
    }

    async fn store(
        &self,
        protocol: Protocol,
        target: &Target,
        batch: SpanBatch,
        wire_bytes: usize,
    ) -> Result<(ExportTraceServiceResponse, u64)> {
        let tenant = &target.tenant;
        let metrics = &self.inner.metrics;
        metrics.received(protocol, batch.span_count(), wire_bytes);
        let rejections = validate(&batch);
        metrics.rejected(protocol, "invalid", rejections.spans());
        // Drop rules, redaction and limits run before any WAL: what they remove or mask is
        // never written. Dropped spans are the server's choice, not the client's fault, so they
        // are not reported as rejected.
        let pipeline = self.pipeline(target)?;
        let (batch, applied) = pipeline
            .apply(tenant.as_str(), batch, rejections.indices())
            .map_err(|e| IngestError::Malformed { format: "OTLP", reason: e.to_string() })?;
        metrics.pipeline(&applied);
        let to_store = batch.span_count();
        if to_store > 0 {
            let written = match (pipeline.sampling(), &self.inner.sampler) {
                (Some(policy), Some(sampler)) => sampler.write(tenant, policy, batch).await,
                _ => self.inner.writer.write(tenant, batch).await.map(|_| ()),
            };
            if let Err(e) = written {
                let reason = if e.is_retryable() { "refused" } else { "error" };
                metrics.rejected(protocol, reason, to_store);
                metrics.request(protocol, reason);
                if !e.is_retryable() {
                    tracing::error!(error = %e, "storing spans failed");
                }
                return Err(e.into());
            }
        }
        let partial_success = (rejections.spans() > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejections.spans() as i64,
            error_message: rejections.message(),
        });
        metrics.request(protocol, if partial_success.is_some() { "partial" } else { "ok" });
        Ok((ExportTraceServiceResponse { partial_success }, to_store as u64))
    }

    /// The OTLP/HTTP receiver: `POST /v1/traces` and GitLab's
    /// `POST /v3/{namespace}/{project}/ingest/traces`.
    pub fn http_router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// GitLab's per-project ingest path alone, for the HTTP API listener. It has no fallback,
    /// so it merges into a router that has one.
    pub fn project_router(&self) -> axum::Router {
        http::project_router(self.clone())
    }

    /// The Zipkin v2 receiver: `POST /zipkin/api/v2/spans`, JSON or protobuf, for the HTTP API
    /// listener. It has no fallback, so it merges into a router that has one.
    pub fn zipkin_router(&self) -> axum::Router {
        zipkin::router(self.clone())
    }

    /// The OTLP/gRPC receiver, accepting and answering gzip.
    pub fn grpc_service(&self) -> GrpcReceiver {
        grpc::service(self.clone())
    }

    pub(crate) fn metrics(&self) -> &IngestMetrics {
        &self.inner.metrics
    }
}

/// The server's pipeline settings with a project's (`json`, a [`ProjectPipeline`]), built.
fn project_pipeline(settings: &PipelineSettings, json: &str) -> Result<Pipeline, String> {
    let project: ProjectPipeline = serde_json::from_str(json).map_err(|e| format!("invalid pipeline settings: {e}"))?;
    settings.with_project(&project).build().map_err(|e| e.to_string())
}
