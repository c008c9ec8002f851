//! Failures of the HTTP APIs: [`ApiError`], its [`Code`], and the body each API family
//! answers one with ([`ErrorFormat`]: the native JSON, Jaeger's envelope, Tempo's and Zipkin's
//! plain text).

use std::marker::PhantomData;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clew_model::{Code, Coded};
use clew_query::QueryError;
use clew_storage::StorageError;
use clew_tenancy::AccessError;

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

/// An [`ApiError`] answered in format `F`: the HTTP status of its [`Code`], `Retry-After`
/// when a retry can succeed; internal failures are logged here and shown to the
/// client only by their kind.
#[derive(Debug)]
pub(crate) struct Failure<F>(pub(crate) ApiError, PhantomData<F>);

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

/// An error and each of its causes, `: `-separated, for the log; a cause the message already
/// shows (most say `{context}: {source}`) is not repeated.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        f.write_str(&text)
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
        assert_eq!(ErrorChain(&e).to_string(), "hash a password: secret detail", "each cause once");
        let chained = ApiError::internal("read a segment", std::io::Error::other("disk gone"));
        assert!(std::error::Error::source(&chained).is_some(), "the cause stays a source, not a string");
    }
}
