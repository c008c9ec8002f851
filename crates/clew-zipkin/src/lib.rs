//! Zipkin v2 spans in and out of Clew.
//!
//! Owns the Zipkin v2 wire formats — the JSON array of spans ([`ZipkinSpan`]) and the protobuf
//! `zipkin.proto3.ListOfSpans` ([`proto`]) — their validation, and the translation between them
//! and the OTLP types of [`clew_model`]. It does no I/O and depends on no Clew crate other than
//! `clew-model`: receivers and HTTP APIs call it, it never calls them.
//!
//! The translation follows the OpenTelemetry Collector's `zipkinv2` translator (receiver and
//! exporter), with the current semantic-convention names, and is built so that
//! Zipkin → OTLP → Zipkin gives back the same spans.
//!
//! # Mapping
//!
//! | Zipkin v2                         | OTLP                                                         |
//! |-----------------------------------|--------------------------------------------------------------|
//! | `traceId` (16 or 32 hex)          | `trace_id` (64-bit IDs left-padded with zeros to 16 bytes)    |
//! | `id`, `parentId`                  | `span_id`, `parent_span_id`                                  |
//! | `name`                            | `name`                                                       |
//! | `kind` CLIENT/SERVER/PRODUCER/CONSUMER | `kind` CLIENT/SERVER/PRODUCER/CONSUMER                  |
//! | no `kind` + tag `span.kind=internal` | `kind` INTERNAL                                           |
//! | no `kind`                         | `kind` UNSPECIFIED (as the collector)                        |
//! | `timestamp` (µs), `duration` (µs) | `start_time_unix_nano`, `end_time_unix_nano`                 |
//! | no `timestamp`                    | start 0, attribute `otel.zipkin.absentField.startTime=true`  |
//! | `localEndpoint.serviceName`       | resource `service.name` (absent: no `service.name`)          |
//! | `localEndpoint.ipv4` / `ipv6`     | `network.local.address` (+ `zipkin.local_endpoint.ipv6` when both) |
//! | `localEndpoint.port`              | `network.local.port` (int)                                   |
//! | `remoteEndpoint.serviceName`      | `peer.service`                                               |
//! | `remoteEndpoint.ipv4` / `ipv6`    | `network.peer.address` (+ `zipkin.remote_endpoint.ipv6` when both) |
//! | `remoteEndpoint.port`             | `network.peer.port` (int)                                    |
//! | `annotations[]`                   | `events[]`: time, name = value (but see below)               |
//! | `tags` (strings)                  | string attributes, except the tags below                     |
//! | tags named like resource attributes ([`keys::is_resource_key`]) | resource attributes     |
//! | tags `otel.status_code`, `error`, `otel.status_description` | `status` (see below)         |
//! | tags `otel.scope.name`, `otel.scope.version` (or `otel.library.*`) | `InstrumentationScope`      |
//! | tag `w3c.tracestate`              | `trace_state`                                                |
//! | tags `otel.dropped_{attributes,events,links}_count` | the dropped counts                         |
//! | `shared: true`, `debug: true`     | attributes `zipkin.shared=true`, `zipkin.debug=true` (bool)  |
//! | —                                 | `links`: not sent to Zipkin; counted in `otel.dropped_links_count` |
//!
//! Status: a tag `otel.status_code` (`OK`, `ERROR`, `UNSET`, with or without the `STATUS_CODE_`
//! prefix) sets the code; without it, an `error` tag other than `false` means ERROR. The message
//! is `otel.status_description`, else the `error` tag's value (unless it is `true` or empty).
//! Going out, ERROR becomes `otel.status_code=ERROR` and `error=<message or "true">`, OK becomes
//! `otel.status_code=OK`. Incoming status tags are removed only when they are exactly what
//! would be written back; otherwise they are also kept as attributes, so a plain Zipkin
//! `error=<message>` tag stays visible as an attribute and comes back unchanged.
//!
//! Events with attributes go out as the collector writes them, `name|{"key":value}|dropped`
//! (JSON keys sorted); such an annotation value is read back into the event's attributes and
//! dropped count only if writing them again gives the same text, else it is the event's name.
//!
//! Going out, attributes of any type become tag strings (ints in decimal, `true`/`false`,
//! bytes in hex, arrays and maps as JSON) and resource attributes other than `service.name`
//! become tags; span attributes win over resource attributes with the same key.
//!
//! # What is lossy
//!
//! Zipkin → OTLP → Zipkin keeps IDs, names, kinds, times, tags, annotations, endpoints,
//! `shared` and `debug`, except that:
//! - hex IDs come back lowercase, and a 128-bit trace ID whose upper half is zero comes back
//!   as 16 characters; a `parentId` that is all zeros or equal to `id` is dropped;
//! - IP addresses come back in canonical text form; `false`, `0` and `""` read as absent;
//! - numbers and booleans sent as JSON tag values come back as strings;
//! - a tag is never overwritten by an endpoint field, so a tag that uses one of the attribute
//!   keys above (`peer.service`, `network.peer.address`, `zipkin.shared`, …) hides that
//!   endpoint field, and such a tag on a span without the field comes back as the field.
//!
//! OTLP → Zipkin loses links (only their number is kept), flags, schema URLs, scope
//! attributes, entity references, attribute types, and sub-microsecond precision. Spans
//! whose trace or span ID is not a valid OTLP ID are skipped. A resource without
//! `service.name` gives spans without a local service name.

mod error;
mod from_otlp;
mod json;
pub mod keys;
pub mod proto;
mod span;
#[cfg(test)]
mod tests;
mod to_otlp;
mod values;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::trace::v1::ResourceSpans;
use prost::Message;

pub use error::ZipkinError;
pub use span::{Annotation, Endpoint, Kind, ZipkinSpan};

/// Result of this crate's fallible functions.
pub type Result<T> = std::result::Result<T, ZipkinError>;

/// Content type of a Zipkin v2 JSON body (an array of spans).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Content type of a Zipkin v2 protobuf body (`zipkin.proto3.ListOfSpans`).
pub const PROTO_CONTENT_TYPE: &str = "application/x-protobuf";

/// Decodes and validates a Zipkin v2 JSON body (an array of spans) into an OTLP request.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    from_zipkin(&json::parse(body)?)
}

/// Decodes and validates a Zipkin v2 protobuf body (`zipkin.proto3.ListOfSpans`).
pub fn decode_proto(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let list = proto::ListOfSpans::decode(body).map_err(ZipkinError::Proto)?;
    let spans = list
        .spans
        .into_iter()
        .enumerate()
        .map(|(index, span)| span.into_zipkin().map_err(|problem| ZipkinError::Span { index, problem }))
        .collect::<Result<Vec<_>>>()?;
    from_zipkin(&spans)
}

/// Validates Zipkin spans and translates them into an OTLP request, one `ResourceSpans` per
/// distinct local service (and resource tags), one `ScopeSpans` per instrumentation scope.
pub fn from_zipkin(spans: &[ZipkinSpan]) -> Result<ExportTraceServiceRequest> {
    to_otlp::request(spans)
}

/// Translates OTLP spans (as received, or as stored and assembled) into Zipkin v2 spans, in
/// the order they appear.
pub fn to_zipkin(resource_spans: &[ResourceSpans]) -> Vec<ZipkinSpan> {
    from_otlp::spans(resource_spans)
}
