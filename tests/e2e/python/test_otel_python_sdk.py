"""End-to-end: the OpenTelemetry Python SDK exports a trace to a real Clew server.

A real `clew serve` process is started in a temporary directory. For each
exporter (OTLP/HTTP protobuf and OTLP/gRPC, each with and without gzip) the
SDK records a small trace -- a SERVER root span and a CLIENT child carrying
every attribute type the SDK accepts, events, links, an exception and an error
status -- and exports it. The trace is then read back from
`GET /api/v1/traces/<trace id>` and compared, field by field, with what the SDK
recorded (captured by an InMemorySpanExporter attached as a second span
processor).

Environment:
  CLEW_BIN  the clew binary to test (default: <repo root>/target/debug/clew)

Run:
  pip install -r tests/e2e/python/requirements.txt
  CLEW_BIN=target/debug/clew pytest -p no:cacheprovider tests/e2e/python
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import SpanContext, TraceFlags, TraceState

if TYPE_CHECKING:
    from conftest import ClewServer

# --------------------------------------------------------------------------
# What the SDK is asked to record
# --------------------------------------------------------------------------

RESOURCE_ATTRIBUTES = {
    "service.name": "clew-e2e-python",
    "service.version": "1.2.3",
    "deployment.environment.name": "e2e",
    "e2e.resource.int": 2**40,
    "e2e.resource.bool": True,
    "e2e.resource.double": 0.25,
    "e2e.resource.tags": ("blue", "green"),
}
RESOURCE_SCHEMA_URL = "https://opentelemetry.io/schemas/1.30.0"

SCOPE_NAME = "clew.e2e.python"
SCOPE_VERSION = "0.9.1"
SCOPE_SCHEMA_URL = "https://opentelemetry.io/schemas/1.29.0"
SCOPE_ATTRIBUTES = {"e2e.scope.flavour": "vanilla", "e2e.scope.rank": 3}

ROOT_TRACE_STATE = TraceState([("clew", "e2e-python"), ("vendor", "t61rcWkgMzE")])
LINK_TRACE_STATE = TraceState([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])

ROOT_NAME = "GET /checkout"
CHILD_NAME = "POST payments"

# Every kind of attribute value the Python SDK accepts, with edge values.
CHILD_ATTRIBUTES: dict[str, Any] = {
    "e2e.str": "héllo wörld ✓",
    "e2e.str.empty": "",
    "e2e.bool.true": True,
    "e2e.bool.false": False,
    "e2e.int": 42,
    "e2e.int.zero": 0,
    "e2e.int.negative": -7,
    "e2e.int.large": 2**62,
    "e2e.int.max": 2**63 - 1,
    "e2e.int.min": -(2**63),
    "e2e.double": 3.5,
    "e2e.double.fraction": 0.1,
    "e2e.double.negative": -1.25e-300,
    "e2e.double.integral": 2.0,
    "e2e.seq.str": ("a", "b", ""),
    "e2e.seq.int": (1, -2, 2**62),
    "e2e.seq.double": (0.5, -1.5, 3.0),
    "e2e.seq.bool": (True, False, True),
    "e2e.seq.empty": (),
    "e2e.bytes": b"\x00\x01\xfe\xffclew",
    "e2e.map": {"k.str": "v", "k.int": 7, "k.nested": {"deep": True}},
    "e2e.seq.mixed": ("a", 1, 2.5, False),
    "e2e.seq.nested": ((1, 2), ("x",)),
    "e2e.seq.with_none": ("a", None),
    "e2e.map.empty": {},
    "e2e.none": None,
}

# Doubles that JSON has no number for; OTLP JSON (the protobuf JSON mapping)
# writes them as the strings "NaN", "Infinity" and "-Infinity".
NON_FINITE_ATTRIBUTES = {
    "e2e.double.nan": float("nan"),
    "e2e.double.inf": float("inf"),
    "e2e.double.minus_inf": float("-inf"),
}
NON_FINITE_JSON = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}

# The limits make the SDK drop a little, so the dropped counts are non-zero.
SPAN_LIMITS = SpanLimits(max_events=2, max_links=1, max_link_attributes=2)


class PaymentDeclined(Exception):
    pass


class TraceStateSampler(Sampler):
    """Samples everything; root spans get ROOT_TRACE_STATE, children inherit it."""

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ) -> SamplingResult:
        parent = trace_api.get_current_span(parent_context).get_span_context()
        state = parent.trace_state if parent.is_valid else ROOT_TRACE_STATE
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)

    def get_description(self) -> str:
        return "TraceStateSampler"


class RecordingExporter(SpanExporter):
    """Delegates to a real exporter and remembers each export's result."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def remote_span_context() -> SpanContext:
    """A span context from "another service", carrying a TraceState."""
    ids = os.urandom(24)
    return SpanContext(
        trace_id=int.from_bytes(ids[:16], "big"),
        span_id=int.from_bytes(ids[16:], "big"),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=LINK_TRACE_STATE,
    )


