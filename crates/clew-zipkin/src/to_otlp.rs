//! Zipkin → OTLP: validation and translation. See the crate documentation for the mapping.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value, InstrumentationScope, KeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::span::{Event, SpanKind};
use clew_model::otlp::trace::v1::status::StatusCode;
use clew_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use crate::error::quoted;
use crate::keys::*;
use crate::span::{Endpoint, Kind, ZipkinSpan};
use crate::values::{key_value, parse_annotation_value, parse_status_code, status_tags};
use crate::ZipkinError;

/// What a span's resource is made of: its local service name and its resource tags.
type ResourceKey = (Option<String>, Vec<(String, String)>);
/// An instrumentation scope: name and version.
type ScopeKey = (String, String);

pub(crate) fn request(spans: &[ZipkinSpan]) -> Result<ExportTraceServiceRequest, ZipkinError> {
    let mut groups = Groups::default();
    for (index, span) in spans.iter().enumerate() {
        let translated = translate(span).map_err(|problem| ZipkinError::Span { index, problem })?;
        groups.push(translated);
    }
    Ok(ExportTraceServiceRequest { resource_spans: groups.resource_spans })
}

struct Translated {
    resource: ResourceKey,
    scope: ScopeKey,
    span: Span,
}

/// Groups spans by resource, then by scope, in the order each first appears.
#[derive(Default)]
struct Groups {
    resource_spans: Vec<ResourceSpans>,
    resources: HashMap<ResourceKey, usize>,
    scopes: HashMap<(usize, ScopeKey), usize>,
}

impl Groups {
    fn push(&mut self, translated: Translated) {
        let Translated { resource, scope, span } = translated;
        let resource_index = match self.resources.get(&resource) {
            Some(&i) => i,
            None => {
                self.resource_spans.push(ResourceSpans { resource: otlp_resource(&resource), ..Default::default() });
                let i = self.resource_spans.len() - 1;
                self.resources.insert(resource, i);
                i
            }
        };
        let scope_spans = &mut self.resource_spans[resource_index].scope_spans;
        let scope_index = match self.scopes.get(&(resource_index, scope.clone())) {
            Some(&i) => i,
            None => {
                let (name, version) = &scope;
                let otlp_scope = (!name.is_empty() || !version.is_empty()).then(|| InstrumentationScope {
                    name: name.clone(),
                    version: version.clone(),
                    ..Default::default()
                });
                scope_spans.push(ScopeSpans { scope: otlp_scope, ..Default::default() });
                self.scopes.insert((resource_index, scope), scope_spans.len() - 1);
                scope_spans.len() - 1
            }
        };
        scope_spans[scope_index].spans.push(span);
    }
}

fn otlp_resource((service_name, tags): &ResourceKey) -> Option<Resource> {
    let attributes: Vec<KeyValue> = service_name
        .iter()
        .map(|name| key_value(SERVICE_NAME, any_value::Value::StringValue(name.clone())))
        .chain(tags.iter().map(|(k, v)| key_value(k.clone(), any_value::Value::StringValue(v.clone()))))
        .collect();
    (!attributes.is_empty()).then(|| Resource { attributes, ..Default::default() })
}

