//! OTLP spans to Jaeger's JSON model, following the OpenTelemetry Collector's OTLP→Jaeger
//! translator (`pkg/translator/jaeger`), which is also what Jaeger's own query service runs.

use std::collections::BTreeMap;

use clew_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue as OtlpKeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span, status, ResourceSpans, Span as OtlpSpan};
use clew_model::{SpanId, TraceId, SERVICE_NAME};

use crate::model::{KeyValue, Log, Operation, Process, RefType, Reference, Span, Trace, ValueType};

/// Span tag holding the span kind (`server`, `client`, ...).
pub const TAG_SPAN_KIND: &str = "span.kind";
/// Span tag holding the status code, `OK` or `ERROR`; absent when the status is unset.
pub const TAG_STATUS_CODE: &str = "otel.status_code";
/// Span tag holding the status message, when there is one.
pub const TAG_STATUS_DESCRIPTION: &str = "otel.status_description";
/// Boolean span tag, `true` on spans whose status is an error: Jaeger UI marks those red.
pub const TAG_ERROR: &str = "error";
/// Span tag holding the instrumentation scope's name.
pub const TAG_SCOPE_NAME: &str = "otel.scope.name";
/// Span tag holding the instrumentation scope's version.
pub const TAG_SCOPE_VERSION: &str = "otel.scope.version";
/// Span tag holding the W3C `tracestate`.
pub const TAG_TRACE_STATE: &str = "w3c.tracestate";
/// Log field holding the span event's name.
pub const LOG_FIELD_EVENT: &str = "event";
/// Link attribute that can turn a link into a `CHILD_OF` reference (value `child_of`).
pub const LINK_REF_TYPE: &str = "opentracing.ref_type";

/// Service name of a resource without `service.name` (Jaeger's ingest sanitizer names).
pub const MISSING_SERVICE_NAME: &str = "missing-service-name";
/// Service name of a resource whose `service.name` is the empty string.
pub const EMPTY_SERVICE_NAME: &str = "empty-service-name";
/// Service name of a resource whose `service.name` is not a string.
pub const WRONG_TYPE_SERVICE_NAME: &str = "service-name-wrong-type";

/// Span warning when a link had no valid trace or span ID (Jaeger's own wording).
const INVALID_LINK_WARNING: &str = "Invalid span link removed";

/// OTLP's sampled bit in `Span.flags` (the W3C trace flags), and Jaeger's.
const SAMPLED_FLAG: u32 = 0x1;

/// Integers beyond ±(2^53 - 1) lose precision as JavaScript numbers.
const JS_MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Converts one trace's spans, grouped as OTLP groups them, to Jaeger's trace JSON.
///
/// Spans are ordered by start time (stable, so ties keep their stored order). Each distinct
/// resource becomes one process, numbered `p1`, `p2`, ... in the order of its first span.
/// Spans whose trace or span ID is invalid are left out and counted in the trace's warnings.
pub fn trace_to_jaeger(trace_id: TraceId, resource_spans: &[ResourceSpans]) -> Trace {
    let mut spans = Vec::new();
    let mut skipped = 0usize;
    for (resource_index, resource_spans) in resource_spans.iter().enumerate() {
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                match (TraceId::from_slice(&span.trace_id), SpanId::from_slice(&span.span_id)) {
                    (Ok(trace_id), Ok(span_id)) => {
                        spans.push((resource_index, scope_spans.scope.as_ref(), span, trace_id, span_id))
                    }
                    _ => skipped += 1,
                }
            }
        }
    }
    spans.sort_by_key(|(_, _, span, _, _)| span.start_time_unix_nano);

    // Jaeger gives equal processes one ID, so two resources that differ only in ways Jaeger
    // can't show (schema URL, dropped counts) share a process.
    let mut processes: Vec<(String, Process)> = Vec::new();
    let mut process_of_resource: Vec<Option<String>> = vec![None; resource_spans.len()];
    let mut jaeger_spans = Vec::with_capacity(spans.len());
    for (resource_index, scope, span, trace_id, span_id) in spans {
        let process_id = match &process_of_resource[resource_index] {
            Some(id) => id.clone(),
            None => {
                let process = resource_to_process(resource_spans[resource_index].resource.as_ref());
                let id = match processes.iter().find(|(_, known)| *known == process) {
                    Some((id, _)) => id.clone(),
                    None => {
                        let id = format!("p{}", processes.len() + 1);
                        processes.push((id.clone(), process));
                        id
                    }
                };
                process_of_resource[resource_index] = Some(id.clone());
                id
            }
        };
        jaeger_spans.push(span_to_jaeger(span, trace_id, span_id, scope, process_id));
    }

    Trace {
        trace_id: trace_id.to_hex(),
        spans: jaeger_spans,
        processes: processes.into_iter().collect(),
        warnings: (skipped > 0).then(|| vec![format!("left out {skipped} span(s) with an invalid trace or span ID")]),
    }
}

