//! The Zipkin v2 receiver: `POST /zipkin/api/v2/spans` with a JSON array of spans
//! (`application/json`, also assumed when no `Content-Type` is sent, as Zipkin does) or a
//! protobuf `zipkin.proto3.ListOfSpans` (`application/x-protobuf`), optionally gzip-compressed.
//! `clew-zipkin` translates the spans to OTLP; from there they take the path OTLP exports take.
//!
//! Answers as a Zipkin server does: `202 Accepted` with an empty body, failures with a status and
//! a plain-text message. Zipkin has no partial success, so a request none of whose spans pass
//! validation is a 400 that names them, and one with some valid spans is accepted (202) with
//! the rejected ones logged.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::http::{content_type, read_body, set_retry_after};
use clew_model::{Coded, SpanBatch};

use crate::{Ingest, IngestError, Protocol, Result};

/// Where Zipkin reporters send spans: Zipkin's own path under the HTTP API's `/zipkin` prefix.
pub const SPANS_PATH: &str = "/zipkin/api/v2/spans";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::Json => "Zipkin JSON",
            Self::Protobuf => "Zipkin protobuf",
        }
    }
}

pub(crate) fn router(ingest: Ingest) -> Router {
    Router::new()
        .route(SPANS_PATH, post(receive))
        // The body is read with the configured limit, with a clearer error than axum's.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

async fn receive(State(ingest): State<Ingest>, headers: HeaderMap, body: Body) -> Response {
    match store(&ingest, &headers, body).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => error_response(&ingest, e),
    }
}

fn content_format(headers: &HeaderMap) -> Result<Format> {
    let (value, essence) = content_type(headers);
    match essence.as_str() {
        "" | clew_zipkin::JSON_CONTENT_TYPE => Ok(Format::Json),
        clew_zipkin::PROTO_CONTENT_TYPE | "application/protobuf" => Ok(Format::Protobuf),
        _ => Err(IngestError::UnsupportedContentType(value.to_owned())),
    }
}

async fn store(ingest: &Ingest, headers: &HeaderMap, body: Body) -> Result<()> {
    let format = content_format(headers)?;
    let target = ingest.target(headers, None).await?;
    let (body, wire_bytes) = read_body(ingest, headers, body, format.name()).await?;
    ingest.admit(&target, wire_bytes).await?;
    let request = match format {
        Format::Json => clew_zipkin::decode_json(&body),
        Format::Protobuf => clew_zipkin::decode_proto(&body),
    }
    .map_err(|source| IngestError::Zipkin { format: format.name(), source })
    .inspect_err(|e| ingest.refused(&target, e, wire_bytes))?;
    let batch = SpanBatch::from_request(&request)
        .map_err(|e| IngestError::Malformed { format: format.name(), reason: e.to_string() })
        .inspect_err(|e| ingest.refused(&target, e, wire_bytes))?;
    let received = batch.span_count();
    let response = ingest.export(Protocol::Zipkin, &target, batch, wire_bytes).await?;
    if let Some(partial) = response.partial_success.filter(|p| p.rejected_spans > 0) {
        if usize::try_from(partial.rejected_spans).is_ok_and(|rejected| rejected >= received) {
            return Err(IngestError::AllRejected(partial.error_message));
        }
        tracing::warn!(
            rejected = partial.rejected_spans,
            received,
            reasons = %partial.error_message,
            "zipkin spans failed validation; the others were stored"
        );
    }
    Ok(())
}

fn error_response(ingest: &Ingest, error: IngestError) -> Response {
    // Export has counted storage failures and requests whose spans were all rejected.
    if let Some(outcome) = error.outcome() {
        ingest.metrics().request(Protocol::Zipkin, outcome);
    }
    let body = error.public_message();
    let mut response =
        (error.http_status(), [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    set_retry_after(&mut response, &error);
    response
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn format_of(content_type: Option<&'static str>) -> Result<Format> {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        }
        content_format(&headers)
    }

    #[test]
    fn json_is_assumed_without_a_content_type() {
        assert_eq!(format_of(None).unwrap(), Format::Json);
        assert_eq!(format_of(Some("application/json; charset=UTF-8")).unwrap(), Format::Json);
        assert_eq!(format_of(Some("application/x-protobuf")).unwrap(), Format::Protobuf);
        assert!(matches!(format_of(Some("application/x-thrift")), Err(IngestError::UnsupportedContentType(_))));
    }
}