fn translate(span: &ZipkinSpan) -> Result<Translated, String> {
    let trace_id = parse_trace_id(&span.trace_id)?;
    let span_id = parse_span_id("id", &span.id)?;
    if span_id == [0; 8] {
        return Err("id must not be all zeros".to_owned());
    }
    // As the collector: a parent equal to the span itself is no parent; nor is an all-zero one.
    let parent_id = match &span.parent_id {
        Some(parent) => Some(parse_span_id("parentId", parent)?).filter(|p| *p != [0; 8] && *p != span_id),
        None => None,
    };
    let start = span.timestamp.map(|us| nanos("timestamp", us)).transpose()?.unwrap_or(0);
    let duration = span.duration.map(|us| nanos("duration", us)).transpose()?.unwrap_or(0);
    let end = start.checked_add(duration).ok_or_else(|| {
        format!("timestamp + duration ({} + {} microseconds) is past the year 2554", start / 1000, duration / 1000)
    })?;
    let local = Addresses::of("localEndpoint", span.local_endpoint.as_ref())?;
    let remote = Addresses::of("remoteEndpoint", span.remote_endpoint.as_ref())?;
    let events = span
        .annotations
        .iter()
        .enumerate()
        .map(|(i, annotation)| {
            let time_unix_nano = nanos(&format!("annotations[{i}].timestamp"), annotation.timestamp)?;
            let (name, attributes, dropped_attributes_count) =
                parse_annotation_value(&annotation.value).unwrap_or_else(|| (annotation.value.clone(), Vec::new(), 0));
            Ok(Event { time_unix_nano, name, attributes, dropped_attributes_count })
        })
        .collect::<Result<Vec<_>, String>>()?;

    let mut tags = span.tags.clone();
    let resource_tags: Vec<(String, String)> = take_where(&mut tags, is_resource_key);
    let scope = take_scope(&mut tags);
    let status = take_status(&mut tags);
    let kind = match span.kind {
        Some(Kind::Client) => SpanKind::Client,
        Some(Kind::Server) => SpanKind::Server,
        Some(Kind::Producer) => SpanKind::Producer,
        Some(Kind::Consumer) => SpanKind::Consumer,
        None if tags.get(SPAN_KIND).is_some_and(|kind| kind == "internal") => {
            tags.remove(SPAN_KIND);
            SpanKind::Internal
        }
        None => SpanKind::Unspecified,
    };
    let trace_state = take_if(&mut tags, W3C_TRACESTATE, |state| !state.is_empty()).unwrap_or_default();
    let dropped_attributes_count = take_count(&mut tags, DROPPED_ATTRIBUTES_COUNT);
    let dropped_events_count = take_count(&mut tags, DROPPED_EVENTS_COUNT);
    let dropped_links_count = take_count(&mut tags, DROPPED_LINKS_COUNT);

    let mut derived: Vec<(&str, any_value::Value)> = Vec::new();
    local.attributes(NETWORK_LOCAL_ADDRESS, ZIPKIN_LOCAL_IPV6, NETWORK_LOCAL_PORT, &mut derived);
    if let Some(service) = span.remote_endpoint.as_ref().and_then(|e| e.service_name.clone()) {
        derived.push((PEER_SERVICE, any_value::Value::StringValue(service)));
    }
    remote.attributes(NETWORK_PEER_ADDRESS, ZIPKIN_REMOTE_IPV6, NETWORK_PEER_PORT, &mut derived);
    if span.shared == Some(true) {
        derived.push((ZIPKIN_SHARED, any_value::Value::BoolValue(true)));
    }
    if span.debug == Some(true) {
        derived.push((ZIPKIN_DEBUG, any_value::Value::BoolValue(true)));
    }
    if span.timestamp.is_none() {
        derived.push((ABSENT_START_TIME, any_value::Value::BoolValue(true)));
    }
    // A tag is never overwritten by an attribute derived from another field.
    derived.retain(|(key, _)| !tags.contains_key(*key));
    let attributes = tags
        .into_iter()
        .map(|(key, value)| key_value(key, any_value::Value::StringValue(value)))
        .chain(derived.into_iter().map(|(key, value)| key_value(key, value)))
        .collect();

    Ok(Translated {
        resource: (span.local_endpoint.as_ref().and_then(|e| e.service_name.clone()), resource_tags),
        scope,
        span: Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            trace_state,
            parent_span_id: parent_id.map(|p| p.to_vec()).unwrap_or_default(),
            flags: 0,
            name: span.name.clone().unwrap_or_default(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links: Vec::new(),
            dropped_links_count,
            status: Some(status),
        },
    })
}

fn parse_trace_id(text: &str) -> Result<[u8; 16], String> {
    if text.len() != 16 && text.len() != 32 {
        return Err(format!("traceId must be 16 or 32 hex characters, got {}", quoted(text)));
    }
    // A 64-bit trace ID is the low half of a 128-bit one.
    let mut id = [0u8; 16];
    hex::decode_to_slice(text, &mut id[16 - text.len() / 2..])
        .map_err(|_| format!("traceId must be hexadecimal, got {}", quoted(text)))?;
    if id == [0; 16] {
        return Err("traceId must not be all zeros".to_owned());
    }
    Ok(id)
}

fn parse_span_id(field: &str, text: &str) -> Result<[u8; 8], String> {
    if text.len() != 16 {
        return Err(format!("{field} must be 16 hex characters, got {}", quoted(text)));
    }
    let mut id = [0u8; 8];
    hex::decode_to_slice(text, &mut id).map_err(|_| format!("{field} must be hexadecimal, got {}", quoted(text)))?;
    Ok(id)
}

fn nanos(field: &str, micros: u64) -> Result<u64, String> {
    micros.checked_mul(1000).ok_or_else(|| format!("{field} {micros} is past the year 2554 (microseconds since 1970)"))
}

