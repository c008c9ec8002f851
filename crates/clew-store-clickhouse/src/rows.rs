//! Spans as rows of the `spans` table: written in `RowBinary`, read back as [`SpanRow`]s.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use clew_model::otlp::common::v1::{any_value, KeyValue};
use clew_model::otlp::trace::v1::ResourceSpans;
use clew_model::{day_of, KeyValues, SpanId, SpanRow, TenantId, TraceId};
use prost::Message;

use crate::rowbinary::{Read, Reader, Truncated, Writer};

/// One attribute set split by value type, as the parallel arrays of the schema hold it.
#[derive(Default)]
struct Typed<'a> {
    str_keys: Vec<&'a str>,
    str_values: Vec<&'a str>,
    int_keys: Vec<&'a str>,
    int_values: Vec<i64>,
    float_keys: Vec<&'a str>,
    float_values: Vec<f64>,
    bool_keys: Vec<&'a str>,
    bool_values: Vec<u8>,
    other_keys: Vec<&'a str>,
}

impl<'a> Typed<'a> {
    fn of(attributes: &'a [KeyValue]) -> Self {
        let mut typed = Self::default();
        for kv in attributes {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => {
                    typed.str_keys.push(&kv.key);
                    typed.str_values.push(s);
                }
                Some(any_value::Value::IntValue(i)) => {
                    typed.int_keys.push(&kv.key);
                    typed.int_values.push(*i);
                }
                Some(any_value::Value::DoubleValue(f)) => {
                    typed.float_keys.push(&kv.key);
                    typed.float_values.push(*f);
                }
                Some(any_value::Value::BoolValue(b)) => {
                    typed.bool_keys.push(&kv.key);
                    typed.bool_values.push(u8::from(*b));
                }
                _ => typed.other_keys.push(&kv.key),
            }
        }
        typed
    }

    fn write(&self, w: &mut Writer) {
        let strings = |w: &mut Writer, s: &&str| w.bytes(s.as_bytes());
        w.array(&self.str_keys, strings);
        w.array(&self.str_values, strings);
        w.array(&self.int_keys, strings);
        w.array(&self.int_values, |w, v| w.i64(*v));
        w.array(&self.float_keys, strings);
        w.array(&self.float_values, |w, v| w.f64(*v));
        w.array(&self.bool_keys, strings);
        w.array(&self.bool_values, |w, v| w.u8(*v));
        w.array(&self.other_keys, strings);
    }
}

/// Appends `rows` of `tenant` to `w` in the column order of `schema::SPAN_COLUMNS`.
pub(crate) fn write_spans(w: &mut Writer, tenant: &TenantId, rows: &[SpanRow]) {
    // Rows of one resource share its buffer: decode each resource once.
    let mut resources: HashMap<*const u8, Vec<KeyValue>> = HashMap::new();
    for row in rows {
        let resource = resources.entry(row.resource.as_ptr()).or_insert_with(|| {
            ResourceSpans::decode(row.resource.as_ref())
                .ok()
                .and_then(|r| r.resource)
                .map(|r| r.attributes)
                .unwrap_or_default()
        });
        let attributes = KeyValues::decode(row.attributes.as_ref()).map(|a| a.values).unwrap_or_default();
        w.bytes(tenant.as_str().as_bytes());
        w.u16(u16::try_from(day_of(row.start_unix_nano)).unwrap_or(u16::MAX));
        w.fixed(row.trace_id.as_bytes());
        w.fixed(row.span_id.as_bytes());
        w.bytes(&row.parent_span_id);
        w.bytes(row.trace_state.as_bytes());
        w.u32(row.flags);
        w.bytes(row.name.as_bytes());
        w.i32(row.kind);
        w.u64(row.start_unix_nano);
        w.u64(row.end_unix_nano);
        w.i32(row.status_code);
        w.bytes(row.status_message.as_bytes());
        w.bytes(row.service_name.as_bytes());
        w.bytes(&row.resource);
        w.bytes(&row.scope);
        w.bytes(&row.attributes);
        w.u32(row.dropped_attributes_count);
        w.bytes(&row.events);
        w.u32(row.dropped_events_count);
        w.bytes(&row.links);
        w.u32(row.dropped_links_count);
        Typed::of(&attributes).write(w);
        Typed::of(resource).write(w);
    }
}

