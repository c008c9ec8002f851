//! Encodings both directions share, so that what is written can be read back exactly.

use std::collections::BTreeMap;

use clew_model::otlp::common::v1::{any_value, AnyValue, ArrayValue, KeyValue, KeyValueList};
use clew_model::otlp::trace::v1::status::StatusCode;
use serde_json::{Map, Number, Value};

use crate::keys::{ERROR, OTEL_STATUS_CODE, OTEL_STATUS_DESCRIPTION};

pub(crate) fn key_value(key: impl Into<String>, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// An attribute value as a Zipkin tag: strings as they are, numbers in decimal, booleans as
/// `true`/`false`, bytes in hex, arrays and maps as JSON.
pub(crate) fn tag_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex::encode(b),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => to_json(value).to_string(),
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

/// An attribute value as JSON; map keys are sorted so that the text is deterministic.
pub(crate) fn to_json(value: &AnyValue) -> Value {
    match &value.value {
        None | Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            Number::from_f64(*d).map_or_else(|| Value::String(d.to_string()), Value::Number)
        }
        Some(any_value::Value::BytesValue(b)) => Value::String(hex::encode(b)),
        Some(any_value::Value::ArrayValue(array)) => Value::Array(array.values.iter().map(to_json).collect()),
        Some(any_value::Value::KvlistValue(list)) => object_json(&list.values),
    }
}