@dataclass
class RecordedTrace:
    root: ReadableSpan
    child: ReadableSpan
    export_results: list[SpanExportResult]
    flushed: bool

    @property
    def trace_id(self) -> str:
        return format(self.root.context.trace_id, "032x")


def record_sample_trace(exporter: SpanExporter) -> RecordedTrace:
    """Records the sample trace with the SDK and exports it through `exporter`."""
    memory = InMemorySpanExporter()
    recording = RecordingExporter(exporter)
    provider = TracerProvider(
        resource=Resource.create(RESOURCE_ATTRIBUTES, schema_url=RESOURCE_SCHEMA_URL),
        sampler=TraceStateSampler(),
        span_limits=SPAN_LIMITS,
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(recording))
    tracer = provider.get_tracer(
        SCOPE_NAME, SCOPE_VERSION, schema_url=SCOPE_SCHEMA_URL, attributes=SCOPE_ATTRIBUTES
    )

    root = tracer.start_span(
        ROOT_NAME,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.response.status_code": 502},
        # max_links=1: the first link is dropped, the second one kept.
        links=[Link(remote_span_context()), Link(remote_span_context(), {"e2e.link": "kept"})],
    )
    for attempt in range(3):  # max_events=2: the first event is dropped.
        root.add_event("retry", {"attempt": attempt})

    child = tracer.start_span(
        CHILD_NAME,
        context=trace_api.set_span_in_context(root),
        kind=SpanKind.CLIENT,
        # max_link_attributes=2: one of these three attributes is dropped.
        links=[Link(remote_span_context(), {"e2e.link.a": "1", "e2e.link.b": 2, "e2e.link.c": True})],
    )
    for key, value in CHILD_ATTRIBUTES.items():
        child.set_attribute(key, value)
    child.add_event(
        "payment.request.sent",
        {"retry": False, "bytes.sent": 512, "ratio": 0.75, "tags": ("x", "y")},
    )
    try:
        raise PaymentDeclined("card declined")
    except PaymentDeclined as exc:
        child.record_exception(exc)
    child.set_status(Status(StatusCode.ERROR, "payment failed: card declined"))
    child.end()
    root.end()

    flushed = provider.force_flush(10_000)
    provider.shutdown()
    spans = {span.name: span for span in memory.get_finished_spans()}
    return RecordedTrace(spans[ROOT_NAME], spans[CHILD_NAME], recording.results, flushed)


# --------------------------------------------------------------------------
# Reading back from the server (the `clew` fixture is in conftest.py)
# --------------------------------------------------------------------------


def get_trace(server: ClewServer, trace_id: str) -> tuple[int, Any]:
    url = server.url(f"/api/v1/traces/{trace_id}")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def read_back(server: ClewServer, trace_id: str, span_count: int) -> dict:
    """Reads the trace once: an export Clew acknowledged is queryable at once, no waiting."""
    status, body = get_trace(server, trace_id)
    if status != 200 or len(all_spans(body)) < span_count:
        pytest.fail(
            f"trace {trace_id} is not readable with {span_count} spans right after its export was "
            f"acknowledged; answer: HTTP {status} {body!r}\nclew stderr:\n{server.log_tail()}"
        )
    return body