/// The service name Jaeger shows for a resource: its `service.name`, or one of Jaeger's
/// placeholders ([`MISSING_SERVICE_NAME`], [`EMPTY_SERVICE_NAME`], [`WRONG_TYPE_SERVICE_NAME`]).
pub fn process_service_name(resource: Option<&Resource>) -> String {
    let value = resource.iter().flat_map(|r| &r.attributes).find(|kv| kv.key == SERVICE_NAME).map(|kv| &kv.value);
    match value {
        None => MISSING_SERVICE_NAME.to_owned(),
        Some(value) => match value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(name)) if name.is_empty() => EMPTY_SERVICE_NAME.to_owned(),
            Some(any_value::Value::StringValue(name)) => name.clone(),
            _ => WRONG_TYPE_SERVICE_NAME.to_owned(),
        },
    }
}

fn resource_to_process(resource: Option<&Resource>) -> Process {
    let tags = resource
        .iter()
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key != SERVICE_NAME)
        .map(|kv| attribute_to_tag(&kv.key, kv.value.as_ref()))
        .collect();
    Process { service_name: process_service_name(resource), tags }
}

fn span_to_jaeger(
    span: &OtlpSpan,
    trace_id: TraceId,
    span_id: SpanId,
    scope: Option<&InstrumentationScope>,
    process_id: String,
) -> Span {
    let mut warnings = Vec::new();
    let references = references(span, trace_id, &mut warnings);
    Span {
        trace_id: trace_id.to_hex(),
        span_id: span_id.to_hex(),
        flags: span.flags & SAMPLED_FLAG,
        operation_name: span.name.clone(),
        references,
        start_time: span.start_time_unix_nano / 1_000,
        duration: span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1_000,
        tags: span_tags(span, scope),
        logs: span.events.iter().map(event_to_log).collect(),
        process_id,
        warnings: (!warnings.is_empty()).then_some(warnings),
    }
}

/// The parent comes first as `CHILD_OF` (backends look for it there); each link follows as
/// `FOLLOWS_FROM` unless its `opentracing.ref_type` says `child_of`. A link to the parent
/// only sets the parent reference's type.
fn references(span: &OtlpSpan, trace_id: TraceId, warnings: &mut Vec<String>) -> Vec<Reference> {
    let parent = SpanId::from_slice(&span.parent_span_id).ok();
    let mut references = Vec::with_capacity(span.links.len() + usize::from(parent.is_some()));
    if let Some(parent) = parent {
        references.push(Reference {
            ref_type: RefType::ChildOf,
            trace_id: trace_id.to_hex(),
            span_id: parent.to_hex(),
        });
    }
    for link in &span.links {
        let (Ok(link_trace_id), Ok(link_span_id)) =
            (TraceId::from_slice(&link.trace_id), SpanId::from_slice(&link.span_id))
        else {
            if !warnings.iter().any(|w| w == INVALID_LINK_WARNING) {
                warnings.push(INVALID_LINK_WARNING.to_owned());
            }
            continue;
        };
        let ref_type = link_ref_type(&link.attributes);
        if parent == Some(link_span_id) && link_trace_id == trace_id {
            references[0].ref_type = ref_type;
            continue;
        }
        references.push(Reference { ref_type, trace_id: link_trace_id.to_hex(), span_id: link_span_id.to_hex() });
    }
    references
}

