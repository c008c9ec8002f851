/// Why a Zipkin request body was rejected. Every variant is the sender's fault (a bad
/// request); the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    /// The body is not JSON, or not a JSON array of objects.
    #[error("invalid JSON at line {line} column {column}: {reason}")]
    Json { line: usize, column: usize, reason: String },
    /// The body is not a protobuf `zipkin.proto3.ListOfSpans`. The cause is part of the
    /// message (it is all a sender can act on), so it is not repeated as a source.
    #[error("invalid protobuf (expected zipkin.proto3.ListOfSpans): {0}")]
    Proto(prost::DecodeError),
    /// One span (counted from 0 in the order sent) breaks the Zipkin v2 model.
    #[error("span {index}: {problem}")]
    Span { index: usize, problem: String },
}

impl ZipkinError {
    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let message = error.to_string();
        let reason = message.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&message).to_owned();
        // serde_json says column 0 when nothing on the line was read yet; people count from 1.
        ZipkinError::Json { line, column: column.max(1), reason }
    }
}

/// `s` quoted for an error message, shortened if long.
pub(crate) fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    if s.chars().count() <= MAX_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_CHARS).collect();
        format!("{head:?}...")
    }
}