@dataclass
class ReturnedSpan:
    span: dict
    resource_spans: dict
    scope_spans: dict


def all_spans(doc: dict) -> list[ReturnedSpan]:
    return [
        ReturnedSpan(span, resource_spans, scope_spans)
        for resource_spans in doc.get("resourceSpans", [])
        for scope_spans in resource_spans.get("scopeSpans", [])
        for span in scope_spans.get("spans", [])
    ]


# --------------------------------------------------------------------------
# Comparing OTLP JSON with SDK values
# --------------------------------------------------------------------------


def hex_span_id(span_id: int) -> str:
    return format(span_id, "016x")


def hex_trace_id(trace_id: int) -> str:
    return format(trace_id, "032x")


def decode_any_value(value: dict, where: str) -> Any:
    """Decodes an OTLP JSON AnyValue into the Python value the SDK would hold.

    Strict about the JSON encoding: intValue must be a decimal string,
    doubleValue a number, boolValue a bool, bytesValue base64.
    """
    assert isinstance(value, dict), f"{where}: AnyValue is not an object: {value!r}"
    assert len(value) <= 1, f"{where}: AnyValue has more than one value field: {value!r}"
    if not value:
        return None
    (kind, inner), = value.items()
    if kind == "stringValue":
        assert isinstance(inner, str), f"{where}: stringValue is not a string: {inner!r}"
        return inner
    if kind == "boolValue":
        assert isinstance(inner, bool), f"{where}: boolValue is not a bool: {inner!r}"
        return inner
    if kind == "intValue":
        assert isinstance(inner, str) and re.fullmatch(r"-?[0-9]+", inner), (
            f"{where}: intValue must be a decimal string, got {inner!r}"
        )
        return int(inner)
    if kind == "doubleValue":
        if isinstance(inner, str) and inner in NON_FINITE_JSON:
            return NON_FINITE_JSON[inner]
        assert isinstance(inner, (int, float)) and not isinstance(inner, bool), (
            f"{where}: doubleValue is neither a number nor NaN/Infinity/-Infinity: {inner!r}"
        )
        return float(inner)
    if kind == "bytesValue":
        assert isinstance(inner, str), f"{where}: bytesValue is not a string: {inner!r}"
        return base64.b64decode(inner, validate=True)
    if kind == "arrayValue":
        return tuple(
            decode_any_value(v, f"{where}[{i}]") for i, v in enumerate(inner.get("values", []))
        )
    if kind == "kvlistValue":
        return decode_attributes(inner.get("values", []), where)
    raise AssertionError(f"{where}: unknown AnyValue field {kind!r}")


def decode_attributes(attributes: list, where: str) -> dict:
    decoded = {}
    for kv in attributes:
        key = kv["key"]
        assert key not in decoded, f"{where}: attribute {key!r} appears twice"
        decoded[key] = decode_any_value(kv.get("value", {}), f"{where}.{key}")
    return decoded


def typed(value: Any) -> Any:
    """Tags values with their type so that True != 1 and 2 != 2.0 in comparisons."""
    if isinstance(value, Mapping):
        return {key: typed(v) for key, v in value.items()}
    if isinstance(value, (str, bytes)) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, Sequence):
        return ("array", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "NaN")
    return (type(value).__name__, value)


def assert_attributes(actual: list, expected: Mapping[str, Any], where: str) -> None:
    assert typed(decode_attributes(actual, where)) == typed(dict(expected)), where


def as_nanos(value: Any, where: str) -> int:
    assert isinstance(value, str) and value.isdigit(), (
        f"{where}: expected a decimal string of nanoseconds, got {value!r}"
    )
    return int(value)


def wire_span(recorded: ReadableSpan):
    """The span as the SDK's OTLP encoder puts it on the wire (protobuf message)."""
    request = encode_spans([recorded])
    return request.resource_spans[0].scope_spans[0].spans[0]


