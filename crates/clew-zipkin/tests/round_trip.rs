#![allow(clippy::unwrap_used)]

//! Property tests: generated Zipkin spans survive Zipkin → OTLP → Zipkin (through JSON,
//! protobuf, and Clew's storage rows), and no input makes the decoders panic.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use clew_model::{assemble, rows_from_request};
use clew_zipkin::keys::*;
use clew_zipkin::{decode_json, decode_proto, proto, to_zipkin, Annotation, Endpoint, Kind, ZipkinSpan};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use prost::Message;
use serde_json::Value;

/// Tag keys the translation treats specially and reads back exactly.
const SPECIAL_KEYS: &[&str] = &[
    ERROR,
    OTEL_STATUS_CODE,
    OTEL_STATUS_DESCRIPTION,
    SPAN_KIND,
    W3C_TRACESTATE,
    OTEL_SCOPE_NAME,
    OTEL_SCOPE_VERSION,
    OTEL_LIBRARY_NAME,
    OTEL_LIBRARY_VERSION,
    DROPPED_ATTRIBUTES_COUNT,
    DROPPED_EVENTS_COUNT,
    DROPPED_LINKS_COUNT,
    "host.name",
    "process.pid",
    "service.version",
    "service.name",
    "http.status_code",
];

/// Tag keys that are the attributes endpoint fields and flags map to: documented as lossy
/// when a span has both the tag and the field.
const ENDPOINT_KEYS: &[&str] = &[
    PEER_SERVICE,
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NETWORK_LOCAL_ADDRESS,
    NETWORK_LOCAL_PORT,
    ZIPKIN_LOCAL_IPV6,
    ZIPKIN_REMOTE_IPV6,
    ZIPKIN_SHARED,
    ZIPKIN_DEBUG,
    ABSENT_START_TIME,
];

const SPECIAL_VALUES: &[&str] =
    &["", "true", "false", "ERROR", "OK", "UNSET", "STATUS_CODE_ERROR", "error", "internal", "client", "0", "3", "03"];

/// Microseconds up to about the year 2096.
const MAX_MICROS: u64 = 4_000_000_000_000_000;

fn trace_id() -> impl Strategy<Value = String> {
    prop_oneof![
        (1..=u64::MAX).prop_map(|low| format!("{low:016x}")),
        (1..=u64::MAX, any::<u64>()).prop_map(|(high, low)| format!("{high:016x}{low:016x}")),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    select(vec![Kind::Client, Kind::Server, Kind::Producer, Kind::Consumer])
}

fn endpoint() -> impl Strategy<Value = Option<Endpoint>> {
    (
        option::of("\\PC{1,12}"),
        option::of(any::<u32>().prop_map(|a| Ipv4Addr::from(a).to_string())),
        option::of(any::<u128>().prop_map(|a| Ipv6Addr::from(a).to_string())),
        option::of(1..=u16::MAX),
    )
        .prop_map(|(service_name, ipv4, ipv6, port)| {
            let endpoint = Endpoint { service_name, ipv4, ipv6, port };
            (endpoint != Endpoint::default()).then_some(endpoint)
        })
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ]
}

fn annotation_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        "[a-z|{}\":0-9,]{0,16}",
        // Events with attributes, as the collector and Clew write them.
        ("[a-z ]{0,8}", btree_map("[a-z.]{1,8}", json_scalar(), 0..4), 0..3u32).prop_map(
            |(name, attributes, dropped)| {
                format!("{name}|{}|{dropped}", serde_json::to_string(&attributes).unwrap())
            }
        ),
    ]
}

/// Tags with the keys the translation reads dense enough that their combinations occur.
fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop_oneof![
        3 => "[a-z]{1,6}(\\.[a-z_]{1,8}){0,2}",
        2 => select(SPECIAL_KEYS).prop_map(str::to_owned),
    ]
    .prop_filter("endpoint attribute keys", |key| !ENDPOINT_KEYS.contains(&key.as_str()));
    let value = || prop_oneof![3 => "\\PC{0,12}", 2 => select(SPECIAL_VALUES).prop_map(str::to_owned)];
    let special = |keys: &'static [&'static str], values: &'static [&'static str]| {
        vec((select(keys), select(values)), 0..=keys.len())
    };
    (
        btree_map(key, value(), 0..6),
        special(
            &[OTEL_STATUS_CODE, ERROR, OTEL_STATUS_DESCRIPTION],
            &["OK", "ERROR", "STATUS_CODE_OK", "unset", "true", "false", "", "boom"],
        ),
        special(
            &[OTEL_SCOPE_NAME, OTEL_SCOPE_VERSION, OTEL_LIBRARY_NAME, OTEL_LIBRARY_VERSION],
            &["", "io.a", "io.b", "1.0"],
        ),
        special(
            &[SPAN_KIND, W3C_TRACESTATE, DROPPED_LINKS_COUNT, "host.name"],
            &["", "internal", "a=1", "2", "02", "h"],
        ),
    )
        .prop_map(|(mut tags, status, scope, other)| {
            for (key, value) in status.into_iter().chain(scope).chain(other) {
                tags.insert(key.to_owned(), value.to_owned());
            }
            tags
        })
}

