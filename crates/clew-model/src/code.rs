//! The closed set of outcomes every Clew API and receiver answers a failure with, each mapped
//! to an HTTP status and a gRPC code here and nowhere else.

use std::time::Duration;

/// What went wrong, in the terms a client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request is malformed or asks for something that cannot be answered; fix it.
    BadRequest,
    /// No credentials, or credentials that are not (or no longer) valid.
    Unauthorized,
    /// Valid credentials without the role or scope the request needs.
    Forbidden,
    NotFound,
    /// It exists already, or a concurrent change won.
    Conflict,
    /// The body is larger than accepted; send smaller requests.
    TooLarge,
    /// The body's content type or encoding is not one the endpoint reads.
    UnsupportedMediaType,
    /// Over a rate limit; retry after the delay given.
    TooManyRequests,
    /// Overloaded or a dependency is down; retry after the delay given.
    Unavailable,
    /// A fault of the server's; the details are in its log.
    Internal,
}

impl Code {
    /// The HTTP status a failure of this kind is answered with.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }

    /// The gRPC status code (`google.rpc.Code`) a failure of this kind is answered with.
    /// OTLP exporters retry `RESOURCE_EXHAUSTED` and `UNAVAILABLE` only.
    pub const fn grpc_code(self) -> i32 {
        match self {
            Self::BadRequest | Self::UnsupportedMediaType => 3, // INVALID_ARGUMENT
            Self::Unauthorized => 16,                           // UNAUTHENTICATED
            Self::Forbidden => 7,                               // PERMISSION_DENIED
            Self::NotFound => 5,                                // NOT_FOUND
            Self::Conflict => 6,                                // ALREADY_EXISTS
            Self::TooLarge | Self::TooManyRequests => 8,        // RESOURCE_EXHAUSTED
            Self::Unavailable => 14,                            // UNAVAILABLE
            Self::Internal => 13,                               // INTERNAL
        }
    }

    /// The code's name in JSON error bodies (`{"error": {"code": "not_found", ...}}`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests => "too_many_requests",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: [Code; 10] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::TooLarge,
        Self::UnsupportedMediaType,
        Self::TooManyRequests,
        Self::Unavailable,
        Self::Internal,
    ];
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error that knows its [`Code`], and when a retry may succeed.
pub trait Coded: std::error::Error {
    fn code(&self) -> Code;

    /// How long to wait before sending the same request again (`Retry-After`, gRPC
    /// `RetryInfo`), when waiting can help.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// What the client is told: the error itself, except that internal faults are described
    /// only by their kind (the details go to the server's log).
    fn public_message(&self) -> String {
        match self.code() {
            Code::Internal => "internal error; see the server log".to_owned(),
            _ => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_has_its_own_status_and_name() {
        let mut statuses: Vec<u16> = Code::ALL.iter().map(|c| c.http_status()).collect();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(statuses.len(), Code::ALL.len());
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }

    #[test]
    fn retryable_codes_are_the_ones_otlp_exporters_retry() {
        for code in Code::ALL {
            let retried_by_grpc = matches!(code.grpc_code(), 8 | 14);
            let retried_by_http = matches!(code.http_status(), 429 | 503);
            assert_eq!(retried_by_http, matches!(code, Code::TooManyRequests | Code::Unavailable), "{code}");
            assert!(!retried_by_http || retried_by_grpc, "{code}");
        }
    }
}