/// The columns [`read_span`] reads, in its order.
pub(crate) const READ_COLUMNS: &str = "trace_id, span_id, parent_span_id, trace_state, flags, name, kind, \
     start_unix_nano, end_unix_nano, status_code, status_message, service_name, resource, scope, attributes, \
     dropped_attributes_count, events, dropped_events_count, links, dropped_links_count";

/// Reads the next row selected with [`READ_COLUMNS`]. Rows of one resource share its buffer
/// and service name through `interned`.
pub(crate) fn read_span(r: &mut Reader<'_>, interned: &mut HashMap<Vec<u8>, (Bytes, Arc<str>)>) -> Read<SpanRow> {
    let invalid = |_| Truncated("ID");
    let trace_id = TraceId::from_bytes(r.fixed::<16>()?).map_err(invalid)?;
    let span_id = SpanId::from_bytes(r.fixed::<8>()?).map_err(invalid)?;
    let parent_span_id = Bytes::copy_from_slice(r.bytes()?);
    let trace_state = r.string()?;
    let flags = r.u32()?;
    let name = r.string()?;
    let kind = r.i32()?;
    let start_unix_nano = r.u64()?;
    let end_unix_nano = r.u64()?;
    let status_code = r.i32()?;
    let status_message = r.string()?;
    let service = r.bytes()?;
    let resource = r.bytes()?;
    let (resource, service_name) = match interned.get(resource) {
        Some((bytes, service)) => (bytes.clone(), service.clone()),
        None => {
            let shared = (Bytes::copy_from_slice(resource), Arc::from(String::from_utf8_lossy(service).as_ref()));
            interned.insert(resource.to_vec(), shared.clone());
            shared
        }
    };
    Ok(SpanRow {
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        flags,
        name,
        kind,
        start_unix_nano,
        end_unix_nano,
        status_code,
        status_message,
        service_name,
        resource,
        scope: Bytes::copy_from_slice(r.bytes()?),
        attributes: Bytes::copy_from_slice(r.bytes()?),
        dropped_attributes_count: r.u32()?,
        events: Bytes::copy_from_slice(r.bytes()?),
        dropped_events_count: r.u32()?,
        links: Bytes::copy_from_slice(r.bytes()?),
        dropped_links_count: r.u32()?,
    })
}

/// Every row of a result selected with [`READ_COLUMNS`].
pub(crate) fn read_spans(body: &[u8]) -> Read<Vec<SpanRow>> {
    let mut r = Reader::new(body);
    let mut interned = HashMap::new();
    let mut rows = Vec::new();
    while !r.is_empty() {
        rows.push(read_span(&mut r, &mut interned)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use clew_storage::conformance::every_field_request;

    use super::*;
    use crate::schema::SPAN_COLUMNS;

    #[test]
    fn rows_written_read_back_through_the_read_columns() {
        let rows = clew_model::rows_from_request(&every_field_request([7; 16], 1_700_000_000_000_000_000));
        let tenant: TenantId = "t".parse().unwrap();
        let mut w = Writer::default();
        write_spans(&mut w, &tenant, &rows);
        // Read the written columns back, skipping what READ_COLUMNS does not select.
        let mut r = Reader::new(&w.buf);
        let mut interned = HashMap::new();
        for row in &rows {
            assert_eq!(r.string().unwrap(), "t");
            r.u16().unwrap();
            assert_eq!(&read_span(&mut r, &mut interned).unwrap(), row);
            for _ in 0..2 {
                r.array(|r| r.string()).unwrap();
                r.array(|r| r.string()).unwrap();
                r.array(|r| r.string()).unwrap();
                r.array(|r| r.i64()).unwrap();
                r.array(|r| r.string()).unwrap();
                r.array(|r| r.f64()).unwrap();
                r.array(|r| r.string()).unwrap();
                r.array(|r| r.u8()).unwrap();
                r.array(|r| r.string()).unwrap();
            }
        }
        assert!(r.is_empty());
        assert_eq!(SPAN_COLUMNS.split(',').count(), 2 + READ_COLUMNS.split(',').count() + 18);
    }
}