fn link_ref_type(attributes: &[OtlpKeyValue]) -> RefType {
    let ref_type = attributes.iter().find(|kv| kv.key == LINK_REF_TYPE).and_then(|kv| string_value(kv.value.as_ref()));
    match ref_type {
        Some("child_of") => RefType::ChildOf,
        _ => RefType::FollowsFrom,
    }
}

/// Scope, then the span's attributes, then what OTLP keeps in fields of its own.
fn span_tags(span: &OtlpSpan, scope: Option<&InstrumentationScope>) -> Vec<KeyValue> {
    let mut tags = Vec::with_capacity(span.attributes.len() + 6);
    if let Some(scope) = scope {
        if !scope.name.is_empty() {
            tags.push(string_tag(TAG_SCOPE_NAME, &scope.name));
        }
        if !scope.version.is_empty() {
            tags.push(string_tag(TAG_SCOPE_VERSION, &scope.version));
        }
    }
    tags.extend(span.attributes.iter().map(|kv| attribute_to_tag(&kv.key, kv.value.as_ref())));
    let kind = span_kind_name(span.kind);
    if !kind.is_empty() {
        tags.push(string_tag(TAG_SPAN_KIND, kind));
    }
    if let Some(status) = &span.status {
        match status::StatusCode::try_from(status.code) {
            Ok(status::StatusCode::Ok) => tags.push(string_tag(TAG_STATUS_CODE, "OK")),
            Ok(status::StatusCode::Error) => {
                tags.push(string_tag(TAG_STATUS_CODE, "ERROR"));
                tags.push(KeyValue { key: TAG_ERROR.to_owned(), value_type: ValueType::Bool, value: true.into() });
            }
            Ok(status::StatusCode::Unset) | Err(_) => {}
        }
        if !status.message.is_empty() {
            tags.push(string_tag(TAG_STATUS_DESCRIPTION, &status.message));
        }
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag(TAG_TRACE_STATE, &span.trace_state));
    }
    tags
}

/// The event's name becomes an `event` field, unless an attribute already has that key.
fn event_to_log(event: &span::Event) -> Log {
    let mut fields = Vec::with_capacity(event.attributes.len() + 1);
    if !event.name.is_empty() && !event.attributes.iter().any(|kv| kv.key == LOG_FIELD_EVENT) {
        fields.push(string_tag(LOG_FIELD_EVENT, &event.name));
    }
    fields.extend(event.attributes.iter().map(|kv| attribute_to_tag(&kv.key, kv.value.as_ref())));
    Log { timestamp: event.time_unix_nano / 1_000, fields }
}

fn string_tag(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), value_type: ValueType::String, value: value.into() }
}

fn string_value(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// Scalars keep their type; arrays and maps become JSON text, as the collector writes them.
fn attribute_to_tag(key: &str, value: Option<&AnyValue>) -> KeyValue {
    let (value_type, value) = match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => (ValueType::String, s.as_str().into()),
        Some(any_value::Value::BoolValue(b)) => (ValueType::Bool, (*b).into()),
        Some(any_value::Value::IntValue(i)) if (-JS_MAX_SAFE_INTEGER..=JS_MAX_SAFE_INTEGER).contains(i) => {
            (ValueType::Int64, (*i).into())
        }
        Some(any_value::Value::IntValue(i)) => (ValueType::Int64, i.to_string().into()),
        Some(any_value::Value::DoubleValue(f)) => (ValueType::Float64, double_to_json(*f, false)),
        Some(any_value::Value::BytesValue(bytes)) => (ValueType::Binary, base64(bytes).into()),
        Some(value @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
            (ValueType::String, raw_json(Some(value)).to_string().into())
        }
        // An empty value, or a profiles-only string table reference: nothing to show.
        Some(any_value::Value::StringValueStrindex(_)) | None => (ValueType::String, "".into()),
    };
    KeyValue { key: key.to_owned(), value_type, value }
}

