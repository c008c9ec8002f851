//! Whole-translation examples, through the public functions.

use std::collections::BTreeMap;

use clew_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::otlp::trace::v1::status::StatusCode;
use clew_model::otlp::trace::v1::{ResourceSpans, Span};
use clew_model::{assemble, rows_from_request, SERVICE_NAME};
use serde_json::Value;

use super::*;

/// The `POST /spans` example from Zipkin's API documentation (zipkin.io/zipkin-api).
const API_EXAMPLE: &str = r#"[
  {
    "id": "352bff9a74ca9ad2",
    "traceId": "5af7183fb1d4cf5f",
    "parentId": "6b221d5bc9e6496c",
    "name": "get /api",
    "timestamp": 1556604172355737,
    "duration": 1431,
    "kind": "SERVER",
    "localEndpoint": {
      "serviceName": "backend",
      "ipv4": "192.168.99.1",
      "port": 3306
    },
    "remoteEndpoint": {
      "ipv4": "172.19.0.2",
      "port": 58648
    },
    "tags": {
      "http.method": "GET",
      "http.path": "/api"
    }
  }
]"#;

/// A 128-bit trace: a client span and the server's shared half of it, with annotations and
/// Zipkin's own error tag.
const SHARED_RPC: &str = r#"[
  {
    "traceId": "4e441824ec2b6a44ffdc9bb9a6453df3",
    "id": "a1b2c3d4e5f60718",
    "kind": "CLIENT",
    "name": "post /orders",
    "timestamp": 1700000000000000,
    "duration": 2500,
    "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1"},
    "remoteEndpoint": {"serviceName": "orders", "ipv4": "10.0.0.2", "ipv6": "2001:db8::c001", "port": 8080},
    "tags": {"http.method": "POST"}
  },
  {
    "traceId": "4e441824ec2b6a44ffdc9bb9a6453df3",
    "id": "a1b2c3d4e5f60718",
    "kind": "SERVER",
    "shared": true,
    "debug": true,
    "name": "post /orders",
    "timestamp": 1700000000000400,
    "duration": 1800,
    "localEndpoint": {"serviceName": "orders", "ipv6": "2001:db8::c001", "port": 8080},
    "annotations": [
      {"timestamp": 1700000000000500, "value": "wr"},
      {"timestamp": 1700000000002100, "value": "ws"}
    ],
    "tags": {"error": "connection reset", "otel.scope.name": "io.grpc", "host.name": "orders-1"}
  }
]"#;

fn string_value(value: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) })
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn only_span(resource_spans: &[ResourceSpans]) -> &Span {
    assert_eq!(resource_spans.len(), 1);
    assert_eq!(resource_spans[0].scope_spans.len(), 1);
    assert_eq!(resource_spans[0].scope_spans[0].spans.len(), 1);
    &resource_spans[0].scope_spans[0].spans[0]
}

fn json_round_trip(body: &str) -> Vec<ZipkinSpan> {
    to_zipkin(&decode_json(body.as_bytes()).unwrap().resource_spans)
}

fn stored_round_trip(body: &str) -> Vec<ZipkinSpan> {
    let rows = rows_from_request(&decode_json(body.as_bytes()).unwrap());
    to_zipkin(&assemble(rows).unwrap())
}

#[test]
fn api_example_becomes_the_otlp_span_the_collector_makes() {
    let request = decode_json(API_EXAMPLE.as_bytes()).unwrap();
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(
        resource.attributes,
        vec![KeyValue { key: SERVICE_NAME.into(), value: string_value("backend"), ..Default::default() }]
    );
    assert_eq!(request.resource_spans[0].scope_spans[0].scope, None);
    let span = only_span(&request.resource_spans);
    assert_eq!(span.trace_id, hex::decode("00000000000000005af7183fb1d4cf5f").unwrap());
    assert_eq!(span.span_id, hex::decode("352bff9a74ca9ad2").unwrap());
    assert_eq!(span.parent_span_id, hex::decode("6b221d5bc9e6496c").unwrap());
    assert_eq!(span.name, "get /api");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.start_time_unix_nano, 1_556_604_172_355_737_000);
    assert_eq!(span.end_time_unix_nano, 1_556_604_172_355_737_000 + 1_431_000);
    assert_eq!(span.status, Some(Default::default()));
    let attributes: BTreeMap<&str, &any_value::Value> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_ref().unwrap().value.as_ref().unwrap()))
        .collect();
    let s = |v: &str| any_value::Value::StringValue(v.to_owned());
    let expected: BTreeMap<&str, any_value::Value> = [
        ("http.method", s("GET")),
        ("http.path", s("/api")),
        (keys::NETWORK_LOCAL_ADDRESS, s("192.168.99.1")),
        (keys::NETWORK_LOCAL_PORT, any_value::Value::IntValue(3306)),
        (keys::NETWORK_PEER_ADDRESS, s("172.19.0.2")),
        (keys::NETWORK_PEER_PORT, any_value::Value::IntValue(58648)),
    ]
    .into();
    assert_eq!(attributes, expected.iter().map(|(k, v)| (*k, v)).collect());
}

