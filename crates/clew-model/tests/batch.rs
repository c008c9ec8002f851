//! `SpanBatch` reads exactly what prost's decoder reads: the same requests accepted, the same
//! refused, and the same rows flattened from them.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use clew_model::{rows_from_batch, rows_from_request, SpanBatch, SpanRow};
use proptest::prelude::*;
use prost::Message;

fn value() -> impl Strategy<Value = any_value::Value> {
    use any_value::Value;
    let leaf = prop_oneof![
        "[a-z/ é]{0,12}".prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()).prop_map(Value::DoubleValue),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Value::BytesValue),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|values| Value::ArrayValue(ArrayValue {
                values: values.into_iter().map(|v| AnyValue { value: Some(v) }).collect()
            })),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..3).prop_map(|kvs| Value::KvlistValue(KeyValueList {
                values: kvs.into_iter().map(|(k, v)| kv(&k, Some(v))).collect()
            })),
        ]
    })
}

fn kv(key: &str, value: Option<any_value::Value>) -> KeyValue {
    KeyValue { key: key.into(), value: value.map(|v| AnyValue { value: Some(v) }), ..Default::default() }
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(("[a-z.]{1,8}", prop::option::of(value())), 0..4)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| kv(&k, v)).collect())
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![9 => prop::collection::vec(any::<u8>(), len), 1 => prop::collection::vec(any::<u8>(), 0..len + 2)]
}

fn a_span() -> impl Strategy<Value = Span> {
    let ids = (id(16), id(8), prop_oneof![Just(Vec::new()), id(8)]);
    let times = (any::<u64>(), any::<u64>(), 0..6i32, any::<u32>());
    let events = prop::collection::vec(
        (any::<u64>(), "[a-z]{0,6}", attributes(), any::<u32>()).prop_map(|(time, name, attributes, dropped)| {
            span::Event { time_unix_nano: time, name, attributes, dropped_attributes_count: dropped }
        }),
        0..3,
    );
    let links = prop::collection::vec(
        (id(16), id(8), "[a-z=,]{0,6}", attributes(), any::<u32>()).prop_map(
            |(trace_id, span_id, trace_state, attributes, flags)| span::Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count: 0,
                flags,
            },
        ),
        0..2,
    );
    let status = prop::option::of(("[a-z ]{0,8}", 0..3i32).prop_map(|(message, code)| Status { message, code }));
    (ids, times, "[a-zA-Z /{}]{0,12}", attributes(), events, links, status, any::<u32>()).prop_map(
        |(
            (trace_id, span_id, parent_span_id),
            (start, end, kind, flags),
            name,
            attributes,
            events,
            links,
            status,
            n,
        )| Span {
            trace_id,
            span_id,
            trace_state: if n % 3 == 0 { "ot=th:8".into() } else { String::new() },
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: n % 5,
            events,
            dropped_events_count: n % 7,
            links,
            dropped_links_count: n % 2,
            status,
        },
    )
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (prop::option::of(("[a-z]{0,5}", attributes())), prop::collection::vec(a_span(), 0..4), "[a-z:/]{0,6}")
        .prop_map(|(scope, spans, schema_url)| ScopeSpans {
            scope: scope.map(|(name, attributes)| InstrumentationScope { name, attributes, ..Default::default() }),
            spans,
            schema_url,
        });
    let resource = (prop::option::of(("[a-z]{0,6}", attributes())), prop::collection::vec(scope, 0..3), "[a-z]{0,4}")
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
            resource: resource.map(|(service, mut attributes)| {
                attributes.insert(0, kv("service.name", Some(any_value::Value::StringValue(service))));
                Resource { attributes, ..Default::default() }
            }),
            scope_spans,
            schema_url,
        });
    prop::collection::vec(resource, 1..3).prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// What a row holds, decoded: its resource, scope and span as OTLP values.