/// An attribute value as plain JSON, for the text of arrays and maps: map keys sorted (a
/// repeated key keeps its last value), bytes as base64, an empty value as `null`.
fn raw_json(value: Option<&any_value::Value>) -> serde_json::Value {
    match value {
        Some(any_value::Value::StringValue(s)) => s.as_str().into(),
        Some(any_value::Value::BoolValue(b)) => (*b).into(),
        Some(any_value::Value::IntValue(i)) => (*i).into(),
        Some(any_value::Value::DoubleValue(f)) => double_to_json(*f, true),
        Some(any_value::Value::BytesValue(bytes)) => base64(bytes).into(),
        Some(any_value::Value::ArrayValue(array)) => {
            array.values.iter().map(|v| raw_json(v.value.as_ref())).collect::<Vec<_>>().into()
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let sorted: BTreeMap<&str, serde_json::Value> = list
                .values
                .iter()
                .map(|kv| (kv.key.as_str(), raw_json(kv.value.as_ref().and_then(|v| v.value.as_ref()))))
                .collect();
            // Inserting in sorted order keeps the keys sorted whichever map serde_json uses.
            sorted.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<serde_json::Map<_, _>>().into()
        }
        Some(any_value::Value::StringValueStrindex(_)) | None => serde_json::Value::Null,
    }
}

/// JSON has no NaN or infinities: those become Go's text for them. Inside JSON text, whole
/// numbers are written without a fraction, as Go does.
fn double_to_json(value: f64, integral_as_integer: bool) -> serde_json::Value {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if integral_as_integer && value.fract() == 0.0 && value.abs() < 1e15 {
        // Exact: a whole number below 2^53 converts to i64 without loss.
        return (value as i64).into();
    }
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Standard base64 with padding, as Go's `encoding/json` writes byte slices.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The Jaeger name of an OTLP span kind: `internal`, `server`, `client`, `producer`,
/// `consumer`; `""` for unspecified or unknown kinds.
pub fn span_kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => "internal",
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        Ok(span::SpanKind::Unspecified) | Err(_) => "",
    }
}

/// The OTLP span kind of a Jaeger span kind name (any case); `unspecified` is 0. `None` for
/// anything else, including `""`, which Jaeger's `spanKind` parameter uses for "any kind".
pub fn span_kind_from_name(name: &str) -> Option<i32> {
    let kind = match name.to_ascii_lowercase().as_str() {
        "unspecified" => span::SpanKind::Unspecified,
        "internal" => span::SpanKind::Internal,
        "server" => span::SpanKind::Server,
        "client" => span::SpanKind::Client,
        "producer" => span::SpanKind::Producer,
        "consumer" => span::SpanKind::Consumer,
        _ => return None,
    };
    Some(kind as i32)
}

