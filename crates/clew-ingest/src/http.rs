//! OTLP/HTTP: `POST /v1/traces` with `application/x-protobuf` or `application/json` bodies,
//! optionally gzip-compressed. Responses use the request's encoding; failures carry a
//! `google.rpc.Status` body as the OTLP specification asks.

use std::io::Read;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use clew_model::otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use clew_model::{Coded, SpanBatch};
use clew_tenancy::ProjectRef;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;

use crate::{Ingest, IngestError, Protocol, Result};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// GitLab's ingest path: the project is named in it.
const PROJECT_PATH: &str = "/v3/{namespace}/{project}/ingest/traces";

pub(crate) fn router(ingest: Ingest) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route(PROJECT_PATH, post(export_to_project))
        .fallback(|| async {
            let message = "not found: this listener takes OTLP/HTTP traces at POST /v1/traces \
                           and POST /v3/{namespace}/{project}/ingest/traces";
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({ "code": tonic::Code::NotFound as i32, "message": message })),
            )
        })
        // The body is read with the configured limit below, with a clearer error than axum's.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

pub(crate) fn project_router(ingest: Ingest) -> Router {
    Router::new().route(PROJECT_PATH, post(export_to_project)).layer(DefaultBodyLimit::disable()).with_state(ingest)
}

async fn export(State(ingest): State<Ingest>, headers: HeaderMap, body: Body) -> Response {
    respond(&ingest, &headers, None, body).await
}

async fn export_to_project(
    State(ingest): State<Ingest>,
    Path((namespace, project)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(&ingest, &headers, Some(ProjectRef { namespace: Some(namespace), project }), body).await
}

async fn respond(ingest: &Ingest, headers: &HeaderMap, project: Option<ProjectRef>, body: Body) -> Response {
    let format = match content_format(headers) {
        Ok(format) => format,
        Err(e) => return error_response(ingest, Format::Json, e),
    };
    match receive(ingest, headers, project, format, body).await {
        Ok(response) => encode(format, StatusCode::OK, &response),
        Err(e) => error_response(ingest, format, e),
    }
}

fn content_format(headers: &HeaderMap) -> Result<Format> {
    let (value, essence) = content_type(headers);
    match essence.as_str() {
        PROTOBUF | "application/protobuf" => Ok(Format::Protobuf),
        JSON => Ok(Format::Json),
        _ => Err(IngestError::UnsupportedContentType(value.to_owned())),
    }
}

/// The `Content-Type` header as sent (empty when absent) and its essence: the media type
/// without parameters, lowercased.
pub(crate) fn content_type(headers: &HeaderMap) -> (&str, String) {
    let value = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>")).unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (value, essence)
}

async fn receive(
    ingest: &Ingest,
    headers: &HeaderMap,
    project: Option<ProjectRef>,
    format: Format,
    body: Body,
) -> Result<ExportTraceServiceResponse> {
    let target = ingest.target(headers, project).await?;
    let (body, wire_bytes) = read_body(ingest, headers, body, format.name()).await?;
    ingest.admit(&target, wire_bytes).await?;
    match format {
        Format::Protobuf => ingest.export_encoded(Protocol::Http, &target, body, wire_bytes).await,
        Format::Json => {
            let batch = decode_json(&body)
                .and_then(|request| {
                    SpanBatch::from_request(&request)
                        .map_err(|e| IngestError::Malformed { format: Format::Json.name(), reason: e.to_string() })
                })
                .inspect_err(|e| ingest.refused(&target, e, wire_bytes))?;
            ingest.export(Protocol::Http, &target, batch, wire_bytes).await
        }
    }
}

/// Reads a request body within [`Ingest::max_request_bytes`] (checked against
/// `Content-Length` first, then while reading) and gunzips it when `Content-Encoding` asks,
/// again within the limit. Returns the body and its size on the wire. `format` names what the
/// body should hold, for errors ("OTLP/JSON").
pub(crate) async fn read_body(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
    format: &'static str,
) -> Result<(Bytes, usize)> {
    let limit = ingest.max_request_bytes();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(IngestError::TooLarge { limit, detail: "" });
    }
    let wire = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<LengthLimitError>().is_some() {
            IngestError::TooLarge { limit, detail: "" }
        } else {
            IngestError::Malformed { format, reason: format!("read body: {e}") }
        }
    })?;
    let wire = wire.to_bytes();
    let wire_bytes = wire.len();
    Ok((decompress(headers, wire, limit, format)?, wire_bytes))
}

fn decompress(headers: &HeaderMap, wire: Bytes, limit: usize, format: &'static str) -> Result<Bytes> {
    let encoding =
        headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("<not text>").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(wire),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::with_capacity(wire.len() * 4);
            // Read one byte past the limit to tell "exactly at the limit" from "over it".
            flate2::read::GzDecoder::new(wire.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| IngestError::Malformed { format, reason: format!("gunzip body: {e}") })?;
            if out.len() > limit {
                return Err(IngestError::TooLarge { limit, detail: " once decompressed" });
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(IngestError::UnsupportedEncoding(other.to_owned())),
    }
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::Protobuf => "OTLP/protobuf",
            Self::Json => "OTLP/JSON",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        }
    }
}

fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    clew_model::otlp_json::decode_request(body)
        .map_err(|e| IngestError::Malformed { format: Format::Json.name(), reason: e.to_string() })
}

fn encode(format: Format, status: StatusCode, response: &impl EncodeBoth) -> Response {
    let body = match format {
        Format::Protobuf => response.protobuf(),
        Format::Json => response.json(),
    };
    (status, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

trait EncodeBoth {
    fn protobuf(&self) -> Vec<u8>;
    fn json(&self) -> Vec<u8>;
}

impl EncodeBoth for ExportTraceServiceResponse {
    fn protobuf(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl EncodeBoth for RpcStatus {
    fn protobuf(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "code": self.code, "message": self.message })).unwrap_or_default()
    }
}

fn error_response(ingest: &Ingest, format: Format, error: IngestError) -> Response {
    if let Some(outcome) = error.outcome() {
        ingest.metrics().request(Protocol::Http, outcome);
    }
    let status = RpcStatus { code: error.grpc_code() as i32, message: error.public_message() };
    let mut response = encode(format, error.http_status(), &status);
    set_retry_after(&mut response, &error);
    response
}

/// Adds `Retry-After` (whole seconds, at least 1) when the failure is worth retrying later.
pub(crate) fn set_retry_after(response: &mut Response, error: &IngestError) {
    if let Some(after) = error.retry_after() {
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_accepts_integers_as_strings_or_numbers() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"a","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":"1544712661000000000",
            "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"m","value":{"intValue":7}}]}]}]}]}"#;
        let request = decode_json(body).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.trace_id[0], 0x5b);
    }

    #[test]
    fn malformed_json_says_where() {
        let err = decode_json(br#"{"resourceSpans": [}"#).unwrap_err().to_string();
        assert!(err.starts_with("decode OTLP/JSON request:") && err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn content_types_are_matched_on_their_essence() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert_eq!(content_format(&headers).unwrap(), Format::Json);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(matches!(content_format(&headers), Err(IngestError::UnsupportedContentType(_))));
    }
}
