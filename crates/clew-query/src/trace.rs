//! Stored rows as the TraceQL evaluator reads them, and the exact evaluation of a query on one
//! trace.

use std::collections::HashMap;

use clew_model::otlp::common::v1::{any_value, KeyValue};
use clew_model::otlp::trace::v1::ResourceSpans;
use clew_model::{KeyValues, SpanRow, TraceId};
use clew_storage::{StorageError, TimeRange};
use clew_traceql::{Field, FieldValue, KindValue, Query, StatusValue};
use prost::Message;

use crate::Result;

/// A span that matched: its index in the rows given, and the values `select(...)` asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    pub row: usize,
    pub selected: Vec<(Field, FieldValue)>,
}

fn value(kv: &KeyValue) -> clew_traceql::Value {
    use clew_traceql::Value;
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Value::Float(*f),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        _ => Value::Other,
    }
}

fn pairs(attributes: Vec<KeyValue>) -> Vec<(String, clew_traceql::Value)> {
    attributes.into_iter().map(|kv| (kv.key.clone(), value(&kv))).collect()
}

fn kind(code: i32) -> KindValue {
    match code {
        1 => KindValue::Internal,
        2 => KindValue::Server,
        3 => KindValue::Client,
        4 => KindValue::Producer,
        5 => KindValue::Consumer,
        _ => KindValue::Unspecified,
    }
}

fn status(code: i32) -> StatusValue {
    match code {
        1 => StatusValue::Ok,
        2 => StatusValue::Error,
        _ => StatusValue::Unset,
    }
}

fn corrupt(trace_id: TraceId, e: prost::DecodeError) -> StorageError {
    StorageError::Corrupt { location: format!("trace {trace_id}"), reason: e.to_string() }
}

/// The spans of `rows` that start within `range`, as the evaluator's trace, and for each of
/// its spans the index of its row.
pub fn to_trace(trace_id: TraceId, rows: &[SpanRow], range: TimeRange) -> Result<(clew_traceql::Trace, Vec<usize>)> {
    let mut resources: HashMap<&[u8], Vec<(String, clew_traceql::Value)>> = HashMap::new();
    let mut spans = Vec::with_capacity(rows.len());
    let mut positions = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate().filter(|(_, r)| range.contains(r.start_unix_nano)) {
        let resource = match resources.get(row.resource.as_ref()) {
            Some(resource) => resource.clone(),
            None => {
                let decoded = ResourceSpans::decode(row.resource.as_ref()).map_err(|e| corrupt(trace_id, e))?;
                let attributes = pairs(decoded.resource.map(|r| r.attributes).unwrap_or_default());
                resources.insert(row.resource.as_ref(), attributes.clone());
                attributes
            }
        };
        let attributes = KeyValues::decode(row.attributes.as_ref()).map_err(|e| corrupt(trace_id, e))?.values;
        spans.push(clew_traceql::Span {
            span_id: *row.span_id.as_bytes(),
            parent_span_id: row.parent_span_id.as_ref().try_into().ok(),
            name: row.name.clone(),
            kind: kind(row.kind),
            status: status(row.status_code),
            status_message: row.status_message.clone(),
            start_unix_nano: row.start_unix_nano,
            end_unix_nano: row.end_unix_nano,
            service_name: row.service_name.to_string(),
            span_attributes: pairs(attributes),
            resource_attributes: resource,
        });
        positions.push(i);
    }
    Ok((clew_traceql::Trace { trace_id: *trace_id.as_bytes(), spans }, positions))
}

/// Runs `query` on the spans of `rows` within `range`; the matching spans (indexes into
/// `rows`, in start order) when the trace matches.
pub fn evaluate(query: &Query, trace_id: TraceId, rows: &[SpanRow], range: TimeRange) -> Result<Option<Vec<Match>>> {
    let (trace, positions) = to_trace(trace_id, rows, range)?;
    let Some(spansets) = clew_traceql::evaluate(query, &trace) else {
        return Ok(None);
    };
    let mut matches: Vec<Match> = spansets
        .iter()
        .flat_map(|set| set.iter())
        .map(|(span, selected)| Match { row: positions[span], selected: selected.to_vec() })
        .collect();
    if matches.is_empty() {
        return Ok(None);
    }
    matches.sort_by_key(|m| (rows[m.row].start_unix_nano, m.row));
    matches.dedup_by_key(|m| m.row);
    Ok(Some(matches))
}

/// Selected values as `(field, text)` pairs.
pub(crate) fn selected_text(selected: &[(Field, FieldValue)]) -> Vec<(String, String)> {
    selected
        .iter()
        .map(|(field, value)| {
            let text = match value {
                FieldValue::Str(s) => s.clone(),
                FieldValue::Int(i) => i.to_string(),
                FieldValue::Float(f) => f.to_string(),
                FieldValue::Bool(b) => b.to_string(),
                FieldValue::Duration(nanos) => format!("{nanos}ns"),
                FieldValue::Status(s) => s.keyword().to_owned(),
                FieldValue::Kind(k) => k.keyword().to_owned(),
                FieldValue::Other => "(complex value)".to_owned(),
            };
            (field.to_string(), text)
        })
        .collect()
}