/// One `/api/operations` item for an operation name and OTLP span kind.
pub fn operation(name: impl Into<String>, span_kind: i32) -> Operation {
    Operation { name: name.into(), span_kind: span_kind_name(span_kind).to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;
    use clew_model::otlp::common::v1::{ArrayValue, KeyValueList};
    use clew_model::otlp::trace::v1::{ScopeSpans, Status};
    use serde_json::json;

    fn value(value: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(value) })
    }

    fn attr(key: &str, v: any_value::Value) -> OtlpKeyValue {
        OtlpKeyValue { key: key.into(), value: value(v), ..Default::default() }
    }

    fn str_attr(key: &str, v: &str) -> OtlpKeyValue {
        attr(key, any_value::Value::StringValue(v.into()))
    }

    fn int_attr(key: &str, v: i64) -> OtlpKeyValue {
        attr(key, any_value::Value::IntValue(v))
    }

    fn id<const N: usize>(hex: &str) -> Vec<u8> {
        let mut bytes = [0u8; N];
        hex::decode_to_slice(hex, &mut bytes).unwrap();
        bytes.to_vec()
    }

    fn resource(attributes: Vec<OtlpKeyValue>, schema_url: &str, scope_spans: Vec<ScopeSpans>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource { attributes, ..Default::default() }),
            scope_spans,
            schema_url: schema_url.into(),
        }
    }

    fn scope(name: &str, version: &str, spans: Vec<OtlpSpan>) -> ScopeSpans {
        ScopeSpans {
            scope: Some(InstrumentationScope { name: name.into(), version: version.into(), ..Default::default() }),
            spans,
            schema_url: String::new(),
        }
    }

    fn link(trace_hex: &str, span_hex: &str, attributes: Vec<OtlpKeyValue>) -> span::Link {
        span::Link { trace_id: id::<16>(trace_hex), span_id: id::<8>(span_hex), attributes, ..Default::default() }
    }

    const TRACE: &str = "83a9efd15c1c98a977e0711cc93ee28b";

    /// Jaeger's `cmd/jaeger/internal/extension/jaegerquery/internal/fixture/otlp2jaeger-{in,out}.json`:
    /// what Jaeger's `/api/transform` answers for one telemetrygen span.
    #[test]
    fn matches_jaegers_own_otlp_fixture() {
        let span = OtlpSpan {
            trace_id: id::<16>(TRACE),
            span_id: id::<8>("e127af99e3b3e074"),
            parent_span_id: id::<8>("909541b92cf05311"),
            name: "okey-dokey-0".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_706_678_909_209_712_000,
            end_time_unix_nano: 1_706_678_909_209_835_000,
            attributes: vec![str_attr("net.peer.ip", "1.2.3.4"), str_attr("peer.service", "telemetrygen-client")],
            status: Some(Status::default()),
            ..Default::default()
        };
        let input = vec![resource(
            vec![str_attr(SERVICE_NAME, "telemetrygen")],
            "https://opentelemetry.io/schemas/1.4.0",
            vec![scope("telemetrygen", "", vec![span])],
        )];
        let trace = trace_to_jaeger(TRACE.parse().unwrap(), &input);
        let response = serde_json::to_value(Response::new(vec![trace], 0)).unwrap();
        let expected = json!({
          "data": [{
            "traceID": TRACE,
            "spans": [{
              "traceID": TRACE,
              "spanID": "e127af99e3b3e074",
              "operationName": "okey-dokey-0",
              "references": [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": "909541b92cf05311"}],
              "startTime": 1_706_678_909_209_712_u64,
              "duration": 123,
              "tags": [
                {"key": "otel.scope.name", "type": "string", "value": "telemetrygen"},
                {"key": "net.peer.ip", "type": "string", "value": "1.2.3.4"},
                {"key": "peer.service", "type": "string", "value": "telemetrygen-client"},
                {"key": "span.kind", "type": "string", "value": "server"}
              ],
              "logs": [],
              "processID": "p1",
              "warnings": null
            }],
            "processes": {"p1": {"serviceName": "telemetrygen", "tags": []}},
            "warnings": null
          }],
          "total": 0,
          "limit": 0,
          "offset": 0,
          "errors": null
        });
        assert_eq!(response, expected);
        let parsed: Response<Vec<Trace>> = serde_json::from_value(expected).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), response);
    }

    /// Two services (one of them sent as two resources that differ only in schema URL), a
    /// parent and children, links, events, an error, every attribute type.
    fn checkout_trace() -> Vec<ResourceSpans> {
        let frontend =
            vec![str_attr(SERVICE_NAME, "frontend"), str_attr("host.name", "web-1"), int_attr("process.pid", 4242)];
        let root = OtlpSpan {
            trace_id: id::<16>(TRACE),
            span_id: id::<8>("e127af99e3b3e074"),
            trace_state: "clew=1".into(),
            flags: 0x301, // sampled, plus the "parent is remote" bits Jaeger has no place for
            name: "GET /checkout".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_706_678_909_209_712_000,
            end_time_unix_nano: 1_706_678_909_309_835_000,
            attributes: vec![
                str_attr("http.method", "GET"),
                int_attr("http.status_code", 200),
                int_attr("big", 9_223_372_036_854_775_222),
                attr("cache.hit", any_value::Value::BoolValue(true)),
                attr("ratio", any_value::Value::DoubleValue(0.25)),
                attr("payload", any_value::Value::BytesValue(vec![0, 0, 0x30, 0x39])),
                attr(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue { value: Some(any_value::Value::StringValue("a".into())) },
                            AnyValue { value: Some(any_value::Value::IntValue(1)) },
                            AnyValue { value: Some(any_value::Value::DoubleValue(2.0)) },
                            AnyValue { value: Some(any_value::Value::BoolValue(true)) },
                            AnyValue { value: None },
                        ],
                    }),
                ),
                attr(
                    "map",
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![
                            str_attr("z", "first"),
                            attr("a", any_value::Value::DoubleValue(1.5)),
                            attr("b", any_value::Value::BytesValue(vec![0, 1])),
                            str_attr("z", "last"),
                        ],
                    }),
                ),
                OtlpKeyValue { key: "empty".into(), value: None, ..Default::default() },
            ],
            events: vec![
                span::Event {
                    time_unix_nano: 1_706_678_909_209_800_000,
                    name: "cache miss".into(),
                    attributes: vec![str_attr("cache.key", "cart:42")],
                    ..Default::default()
                },
                span::Event {
                    time_unix_nano: 1_706_678_909_209_900_999,
                    name: "exception".into(),
                    attributes: vec![str_attr("event", "custom-event"), str_attr("exception.message", "boom")],
                    ..Default::default()
                },
                span::Event {
                    time_unix_nano: 1_706_678_909_209_950_000,
                    attributes: vec![int_attr("retry", 2)],
                    ..Default::default()
                },
            ],
            status: Some(Status { code: status::StatusCode::Ok as i32, message: String::new() }),
            ..Default::default()
        };
        let call = OtlpSpan {
            trace_id: id::<16>(TRACE),
            span_id: id::<8>("00f067aa0ba902b7"),
            parent_span_id: id::<8>("e127af99e3b3e074"),
            name: "HGET".into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: 1_706_678_909_250_000_000,
            end_time_unix_nano: 1_706_678_909_300_000_000,
            attributes: vec![str_attr("peer.service", "redis")],
            links: vec![
                link("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b8", vec![str_attr("kind", "batch")]),
                span::Link { trace_id: vec![0; 16], span_id: id::<8>("00f067aa0ba902b9"), ..Default::default() },
            ],
            status: Some(Status { code: status::StatusCode::Error as i32, message: "connection refused".into() }),
            ..Default::default()
        };
        let render = OtlpSpan {
            trace_id: id::<16>(TRACE),
            span_id: id::<8>("1000000000000001"),
            parent_span_id: id::<8>("e127af99e3b3e074"),
            name: "render".into(),
            start_time_unix_nano: 1_706_678_909_210_000_900,
            end_time_unix_nano: 1_706_678_909_210_500_100,
            links: vec![
                link(TRACE, "e127af99e3b3e074", vec![str_attr(LINK_REF_TYPE, "follows_from")]),
                link("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b8", vec![str_attr(LINK_REF_TYPE, "child_of")]),
            ],
            ..Default::default()
        };
        let invalid =
            OtlpSpan { trace_id: id::<16>(TRACE), span_id: vec![0; 8], name: "bad".into(), ..Default::default() };
        vec![
            resource(
                vec![str_attr(SERVICE_NAME, "cart"), str_attr("telemetry.sdk.language", "rust")],
                "",
                vec![scope("cart-lib", "", vec![call])],
            ),
            resource(
                frontend.clone(),
                "https://opentelemetry.io/schemas/1.26.0",
                vec![scope("io.clew.http", "1.2.0", vec![root])],
            ),
            resource(
                frontend,
                "",
                vec![ScopeSpans { scope: None, spans: vec![invalid, render], schema_url: String::new() }],
            ),
        ]
    }

    #[test]
    fn converts_every_mapping_rule() {
        let trace = trace_to_jaeger(TRACE.parse().unwrap(), &checkout_trace());
        let expected = json!({
          "traceID": TRACE,
          "spans": [
            {
              "traceID": TRACE,
              "spanID": "e127af99e3b3e074",
              "flags": 1,
              "operationName": "GET /checkout",
              "references": [],
              "startTime": 1_706_678_909_209_712_u64,
              "duration": 100_123,
              "tags": [
                {"key": "otel.scope.name", "type": "string", "value": "io.clew.http"},
                {"key": "otel.scope.version", "type": "string", "value": "1.2.0"},
                {"key": "http.method", "type": "string", "value": "GET"},
                {"key": "http.status_code", "type": "int64", "value": 200},
                {"key": "big", "type": "int64", "value": "9223372036854775222"},
                {"key": "cache.hit", "type": "bool", "value": true},
                {"key": "ratio", "type": "float64", "value": 0.25},
                {"key": "payload", "type": "binary", "value": "AAAwOQ=="},
                {"key": "list", "type": "string", "value": "[\"a\",1,2,true,null]"},
                {"key": "map", "type": "string", "value": "{\"a\":1.5,\"b\":\"AAE=\",\"z\":\"last\"}"},
                {"key": "empty", "type": "string", "value": ""},
                {"key": "span.kind", "type": "string", "value": "server"},
                {"key": "otel.status_code", "type": "string", "value": "OK"},
                {"key": "w3c.tracestate", "type": "string", "value": "clew=1"}
              ],
              "logs": [
                {"timestamp": 1_706_678_909_209_800_u64, "fields": [
                  {"key": "event", "type": "string", "value": "cache miss"},
                  {"key": "cache.key", "type": "string", "value": "cart:42"}
                ]},
                {"timestamp": 1_706_678_909_209_900_u64, "fields": [
                  {"key": "event", "type": "string", "value": "custom-event"},
                  {"key": "exception.message", "type": "string", "value": "boom"}
                ]},
                {"timestamp": 1_706_678_909_209_950_u64, "fields": [
                  {"key": "retry", "type": "int64", "value": 2}
                ]}
              ],
              "processID": "p1",
              "warnings": null
            },
            {
              "traceID": TRACE,
              "spanID": "1000000000000001",
              "operationName": "render",
              "references": [
                {"refType": "FOLLOWS_FROM", "traceID": TRACE, "spanID": "e127af99e3b3e074"},
                {"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "00f067aa0ba902b8"}
              ],
              "startTime": 1_706_678_909_210_000_u64,
              "duration": 499,
              "tags": [],
              "logs": [],
              "processID": "p1",
              "warnings": null
            },
            {
              "traceID": TRACE,
              "spanID": "00f067aa0ba902b7",
              "operationName": "HGET",
              "references": [
                {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "e127af99e3b3e074"},
                {"refType": "FOLLOWS_FROM", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "00f067aa0ba902b8"}
              ],
              "startTime": 1_706_678_909_250_000_u64,
              "duration": 50_000,
              "tags": [
                {"key": "otel.scope.name", "type": "string", "value": "cart-lib"},
                {"key": "peer.service", "type": "string", "value": "redis"},
                {"key": "span.kind", "type": "string", "value": "client"},
                {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                {"key": "error", "type": "bool", "value": true},
                {"key": "otel.status_description", "type": "string", "value": "connection refused"}
              ],
              "logs": [],
              "processID": "p2",
              "warnings": ["Invalid span link removed"]
            }
          ],
          "processes": {
            "p1": {"serviceName": "frontend", "tags": [
              {"key": "host.name", "type": "string", "value": "web-1"},
              {"key": "process.pid", "type": "int64", "value": 4242}
            ]},
            "p2": {"serviceName": "cart", "tags": [
              {"key": "telemetry.sdk.language", "type": "string", "value": "rust"}
            ]}
          },
          "warnings": ["left out 1 span(s) with an invalid trace or span ID"]
        });
        assert_eq!(serde_json::to_value(&trace).unwrap(), expected);
        let parsed: Trace = serde_json::from_value(expected).unwrap();
        assert_eq!(parsed, trace);
    }

    #[test]
    fn services_without_a_usable_name_get_jaegers_placeholders() {
        let with = |attributes| Some(Resource { attributes, ..Default::default() });
        assert_eq!(process_service_name(None), MISSING_SERVICE_NAME);
        assert_eq!(process_service_name(with(vec![str_attr("host.name", "h")]).as_ref()), MISSING_SERVICE_NAME);
        assert_eq!(process_service_name(with(vec![str_attr(SERVICE_NAME, "")]).as_ref()), EMPTY_SERVICE_NAME);
        assert_eq!(process_service_name(with(vec![int_attr(SERVICE_NAME, 1)]).as_ref()), WRONG_TYPE_SERVICE_NAME);
        assert_eq!(process_service_name(with(vec![str_attr(SERVICE_NAME, "api")]).as_ref()), "api");

        let span = OtlpSpan { trace_id: id::<16>(TRACE), span_id: id::<8>("0000000000000001"), ..Default::default() };
        let input = vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }];
        let trace = trace_to_jaeger(TRACE.parse().unwrap(), &input);
        assert_eq!(trace.processes["p1"], Process { service_name: MISSING_SERVICE_NAME.into(), tags: vec![] });
        assert_eq!(trace.warnings, None);
    }

    #[test]
    fn doubles_jaeger_cannot_write_as_numbers_become_text() {
        let tag = |f: f64| attribute_to_tag("x", value(any_value::Value::DoubleValue(f)).as_ref()).value;
        assert_eq!(tag(f64::NAN), json!("NaN"));
        assert_eq!(tag(f64::INFINITY), json!("+Inf"));
        assert_eq!(tag(f64::NEG_INFINITY), json!("-Inf"));
        assert_eq!(tag(3.0), json!(3.0));
        let small = attribute_to_tag("x", value(any_value::Value::IntValue(-(1 << 53) + 1)).as_ref());
        assert_eq!(small.value, json!(-9_007_199_254_740_991_i64));
        let big = attribute_to_tag("x", value(any_value::Value::IntValue(-(1 << 53))).as_ref());
        assert_eq!((big.value_type, big.value), (ValueType::Int64, json!("-9007199254740992")));
    }

    #[test]
    fn span_kind_names_round_trip() {
        let names = ["", "internal", "server", "client", "producer", "consumer"];
        for (kind, name) in names.iter().enumerate() {
            let kind = kind as i32;
            assert_eq!(span_kind_name(kind), *name);
            if kind > 0 {
                assert_eq!(span_kind_from_name(name), Some(kind));
            }
        }
        assert_eq!(span_kind_name(42), "");
        assert_eq!(span_kind_from_name("unspecified"), Some(0));
        assert_eq!(span_kind_from_name("SERVER"), Some(2));
        assert_eq!(span_kind_from_name(""), None);
        assert_eq!(span_kind_from_name("bogus"), None);
    }

    #[test]
    fn operations_serialize_as_jaeger_lists_them() {
        let operations = vec![operation("GET /cart", 2), operation("work", 0)];
        let json = serde_json::to_value(Response::new(operations, 2)).unwrap();
        assert_eq!(
            json,
            json!({
                "data": [{"name": "GET /cart", "spanKind": "server"}, {"name": "work", "spanKind": ""}],
                "total": 2, "limit": 0, "offset": 0, "errors": null
            })
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, encoded) in vectors {
            assert_eq!(base64(input.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xfe]), "+//+");
    }
}
