//! The JSON shapes of Jaeger's HTTP query API (`/api/traces`, `/api/services`, `/api/operations`,
//! `/api/dependencies`), field for field as Jaeger's `uimodel` package writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One trace: `{traceID, spans, processes, warnings}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    /// Process ID (`p1`, `p2`, ...) to the process the spans refer to by `processID`.
    pub processes: BTreeMap<String, Process>,
    /// `null` unless something was left out of the trace.
    pub warnings: Option<Vec<String>>,
}

/// One span, pointing at its process by ID instead of embedding it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Jaeger's flags: 1 when sampled. Left out of the JSON when 0, as Jaeger does.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<Reference>,
    /// Microseconds since the Unix epoch.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    /// `null` unless the conversion had to leave something out of this span.
    pub warnings: Option<Vec<String>>,
}

/// A reference from one span to another: the parent (`CHILD_OF`) or a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

/// A typed tag or log field: `{key, type, value}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// A JSON string, boolean or number matching `type`; `binary` is base64, and an `int64`
    /// beyond JavaScript's safe integers is a decimal string so that browsers don't round it.
    pub value: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Bool,
    Int64,
    Float64,
    Binary,
}

/// A span log (an OTLP span event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// Microseconds since the Unix epoch.
    pub timestamp: u64,
    pub fields: Vec<KeyValue>,
}

/// The process (OTLP resource) that emitted spans.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

/// The envelope around every answer of the query API: `{data, total, limit, offset, errors}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response<T> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    /// `null` when there is nothing to report.
    #[serde(default)]
    pub errors: Option<Vec<ResponseError>>,
}

impl<T> Response<T> {
    /// A successful answer; `total` is the number of items in `data`.
    pub fn new(data: T, total: usize) -> Self {
        Self { data, total, limit: 0, offset: 0, errors: None }
    }
}

impl Response<()> {
    /// A failed request as Jaeger answers it: `{"data": null, ..., "errors": [{code, msg}]}`,
    /// with `code` being the HTTP status.
    pub fn error(code: u16, msg: impl Into<String>) -> Self {
        Self {
            data: (),
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![ResponseError { code, msg: msg.into(), trace_id: None }]),
        }
    }
}

/// One entry of `errors`; `traceID` names the trace a partial failure is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseError {
    /// Left out of the JSON when 0, as Jaeger does.
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// One item of `/api/operations`: `{"name": "GET /", "spanKind": "server"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    /// A Jaeger span kind name, or `""` when the kind is unspecified.
    pub span_kind: String,
}

/// One item of `/api/dependencies`: `{"parent", "child", "callCount"}` (Jaeger's UI model has
/// no `source` field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_envelope_matches_jaegers() {
        let json = serde_json::to_value(Response::error(400, "malformed 'tag' parameter")).unwrap();
        assert_eq!(
            json,
            json!({
                "data": null, "total": 0, "limit": 0, "offset": 0,
                "errors": [{"code": 400, "msg": "malformed 'tag' parameter"}]
            })
        );
        let partial = ResponseError { code: 0, msg: "trace not found".into(), trace_id: Some("abc".into()) };
        assert_eq!(serde_json::to_value(&partial).unwrap(), json!({"msg": "trace not found", "traceID": "abc"}));
        assert_eq!(
            serde_json::from_value::<ResponseError>(json!({"msg": "trace not found", "traceID": "abc"})).unwrap(),
            partial
        );
    }

    #[test]
    fn services_and_dependencies_serialize_as_jaeger_lists_them() {
        let services = Response::new(vec!["cart".to_owned(), "frontend".to_owned()], 2);
        assert_eq!(
            serde_json::to_value(services).unwrap(),
            json!({"data": ["cart", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": null})
        );
        let link = DependencyLink { parent: "frontend".into(), child: "cart".into(), call_count: 7 };
        let json = json!({"parent": "frontend", "child": "cart", "callCount": 7});
        assert_eq!(serde_json::to_value(&link).unwrap(), json);
        assert_eq!(serde_json::from_value::<DependencyLink>(json).unwrap(), link);
    }
}