fn decoded(rows: Vec<SpanRow>) -> Vec<(ResourceSpans, ScopeSpans, Span, std::sync::Arc<str>)> {
    rows.into_iter()
        .map(|row| {
            (
                ResourceSpans::decode(row.resource.as_ref()).unwrap(),
                ScopeSpans::decode(row.scope.as_ref()).unwrap(),
                row.to_span().unwrap(),
                row.service_name.clone(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_batch_reads_every_field_prost_reads(request in request()) {
        let bytes = request.encode_to_vec();
        let batch = SpanBatch::decode(bytes.clone().into()).unwrap();
        prop_assert_eq!(batch.bytes().as_ref(), bytes.as_slice(), "an encoder's layout is kept as received");
        let spans: Vec<&Span> =
            request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
        prop_assert_eq!(batch.span_count(), spans.len());
        for (view, span) in batch.spans().zip(spans) {
            prop_assert_eq!(view.trace_id(), span.trace_id.as_slice());
            prop_assert_eq!(view.span_id(), span.span_id.as_slice());
            prop_assert_eq!(view.parent_span_id(), span.parent_span_id.as_slice());
            prop_assert_eq!(view.name(), span.name.as_str());
            prop_assert_eq!(view.trace_state(), span.trace_state.as_str());
            prop_assert_eq!((view.kind(), view.flags()), (span.kind, span.flags));
            prop_assert_eq!((view.start_unix_nano(), view.end_unix_nano()), (span.start_time_unix_nano, span.end_time_unix_nano));
            let status = span.status.clone().unwrap_or_default();
            prop_assert_eq!((view.status_code(), view.status_message()), (status.code, status.message.as_str()));
            prop_assert_eq!(view.attribute_count(), span.attributes.len());
            prop_assert_eq!(view.attributes().iter().map(|a| a.key()).collect::<Vec<_>>(),
                span.attributes.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>());
            for (a, kv) in view.attributes().iter().zip(&span.attributes) {
                let encoded = kv.value.clone().unwrap_or_default().encode_to_vec();
                prop_assert_eq!(a.value(), clew_model::wire::ValueRef::read(&encoded));
            }
            prop_assert_eq!((view.event_count(), view.link_count()), (span.events.len(), span.links.len()));
            prop_assert_eq!(view.events().map(|e| e.name()).collect::<Vec<_>>(),
                span.events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>());
        }
        prop_assert_eq!(decoded(rows_from_batch(&batch)), decoded(rows_from_request(&request)));
    }

    #[test]
    fn damaged_bytes_are_refused_exactly_when_prost_refuses_them(
        request in request(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut bytes = request.encode_to_vec();
        prop_assume!(!bytes.is_empty());
        let at = at.index(bytes.len());
        if cut { bytes.truncate(at) } else { bytes[at] = byte }
        let by_prost = ExportTraceServiceRequest::decode(bytes.as_slice());
        let batch = SpanBatch::decode(bytes.clone().into());
        prop_assert_eq!(batch.is_ok(), by_prost.is_ok(), "prost: {:?}, batch: {:?}", by_prost.as_ref().err(), batch.as_ref().err());
        if let (Ok(batch), Ok(request)) = (batch, by_prost) {
            prop_assert_eq!(batch.to_request().unwrap(), request.clone());
            prop_assert_eq!(decoded(rows_from_batch(&batch)), decoded(rows_from_request(&request)));
        }
    }
}

#[test]
fn an_unusual_layout_is_read_as_prost_reads_it() {
    // Two attributes with the span's name between them: still one span, both attributes.
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "n".into(),
        attributes: vec![kv("a", None)],
        ..Default::default()
    };
    let mut bytes = span.encode_to_vec();
    bytes.extend(Span { name: "m".into(), attributes: vec![kv("b", None)], ..Default::default() }.encode_to_vec());
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::decode(bytes.as_slice()).unwrap()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    // Re-encoded by hand: the resource spans field around a scope around the merged span bytes.
    let wrap = |tag: u32, inner: &[u8]| {
        let mut out = Vec::new();
        prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(inner.len() as u64, &mut out);
        out.extend_from_slice(inner);
        out
    };
    let raw = wrap(1, &wrap(2, &wrap(2, &bytes)));
    let batch = SpanBatch::decode(raw.into()).unwrap();
    assert_eq!(batch.to_request().unwrap(), request);
    let view = batch.spans().next().unwrap();
    assert_eq!(view.name(), "m");
    assert_eq!(view.attributes().iter().map(|a| a.key()).collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn values_nested_deeper_than_prost_reads_are_refused_not_stored() {
    let mut value = any_value::Value::IntValue(1);
    for _ in 0..60 {
        value = any_value::Value::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(value) }] });
    }
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        attributes: vec![kv("deep", Some(value))],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    };
    assert!(
        ExportTraceServiceRequest::decode(request.encode_to_vec().as_slice()).is_err(),
        "prost cannot read it back"
    );
    let refused = SpanBatch::from_request(&request).unwrap_err();
    assert!(refused.to_string().contains("recursion limit"), "{refused}");
}