#[test]
fn api_example_comes_back_as_the_same_json() {
    let expected: Value = serde_json::from_str(API_EXAMPLE).unwrap();
    assert_eq!(serde_json::to_value(json_round_trip(API_EXAMPLE)).unwrap(), expected);
    assert_eq!(serde_json::to_value(stored_round_trip(API_EXAMPLE)).unwrap(), expected);
}

#[test]
fn shared_server_span_with_annotations_and_error_tag() {
    let request = decode_json(SHARED_RPC.as_bytes()).unwrap();
    // Two services, so two resources; the server's host.name tag belongs to its resource.
    assert_eq!(request.resource_spans.len(), 2);
    let server = &request.resource_spans[1];
    let resource = &server.resource.as_ref().unwrap().attributes;
    assert_eq!(attribute(resource, SERVICE_NAME), Some(&any_value::Value::StringValue("orders".into())));
    assert_eq!(attribute(resource, "host.name"), Some(&any_value::Value::StringValue("orders-1".into())));
    assert_eq!(server.scope_spans[0].scope.as_ref().unwrap().name, "io.grpc");
    let span = &server.scope_spans[0].spans[0];
    assert_eq!(span.trace_id, hex::decode("4e441824ec2b6a44ffdc9bb9a6453df3").unwrap());
    assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
    assert_eq!(span.status.as_ref().unwrap().message, "connection reset");
    assert_eq!(attribute(&span.attributes, "error"), Some(&any_value::Value::StringValue("connection reset".into())));
    assert_eq!(attribute(&span.attributes, keys::ZIPKIN_SHARED), Some(&any_value::Value::BoolValue(true)));
    assert_eq!(attribute(&span.attributes, keys::ZIPKIN_DEBUG), Some(&any_value::Value::BoolValue(true)));
    assert_eq!(
        attribute(&span.attributes, keys::NETWORK_LOCAL_ADDRESS),
        Some(&any_value::Value::StringValue("2001:db8::c001".into()))
    );
    let events: Vec<(u64, &str)> = span.events.iter().map(|e| (e.time_unix_nano, e.name.as_str())).collect();
    assert_eq!(events, vec![(1_700_000_000_000_500_000, "wr"), (1_700_000_000_002_100_000, "ws")]);
    let client = only_span(&request.resource_spans[..1]);
    assert_eq!(
        attribute(&client.attributes, keys::PEER_SERVICE),
        Some(&any_value::Value::StringValue("orders".into()))
    );
    assert_eq!(
        attribute(&client.attributes, keys::NETWORK_PEER_ADDRESS),
        Some(&any_value::Value::StringValue("10.0.0.2".into()))
    );
    assert_eq!(
        attribute(&client.attributes, keys::ZIPKIN_REMOTE_IPV6),
        Some(&any_value::Value::StringValue("2001:db8::c001".into()))
    );

    let expected: Value = serde_json::from_str(SHARED_RPC).unwrap();
    assert_eq!(serde_json::to_value(json_round_trip(SHARED_RPC)).unwrap(), expected);
    assert_eq!(serde_json::to_value(stored_round_trip(SHARED_RPC)).unwrap(), expected);
}

