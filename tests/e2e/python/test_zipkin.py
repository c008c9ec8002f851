"""End-to-end: a real Zipkin client (py_zipkin) reports a trace to a real Clew server.

A real `clew serve` process is started in a temporary directory. py_zipkin
records a small trace -- a SERVER root span and a CLIENT child with a tag, an
annotation and a remote endpoint -- and its transport POSTs the spans as Zipkin
v2 JSON to `/zipkin/api/v2/spans` on the HTTP API listener. The trace is then
read back through the three query APIs Clew serves: Zipkin
(`/zipkin/api/v2`), Jaeger (`/jaeger/api`) and Tempo (`/tempo/api`), by ID and
by search.

Environment:
  CLEW_BIN  the clew binary to test (default: <repo root>/target/debug/clew)

Run:
  pip install -r tests/e2e/python/requirements.txt
  CLEW_BIN=target/debug/clew pytest -p no:cacheprovider tests/e2e/python/test_zipkin.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import pytest
import requests
from py_zipkin import Kind
from py_zipkin.encoding import Encoding
from py_zipkin.transport import BaseTransportHandler
from py_zipkin.zipkin import zipkin_span

if TYPE_CHECKING:
    from conftest import ClewServer


SERVICE = "zipkin-e2e-frontend"
REMOTE_SERVICE = "zipkin-e2e-payments"
ROOT_NAME = "get /checkout"
CHILD_NAME = "post /pay"
ROOT_TAGS = {"http.method": "GET", "http.path": "/checkout"}
CHILD_TAGS = {"payment.method": "card"}
ANNOTATION = "payment.retry"

T = TypeVar("T")

# --------------------------------------------------------------------------
# Reporting with py_zipkin
# --------------------------------------------------------------------------


class ClewTransport(BaseTransportHandler):
    """POSTs py_zipkin's encoded spans to Clew and remembers each answer."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.answers: list[requests.Response] = []

    def get_max_payload_bytes(self) -> Optional[int]:
        return None

    def send(self, payload: bytes | str) -> None:
        body = payload.encode() if isinstance(payload, str) else payload
        self.answers.append(
            requests.post(self.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        )


@dataclass
class ReportedTrace:
    trace_id: str
    root_id: str
    child_id: str
    answers: list[requests.Response]


@pytest.fixture(scope="module")
def reported(clew: ClewServer) -> ReportedTrace:
    transport = ClewTransport(clew.url("/zipkin/api/v2/spans"))
    with zipkin_span(
        service_name=SERVICE,
        span_name=ROOT_NAME,
        kind=Kind.SERVER,
        transport_handler=transport,
        encoding=Encoding.V2_JSON,
        sample_rate=100.0,
        use_128bit_trace_id=True,
        binary_annotations=dict(ROOT_TAGS),
    ) as root:
        # A child of measurable duration, given rather than waited for.
        with zipkin_span(
            service_name=SERVICE, span_name=CHILD_NAME, kind=Kind.CLIENT, timestamp=time.time(), duration=0.002
        ) as child:
            child.update_binary_annotations(dict(CHILD_TAGS))
            child.add_annotation(ANNOTATION)
            child.add_sa_binary_annotation(port=9000, service_name=REMOTE_SERVICE, host="10.0.0.2")
            child_id = child.zipkin_attrs.span_id
        root_attrs = root.zipkin_attrs
    assert transport.answers, "py_zipkin sent nothing"
    for answer in transport.answers:
        assert answer.status_code == 202, (
            f"POST /zipkin/api/v2/spans answered {answer.status_code} {answer.text!r}; "
            f"clew stderr:\n{clew.log_tail()}"
        )
        assert answer.text == ""
    return ReportedTrace(root_attrs.trace_id, root_attrs.span_id, child_id, transport.answers)


# --------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------


def read(what: str, server: ClewServer, attempt: Callable[[], Optional[T]]) -> T:
    """Calls `attempt` once: a 202 means the spans are stored and readable at once, so there is
    nothing to wait for."""
    try:
        result = attempt()
    except (AssertionError, requests.RequestException, ValueError, KeyError, IndexError) as err:
        pytest.fail(f"{what}: {err!r}; clew stderr:\n{server.log_tail()}")
    if result is None:
        pytest.fail(f"{what}: not found right after the 202; clew stderr:\n{server.log_tail()}")
    return result


def get_json(server: ClewServer, path: str, **params: Any) -> Any:
    response = requests.get(server.url(path), params=params, timeout=10)
    assert response.status_code == 200, f"GET {path} answered {response.status_code} {response.text!r}"
    return response.json()


def same_trace_id(a: str, b: str) -> bool:
    return a.lower().lstrip("0") == b.lower().lstrip("0")


def test_the_spans_are_accepted(reported: ReportedTrace):
    assert len(reported.trace_id) == 32
    assert all(answer.status_code == 202 for answer in reported.answers)


def test_zipkin_trace_by_id(clew: ClewServer, reported: ReportedTrace):
    def attempt():
        spans = get_json(clew, f"/zipkin/api/v2/trace/{reported.trace_id}")
        return spans if len(spans) == 2 else None

    spans = {span["id"]: span for span in read("Zipkin trace by ID", clew, attempt)}
    root, child = spans[reported.root_id], spans[reported.child_id]
    for span in (root, child):
        assert span["traceId"] == reported.trace_id
        assert span["localEndpoint"]["serviceName"] == SERVICE
        assert span["timestamp"] > 0
    assert root["name"] == ROOT_NAME
    assert root["kind"] == "SERVER"
    assert "parentId" not in root
    assert root["tags"] == ROOT_TAGS
    assert child["name"] == CHILD_NAME
    assert child["kind"] == "CLIENT"
    assert child["parentId"] == reported.root_id
    assert child["tags"] == CHILD_TAGS
    assert [a["value"] for a in child["annotations"]] == [ANNOTATION]
    assert child["remoteEndpoint"] == {"serviceName": REMOTE_SERVICE, "ipv4": "10.0.0.2", "port": 9000}
    assert child["duration"] >= 2000


def test_zipkin_search_and_names(clew: ClewServer, reported: ReportedTrace):
    def attempt():
        traces = get_json(clew, "/zipkin/api/v2/traces", serviceName=SERVICE, annotationQuery=ANNOTATION)
        return traces or None

    traces = read("Zipkin search by annotation", clew, attempt)
    assert [trace[0]["traceId"] for trace in traces] == [reported.trace_id]
    assert SERVICE in get_json(clew, "/zipkin/api/v2/services")
    assert sorted(get_json(clew, "/zipkin/api/v2/spans", serviceName=SERVICE)) == sorted([ROOT_NAME, CHILD_NAME])
    assert get_json(clew, "/zipkin/api/v2/remoteServices", serviceName=SERVICE) == [REMOTE_SERVICE]
    # Not found is plain text.
    missing = requests.get(clew.url("/zipkin/api/v2/trace/" + "ab" * 16), timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("text/plain")


def test_jaeger_trace_by_id(clew: ClewServer, reported: ReportedTrace):

    def attempt():
        body = get_json(clew, f"/jaeger/api/traces/{reported.trace_id}")
        return body["data"][0] if len(body["data"][0]["spans"]) == 2 else None

    trace = read("Jaeger trace by ID", clew, attempt)
    assert same_trace_id(trace["traceID"], reported.trace_id)
    spans = {span["spanID"]: span for span in trace["spans"]}
    root, child = spans[reported.root_id], spans[reported.child_id]
    assert root["operationName"] == ROOT_NAME
    assert child["operationName"] == CHILD_NAME
    for span in (root, child):
        assert trace["processes"][span["processID"]]["serviceName"] == SERVICE
    root_tags = {tag["key"]: tag["value"] for tag in root["tags"]}
    child_tags = {tag["key"]: tag["value"] for tag in child["tags"]}
    assert root_tags.items() >= ROOT_TAGS.items()
    assert root_tags["span.kind"] == "server"
    assert child_tags.items() >= CHILD_TAGS.items()
    assert child_tags["span.kind"] == "client"
    assert child_tags["peer.service"] == REMOTE_SERVICE
    assert child["references"] == [
        {"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": reported.root_id}
    ]


def test_jaeger_search_by_service(clew: ClewServer, reported: ReportedTrace):

    def attempt():
        body = get_json(clew, "/jaeger/api/traces", service=SERVICE, lookback="1h")
        ids = [trace["traceID"] for trace in body["data"]]
        return ids or None

    ids = read("Jaeger search by service", clew, attempt)
    assert len(ids) == 1 and same_trace_id(ids[0], reported.trace_id), ids
    assert SERVICE in get_json(clew, "/jaeger/api/services")["data"]


def test_tempo_trace_by_id(clew: ClewServer, reported: ReportedTrace):

    def attempt():
        body = get_json(clew, f"/tempo/api/traces/{reported.trace_id}")
        spans = [s for b in body["batches"] for ss in b.get("scopeSpans", []) for s in ss.get("spans", [])]
        return body if len(spans) == 2 else None

    body = read("Tempo trace by ID", clew, attempt)
    services = set()
    names = set()
    for batch in body["batches"]:
        attributes = {kv["key"]: kv["value"] for kv in batch["resource"]["attributes"]}
        services.add(attributes["service.name"]["stringValue"])
        for scope_spans in batch["scopeSpans"]:
            for span in scope_spans["spans"]:
                assert same_trace_id(span["traceId"], reported.trace_id)
                names.add(span["name"])
    assert services == {SERVICE}
    assert names == {ROOT_NAME, CHILD_NAME}


def test_tempo_traceql_search(clew: ClewServer, reported: ReportedTrace):

    def attempt():
        body = get_json(clew, "/tempo/api/search", q=f'{{ resource.service.name = "{SERVICE}" }}')
        return body.get("traces") or None

    traces = read("Tempo TraceQL search", clew, attempt)
    assert len(traces) == 1 and same_trace_id(traces[0]["traceID"], reported.trace_id), traces
    assert traces[0]["rootServiceName"] == SERVICE
    assert traces[0]["rootTraceName"] == ROOT_NAME
