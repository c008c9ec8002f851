//! Reading Zipkin v2 JSON: syntax and shape errors carry a position, field errors name the
//! span and the field.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::quoted;
use crate::span::{Annotation, Endpoint, Kind, ZipkinSpan};
use crate::ZipkinError;

/// Parses a JSON array of spans. Only the JSON types are checked here; IDs, addresses and
/// time ranges are validated with the OTLP translation, which protobuf input shares.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    let SpanList(objects) = serde_json::from_slice(body).map_err(|e| ZipkinError::from_json(&e))?;
    objects
        .into_iter()
        .enumerate()
        .map(|(index, object)| span(object).map_err(|problem| ZipkinError::Span { index, problem }))
        .collect()
}

/// The body's shape, checked while parsing so that a wrong shape is reported with a position.
struct SpanList(Vec<Map<String, Value>>);

impl<'de> Deserialize<'de> for SpanList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = SpanList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of Zipkin span objects")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SpanList, A::Error> {
                let mut spans = Vec::new();
                while let Some(SpanObject(object)) = seq.next_element()? {
                    spans.push(object);
                }
                Ok(SpanList(spans))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct SpanObject(Map<String, Value>);

impl<'de> Deserialize<'de> for SpanObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = SpanObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Zipkin span object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpanObject, A::Error> {
                let mut object = Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                Ok(SpanObject(object))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

fn span(object: Map<String, Value>) -> Result<ZipkinSpan, String> {
    let mut span = ZipkinSpan::default();
    let (mut trace_id, mut id) = (None, None);
    for (key, value) in object {
        // Zipkin writes absent fields as missing, but some clients write null.
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "traceId" => trace_id = Some(string(&key, value)?),
            "id" => id = Some(string(&key, value)?),
            "parentId" => span.parent_id = non_empty(string(&key, value)?),
            "kind" => span.kind = Some(kind(value)?),
            "name" => span.name = non_empty(string(&key, value)?),
            "timestamp" => span.timestamp = non_zero(integer(&key, &value, "epoch microseconds")?),
            "duration" => span.duration = non_zero(integer(&key, &value, "microseconds")?),
            "debug" => span.debug = boolean(&key, &value)?.then_some(true),
            "shared" => span.shared = boolean(&key, &value)?.then_some(true),
            "localEndpoint" => span.local_endpoint = endpoint(&key, value)?,
            "remoteEndpoint" => span.remote_endpoint = endpoint(&key, value)?,
            "annotations" => span.annotations = annotations(value)?,
            "tags" => span.tags = tags(value)?,
            // Zipkin ignores fields it does not know, and so do we.
            _ => {}
        }
    }
    span.trace_id = trace_id.ok_or("traceId is required")?;
    span.id = id.ok_or("id is required")?;
    Ok(span)
}

/// A JSON value for an error message, shortened if long.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        other => {
            let text = other.to_string();
            if text.chars().count() <= 64 {
                text
            } else {
                format!("{}...", text.chars().take(64).collect::<String>())
            }
        }
    }
}

fn string(field: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(format!("{field} must be a string, got {}", shown(&other))),
    }
}

fn integer(field: &str, value: &Value, unit: &str) -> Result<u64, String> {
    value.as_u64().ok_or_else(|| format!("{field} must be a non-negative integer ({unit}), got {}", shown(value)))
}

fn boolean(field: &str, value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("{field} must be true or false, got {}", shown(value)))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn non_zero(n: u64) -> Option<u64> {
    (n != 0).then_some(n)
}

fn kind(value: Value) -> Result<Kind, String> {
    let name = string("kind", value)?;
    Kind::from_name(&name).ok_or_else(|| {
        format!("kind must be one of CLIENT, SERVER, PRODUCER, CONSUMER (or absent), got {}", quoted(&name))
    })
}

fn endpoint(field: &str, value: Value) -> Result<Option<Endpoint>, String> {
    let Value::Object(object) = value else {
        return Err(format!("{field} must be an object, got {}", shown(&value)));
    };
    let mut endpoint = Endpoint::default();
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        let name = format!("{field}.{key}");
        match key.as_str() {
            "serviceName" => endpoint.service_name = non_empty(string(&name, value)?),
            "ipv4" => endpoint.ipv4 = non_empty(string(&name, value)?),
            "ipv6" => endpoint.ipv6 = non_empty(string(&name, value)?),
            "port" => {
                let port = value
                    .as_u64()
                    .and_then(|port| u16::try_from(port).ok())
                    .ok_or_else(|| format!("{name} must be an integer from 0 to 65535, got {}", shown(&value)))?;
                endpoint.port = (port != 0).then_some(port);
            }
            _ => {}
        }
    }
    Ok((!endpoint.is_empty()).then_some(endpoint))
}

