//! The OTLP JSON mapping (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>),
//! with what the generated serde code leaves out:
//! - non-finite doubles are written and read as `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! - enum names (`"SPAN_KIND_SERVER"`, `"STATUS_CODE_ERROR"`) are accepted where the
//!   specification asks for integers, as some senders write them.

use serde_json::Value;

use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::common::v1::{any_value, AnyValue, KeyValue};
use crate::otlp::trace::v1::{span::SpanKind, status::StatusCode, ResourceSpans, TracesData};

/// Decodes an OTLP/JSON export request.
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, serde_json::Error> {
    let needs_fixing = [b"\"SPAN_KIND_".as_slice(), b"\"STATUS_CODE_", b"\"NaN\"", b"Infinity\""]
        .iter()
        .any(|needle| body.windows(needle.len()).any(|w| w == *needle));
    if !needs_fixing {
        return serde_json::from_slice(body);
    }
    let mut original: Value = serde_json::from_slice(body)?;
    numeric_enums(&mut original);
    let mut decodable = original.clone();
    visit_doubles_json(&mut decodable, &mut |json| {
        if non_finite_from_json(json).is_some() {
            *json = Value::from(0.0);
        }
    });
    let mut request: ExportTraceServiceRequest = serde_json::from_value(decodable)?;
    walk(&mut request.resource_spans, &mut original, &mut |double, json| {
        if let Some(value) = non_finite_from_json(json) {
            *double = value;
        }
    });
    Ok(request)
}

/// Encodes traces as OTLP/JSON.
pub fn encode_traces(traces: &mut TracesData) -> Result<Vec<u8>, serde_json::Error> {
    let mut non_finite = false;
    walk(&mut traces.resource_spans, &mut Value::Null, &mut |double, _| non_finite |= !double.is_finite());
    if !non_finite {
        return serde_json::to_vec(traces);
    }
    let mut json = serde_json::to_value(&*traces)?;
    walk(&mut traces.resource_spans, &mut json, &mut |double, json| {
        if !double.is_finite() {
            let name = if double.is_nan() {
                "NaN"
            } else if *double > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            *json = Value::from(name);
        }
    });
    serde_json::to_vec(&json)
}

