//! Receivers: how spans get into Clew.
//!
//! Owns OTLP/gRPC (`TraceService/Export`), OTLP/HTTP (`POST /v1/traces`, protobuf and
//! JSON, gzip) and the Zipkin v2 receiver (`POST /zipkin/api/v2/spans`, translated by
//! `clew-zipkin`), request limits, per-span validation with OTLP partial success, and the mapping
//! of failures to HTTP and gRPC status codes (each in exactly one function). Writes go to a
//! [`SpanWriter`]; this crate never names a storage backend.

mod error;
mod grpc;
mod http;
mod metrics;
mod validate;
mod zipkin;

use std::sync::Arc;

use clew_model::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use clew_model::TenantId;
use clew_storage::SpanWriter;
use prometheus_client::registry::Registry;

pub use error::IngestError;
pub use grpc::{normalize_status, GrpcReceiver, TraceServiceServer};
pub use validate::{span_count, validate, Rejections};

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
    max_request_bytes: usize,
    metrics: IngestMetrics,
}

impl Ingest {
    pub fn new(writer: Arc<dyn SpanWriter>, max_request_bytes: usize, registry: &mut Registry) -> Self {
        let metrics = IngestMetrics::register(registry);
        Self { inner: Arc::new(Inner { writer, max_request_bytes, metrics }) }
    }

    pub fn max_request_bytes(&self) -> usize {
        self.inner.max_request_bytes
    }

    /// Validates and stores one export request. Spans that fail validation are reported in
    /// the response's partial success; the others are durable when this returns `Ok`.
    pub async fn export(
        &self,
        protocol: Protocol,
        tenant: &TenantId,
        mut request: ExportTraceServiceRequest,
        wire_bytes: usize,
    ) -> Result<ExportTraceServiceResponse> {
        let metrics = &self.inner.metrics;
        let received = span_count(&request);
        metrics.received(protocol, received, wire_bytes);
        let rejections = validate(&mut request);
        metrics.rejected(protocol, "invalid", rejections.spans);
        if received > rejections.spans {
            if let Err(e) = self.inner.writer.write(tenant, request).await {
                let reason = if e.is_retryable() { "refused" } else { "error" };
                metrics.rejected(protocol, reason, received - rejections.spans);
                metrics.request(protocol, reason);
                if !e.is_retryable() {
                    tracing::error!(error = %e, "storing spans failed");
                }
                return Err(e.into());
            }
        }
        let partial_success = (rejections.spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejections.spans as i64,
            error_message: rejections.message(),
        });
        metrics.request(protocol, if partial_success.is_some() { "partial" } else { "ok" });
        Ok(ExportTraceServiceResponse { partial_success })
    }

    /// The OTLP/HTTP receiver: `POST /v1/traces`.
    pub fn http_router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// The Zipkin v2 receiver: `POST /zipkin/api/v2/spans`, JSON or protobuf, for the HTTP API
    /// listener. It has no fallback, so it merges into a router that has one.
    pub fn zipkin_router(&self) -> axum::Router {
        zipkin::router(self.clone())
    }

    /// The OTLP/gRPC receiver, accepting and answering gzip.
    pub fn grpc_service(&self) -> TraceServiceServer<GrpcReceiver> {
        grpc::service(self.clone())
    }

    pub(crate) fn metrics(&self) -> &IngestMetrics {
        &self.inner.metrics
    }
}