#[test]
fn error_tags_in_every_spelling_set_the_status_and_come_back_unchanged() {
    for (tags, code, message) in [
        (r#"{"error":"timeout"}"#, StatusCode::Error, "timeout"),
        (r#"{"error":"true"}"#, StatusCode::Error, ""),
        (r#"{"error":""}"#, StatusCode::Error, ""),
        (r#"{"otel.status_code":"ERROR","error":"timeout"}"#, StatusCode::Error, "timeout"),
        (
            r#"{"otel.status_code":"STATUS_CODE_ERROR","error":"true","otel.status_description":"x"}"#,
            StatusCode::Error,
            "x",
        ),
        (r#"{"otel.status_code":"OK"}"#, StatusCode::Ok, ""),
        (r#"{"error":"false"}"#, StatusCode::Unset, ""),
    ] {
        let body = format!(r#"[{{"traceId":"0000000000000001","id":"0000000000000002","timestamp":1,"tags":{tags}}}]"#);
        let request = decode_json(body.as_bytes()).unwrap();
        let status = only_span(&request.resource_spans).status.clone().unwrap();
        assert_eq!((status.code, status.message.as_str()), (code as i32, message), "{tags}");
        let back = to_zipkin(&request.resource_spans);
        assert_eq!(serde_json::to_value(&back[0].tags).unwrap(), serde_json::from_str::<Value>(tags).unwrap());
    }
}

#[test]
fn spans_without_timestamp_service_or_kind() {
    let body =
        r#"[{"traceId":"0000000000000001","id":"0000000000000002","duration":7,"tags":{"span.kind":"internal"}}]"#;
    let request = decode_json(body.as_bytes()).unwrap();
    assert_eq!(request.resource_spans[0].resource, None);
    let span = only_span(&request.resource_spans);
    assert_eq!((span.start_time_unix_nano, span.end_time_unix_nano), (0, 7000));
    assert_eq!(span.kind, SpanKind::Internal as i32);
    assert_eq!(attribute(&span.attributes, keys::ABSENT_START_TIME), Some(&any_value::Value::BoolValue(true)));
    assert_eq!(serde_json::to_value(json_round_trip(body)).unwrap(), serde_json::from_str::<Value>(body).unwrap());
    let no_kind = r#"[{"traceId":"0000000000000001","id":"0000000000000002","timestamp":5}]"#;
    let request = decode_json(no_kind.as_bytes()).unwrap();
    assert_eq!(only_span(&request.resource_spans).kind, SpanKind::Unspecified as i32);
}

#[test]
fn spans_group_by_service_resource_tags_and_scope_in_first_seen_order() {
    let span = |id: u8, service: &str, tags: &str| {
        let ids = format!(r#""traceId":"00000000000000aa","id":"00000000000000{id:02x}""#);
        format!(r#"{{{ids},"localEndpoint":{{"serviceName":"{service}"}},"tags":{tags}}}"#)
    };
    let body = format!(
        "[{}]",
        [
            span(1, "a", r#"{"otel.scope.name":"x"}"#),
            span(2, "b", "{}"),
            span(3, "a", r#"{"otel.scope.name":"y"}"#),
            span(4, "a", r#"{"otel.scope.name":"x"}"#),
            span(5, "a", r#"{"service.version":"2"}"#),
        ]
        .join(",")
    );
    let request = decode_json(body.as_bytes()).unwrap();
    let shape: Vec<Vec<(String, Vec<u8>)>> = request
        .resource_spans
        .iter()
        .map(|rs| {
            rs.scope_spans
                .iter()
                .map(|ss| {
                    let name = ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                    (name, ss.spans.iter().map(|s| s.span_id[7]).collect())
                })
                .collect()
        })
        .collect();
    let expected = vec![
        vec![("x".to_owned(), vec![1, 4]), ("y".to_owned(), vec![3])],
        vec![(String::new(), vec![2])],
        vec![(String::new(), vec![5])],
    ];
    assert_eq!(shape, expected);
}

#[test]
fn protobuf_list_of_spans_decodes_like_json() {
    let example = &serde_json::from_str::<Vec<ZipkinSpan>>(API_EXAMPLE).unwrap()[0];
    let list = proto::ListOfSpans {
        spans: vec![proto::Span {
            trace_id: hex::decode(&example.trace_id).unwrap(),
            parent_id: hex::decode(example.parent_id.as_ref().unwrap()).unwrap(),
            id: hex::decode(&example.id).unwrap(),
            kind: proto::Kind::Server as i32,
            name: "get /api".into(),
            timestamp: 1_556_604_172_355_737,
            duration: 1431,
            local_endpoint: Some(proto::Endpoint {
                service_name: "backend".into(),
                ipv4: vec![192, 168, 99, 1],
                port: 3306,
                ..Default::default()
            }),
            remote_endpoint: Some(proto::Endpoint { ipv4: vec![172, 19, 0, 2], port: 58648, ..Default::default() }),
            tags: [("http.method", "GET"), ("http.path", "/api")].map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
            ..Default::default()
        }],
    };
    let from_proto = decode_proto(&list.encode_to_vec()).unwrap();
    assert_eq!(from_proto, decode_json(API_EXAMPLE.as_bytes()).unwrap());
    assert_eq!(decode_proto(&[]).unwrap().resource_spans, vec![]);
}

#[test]
fn protobuf_errors_say_what_is_wrong() {
    let span = proto::Span { trace_id: vec![1; 5], id: vec![2; 8], ..Default::default() };
    let body = proto::ListOfSpans { spans: vec![span] }.encode_to_vec();
    assert_eq!(decode_proto(&body).unwrap_err().to_string(), "span 0: traceId must be 8 or 16 bytes, got 5");
    let span = proto::Span { trace_id: vec![1; 8], id: vec![2; 8], kind: 9, ..Default::default() };
    let body = proto::ListOfSpans { spans: vec![span] }.encode_to_vec();
    assert_eq!(
        decode_proto(&body).unwrap_err().to_string(),
        "span 0: kind must be 0 (absent), 1 (CLIENT), 2 (SERVER), 3 (PRODUCER) or 4 (CONSUMER), got 9"
    );
    let message = decode_proto(b"\x0a\xff").unwrap_err().to_string();
    assert!(message.starts_with("invalid protobuf (expected zipkin.proto3.ListOfSpans): "), "{message}");
}

#[test]
fn validation_errors_name_the_span() {
    let cases = [
        (r#"{"traceId":"xyz","id":"0000000000000002"}"#, r#"traceId must be 16 or 32 hex characters, got "xyz""#),
        (r#"{"traceId":"00000000000000000000000000000000","id":"0000000000000002"}"#, "traceId must not be all zeros"),
        (r#"{"traceId":"0000000000000001","id":"02"}"#, r#"id must be 16 hex characters, got "02""#),
        (r#"{"traceId":"0000000000000001","id":"0000000000000000"}"#, "id must not be all zeros"),
        (
            r#"{"traceId":"0000000000000001","id":"0000000000000002","parentId":"x"}"#,
            r#"parentId must be 16 hex characters, got "x""#,
        ),
        (
            r#"{"traceId":"0000000000000001","id":"0000000000000002","localEndpoint":{"ipv4":"::1"}}"#,
            r#"localEndpoint.ipv4 must be an IPv4 address like "192.168.99.1", got "::1""#,
        ),
        (
            r#"{"traceId":"0000000000000001","id":"0000000000000002","timestamp":18446744073709552}"#,
            "timestamp 18446744073709552 is past the year 2554 (microseconds since 1970)",
        ),
        (
            r#"{"traceId":"0000000000000001","id":"0000000000000002","timestamp":18446744073709551,"duration":1}"#,
            "timestamp + duration (18446744073709551 + 1 microseconds) is past the year 2554",
        ),
    ];
    for (span, message) in cases {
        let body = format!(r#"[{{"traceId":"0000000000000001","id":"0000000000000009"}},{span}]"#);
        assert_eq!(decode_json(body.as_bytes()).unwrap_err().to_string(), format!("span 1: {message}"));
    }
}

#[test]
fn parent_equal_to_self_or_all_zero_is_no_parent() {
    for parent in ["0000000000000002", "0000000000000000"] {
        let body = format!(r#"[{{"traceId":"0000000000000001","id":"0000000000000002","parentId":"{parent}"}}]"#);
        let request = decode_json(body.as_bytes()).unwrap();
        assert!(only_span(&request.resource_spans).parent_span_id.is_empty());
    }
}

#[test]
fn content_types() {
    assert_eq!(JSON_CONTENT_TYPE, "application/json");
    assert_eq!(PROTO_CONTENT_TYPE, "application/x-protobuf");
}