/// A Zipkin span in the form Zipkin (and Clew) writes: lowercase IDs, no zero or false values.
fn zipkin_span() -> impl Strategy<Value = ZipkinSpan> {
    let ids = (trace_id(), 1..=u64::MAX, option::of(1..=u64::MAX));
    let head = (
        option::of(kind()),
        option::of("\\PC{1,16}"),
        option::of(1..=MAX_MICROS),
        option::of(1..=1_000_000_000_000u64),
    );
    let context = (endpoint(), endpoint(), option::of(Just(true)), option::of(Just(true)));
    let body = (vec((0..=MAX_MICROS, annotation_value()), 0..4), tags());
    (ids, head, context, body).prop_map(
        |(
            (trace_id, id, parent),
            (kind, name, timestamp, duration),
            (local_endpoint, remote_endpoint, debug, shared),
            (annotations, tags),
        )| {
            ZipkinSpan {
                trace_id,
                parent_id: parent.filter(|&parent| parent != id).map(|parent| format!("{parent:016x}")),
                id: format!("{id:016x}"),
                kind,
                name,
                timestamp,
                duration,
                local_endpoint,
                remote_endpoint,
                annotations: annotations
                    .into_iter()
                    .map(|(timestamp, value)| Annotation { timestamp, value })
                    .collect(),
                tags,
                debug,
                shared,
            }
        },
    )
}

fn sorted(mut spans: Vec<ZipkinSpan>) -> Vec<ZipkinSpan> {
    spans.sort_by_cached_key(|span| serde_json::to_string(span).unwrap());
    spans
}

fn to_proto(span: &ZipkinSpan) -> proto::Span {
    let endpoint = |endpoint: &Endpoint| proto::Endpoint {
        service_name: endpoint.service_name.clone().unwrap_or_default(),
        ipv4: endpoint.ipv4.as_ref().map(|a| a.parse::<Ipv4Addr>().unwrap().octets().to_vec()).unwrap_or_default(),
        ipv6: endpoint.ipv6.as_ref().map(|a| a.parse::<Ipv6Addr>().unwrap().octets().to_vec()).unwrap_or_default(),
        port: endpoint.port.map(i32::from).unwrap_or_default(),
    };
    proto::Span {
        trace_id: hex::decode(&span.trace_id).unwrap(),
        parent_id: span.parent_id.as_ref().map(|p| hex::decode(p).unwrap()).unwrap_or_default(),
        id: hex::decode(&span.id).unwrap(),
        kind: match span.kind {
            None => proto::Kind::Unspecified,
            Some(Kind::Client) => proto::Kind::Client,
            Some(Kind::Server) => proto::Kind::Server,
            Some(Kind::Producer) => proto::Kind::Producer,
            Some(Kind::Consumer) => proto::Kind::Consumer,
        } as i32,
        name: span.name.clone().unwrap_or_default(),
        timestamp: span.timestamp.unwrap_or_default(),
        duration: span.duration.unwrap_or_default(),
        local_endpoint: span.local_endpoint.as_ref().map(endpoint),
        remote_endpoint: span.remote_endpoint.as_ref().map(endpoint),
        annotations: span
            .annotations
            .iter()
            .map(|a| proto::Annotation { timestamp: a.timestamp, value: a.value.clone() })
            .collect(),
        tags: span.tags.clone(),
        debug: span.debug.unwrap_or_default(),
        shared: span.shared.unwrap_or_default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_round_trip_gives_back_the_same_spans(spans in vec(zipkin_span(), 1..6)) {
        let body = serde_json::to_vec(&spans).unwrap();
        prop_assert_eq!(&serde_json::from_slice::<Vec<ZipkinSpan>>(&body).unwrap(), &spans);
        let request = decode_json(&body).unwrap();
        prop_assert_eq!(sorted(to_zipkin(&request.resource_spans)), sorted(spans.clone()));
        // And through storage rows, as the query side reads them back.
        let stored = assemble(rows_from_request(&request)).unwrap();
        prop_assert_eq!(sorted(to_zipkin(&stored)), sorted(spans));
    }

    #[test]
    fn proto_round_trip_gives_back_the_same_spans(spans in vec(zipkin_span(), 1..6)) {
        let body = proto::ListOfSpans { spans: spans.iter().map(to_proto).collect() }.encode_to_vec();
        let request = decode_proto(&body).unwrap();
        prop_assert_eq!(&request, &decode_json(&serde_json::to_vec(&spans).unwrap()).unwrap());
        prop_assert_eq!(sorted(to_zipkin(&request.resource_spans)), sorted(spans));
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(body in vec(any::<u8>(), 0..512)) {
        let _ = decode_json(&body);
        let _ = decode_proto(&body);
    }

    #[test]
    fn decoders_never_panic_on_damaged_spans(
        spans in vec(zipkin_span(), 1..3),
        at in any::<prop::sample::Index>(),
        cut in 0..16usize,
        insert in vec(any::<u8>(), 0..16),
    ) {
        let proto_body = proto::ListOfSpans { spans: spans.iter().map(to_proto).collect() }.encode_to_vec();
        for mut body in [serde_json::to_vec(&spans).unwrap(), proto_body] {
            let start = at.index(body.len());
            let end = (start + cut).min(body.len());
            body.splice(start..end, insert.iter().copied());
            if let Ok(request) = decode_json(&body) {
                let _ = to_zipkin(&request.resource_spans);
            }
            if let Ok(request) = decode_proto(&body) {
                let _ = to_zipkin(&request.resource_spans);
            }
        }
    }
}
