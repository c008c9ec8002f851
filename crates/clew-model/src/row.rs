use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::common::v1::KeyValue;
use crate::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use crate::{SpanBatch, SpanId, TraceId};

pub use prost::DecodeError;

/// Span attributes as stored: a protobuf message with one repeated `KeyValue` field.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValues {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// Span events as stored: a protobuf message with one repeated `Span.Event` field.
#[derive(Clone, PartialEq, Message)]
pub struct Events {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<span::Event>,
}

/// Span links as stored: a protobuf message with one repeated `Span.Link` field.
#[derive(Clone, PartialEq, Message)]
pub struct Links {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<span::Link>,
}

/// One span flattened for storage.
///
/// The fields that queries filter on are plain columns; the nested parts are kept as encoded
/// protobuf so that every OTLP field survives the round trip:
/// - `resource` is a `ResourceSpans` holding only `resource` and `schema_url`,
/// - `scope` is a `ScopeSpans` holding only `scope` and `schema_url`,
/// - `attributes`, `events`, `links` are [`KeyValues`], [`Events`], [`Links`] (empty when none).
///
/// Rows of one resource share the same `resource` buffer, so the head pays for it once.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRow {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// Empty for a root span, else 8 bytes.
    pub parent_span_id: Bytes,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status_code: i32,
    pub status_message: String,
    pub service_name: Arc<str>,
    pub resource: Bytes,
    pub scope: Bytes,
    pub attributes: Bytes,
    pub dropped_attributes_count: u32,
    pub events: Bytes,
    pub dropped_events_count: u32,
    pub links: Bytes,
    pub dropped_links_count: u32,
}

impl SpanRow {
    /// Bytes this row holds on the heap, for memory accounting. Shared resource and scope
    /// buffers are counted in full on every row, which overestimates on purpose.
    pub fn estimated_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.parent_span_id.len()
            + self.trace_state.len()
            + self.name.len()
            + self.status_message.len()
            + self.attributes.len()
            + self.events.len()
            + self.links.len()
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// Rebuilds the OTLP span (without resource and scope, which callers group by).
    pub fn to_span(&self) -> Result<Span, DecodeError> {
        Ok(Span {
            trace_id: self.trace_id.as_bytes().to_vec(),
            span_id: self.span_id.as_bytes().to_vec(),
            trace_state: self.trace_state.clone(),
            parent_span_id: self.parent_span_id.to_vec(),
            flags: self.flags,
            name: self.name.clone(),
            kind: self.kind,
            start_time_unix_nano: self.start_unix_nano,
            end_time_unix_nano: self.end_unix_nano,
            attributes: KeyValues::decode(self.attributes.as_ref())?.values,
            dropped_attributes_count: self.dropped_attributes_count,
            events: Events::decode(self.events.as_ref())?.values,
            dropped_events_count: self.dropped_events_count,
            links: Links::decode(self.links.as_ref())?.values,
            dropped_links_count: self.dropped_links_count,
            status: Some(Status { message: self.status_message.clone(), code: self.status_code }),
        })
    }
}

/// Flattens an export request into rows (see [`rows_from_batch`]).
pub fn rows_from_request(request: &ExportTraceServiceRequest) -> Vec<SpanRow> {
    rows_from_batch(&SpanBatch::from(request.clone()))
}