# --------------------------------------------------------------------------
# Exporting through each exporter
# --------------------------------------------------------------------------

EXPORTERS = {
    "otlp-http": lambda server: HttpSpanExporter(
        endpoint=f"http://{server.otlp_http}/v1/traces", timeout=10
    ),
    "otlp-http-gzip": lambda server: HttpSpanExporter(
        endpoint=f"http://{server.otlp_http}/v1/traces", timeout=10,
        compression=HttpCompression.Gzip,
    ),
    "otlp-grpc": lambda server: GrpcSpanExporter(
        endpoint=f"http://{server.otlp_grpc}", insecure=True, timeout=10
    ),
    "otlp-grpc-gzip": lambda server: GrpcSpanExporter(
        endpoint=f"http://{server.otlp_grpc}", insecure=True, timeout=10,
        compression=grpc.Compression.Gzip,
    ),
}


@dataclass
class RoundTrip:
    recorded: RecordedTrace
    returned: dict  # span id (hex) -> ReturnedSpan

    @property
    def root(self) -> tuple[ReadableSpan, ReturnedSpan]:
        return self.recorded.root, self.returned[hex_span_id(self.recorded.root.context.span_id)]

    @property
    def child(self) -> tuple[ReadableSpan, ReturnedSpan]:
        return self.recorded.child, self.returned[hex_span_id(self.recorded.child.context.span_id)]

    def pairs(self) -> list[tuple[str, ReadableSpan, ReturnedSpan]]:
        return [("root", *self.root), ("child", *self.child)]


@pytest.fixture(scope="module", params=sorted(EXPORTERS))
def round_trip(request, clew: ClewServer) -> RoundTrip:
    recorded = record_sample_trace(EXPORTERS[request.param](clew))
    assert recorded.flushed, "TracerProvider.force_flush timed out"
    assert recorded.export_results and all(
        r is SpanExportResult.SUCCESS for r in recorded.export_results
    ), f"export failed: {recorded.export_results}; clew stderr:\n{clew.log_tail()}"

    doc = read_back(clew, recorded.trace_id, span_count=2)
    returned = {}
    for item in all_spans(doc):
        span_id = item.span.get("spanId")
        assert span_id not in returned, f"span {span_id} returned twice"
        returned[span_id] = item
    expected_ids = {hex_span_id(recorded.root.context.span_id), hex_span_id(recorded.child.context.span_id)}
    assert set(returned) == expected_ids, f"returned span ids {sorted(returned)} != {sorted(expected_ids)}"
    return RoundTrip(recorded, returned)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def test_sdk_recorded_what_the_test_asked_for(round_trip: RoundTrip):
    """Guards the test itself: the SDK kept every child attribute unchanged."""
    assert typed(dict(round_trip.recorded.child.attributes)) == typed(CHILD_ATTRIBUTES)
    assert round_trip.recorded.root.dropped_events == 1
    assert round_trip.recorded.root.dropped_links == 1
    assert round_trip.recorded.child.links[0].dropped_attributes == 1


def test_resource_round_trips(round_trip: RoundTrip):
    for label, recorded, returned in round_trip.pairs():
        resource = returned.resource_spans.get("resource", {})
        attributes = decode_attributes(resource.get("attributes", []), f"{label}.resource")
        assert attributes["service.name"] == "clew-e2e-python"
        assert_attributes(resource.get("attributes", []), recorded.resource.attributes, f"{label}.resource")
        assert resource.get("droppedAttributesCount", 0) == 0
        assert returned.resource_spans.get("schemaUrl") == RESOURCE_SCHEMA_URL


def test_scope_round_trips(round_trip: RoundTrip):
    for label, _recorded, returned in round_trip.pairs():
        scope = returned.scope_spans.get("scope", {})
        assert scope.get("name") == SCOPE_NAME, label
        assert scope.get("version") == SCOPE_VERSION, label
        assert_attributes(scope.get("attributes", []), SCOPE_ATTRIBUTES, f"{label}.scope")
        assert returned.scope_spans.get("schemaUrl") == SCOPE_SCHEMA_URL, label