/// An endpoint's validated addresses and port.
#[derive(Default)]
struct Addresses {
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    port: Option<u16>,
}

impl Addresses {
    fn of(field: &str, endpoint: Option<&Endpoint>) -> Result<Self, String> {
        let Some(endpoint) = endpoint else {
            return Ok(Self::default());
        };
        let ipv4 = endpoint
            .ipv4
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse::<Ipv4Addr>().map_err(|_| {
                    format!("{field}.ipv4 must be an IPv4 address like \"192.168.99.1\", got {}", quoted(text))
                })
            })
            .transpose()?;
        let ipv6 = endpoint
            .ipv6
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse::<Ipv6Addr>().map_err(|_| {
                    format!("{field}.ipv6 must be an IPv6 address like \"2001:db8::c001\", got {}", quoted(text))
                })
            })
            .transpose()?;
        Ok(Self { ipv4, ipv6, port: endpoint.port.filter(|&port| port != 0) })
    }

    /// The address attribute holds the IPv4 address if there is one (Zipkin prefers it), else
    /// the IPv6 one; an IPv6 address next to an IPv4 one gets its own attribute.
    fn attributes(
        &self,
        address_key: &'static str,
        ipv6_key: &'static str,
        port_key: &'static str,
        out: &mut Vec<(&'static str, any_value::Value)>,
    ) {
        match (self.ipv4, self.ipv6) {
            (Some(v4), v6) => {
                out.push((address_key, any_value::Value::StringValue(v4.to_string())));
                if let Some(v6) = v6 {
                    out.push((ipv6_key, any_value::Value::StringValue(v6.to_string())));
                }
            }
            (None, Some(v6)) => out.push((address_key, any_value::Value::StringValue(v6.to_string()))),
            (None, None) => {}
        }
        if let Some(port) = self.port {
            out.push((port_key, any_value::Value::IntValue(i64::from(port))));
        }
    }
}

fn take_where(tags: &mut BTreeMap<String, String>, wanted: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let keys: Vec<String> = tags.keys().filter(|key| wanted(key)).cloned().collect();
    keys.into_iter().filter_map(|key| tags.remove_entry(&key)).collect()
}

fn take_if(tags: &mut BTreeMap<String, String>, key: &str, wanted: impl Fn(&str) -> bool) -> Option<String> {
    if tags.get(key).is_some_and(|value| wanted(value)) {
        tags.remove(key)
    } else {
        None
    }
}

/// A dropped count, taken only in the form it is written back in (a positive decimal).
fn take_count(tags: &mut BTreeMap<String, String>, key: &str) -> u32 {
    let canonical = |text: &str| text.parse::<u32>().is_ok_and(|n| n > 0 && n.to_string() == text);
    take_if(tags, key, canonical).and_then(|text| text.parse().ok()).unwrap_or(0)
}

/// The scope from `otel.scope.*` tags, or from the deprecated `otel.library.*` ones. When
/// `otel.library.name` is present, nothing is taken: on the way back, the scope is then not
/// written as tags, and the kept tags say it all.
fn take_scope(tags: &mut BTreeMap<String, String>) -> ScopeKey {
    let non_empty = |key: &str| tags.get(key).filter(|value| !value.is_empty()).cloned();
    if tags.contains_key(OTEL_LIBRARY_NAME) {
        return match non_empty(OTEL_SCOPE_NAME) {
            Some(name) => (name, non_empty(OTEL_SCOPE_VERSION).unwrap_or_default()),
            None => {
                (non_empty(OTEL_LIBRARY_NAME).unwrap_or_default(), non_empty(OTEL_LIBRARY_VERSION).unwrap_or_default())
            }
        };
    }
    let name = take_if(tags, OTEL_SCOPE_NAME, |value| !value.is_empty()).unwrap_or_default();
    let version = take_if(tags, OTEL_SCOPE_VERSION, |value| !value.is_empty()).unwrap_or_default();
    (name, version)
}

