//! OTLP → Zipkin: the inverse of `to_otlp`. See the crate documentation for the mapping.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use clew_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::otlp::trace::v1::status::StatusCode;
use clew_model::otlp::trace::v1::{ResourceSpans, Span};

use crate::keys::*;
use crate::span::{Annotation, Endpoint, Kind, ZipkinSpan};
use crate::values::{annotation_value, status_tags, tag_text};

static EMPTY: AnyValue = AnyValue { value: None };

pub(crate) fn spans(resource_spans: &[ResourceSpans]) -> Vec<ZipkinSpan> {
    let mut out = Vec::new();
    for resource_spans in resource_spans {
        let (service_name, resource_tags) = resource_parts(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                out.extend(span_to_zipkin(span, service_name.as_deref(), &resource_tags, scope_spans.scope.as_ref()));
            }
        }
    }
    out
}

/// The local service name, and the other resource attributes as tags.
fn resource_parts(resource: Option<&Resource>) -> (Option<String>, BTreeMap<String, String>) {
    let mut service_name = None;
    let mut tags = BTreeMap::new();
    for kv in resource.iter().flat_map(|r| &r.attributes) {
        let text = tag_text(kv.value.as_ref().unwrap_or(&EMPTY));
        if kv.key == SERVICE_NAME {
            service_name = (!text.is_empty()).then_some(text);
        } else {
            tags.insert(kv.key.clone(), text);
        }
    }
    (service_name, tags)
}

fn span_to_zipkin(
    span: &Span,
    service_name: Option<&str>,
    resource_tags: &BTreeMap<String, String>,
    scope: Option<&InstrumentationScope>,
) -> Option<ZipkinSpan> {
    let trace_id = <[u8; 16]>::try_from(span.trace_id.as_slice()).ok().filter(|id| *id != [0; 16])?;
    let id = <[u8; 8]>::try_from(span.span_id.as_slice()).ok().filter(|id| *id != [0; 8])?;
    let parent_id = <[u8; 8]>::try_from(span.parent_span_id.as_slice()).ok().filter(|id| *id != [0; 8]);

    // Later duplicates win, as they would in a map.
    let mut attributes: BTreeMap<&str, &AnyValue> =
        span.attributes.iter().map(|kv| (kv.key.as_str(), kv.value.as_ref().unwrap_or(&EMPTY))).collect();

    let timestamp = Some(span.start_time_unix_nano / 1000).filter(|&us| us != 0);
    // Zipkin rounds durations under a microsecond up.
    let duration = (span.end_time_unix_nano != 0 && span.end_time_unix_nano > span.start_time_unix_nano)
        .then(|| ((span.end_time_unix_nano - span.start_time_unix_nano) / 1000).max(1));
    if timestamp.is_none() {
        take_true(&mut attributes, ABSENT_START_TIME);
    }
    let local_endpoint = take_endpoint(
        &mut attributes,
        service_name.map(str::to_owned),
        NETWORK_LOCAL_ADDRESS,
        ZIPKIN_LOCAL_IPV6,
        NETWORK_LOCAL_PORT,
    );
    let peer_service = match attributes.get(PEER_SERVICE).map(|v| &v.value) {
        Some(Some(any_value::Value::StringValue(name))) if !name.is_empty() => {
            attributes.remove(PEER_SERVICE);
            Some(name.clone())
        }
        _ => None,
    };
    let remote_endpoint =
        take_endpoint(&mut attributes, peer_service, NETWORK_PEER_ADDRESS, ZIPKIN_REMOTE_IPV6, NETWORK_PEER_PORT);
    let shared = take_true(&mut attributes, ZIPKIN_SHARED).then_some(true);
    let debug = take_true(&mut attributes, ZIPKIN_DEBUG).then_some(true);
    let has_status_tags = [OTEL_STATUS_CODE, ERROR, OTEL_STATUS_DESCRIPTION].iter().any(|k| attributes.contains_key(k));
    let has_library_tags = attributes.contains_key(OTEL_LIBRARY_NAME);

    let mut tags = resource_tags.clone();
    tags.extend(attributes.into_iter().map(|(key, value)| (key.to_owned(), tag_text(value))));
    // What OTLP fields Zipkin has no field for become tags, unless a tag has that key already.
    let mut add = |key: &str, value: String| {
        tags.entry(key.to_owned()).or_insert(value);
    };
    let kind = match SpanKind::try_from(span.kind) {
        Ok(SpanKind::Client) => Some(Kind::Client),
        Ok(SpanKind::Server) => Some(Kind::Server),
        Ok(SpanKind::Producer) => Some(Kind::Producer),
        Ok(SpanKind::Consumer) => Some(Kind::Consumer),
        Ok(SpanKind::Internal) => {
            add(SPAN_KIND, "internal".to_owned());
            None
        }
        Ok(SpanKind::Unspecified) | Err(_) => None,
    };
    if !has_status_tags {
        let status = span.status.clone().unwrap_or_default();
        let code = StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset);
        for (key, value) in status_tags(code, &status.message) {
            add(key, value);
        }
    }
    if let Some(scope) = scope.filter(|_| !has_library_tags) {
        if !scope.name.is_empty() {
            add(OTEL_SCOPE_NAME, scope.name.clone());
        }
        if !scope.version.is_empty() {
            add(OTEL_SCOPE_VERSION, scope.version.clone());
        }
    }
    if !span.trace_state.is_empty() {
        add(W3C_TRACESTATE, span.trace_state.clone());
    }
    let dropped_links = u32::try_from(span.links.len()).unwrap_or(u32::MAX).saturating_add(span.dropped_links_count);
    for (key, count) in [
        (DROPPED_ATTRIBUTES_COUNT, span.dropped_attributes_count),
        (DROPPED_EVENTS_COUNT, span.dropped_events_count),
        (DROPPED_LINKS_COUNT, dropped_links),
    ] {
        if count > 0 {
            add(key, count.to_string());
        }
    }

    Some(ZipkinSpan {
        trace_id: match trace_id.split_at(8) {
            ([0, 0, 0, 0, 0, 0, 0, 0], low) => hex::encode(low),
            _ => hex::encode(trace_id),
        },
        parent_id: parent_id.map(hex::encode),
        id: hex::encode(id),
        kind,
        name: (!span.name.is_empty()).then(|| span.name.clone()),
        timestamp,
        duration,
        local_endpoint,
        remote_endpoint,
        annotations: span
            .events
            .iter()
            .map(|event| Annotation {
                timestamp: event.time_unix_nano / 1000,
                value: annotation_value(&event.name, &event.attributes, event.dropped_attributes_count),
            })
            .collect(),
        tags,
        debug,
        shared,
    })
}