def test_span_identity_and_parentage(round_trip: RoundTrip):
    root, returned_root = round_trip.root
    child, returned_child = round_trip.child
    trace_id = hex_trace_id(root.context.trace_id)

    assert returned_root.span["traceId"] == trace_id
    assert returned_child.span["traceId"] == trace_id
    assert returned_root.span["spanId"] == hex_span_id(root.context.span_id)
    assert returned_child.span["spanId"] == hex_span_id(child.context.span_id)
    assert returned_root.span.get("parentSpanId", "") == ""
    assert returned_child.span["parentSpanId"] == hex_span_id(root.context.span_id)

    assert returned_root.span["name"] == ROOT_NAME
    assert returned_child.span["name"] == CHILD_NAME
    assert returned_root.span["kind"] == 2  # SPAN_KIND_SERVER
    assert returned_child.span["kind"] == 3  # SPAN_KIND_CLIENT


def test_span_trace_state_and_flags(round_trip: RoundTrip):
    for label, recorded, returned in round_trip.pairs():
        assert returned.span.get("traceState", "") == "clew=e2e-python,vendor=t61rcWkgMzE", label
        # The flags the SDK's encoder puts on the wire (HAS_IS_REMOTE bit).
        assert returned.span.get("flags", 0) == wire_span(recorded).flags == 0x100, label


def test_span_timestamps_are_exact(round_trip: RoundTrip):
    for label, recorded, returned in round_trip.pairs():
        assert as_nanos(returned.span["startTimeUnixNano"], label) == recorded.start_time, label
        assert as_nanos(returned.span["endTimeUnixNano"], label) == recorded.end_time, label


def test_span_attributes_keep_their_otlp_types(round_trip: RoundTrip):
    root, returned_root = round_trip.root
    child, returned_child = round_trip.child
    assert_attributes(returned_child.span.get("attributes", []), CHILD_ATTRIBUTES, "child.attributes")
    assert_attributes(returned_root.span.get("attributes", []), root.attributes, "root.attributes")
    # Spot checks on the raw JSON encoding.
    raw = {kv["key"]: kv["value"] for kv in returned_child.span["attributes"]}
    assert raw["e2e.int.large"] == {"intValue": "4611686018427387904"}
    assert raw["e2e.int.min"] == {"intValue": "-9223372036854775808"}
    assert raw["e2e.bool.false"] == {"boolValue": False}
    assert raw["e2e.bytes"] == {"bytesValue": base64.b64encode(CHILD_ATTRIBUTES["e2e.bytes"]).decode()}


def assert_events(returned_events: list, recorded_events: Sequence, where: str) -> None:
    assert [e.get("name") for e in returned_events] == [e.name for e in recorded_events], where
    for i, (got, want) in enumerate(zip(returned_events, recorded_events)):
        assert as_nanos(got.get("timeUnixNano"), f"{where}[{i}]") == want.timestamp, f"{where}[{i}]"
        assert_attributes(got.get("attributes", []), want.attributes, f"{where}[{i}].attributes")
        assert got.get("droppedAttributesCount", 0) == want.dropped_attributes, f"{where}[{i}]"


def test_events_round_trip(round_trip: RoundTrip):
    root, returned_root = round_trip.root
    child, returned_child = round_trip.child
    assert [e.name for e in child.events] == ["payment.request.sent", "exception"]
    assert_events(returned_child.span.get("events", []), child.events, "child.events")
    assert_events(returned_root.span.get("events", []), root.events, "root.events")

    exception = returned_child.span["events"][1]
    exception_attributes = decode_attributes(exception["attributes"], "exception")
    assert exception_attributes["exception.type"].endswith("PaymentDeclined")
    assert exception_attributes["exception.message"] == "card declined"
    assert "Traceback" in exception_attributes["exception.stacktrace"]


