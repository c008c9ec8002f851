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
    walk(&mut request.resource_spans, Some(&mut original), &mut |double, json| {
        if let Some(value) = json.and_then(|j| non_finite_from_json(j)) {
            *double = value;
        }
    });
    Ok(request)
}

/// Encodes traces as OTLP/JSON.
pub fn encode_traces(traces: &mut TracesData) -> Result<Vec<u8>, serde_json::Error> {
    let mut non_finite = false;
    walk(&mut traces.resource_spans, None, &mut |double, _| non_finite |= !double.is_finite());
    if !non_finite {
        return serde_json::to_vec(traces);
    }
    let mut json = serde_json::to_value(&*traces)?;
    walk(&mut traces.resource_spans, Some(&mut json), &mut |double, json| {
        if let Some(json) = json.filter(|_| !double.is_finite()) {
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

/// The JSON visitor's view of one value: `None` where the JSON has no counterpart.
type Json<'a> = Option<&'a mut Value>;

fn member<'a>(json: Json<'a>, key: &str) -> Json<'a> {
    json?.get_mut(key)
}

fn element<'a>(json: Json<'a>, key: &str, index: usize) -> Json<'a> {
    json?.get_mut(key)?.get_mut(index)
}

/// Walks every double attribute value of `resource_spans` together with the JSON value that
/// encodes it, if `json` has one.
fn walk(resource_spans: &mut [ResourceSpans], mut json: Json<'_>, f: &mut impl FnMut(&mut f64, Json<'_>)) {
    for (i, rs) in resource_spans.iter_mut().enumerate() {
        let mut json_rs = element(json.as_deref_mut(), "resourceSpans", i);
        if let Some(resource) = &mut rs.resource {
            key_values(&mut resource.attributes, member(json_rs.as_deref_mut(), "resource"), f);
        }
        for (j, ss) in rs.scope_spans.iter_mut().enumerate() {
            let mut json_ss = element(json_rs.as_deref_mut(), "scopeSpans", j);
            if let Some(scope) = &mut ss.scope {
                key_values(&mut scope.attributes, member(json_ss.as_deref_mut(), "scope"), f);
            }
            for (k, span) in ss.spans.iter_mut().enumerate() {
                let mut json_span = element(json_ss.as_deref_mut(), "spans", k);
                key_values(&mut span.attributes, json_span.as_deref_mut(), f);
                for (e, event) in span.events.iter_mut().enumerate() {
                    key_values(&mut event.attributes, element(json_span.as_deref_mut(), "events", e), f);
                }
                for (l, link) in span.links.iter_mut().enumerate() {
                    key_values(&mut link.attributes, element(json_span.as_deref_mut(), "links", l), f);
                }
            }
        }
    }
}

/// `json` is the object holding an `"attributes"` (or `"values"`) array of key-values.
fn key_values(kvs: &mut [KeyValue], mut json: Json<'_>, f: &mut impl FnMut(&mut f64, Json<'_>)) {
    let key = if json.as_deref().is_some_and(|j| j.get("values").is_some()) { "values" } else { "attributes" };
    for (i, kv) in kvs.iter_mut().enumerate() {
        if let Some(value) = &mut kv.value {
            any_value(value, member(element(json.as_deref_mut(), key, i), "value"), f);
        }
    }
}

fn any_value(value: &mut AnyValue, json: Json<'_>, f: &mut impl FnMut(&mut f64, Json<'_>)) {
    match &mut value.value {
        Some(any_value::Value::DoubleValue(double)) => f(double, member(json, "doubleValue")),
        Some(any_value::Value::ArrayValue(array)) => {
            let mut json_array = member(json, "arrayValue");
            for (i, item) in array.values.iter_mut().enumerate() {
                any_value(item, element(json_array.as_deref_mut(), "values", i), f);
            }
        }
        Some(any_value::Value::KvlistValue(list)) => key_values(&mut list.values, member(json, "kvlistValue"), f),
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
        walk(&mut data.resource_spans, None, &mut |d, _| out.push(format!("{d:?}")));
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
