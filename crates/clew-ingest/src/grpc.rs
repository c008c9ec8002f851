//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use clew_model::otlp::collector::trace::v1::trace_service_server::TraceService;
pub use clew_model::otlp::collector::trace::v1::trace_service_server::TraceServiceServer;
use clew_model::otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use clew_model::TenantId;
use prost::Message;
use tonic::codec::CompressionEncoding;

use crate::{Ingest, Protocol};

/// The gRPC face of [`Ingest`].
pub struct GrpcReceiver(Ingest);

pub(crate) fn service(ingest: Ingest) -> TraceServiceServer<GrpcReceiver> {
    let limit = ingest.max_request_bytes();
    TraceServiceServer::new(GrpcReceiver(ingest))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let bytes = request.encoded_len();
        let response = self.0.export(Protocol::Grpc, &TenantId::default_tenant(), request, bytes).await?;
        Ok(tonic::Response::new(response))
    }
}
