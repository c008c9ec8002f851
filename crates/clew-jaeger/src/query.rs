//! Jaeger's query parameters that need more than a number parser: `tag`/`tags` and trace IDs.

use std::fmt;

use clew_model::{IdError, TraceId};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::{JaegerError, Result};

/// Reads the tag filters of a `/api/traces` search into `(key, value)` pairs.
///
/// - `tag_params`: each `tag=key:value` parameter, split at the first colon (values may hold
///   colons, as in `tag=http.url:http://x`).
/// - `tags_json`: the `tags` parameter, a JSON object such as `{"error":"true","db":"pg"}`.
///   Booleans and numbers are taken as their text, because logfmt parsers (which the UIs use to
///   read a search box) turn `error=true` into a boolean; Jaeger itself only accepts strings.
///   An empty or blank parameter means no filter.
///
/// As in Jaeger, a key given twice keeps the last value, and `tags` wins over `tag`. Pairs
/// keep the order of each key's first appearance.
pub fn parse_tags(tags_json: Option<&str>, tag_params: &[String]) -> Result<Vec<(String, String)>> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for param in tag_params {
        let Some((key, value)) = param.split_once(':') else {
            return Err(JaegerError::MalformedTag { tag: param.clone() });
        };
        if key.is_empty() {
            return Err(JaegerError::EmptyTagKey { param: "tag" });
        }
        set(&mut tags, key, value.to_owned());
    }
    if let Some(json) = tags_json.filter(|json| !json.trim().is_empty()) {
        let object: OrderedObject =
            serde_json::from_str(json).map_err(|source| JaegerError::MalformedTagsJson { source })?;
        for (key, value) in object.0 {
            if key.is_empty() {
                return Err(JaegerError::EmptyTagKey { param: "tags" });
            }
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Null => return Err(JaegerError::TagValue { key, found: "null" }),
                serde_json::Value::Array(_) => return Err(JaegerError::TagValue { key, found: "an array" }),
                serde_json::Value::Object(_) => return Err(JaegerError::TagValue { key, found: "an object" }),
            };
            set(&mut tags, &key, value);
        }
    }
    Ok(tags)
}

fn set(tags: &mut Vec<(String, String)>, key: &str, value: String) {
    match tags.iter_mut().find(|(k, _)| k == key) {
        Some((_, existing)) => *existing = value,
        None => tags.push((key.to_owned(), value)),
    }
}

/// A JSON object's members in document order, whichever map type serde_json was built with.
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tag names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<OrderedObject, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(OrderedObject(members))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Reads a trace ID as Jaeger clients write it: 1 to 32 hex digits, with leading zeros
/// optional (Jaeger prints IDs whose upper half is zero with 16 digits).
pub fn parse_trace_id(input: &str) -> Result<TraceId> {
    let error = |source| JaegerError::TraceId { input: input.to_owned(), source };
    if input.is_empty() || input.len() > TraceId::LEN * 2 {
        return Err(error(IdError::Length {
            what: "trace ID",
            expected: TraceId::LEN,
            actual: input.len().div_ceil(2),
        }));
    }
    let padded = format!("{input:0>width$}", width = TraceId::LEN * 2);
    padded.parse().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn pairs(values: &[(&str, &str)]) -> Vec<(String, String)> {
        values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn reads_both_forms_with_tags_winning() {
        let tags = parse_tags(
            Some(r#"{"http.status_code":"500","error":true,"retries":3,"db.system":"pg"}"#),
            &params(&["error:false", "http.url:http://x:8080/a", "empty:"]),
        )
        .unwrap();
        assert_eq!(
            tags,
            pairs(&[
                ("error", "true"),
                ("http.url", "http://x:8080/a"),
                ("empty", ""),
                ("http.status_code", "500"),
                ("retries", "3"),
                ("db.system", "pg"),
            ])
        );
    }

    #[test]
    fn no_filters_is_an_empty_list() {
        assert_eq!(parse_tags(None, &[]).unwrap(), vec![]);
        assert_eq!(parse_tags(Some("  "), &[]).unwrap(), vec![]);
        assert_eq!(parse_tags(Some("{}"), &[]).unwrap(), vec![]);
        let repeated = parse_tags(Some(r#"{"a":"1","a":"2"}"#), &params(&["a:0"])).unwrap();
        assert_eq!(repeated, pairs(&[("a", "2")]));
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        let error = |json: Option<&str>, tag: &[&str]| parse_tags(json, &params(tag)).unwrap_err().to_string();
        assert_eq!(error(None, &["error"]), "malformed 'tag' parameter, expecting key:value, received: \"error\"");
        assert_eq!(error(None, &[":x"]), "malformed 'tag' parameter: a tag name is empty");
        assert_eq!(error(Some(r#"{"":"x"}"#), &[]), "malformed 'tags' parameter: a tag name is empty");
        assert!(error(Some("{\"a\":"), &[]).starts_with("malformed 'tags' parameter, expecting a JSON object"));
        assert_eq!(
            error(Some(r#"["a"]"#), &[]),
            "malformed 'tags' parameter, expecting a JSON object of tag names to values: \
             invalid type: sequence, expected a JSON object of tag names to values at line 1 column 0"
        );
        assert_eq!(
            error(Some(r#"{"a":null}"#), &[]),
            "malformed 'tags' parameter: the value of \"a\" is null, expecting a string, number or boolean"
        );
        assert!(error(Some(r#"{"a":[1]}"#), &[]).contains("is an array"));
        assert!(error(Some(r#"{"a":{}}"#), &[]).contains("is an object"));
        let source = parse_tags(Some("nope"), &[]).unwrap_err();
        assert!(std::error::Error::source(&source).is_some());
    }

    #[test]
    fn trace_ids_may_drop_leading_zeros() {
        let full: TraceId = "00000000000000000000000000000abc".parse().unwrap();
        assert_eq!(parse_trace_id("abc").unwrap(), full);
        assert_eq!(parse_trace_id("0000000000000abc").unwrap(), full);
        assert_eq!(parse_trace_id("00000000000000000000000000000ABC").unwrap(), full);
        assert_eq!(
            parse_trace_id("").unwrap_err().to_string(),
            "parse trace ID \"\": trace ID must be 16 bytes (32 hex characters), got 0 bytes"
        );
        assert!(parse_trace_id(&"1".repeat(33)).is_err());
        assert!(parse_trace_id("0").is_err());
        assert!(parse_trace_id("xyz").is_err());
    }

    proptest! {
        #[test]
        fn trace_ids_round_trip_with_or_without_leading_zeros(bytes in any::<[u8; 16]>().prop_filter("non-zero", |b| *b != [0; 16])) {
            let id = TraceId::from_bytes(bytes).unwrap();
            prop_assert_eq!(parse_trace_id(&id.to_hex()).unwrap(), id);
            prop_assert_eq!(parse_trace_id(id.to_hex().trim_start_matches('0')).unwrap(), id);
        }

        #[test]
        fn parsing_never_panics(json in ".{0,40}", tag in ".{0,20}", id in ".{0,40}") {
            let _ = parse_tags(Some(&json), &[tag]);
            let _ = parse_trace_id(&id);
        }

        #[test]
        fn every_tag_param_with_a_key_is_read(key in "[a-z.]{1,10}", value in ".{0,20}") {
            let tags = parse_tags(None, &[format!("{key}:{value}")]).unwrap();
            prop_assert_eq!(tags, vec![(key, value)]);
        }
    }
}