/// Removes a `true` bool attribute, telling whether it was there.
fn take_true(attributes: &mut BTreeMap<&str, &AnyValue>, key: &str) -> bool {
    let found = matches!(attributes.get(key).map(|v| &v.value), Some(Some(any_value::Value::BoolValue(true))));
    if found {
        attributes.remove(key);
    }
    found
}

fn take_endpoint(
    attributes: &mut BTreeMap<&str, &AnyValue>,
    service_name: Option<String>,
    address_key: &str,
    ipv6_key: &str,
    port_key: &str,
) -> Option<Endpoint> {
    let text = |attributes: &BTreeMap<&str, &AnyValue>, key: &str| match attributes.get(key).map(|v| &v.value) {
        Some(Some(any_value::Value::StringValue(s))) => Some(s.clone()),
        _ => None,
    };
    let mut endpoint = Endpoint { service_name, ..Default::default() };
    if let Some(address) = text(attributes, address_key).and_then(|s| s.parse::<IpAddr>().ok()) {
        attributes.remove(address_key);
        match address {
            IpAddr::V4(v4) => endpoint.ipv4 = Some(v4.to_string()),
            IpAddr::V6(v6) => endpoint.ipv6 = Some(v6.to_string()),
        }
    }
    if endpoint.ipv6.is_none() {
        if let Some(v6) = text(attributes, ipv6_key).and_then(|s| s.parse::<Ipv6Addr>().ok()) {
            attributes.remove(ipv6_key);
            endpoint.ipv6 = Some(v6.to_string());
        }
    }
    if let Some(Some(any_value::Value::IntValue(port))) = attributes.get(port_key).map(|v| &v.value) {
        if let Ok(port) = u16::try_from(*port) {
            if port != 0 {
                attributes.remove(port_key);
                endpoint.port = Some(port);
            }
        }
    }
    (!endpoint.is_empty()).then_some(endpoint)
}

#[cfg(test)]
mod tests {
    use clew_model::otlp::common::v1::KeyValue;
    use clew_model::otlp::trace::v1::span::{Event, Link};
    use clew_model::otlp::trace::v1::{ScopeSpans, Status};

    use super::*;
    use crate::values::key_value;

