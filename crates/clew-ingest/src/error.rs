use std::time::Duration;

use axum::http::StatusCode;
use clew_model::{Code, Coded};
use clew_storage::StorageError;
use clew_tenancy::AccessError;

/// Why an export request was not stored, each variant with its [`Code`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// `format` names what the body should hold: `OTLP/JSON`, `Zipkin protobuf`, ...
    #[error("decode {format} request: {reason}")]
    Malformed { format: &'static str, reason: String },
    #[error("decode {format} request: {source}")]
    Zipkin {
        format: &'static str,
        #[source]
        source: clew_zipkin::ZipkinError,
    },
    /// Every span of a request failed validation, on a protocol without partial success.
    #[error("no span was stored: {0}")]
    AllRejected(String),
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: send gzip or no Content-Encoding")]
    UnsupportedEncoding(String),
    #[error("request body is larger than the limit of {limit} bytes{detail}; send smaller batches or raise ingest.max_request_bytes")]
    TooLarge { limit: usize, detail: &'static str },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Authentication, authorization, tracing not enabled, rate limit.
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl Coded for IngestError {
    fn code(&self) -> Code {
        match self {
            Self::Malformed { .. } | Self::Zipkin { .. } | Self::AllRejected(_) => Code::BadRequest,
            Self::UnsupportedContentType(_) | Self::UnsupportedEncoding(_) => Code::UnsupportedMediaType,
            Self::TooLarge { .. } => Code::TooLarge,
            Self::Storage(e) => e.code(),
            Self::Access(e) => e.code(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Storage(e) => e.retry_after(),
            Self::Access(e) => e.retry_after(),
            _ => None,
        }
    }
}

impl IngestError {
    pub fn http_status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn grpc_code(&self) -> tonic::Code {
        tonic::Code::from(self.code().grpc_code())
    }

    /// The `outcome` a failed request is counted under in `clew_ingest_requests_total`, unless
    /// [`crate::Ingest::export`] counted it already (storage failures, all spans invalid).
    pub(crate) fn outcome(&self) -> Option<&'static str> {
        match self {
            Self::Storage(_) | Self::AllRejected(_) => None,
            Self::Access(AccessError::RateLimited(_)) => Some("rate_limited"),
            Self::Access(_) => Some("denied"),
            _ => Some("bad_request"),
        }
    }
}

impl From<IngestError> for tonic::Status {
    /// Failures worth retrying carry a `google.rpc.RetryInfo` detail: OTLP clients retry
    /// `RESOURCE_EXHAUSTED` only when it is there, and use its delay.
    fn from(e: IngestError) -> Self {
        use tonic_types::{ErrorDetails, StatusExt};
        match e.retry_after() {
            Some(delay) => tonic::Status::with_error_details(
                e.grpc_code(),
                e.public_message(),
                ErrorDetails::with_retry_info(Some(delay)),
            ),
            None => tonic::Status::new(e.grpc_code(), e.public_message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_tenancy::RateLimited;

    #[test]
    fn each_failure_has_one_status_and_code() {
        let unavailable = IngestError::Storage(StorageError::Unavailable {
            context: "append to the WAL".into(),
            retry_after: Duration::from_secs(1),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
        });
        assert_eq!(unavailable.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.grpc_code(), tonic::Code::Unavailable);
        assert_eq!(unavailable.retry_after(), Some(Duration::from_secs(1)));
        assert!(unavailable.public_message().contains("append to the WAL"), "{}", unavailable.public_message());

        let internal = IngestError::Storage(StorageError::internal("flush", std::io::Error::other("secret path /x")));
        assert_eq!(
            (internal.http_status(), internal.grpc_code()),
            (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal)
        );
        assert!(!internal.public_message().contains("secret"), "internal details stay in the log");

        let too_large = IngestError::TooLarge { limit: 10, detail: "" };
        assert_eq!(
            (too_large.http_status(), too_large.grpc_code()),
            (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::ResourceExhausted)
        );
        assert_eq!(too_large.retry_after(), None);
    }

    #[test]
    fn rate_limited_grpc_status_carries_retry_info() {
        use tonic_types::StatusExt;
        let limited = IngestError::Access(AccessError::RateLimited(RateLimited::OverLimit {
            namespace: 1,
            bytes_per_second: 100,
            retry_after: Duration::from_millis(2500),
        }));
        assert_eq!(
            (limited.http_status(), limited.retry_after()),
            (StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_millis(2500)))
        );
        let status = tonic::Status::from(limited);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let info = status.get_details_retry_info().expect("RetryInfo detail");
        assert_eq!(info.retry_delay, Some(Duration::from_millis(2500)));
    }
}