fn object_json(values: &[KeyValue]) -> Value {
    let sorted: BTreeMap<&str, Value> =
        values.iter().map(|kv| (kv.key.as_str(), kv.value.as_ref().map_or(Value::Null, to_json))).collect();
    // Inserted in key order, so the text is sorted whether or not `Map` keeps insertion order.
    Value::Object(sorted.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
}

fn from_json(value: Value) -> AnyValue {
    let value = match value {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(any_value::Value::IntValue(i)),
            None => n.as_f64().map(any_value::Value::DoubleValue),
        },
        Value::String(s) => Some(any_value::Value::StringValue(s)),
        Value::Array(items) => {
            Some(any_value::Value::ArrayValue(ArrayValue { values: items.into_iter().map(from_json).collect() }))
        }
        Value::Object(object) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: object
                .into_iter()
                .map(|(key, value)| KeyValue { key, value: Some(from_json(value)), ..Default::default() })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// An event as a Zipkin annotation value: its name, or, as the collector writes it when the
/// event has attributes, `name|{"key":value,...}|dropped_attributes_count`.
pub(crate) fn annotation_value(name: &str, attributes: &[KeyValue], dropped_attributes_count: u32) -> String {
    if attributes.is_empty() && dropped_attributes_count == 0 {
        name.to_owned()
    } else {
        format!("{name}|{}|{dropped_attributes_count}", object_json(attributes))
    }
}

/// Reads an annotation value written by [`annotation_value`] back into the event's name,
/// attributes and dropped count. Anything that would not be written back identically is not
/// such a value, and stays the event's name.
pub(crate) fn parse_annotation_value(value: &str) -> Option<(String, Vec<KeyValue>, u32)> {
    let (head, dropped) = value.rsplit_once('|')?;
    let (name, json) = head.split_once('|')?;
    let dropped: u32 = dropped.parse().ok()?;
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(json) else {
        return None;
    };
    let attributes: Vec<KeyValue> = object
        .into_iter()
        .map(|(key, value)| KeyValue { key, value: Some(from_json(value)), ..Default::default() })
        .collect();
    (annotation_value(name, &attributes, dropped) == value).then(|| (name.to_owned(), attributes, dropped))
}

/// The status tags written for a status; the only ones read back without being kept as
/// attributes too.
pub(crate) fn status_tags(code: StatusCode, message: &str) -> BTreeMap<&'static str, String> {
    let mut tags = BTreeMap::new();
    match code {
        StatusCode::Unset => {}
        StatusCode::Ok => {
            tags.insert(OTEL_STATUS_CODE, "OK".to_owned());
            if !message.is_empty() {
                tags.insert(OTEL_STATUS_DESCRIPTION, message.to_owned());
            }
        }
        StatusCode::Error => {
            tags.insert(OTEL_STATUS_CODE, "ERROR".to_owned());
            tags.insert(ERROR, if message.is_empty() { "true" } else { message }.to_owned());
        }
    }
    tags
}

/// Reads an `otel.status_code` tag: `OK`, `ERROR`, `UNSET`, any case, with or without the
/// `STATUS_CODE_` prefix the collector's receiver expects.
pub(crate) fn parse_status_code(text: &str) -> Option<StatusCode> {
    let upper = text.to_ascii_uppercase();
    match upper.strip_prefix("STATUS_CODE_").unwrap_or(&upper) {
        "OK" => Some(StatusCode::Ok),
        "ERROR" => Some(StatusCode::Error),
        "UNSET" => Some(StatusCode::Unset),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Vec<KeyValue> {
        vec![
            key_value("z", any_value::Value::IntValue(-3)),
            key_value("a", any_value::Value::StringValue("x|y".into())),
            key_value("d", any_value::Value::DoubleValue(1.5)),
            key_value("b", any_value::Value::BoolValue(true)),
        ]
    }

    #[test]
    fn annotation_values_carry_event_attributes_like_the_collector() {
        let value = annotation_value("retry", &attrs(), 2);
        assert_eq!(value, r#"retry|{"a":"x|y","b":true,"d":1.5,"z":-3}|2"#);
        let (name, attributes, dropped) = parse_annotation_value(&value).unwrap();
        assert_eq!((name.as_str(), dropped), ("retry", 2));
        assert_eq!(annotation_value(&name, &attributes, dropped), value);
        assert_eq!(annotation_value("plain", &[], 0), "plain");
    }

    #[test]
    fn annotation_values_that_would_not_come_back_identically_stay_names() {
        for value in ["a|b", "a|{}|0", "a|{\"k\":1}|x", "a|{\"b\":1,\"a\":2}|0", "a|[1]|0", "a|{\"k\":2.0e0}|0", "|"] {
            assert_eq!(parse_annotation_value(value), None, "{value}");
        }
        assert!(parse_annotation_value("|{\"k\":2.5}|0").is_some());
    }

    #[test]
    fn attribute_values_render_as_tag_text() {
        let text = |v| tag_text(&AnyValue { value: Some(v) });
        assert_eq!(text(any_value::Value::IntValue(42)), "42");
        assert_eq!(text(any_value::Value::BoolValue(false)), "false");
        assert_eq!(text(any_value::Value::DoubleValue(0.25)), "0.25");
        assert_eq!(text(any_value::Value::BytesValue(vec![0xca, 0xfe])), "cafe");
        let array = ArrayValue {
            values: vec![
                AnyValue { value: Some(any_value::Value::StringValue("a".into())) },
                AnyValue { value: Some(any_value::Value::IntValue(1)) },
            ],
        };
        assert_eq!(text(any_value::Value::ArrayValue(array)), r#"["a",1]"#);
        let map = KeyValueList { values: attrs() };
        assert_eq!(text(any_value::Value::KvlistValue(map)), r#"{"a":"x|y","b":true,"d":1.5,"z":-3}"#);
        assert_eq!(tag_text(&AnyValue { value: None }), "");
    }

    #[test]
    fn status_codes_parse_in_the_spellings_in_use() {
        assert_eq!(parse_status_code("ERROR"), Some(StatusCode::Error));
        assert_eq!(parse_status_code("STATUS_CODE_ERROR"), Some(StatusCode::Error));
        assert_eq!(parse_status_code("Ok"), Some(StatusCode::Ok));
        assert_eq!(parse_status_code("unset"), Some(StatusCode::Unset));
        assert_eq!(parse_status_code("500"), None);
    }
}