    fn otlp_span() -> Span {
        Span {
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            parent_span_id: vec![0x33; 8],
            name: "GET /users".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 1_700_000_000_123_456_789,
            end_time_unix_nano: 1_700_000_000_223_456_789,
            attributes: vec![
                key_value("http.response.status_code", any_value::Value::IntValue(503)),
                key_value("retry", any_value::Value::BoolValue(true)),
                key_value(NETWORK_PEER_ADDRESS, any_value::Value::StringValue("2001:db8::1".into())),
                key_value(NETWORK_PEER_PORT, any_value::Value::IntValue(8080)),
                key_value(PEER_SERVICE, any_value::Value::StringValue("users".into())),
            ],
            events: vec![
                Event { time_unix_nano: 1_700_000_000_200_000_000, name: "retrying".into(), ..Default::default() },
                Event {
                    time_unix_nano: 1_700_000_000_210_000_000,
                    name: "exception".into(),
                    attributes: vec![key_value("exception.type", any_value::Value::StringValue("Timeout".into()))],
                    dropped_attributes_count: 0,
                },
            ],
            links: vec![Link::default()],
            status: Some(Status { code: StatusCode::Error as i32, message: "upstream unavailable".into() }),
            trace_state: "vendor=1".into(),
            ..Default::default()
        }
    }

    fn resource_spans(span: Span) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    key_value(SERVICE_NAME, any_value::Value::StringValue("web".into())),
                    key_value("process.pid", any_value::Value::IntValue(42)),
                    KeyValue { key: "empty".into(), value: None, ..Default::default() },
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.http".into(),
                    version: "2.0".into(),
                    ..Default::default()
                }),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn otlp_spans_become_zipkin_spans_like_the_collector_makes_them() {
        let spans = spans(&[resource_spans(otlp_span())]);
        let expected = ZipkinSpan {
            trace_id: "11111111111111111111111111111111".into(),
            parent_id: Some("3333333333333333".into()),
            id: "2222222222222222".into(),
            kind: Some(Kind::Client),
            name: Some("GET /users".into()),
            timestamp: Some(1_700_000_000_123_456),
            duration: Some(100_000),
            local_endpoint: Some(Endpoint { service_name: Some("web".into()), ..Default::default() }),
            remote_endpoint: Some(Endpoint {
                service_name: Some("users".into()),
                ipv6: Some("2001:db8::1".into()),
                port: Some(8080),
                ..Default::default()
            }),
            annotations: vec![
                Annotation { timestamp: 1_700_000_000_200_000, value: "retrying".into() },
                Annotation {
                    timestamp: 1_700_000_000_210_000,
                    value: r#"exception|{"exception.type":"Timeout"}|0"#.into(),
                },
            ],
            tags: [
                ("empty", ""),
                ("error", "upstream unavailable"),
                ("http.response.status_code", "503"),
                ("otel.dropped_links_count", "1"),
                ("otel.scope.name", "io.http"),
                ("otel.scope.version", "2.0"),
                ("otel.status_code", "ERROR"),
                ("process.pid", "42"),
                ("retry", "true"),
                ("w3c.tracestate", "vendor=1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            debug: None,
            shared: None,
        };
        assert_eq!(spans, vec![expected]);
    }

    #[test]
    fn internal_kind_tiny_durations_and_64_bit_trace_ids() {
        let mut span = otlp_span();
        span.trace_id = [[0; 8], [0xab; 8]].concat();
        span.kind = SpanKind::Internal as i32;
        span.end_time_unix_nano = span.start_time_unix_nano + 10;
        span.status = Some(Status { code: StatusCode::Ok as i32, message: String::new() });
        let zipkin = spans(&[resource_spans(span)]).remove(0);
        assert_eq!(zipkin.trace_id, "abababababababab");
        assert_eq!(zipkin.kind, None);
        assert_eq!(zipkin.duration, Some(1));
        assert_eq!(zipkin.tags.get(SPAN_KIND).map(String::as_str), Some("internal"));
        assert_eq!(zipkin.tags.get(OTEL_STATUS_CODE).map(String::as_str), Some("OK"));
        assert!(!zipkin.tags.contains_key(ERROR));
    }

    #[test]
    fn spans_with_invalid_ids_are_skipped() {
        let mut short = otlp_span();
        short.trace_id = vec![1; 8];
        let mut zero = otlp_span();
        zero.span_id = vec![0; 8];
        let mut no_parent = otlp_span();
        no_parent.parent_span_id = vec![0; 8];
        let out = spans(&[resource_spans(short), resource_spans(zero), resource_spans(no_parent)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].parent_id, None);
    }
}