fn annotations(value: Value) -> Result<Vec<Annotation>, String> {
    let Value::Array(items) = value else {
        return Err(format!("annotations must be an array, got {}", shown(&value)));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut object) = item else {
                return Err(format!("annotations[{i}] must be an object, got {}", shown(&item)));
            };
            let timestamp = match object.remove("timestamp") {
                Some(value) if !value.is_null() => {
                    integer(&format!("annotations[{i}].timestamp"), &value, "epoch microseconds")?
                }
                _ => return Err(format!("annotations[{i}].timestamp is required")),
            };
            let value = match object.remove("value") {
                Some(value) if !value.is_null() => string(&format!("annotations[{i}].value"), value)?,
                _ => return Err(format!("annotations[{i}].value is required")),
            };
            Ok(Annotation { timestamp, value })
        })
        .collect()
}

/// Tag values are strings; numbers and booleans, which some clients send, are kept as their
/// JSON text, and nulls are skipped.
fn tags(value: Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(object) = value else {
        return Err(format!("tags must be an object of strings, got {}", shown(&value)));
    };
    let mut tags = BTreeMap::new();
    for (key, value) in object {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            other => return Err(format!("tags.{} must be a string, got {}", quoted(&key), shown(&other))),
        };
        tags.insert(key, text);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: &str) -> String {
        match parse(body.as_bytes()) {
            Ok(spans) => panic!("expected an error, parsed {spans:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn syntax_and_shape_errors_have_a_position() {
        assert_eq!(error("[{\"traceId\" 1}]"), "invalid JSON at line 1 column 13: expected `:`");
        assert_eq!(
            error("{}"),
            "invalid JSON at line 1 column 1: invalid type: map, expected an array of Zipkin span objects"
        );
        assert_eq!(
            error("[\n  {\"traceId\": \"a\"},\n  \"x\"\n]"),
            "invalid JSON at line 3 column 5: invalid type: string \"x\", expected a Zipkin span object"
        );
        assert_eq!(error(""), "invalid JSON at line 1 column 1: EOF while parsing a value");
        assert_eq!(error("[] x"), "invalid JSON at line 1 column 4: trailing characters");
    }

    #[test]
    fn field_errors_name_the_span_and_field() {
        let ok = r#""traceId":"0000000000000001","id":"0000000000000002""#;
        assert_eq!(error(&format!("[{{{ok}}}, {{\"id\":\"0000000000000002\"}}]")), "span 1: traceId is required");
        assert_eq!(
            error(&format!("[{{{ok},\"timestamp\":-5}}]")),
            "span 0: timestamp must be a non-negative integer (epoch microseconds), got -5"
        );
        assert_eq!(
            error(&format!("[{{{ok},\"duration\":1.5}}]")),
            "span 0: duration must be a non-negative integer (microseconds), got 1.5"
        );
        assert_eq!(
            error(&format!("[{{{ok},\"kind\":\"client\"}}]")),
            "span 0: kind must be one of CLIENT, SERVER, PRODUCER, CONSUMER (or absent), got \"client\""
        );
        assert_eq!(
            error(&format!("[{{{ok},\"remoteEndpoint\":{{\"port\":70000}}}}]")),
            "span 0: remoteEndpoint.port must be an integer from 0 to 65535, got 70000"
        );
        assert_eq!(
            error(&format!("[{{{ok},\"tags\":{{\"a\":[1]}}}}]")),
            "span 0: tags.\"a\" must be a string, got [1]"
        );
        assert_eq!(
            error(&format!("[{{{ok},\"annotations\":[{{\"value\":\"x\"}}]}}]")),
            "span 0: annotations[0].timestamp is required"
        );
        assert_eq!(error(&format!("[{{{ok},\"debug\":\"yes\"}}]")), "span 0: debug must be true or false, got \"yes\"");
    }

    #[test]
    fn nulls_zeros_and_empty_strings_read_as_absent_and_scalar_tags_as_strings() {
        let body = r#"[{"traceId":"0000000000000001","id":"0000000000000002","parentId":"","name":"","timestamp":0,
            "duration":null,"debug":false,"shared":false,"localEndpoint":{"serviceName":"","port":0},
            "remoteEndpoint":null,"tags":{"n":42,"b":true,"z":null},"unknown":{"x":1}}]"#;
        let spans = parse(body.as_bytes()).unwrap();
        let expected = ZipkinSpan {
            trace_id: "0000000000000001".into(),
            id: "0000000000000002".into(),
            tags: [("b".to_owned(), "true".to_owned()), ("n".to_owned(), "42".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(spans, vec![expected]);
    }
}
