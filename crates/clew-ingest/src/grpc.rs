//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, served by tonic
//! with a codec that hands the request over as the bytes received, so that it is decoded once,
//! in place, by [`SpanBatch::decode`].

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use clew_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder};
use tonic::codegen::{http, Body as HttpBody, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Status;

use crate::{Ingest, Protocol};

/// The OTLP trace service's name and its one method's path.
const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC face of [`Ingest`]: accepts and answers gzip, refuses requests over the ingest
/// size limit.
#[derive(Clone)]
pub struct GrpcReceiver(Ingest);

pub(crate) fn service(ingest: Ingest) -> GrpcReceiver {
    GrpcReceiver(ingest)
}

impl NamedService for GrpcReceiver {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for GrpcReceiver
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT {
                return Ok(Status::unimplemented(format!("{SERVICE} has only Export")).into_http());
            }
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let limit = ingest.max_request_bytes();
            let mut grpc = Grpc::new(RawRequests)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(Export(ingest), request).await)
        })
    }
}

/// One export, from the request's bytes to the response.
struct Export(Ingest);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let result = async {
                // gRPC metadata are the HTTP/2 headers: the same token and project headers as HTTP.
                let headers = request.metadata().clone().into_headers();
                let target = ingest.target(&headers, None).await?;
                let bytes = request.into_inner();
                let wire_bytes = bytes.len();
                ingest.admit(&target, wire_bytes).await?;
                ingest.export_encoded(Protocol::Grpc, &target, bytes, wire_bytes).await
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
        })
    }
}

/// Requests as the bytes received (decompressed), responses encoded by prost.
#[derive(Clone, Copy)]
struct RawRequests;

impl Codec for RawRequests {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = RawRequests;
    type Decoder = RawRequests;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for RawRequests {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encode the response: {e}")))
    }
}

impl Decoder for RawRequests {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
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
