//! Attribute and tag keys the translation reads and writes.

/// Resource attribute holding the local endpoint's service name.
pub use clew_model::SERVICE_NAME;

/// Remote endpoint service name.
pub const PEER_SERVICE: &str = "peer.service";
/// Remote endpoint IP address (IPv4 if the endpoint has one, else IPv6).
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
/// Remote endpoint port (int).
pub const NETWORK_PEER_PORT: &str = "network.peer.port";
/// Local endpoint IP address (IPv4 if the endpoint has one, else IPv6).
pub const NETWORK_LOCAL_ADDRESS: &str = "network.local.address";
/// Local endpoint port (int).
pub const NETWORK_LOCAL_PORT: &str = "network.local.port";
/// The local endpoint's IPv6 address when it has an IPv4 address too.
pub const ZIPKIN_LOCAL_IPV6: &str = "zipkin.local_endpoint.ipv6";
/// The remote endpoint's IPv6 address when it has an IPv4 address too.
pub const ZIPKIN_REMOTE_IPV6: &str = "zipkin.remote_endpoint.ipv6";
/// Bool attribute: the Zipkin span was `shared` (an RPC server span sharing its client's ID).
pub const ZIPKIN_SHARED: &str = "zipkin.shared";
/// Bool attribute: the Zipkin span was `debug` (forced sampling).
pub const ZIPKIN_DEBUG: &str = "zipkin.debug";
/// Bool attribute: the Zipkin span had no `timestamp`, so the OTLP start time is 0.
pub const ABSENT_START_TIME: &str = "otel.zipkin.absentField.startTime";

/// Status code tag: `OK` or `ERROR`.
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Status message tag (read; written only for OK spans, ERROR messages go in [`ERROR`]).
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";
/// Zipkin's error tag: its presence marks a failed span, its value is the message.
pub const ERROR: &str = "error";
/// Instrumentation scope name tag.
pub const OTEL_SCOPE_NAME: &str = "otel.scope.name";
/// Instrumentation scope version tag.
pub const OTEL_SCOPE_VERSION: &str = "otel.scope.version";
/// Deprecated instrumentation scope name tag, still read.
pub const OTEL_LIBRARY_NAME: &str = "otel.library.name";
/// Deprecated instrumentation scope version tag, still read.
pub const OTEL_LIBRARY_VERSION: &str = "otel.library.version";
/// Tag carrying the kind of a span Zipkin has no kind for; only `internal` is used.
pub const SPAN_KIND: &str = "span.kind";
/// Tag carrying the W3C trace state.
pub const W3C_TRACESTATE: &str = "w3c.tracestate";
/// Tag carrying the span's dropped attribute count.
pub const DROPPED_ATTRIBUTES_COUNT: &str = "otel.dropped_attributes_count";
/// Tag carrying the span's dropped event count.
pub const DROPPED_EVENTS_COUNT: &str = "otel.dropped_events_count";
/// Tag carrying the span's dropped link count, including the links Zipkin cannot carry.
pub const DROPPED_LINKS_COUNT: &str = "otel.dropped_links_count";

/// Tag key prefixes that name resource attributes; such tags go to the OTLP resource.
pub const RESOURCE_TAG_PREFIXES: &[&str] = &[
    "host.",
    "os.",
    "process.",
    "container.",
    "k8s.",
    "cloud.",
    "telemetry.sdk.",
    "telemetry.distro.",
    "deployment.",
    "device.",
];

/// Tag keys, besides [`RESOURCE_TAG_PREFIXES`], that name resource attributes.
pub const RESOURCE_TAG_KEYS: &[&str] = &["service.namespace", "service.version", "service.instance.id"];

/// Whether a Zipkin tag with this key belongs to the OTLP resource rather than the span.
pub fn is_resource_key(key: &str) -> bool {
    RESOURCE_TAG_KEYS.contains(&key) || RESOURCE_TAG_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}