/// Flattens a batch into rows without decoding it: each resource and scope is encoded once
/// and shared by its rows, and the attributes, events, links and parent IDs of all spans are
/// copied into one buffer the rows share. IDs must have been validated: spans whose trace or
/// span ID is invalid are skipped here (the ingest layer rejects them with a reason first).
pub fn rows_from_batch(batch: &SpanBatch) -> Vec<SpanRow> {
    let mut rows = Vec::with_capacity(batch.span_count());
    // Exactly sized: the rows keep this buffer, all of it, for as long as they live.
    let mut shared = Vec::with_capacity(batch.spans().map(|span| span.stored_len()).sum());
    // Per row: where its parent ID, attributes, events and links are in `shared`.
    let mut parts = Vec::with_capacity(batch.span_count());
    for resource in batch.resources() {
        let service_name = resource.service_name().clone();
        let resource_bytes = Bytes::from(resource.encode_stored());
        for scope in resource.scopes() {
            let scope_bytes = Bytes::from(scope.encode_stored());
            for span in scope.spans() {
                let (Ok(trace_id), Ok(span_id)) =
                    (TraceId::from_slice(span.trace_id()), SpanId::from_slice(span.span_id()))
                else {
                    continue;
                };
                let parent = shared.len()..shared.len() + span.parent_span_id().len();
                shared.extend_from_slice(span.parent_span_id());
                parts.push((parent, span.append_stored(&mut shared)));
                rows.push(SpanRow {
                    trace_id,
                    span_id,
                    parent_span_id: Bytes::new(),
                    trace_state: span.trace_state().to_owned(),
                    flags: span.flags(),
                    name: span.name().to_owned(),
                    kind: span.kind(),
                    start_unix_nano: span.start_unix_nano(),
                    end_unix_nano: span.end_unix_nano(),
                    status_code: span.status_code(),
                    status_message: span.status_message().to_owned(),
                    service_name: service_name.clone(),
                    resource: resource_bytes.clone(),
                    scope: scope_bytes.clone(),
                    attributes: Bytes::new(),
                    dropped_attributes_count: span.dropped_attributes_count(),
                    events: Bytes::new(),
                    dropped_events_count: span.dropped_events_count(),
                    links: Bytes::new(),
                    dropped_links_count: span.dropped_links_count(),
                });
            }
        }
    }
    let shared = Bytes::from(shared);
    let slice = |range: std::ops::Range<usize>| if range.is_empty() { Bytes::new() } else { shared.slice(range) };
    for (row, (parent, [attributes, events, links])) in rows.iter_mut().zip(parts) {
        row.parent_span_id = slice(parent);
        row.attributes = slice(attributes);
        row.events = slice(events);
        row.links = slice(links);
    }
    rows
}

type ScopeGroup = (Bytes, Vec<Span>);

/// Groups rows back into OTLP `ResourceSpans` → `ScopeSpans` → spans. Spans are ordered by
/// start time; resources and scopes appear in the order of their first span.
pub fn assemble(mut rows: Vec<SpanRow>) -> Result<Vec<ResourceSpans>, DecodeError> {
    rows.sort_by_key(|row| (row.start_unix_nano, row.span_id));
    // A trace has few distinct resources and scopes: linear search keeps first-seen order.
    // (resource, [(scope, spans)])
    let mut groups: Vec<(Bytes, Vec<ScopeGroup>)> = Vec::new();
    for row in &rows {
        let span = row.to_span()?;
        let scopes = match groups.iter().position(|(resource, _)| *resource == row.resource) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((row.resource.clone(), Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        match scopes.iter().position(|(scope, _)| *scope == row.scope) {
            Some(i) => scopes[i].1.push(span),
            None => scopes.push((row.scope.clone(), vec![span])),
        }
    }
    groups
        .into_iter()
        .map(|(resource, scopes)| {
            let mut resource_spans = ResourceSpans::decode(resource.as_ref())?;
            for (scope, spans) in scopes {
                let mut scope_spans = ScopeSpans::decode(scope.as_ref())?;
                scope_spans.spans = spans;
                resource_spans.scope_spans.push(scope_spans);
            }
            Ok(resource_spans)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::v1::{any_value, AnyValue, InstrumentationScope};
    use crate::otlp::resource::v1::Resource;
    use crate::SERVICE_NAME;

    fn string_attr(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
            ..Default::default()
        }
    }

    fn span(trace: u8, id: u8, start: u64) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("op-{id}"),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            attributes: vec![string_attr("k", "v")],
            status: Some(Status::default()),
            ..Default::default()
        }
    }

    #[test]
    fn flatten_then_assemble_is_lossless() {
        let resource_spans = vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![string_attr(SERVICE_NAME, "checkout")], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "lib".into(), ..Default::default() }),
                spans: vec![span(1, 1, 100), span(1, 2, 200)],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: "s".into(),
        }];
        let rows = rows_from_request(&ExportTraceServiceRequest { resource_spans: resource_spans.clone() });
        assert_eq!(rows.len(), 2);
        assert_eq!(&*rows[0].service_name, "checkout");
        assert_eq!(assemble(rows).unwrap(), resource_spans);
    }

    #[test]
    fn spans_with_invalid_ids_are_not_flattened() {
        let mut bad = span(1, 1, 1);
        bad.span_id = vec![0; 8];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![bad, span(1, 2, 1)], ..Default::default() }],
                ..Default::default()
            }],
        };
        let rows = rows_from_request(&request);
        assert_eq!(rows.len(), 1);
        assert_eq!(&*rows[0].service_name, "");
    }
}