fn non_finite_from_json(json: &Value) -> Option<f64> {
    match json.as_str()? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn numeric_enums(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let number = match (key.as_str(), &*v) {
                    ("kind", Value::String(name)) => SpanKind::from_str_name(name).map(|k| k as i32),
                    ("code", Value::String(name)) => StatusCode::from_str_name(name).map(|c| c as i32),
                    _ => None,
                };
                match number {
                    Some(n) => *v = n.into(),
                    None => numeric_enums(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(numeric_enums),
        _ => {}
    }
}

/// Calls `f` on every `"doubleValue"` member anywhere in `json`.
fn visit_doubles_json(json: &mut Value, f: &mut impl FnMut(&mut Value)) {
    match json {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "doubleValue" {
                    f(v);
                } else {
                    visit_doubles_json(v, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| visit_doubles_json(v, f)),
        _ => {}
    }
}

/// Walks every double attribute value of `resource_spans` together with the JSON value that
/// encodes it (`Value::Null` where `json` has no counterpart).
fn walk(resource_spans: &mut [ResourceSpans], json: &mut Value, f: &mut impl FnMut(&mut f64, &mut Value)) {
    for (i, rs) in resource_spans.iter_mut().enumerate() {
        let mut m = Value::Null;
        let json_rs = element(json, "resourceSpans", i, &mut m);
        if let Some(resource) = &mut rs.resource {
            let mut m = Value::Null;
            key_values(&mut resource.attributes, member(json_rs, "resource", &mut m), f);
        }
        for (j, ss) in rs.scope_spans.iter_mut().enumerate() {
            let mut m = Value::Null;
            let json_ss = element(json_rs, "scopeSpans", j, &mut m);
            if let Some(scope) = &mut ss.scope {
                let mut m = Value::Null;
                key_values(&mut scope.attributes, member(json_ss, "scope", &mut m), f);
            }
            for (k, span) in ss.spans.iter_mut().enumerate() {
                let mut m = Value::Null;
                let json_span = element(json_ss, "spans", k, &mut m);
                key_values(&mut span.attributes, json_span, f);
                for (e, event) in span.events.iter_mut().enumerate() {
                    let mut m = Value::Null;
                    key_values(&mut event.attributes, element(json_span, "events", e, &mut m), f);
                }
                for (l, link) in span.links.iter_mut().enumerate() {
                    let mut m = Value::Null;
                    key_values(&mut link.attributes, element(json_span, "links", l, &mut m), f);
                }
            }
        }
    }
}

/// The `index`th element of the array `json[key]`, or `missing` (set to null) when absent.
fn element<'a>(json: &'a mut Value, key: &str, index: usize, missing: &'a mut Value) -> &'a mut Value {
    match json.get_mut(key).and_then(Value::as_array_mut).and_then(|a| a.get_mut(index)) {
        Some(v) => v,
        None => {
            *missing = Value::Null;
            missing
        }
    }
}

/// `json[key]`, or `missing` (set to null) when absent.
fn member<'a>(json: &'a mut Value, key: &str, missing: &'a mut Value) -> &'a mut Value {
    match json.get_mut(key) {
        Some(v) => v,
        None => {
            *missing = Value::Null;
            missing
        }
    }
}

/// `json` is the object holding an `"attributes"` (or `"values"`) array of key-values.
fn key_values(kvs: &mut [KeyValue], json: &mut Value, f: &mut impl FnMut(&mut f64, &mut Value)) {
    let key = if json.get("values").is_some() { "values" } else { "attributes" };
    for (i, kv) in kvs.iter_mut().enumerate() {
        let mut m = Value::Null;
        let json_kv = element(json, key, i, &mut m);
        if let Some(value) = &mut kv.value {
            let mut m = Value::Null;
            any_value(value, member(json_kv, "value", &mut m), f);
        }
    }
}

fn any_value(value: &mut AnyValue, json: &mut Value, f: &mut impl FnMut(&mut f64, &mut Value)) {
    let mut m = Value::Null;
    match &mut value.value {
        Some(any_value::Value::DoubleValue(double)) => f(double, member(json, "doubleValue", &mut m)),
        Some(any_value::Value::ArrayValue(array)) => {
            let json_array = member(json, "arrayValue", &mut m);
            for (i, item) in array.values.iter_mut().enumerate() {
                let mut m = Value::Null;
                any_value(item, element(json_array, "values", i, &mut m), f);
            }
        }
        Some(any_value::Value::KvlistValue(list)) => {
            key_values(&mut list.values, member(json, "kvlistValue", &mut m), f)
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::v1::{ArrayValue, KeyValueList};
    use crate::otlp::trace::v1::{ScopeSpans, Span};

    fn double(value: f64) -> AnyValue {
        AnyValue { value: Some(any_value::Value::DoubleValue(value)) }
    }

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue { key: key.into(), value: Some(value), ..Default::default() }
    }

    fn traces() -> TracesData {
        let attributes = vec![
            kv("nan", double(f64::NAN)),
            kv("inf", double(f64::INFINITY)),
            kv("fine", double(1.25e-300)),
            kv(
                "list",
                AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![double(f64::NEG_INFINITY)] })),
                },
            ),
            kv(
                "map",
                AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("x", double(f64::INFINITY))],
                    })),
                },
            ),
        ];
        TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span { trace_id: vec![1; 16], span_id: vec![1; 8], attributes, ..Default::default() }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn doubles(data: &mut TracesData) -> Vec<String> {
        let mut out = Vec::new();
        walk(&mut data.resource_spans, &mut Value::Null, &mut |d, _| out.push(format!("{d:?}")));
        out
    }

    #[test]
    fn non_finite_and_precise_doubles_round_trip() {
        let mut data = traces();
        let json = encode_traces(&mut data).unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains(r#"{"doubleValue":"NaN"}"#) && text.contains(r#"{"doubleValue":"-Infinity"}"#), "{text}");
        assert!(text.contains("1.25e-300"), "{text}");
        let mut back = TracesData { resource_spans: decode_request(&json).unwrap().resource_spans };
        assert_eq!(doubles(&mut back), doubles(&mut traces()));
        assert_eq!(doubles(&mut back), ["NaN", "inf", "1.25e-300", "-inf", "inf"]);
    }

    #[test]
    fn enum_names_are_accepted() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
        let request = decode_request(body).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            (span.kind, span.status.as_ref().map(|s| s.code)),
            (SpanKind::Client as i32, Some(StatusCode::Error as i32))
        );
    }
}
