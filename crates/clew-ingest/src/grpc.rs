//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use clew_model::otlp::collector::trace::v1::trace_service_server::TraceService;
pub use clew_model::otlp::collector::trace::v1::trace_service_server::TraceServiceServer;
use clew_model::otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
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
        let ingest = &self.0;
        let result = async {
            // gRPC metadata are the HTTP/2 headers: the same token and project headers as HTTP.
            let headers = request.metadata().clone().into_headers();
            let target = ingest.target(&headers, None).await?;
            let request = request.into_inner();
            let bytes = request.encoded_len();
            ingest.admit(&target, bytes).await?;
            ingest.export(Protocol::Grpc, &target, request, bytes).await
        }
        .await;
        match result {
            Ok(response) => Ok(tonic::Response::new(response)),
            Err(e) => {
                if let Some(outcome) = e.outcome() {
                    ingest.metrics().request(Protocol::Grpc, outcome);
                }
                Err(e.into())
            }
        }
    }
}

/// Gives tonic's own failures the codes OTLP clients expect: a request that does not decode
/// is INVALID_ARGUMENT (tonic says INTERNAL) and one over the size limit is RESOURCE_EXHAUSTED
/// (tonic says OUT_OF_RANGE). Apply it to the gRPC server's responses.
pub fn normalize_status<B>(mut response: axum::http::Response<B>) -> axum::http::Response<B> {
    let headers = response.headers_mut();
    let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or("");
    let code = match headers.get("grpc-status").and_then(|c| c.to_str().ok()) {
        Some("13") if message.starts_with("failed") && message.contains("decode") => tonic::Code::InvalidArgument,
        Some("11") if message.contains("too") && message.contains("large") => tonic::Code::ResourceExhausted,
        _ => return response,
    };
    headers.insert("grpc-status", axum::http::HeaderValue::from(code as i32));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(code: &str, message: &str) -> axum::http::Response<()> {
        let mut response = axum::http::Response::new(());
        response.headers_mut().insert("grpc-status", code.parse().unwrap());
        response.headers_mut().insert("grpc-message", message.parse().unwrap());
        normalize_status(response)
    }

    #[test]
    fn decode_and_size_failures_get_otlp_codes() {
        let status = |r: axum::http::Response<()>| r.headers()["grpc-status"].to_str().unwrap().to_owned();
        assert_eq!(status(with_status("13", "failed to decode Protobuf message: invalid wire type")), "3");
        assert_eq!(
            status(with_status("11", "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes")),
            "8"
        );
        assert_eq!(status(with_status("13", "internal error while storing spans")), "13");
        assert_eq!(status(with_status("14", "storage is overloaded")), "14");
    }
}