def test_links_round_trip(round_trip: RoundTrip):
    for label, recorded, returned in round_trip.pairs():
        links = returned.span.get("links", [])
        wire_links = wire_span(recorded).links
        assert len(links) == len(recorded.links) == 1, label
        got, want, wire = links[0], recorded.links[0], wire_links[0]
        assert got["traceId"] == hex_trace_id(want.context.trace_id), label
        assert got["spanId"] == hex_span_id(want.context.span_id), label
        assert_attributes(got.get("attributes", []), want.attributes, f"{label}.links[0]")
        assert got.get("droppedAttributesCount", 0) == want.dropped_attributes, label
        assert got.get("flags", 0) == wire.flags == 0x300, label  # HAS_IS_REMOTE | IS_REMOTE
        # The Python SDK's OTLP encoder (1.45) does not put a link's TraceState
        # on the wire, so Clew can only echo what was sent; a later SDK that
        # sends it must see it come back. test_link_trace_state_round_trips
        # covers a link TraceState that is actually sent.
        assert got.get("traceState", "") == wire.trace_state, label


def test_status_round_trips(round_trip: RoundTrip):
    root, returned_root = round_trip.root
    child, returned_child = round_trip.child
    assert child.status.status_code is StatusCode.ERROR
    assert returned_child.span["status"].get("code", 0) == 2  # STATUS_CODE_ERROR
    assert returned_child.span["status"].get("message", "") == "payment failed: card declined"
    assert returned_root.span.get("status", {}).get("code", 0) == 0  # STATUS_CODE_UNSET
    assert returned_root.span.get("status", {}).get("message", "") == ""


def test_dropped_counts_round_trip(round_trip: RoundTrip):
    for label, recorded, returned in round_trip.pairs():
        assert returned.span.get("droppedAttributesCount", 0) == recorded.dropped_attributes, label
        assert returned.span.get("droppedEventsCount", 0) == recorded.dropped_events, label
        assert returned.span.get("droppedLinksCount", 0) == recorded.dropped_links, label


def test_link_trace_state_round_trips(clew: ClewServer):
    """A link TraceState sent over OTLP/HTTP protobuf comes back unchanged.

    The SDK's encoder drops link TraceState (see test_links_round_trip), so
    this test takes the request the SDK encodes and adds the link's TraceState
    before posting it, gzip-compressed, the way the HTTP exporter does.
    """
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "clew-e2e-python"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    link_context = remote_span_context()
    span = provider.get_tracer(SCOPE_NAME).start_span("linked", links=[Link(link_context)])
    span.end()
    provider.shutdown()
    (recorded,) = memory.get_finished_spans()

    request = encode_spans([recorded])
    request.resource_spans[0].scope_spans[0].spans[0].links[0].trace_state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    post = urllib.request.Request(
        f"http://{clew.otlp_http}/v1/traces",
        data=gzip.compress(request.SerializeToString()),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        method="POST",
    )
    with urllib.request.urlopen(post, timeout=10) as response:
        assert response.status == 200

    doc = read_back(clew, hex_trace_id(recorded.context.trace_id), span_count=1)
    (returned,) = all_spans(doc)
    (link,) = returned.span["links"]
    assert link["traceId"] == hex_trace_id(link_context.trace_id)
    assert link["spanId"] == hex_span_id(link_context.span_id)
    assert link.get("traceState") == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_non_finite_double_attributes_round_trip(clew: ClewServer):
    """NaN and the infinities are valid double attributes and must come back as such."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "clew-e2e-python"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(EXPORTERS["otlp-http"](clew)))
    span = provider.get_tracer(SCOPE_NAME).start_span("non-finite", attributes=NON_FINITE_ATTRIBUTES)
    span.end()
    provider.shutdown()
    (recorded,) = memory.get_finished_spans()

    doc = read_back(clew, hex_trace_id(recorded.context.trace_id), span_count=1)
    (returned,) = all_spans(doc)
    raw = {kv["key"]: kv["value"] for kv in returned.span.get("attributes", [])}
    assert raw == {
        "e2e.double.nan": {"doubleValue": "NaN"},
        "e2e.double.inf": {"doubleValue": "Infinity"},
        "e2e.double.minus_inf": {"doubleValue": "-Infinity"},
    }