/// The status from `otel.status_code`, `otel.status_description` and `error` tags. They are
/// taken only when they are exactly the tags written back for that status; otherwise they
/// stay as attributes too, and on the way back they are written as they came.
fn take_status(tags: &mut BTreeMap<String, String>) -> Status {
    let error = tags.get(ERROR).map(String::as_str);
    let description = tags.get(OTEL_STATUS_DESCRIPTION).map(String::as_str).filter(|d| !d.is_empty());
    let code = match tags.get(OTEL_STATUS_CODE).and_then(|code| parse_status_code(code)) {
        Some(code) => code,
        None if error.is_some_and(|e| !e.eq_ignore_ascii_case("false")) => StatusCode::Error,
        None => StatusCode::Unset,
    };
    let message = match code {
        StatusCode::Error => description
            .or(error.filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("true")))
            .unwrap_or_default()
            .to_owned(),
        StatusCode::Ok => description.unwrap_or_default().to_owned(),
        StatusCode::Unset => String::new(),
    };
    let present: BTreeMap<&str, &String> = [OTEL_STATUS_CODE, ERROR, OTEL_STATUS_DESCRIPTION]
        .into_iter()
        .filter_map(|key| Some((key, tags.get(key)?)))
        .collect();
    let written_back = status_tags(code, &message);
    if present.len() == written_back.len() && written_back.iter().all(|(key, value)| present.get(key) == Some(&value)) {
        for key in written_back.keys() {
            tags.remove(*key);
        }
    }
    Status { message, code: code as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn status_of(pairs: &[(&str, &str)]) -> (Status, Vec<String>) {
        let mut tags = tags(pairs);
        let status = take_status(&mut tags);
        (status, tags.into_keys().collect())
    }

    fn status(code: StatusCode, message: &str) -> Status {
        Status { message: message.to_owned(), code: code as i32 }
    }

    #[test]
    fn status_tags_are_read_and_taken_only_when_canonical() {
        // Zipkin's own error tag: the span fails, and the tag stays visible.
        assert_eq!(status_of(&[("error", "boom")]), (status(StatusCode::Error, "boom"), vec!["error".to_owned()]));
        assert_eq!(status_of(&[("error", "true")]), (status(StatusCode::Error, ""), vec!["error".to_owned()]));
        assert_eq!(status_of(&[("error", "false")]), (status(StatusCode::Unset, ""), vec!["error".to_owned()]));
        // What the OpenTelemetry SDK exporters and Clew write.
        assert_eq!(
            status_of(&[("otel.status_code", "ERROR"), ("error", "boom")]),
            (status(StatusCode::Error, "boom"), vec![])
        );
        assert_eq!(
            status_of(&[("otel.status_code", "ERROR"), ("error", "true")]),
            (status(StatusCode::Error, ""), vec![])
        );
        assert_eq!(status_of(&[("otel.status_code", "OK")]), (status(StatusCode::Ok, ""), vec![]));
        // What the collector writes: read, and kept because it is not what Clew writes.
        let collector =
            [("otel.status_code", "STATUS_CODE_ERROR"), ("error", "true"), ("otel.status_description", "no")];
        assert_eq!(status_of(&collector).0, status(StatusCode::Error, "no"));
        assert_eq!(status_of(&collector).1.len(), 3);
        assert_eq!(status_of(&[("http.status_code", "500")]).0, status(StatusCode::Unset, ""));
    }

    #[test]
    fn scope_comes_from_scope_or_library_tags() {
        let mut current = tags(&[("otel.scope.name", "io.x"), ("otel.scope.version", "1.2"), ("k", "v")]);
        assert_eq!(take_scope(&mut current), ("io.x".to_owned(), "1.2".to_owned()));
        assert_eq!(current, tags(&[("k", "v")]));
        let mut legacy = tags(&[("otel.library.name", "io.y"), ("otel.library.version", "3")]);
        assert_eq!(take_scope(&mut legacy), ("io.y".to_owned(), "3".to_owned()));
        assert_eq!(legacy.len(), 2);
    }

    #[test]
    fn ids_are_validated_with_reasons() {
        assert_eq!(parse_trace_id("xyz").unwrap_err(), "traceId must be 16 or 32 hex characters, got \"xyz\"");
        assert_eq!(
            parse_trace_id("zz0000000000000a").unwrap_err(),
            "traceId must be hexadecimal, got \"zz0000000000000a\""
        );
        assert_eq!(parse_trace_id(&"0".repeat(32)).unwrap_err(), "traceId must not be all zeros");
        let mut padded = [0u8; 16];
        padded[15] = 0xab;
        assert_eq!(parse_trace_id("00000000000000AB").unwrap(), padded);
        assert_eq!(
            parse_span_id("parentId", "é234567890abcde").unwrap_err(),
            "parentId must be hexadecimal, got \"é234567890abcde\""
        );
        assert_eq!(
            nanos("duration", u64::MAX).unwrap_err(),
            format!("duration {} is past the year 2554 (microseconds since 1970)", u64::MAX)
        );
    }
}
