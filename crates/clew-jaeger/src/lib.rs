//! Jaeger's query API data model, so that Jaeger UI and Grafana's Jaeger data source can read
//! Clew.
//!
//! Owns the JSON shapes of Jaeger's classic HTTP query API (`/api/traces`, `/api/services`,
//! `/api/operations`, `/api/dependencies` and the `{data, total, limit, offset, errors}`
//! envelope), the conversion of OTLP spans to Jaeger traces ([`trace_to_jaeger`], following the
//! OpenTelemetry Collector's OTLP→Jaeger translator), and the parsing of Jaeger's query
//! parameters that need more than a number parser ([`parse_tags`], [`parse_trace_id`]).
//!
//! This crate does no I/O and knows no HTTP framework: routes and status codes belong to
//! `clew-api`. It depends only on `clew-model`.

mod convert;
mod model;
mod query;

pub use convert::{
    operation, process_service_name, span_kind_from_name, span_kind_name, trace_to_jaeger, EMPTY_SERVICE_NAME,
    LINK_REF_TYPE, LOG_FIELD_EVENT, MISSING_SERVICE_NAME, TAG_ERROR, TAG_SCOPE_NAME, TAG_SCOPE_VERSION, TAG_SPAN_KIND,
    TAG_STATUS_CODE, TAG_STATUS_DESCRIPTION, TAG_TRACE_STATE, WRONG_TYPE_SERVICE_NAME,
};
pub use model::{
    DependencyLink, KeyValue, Log, Operation, Process, RefType, Reference, Response, ResponseError, Span, Trace,
    ValueType,
};
pub use query::{parse_tags, parse_trace_id};

pub type Result<T, E = JaegerError> = std::result::Result<T, E>;

/// A Jaeger query parameter that can't be read; every variant is the client's mistake.
#[derive(Debug, thiserror::Error)]
pub enum JaegerError {
    #[error("malformed 'tag' parameter, expecting key:value, received: {tag:?}")]
    MalformedTag { tag: String },
    #[error("malformed '{param}' parameter: a tag name is empty")]
    EmptyTagKey { param: &'static str },
    #[error("malformed 'tags' parameter, expecting a JSON object of tag names to values: {source}")]
    MalformedTagsJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("malformed 'tags' parameter: the value of {key:?} is {found}, expecting a string, number or boolean")]
    TagValue { key: String, found: &'static str },
    #[error("parse trace ID {input:?}: {source}")]
    TraceId {
        input: String,
        #[source]
        source: clew_model::IdError,
    },
}
