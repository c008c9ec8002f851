"""End-to-end: the OpenTelemetry Python SDK configured exactly as GitLab's tracing
documentation says, against a Clew that requires authentication.

An admin (the bootstrap token) creates a namespace and a project, enables tracing
and issues a project access token with the scopes GitLab's documentation lists
(`read_api`, `read_observability`, `write_observability`). The SDK is then set
up only through the documented environment variables:

    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://<clew>/v3/<namespace-id>/<project-id>/ingest/traces
    OTEL_EXPORTER_OTLP_TRACES_HEADERS=PRIVATE-TOKEN=<token>

and the exported trace is read back with the same token. Without the header, or
with tracing disabled, the SDK's export fails and nothing is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from conftest import BOOTSTRAP_ADMIN_TOKEN

if TYPE_CHECKING:
    from conftest import ClewServer

ADMIN = {"PRIVATE-TOKEN": BOOTSTRAP_ADMIN_TOKEN}


def api(clew: ClewServer, method: str, path: str, token: dict[str, str] = ADMIN, **kwargs) -> requests.Response:
    return requests.request(method, clew.url(path), headers=token, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def project(clew_auth: ClewServer) -> dict:
    namespace = api(clew_auth, "POST", "/api/v1/namespaces", json={"path": "gitlab-org"})
    assert namespace.status_code == 201, namespace.text
    ns_id = namespace.json()["id"]
    project = api(clew_auth, "POST", f"/api/v1/namespaces/{ns_id}/projects", json={"path": "shop"})
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    token = api(clew_auth, "POST", f"/api/v1/projects/{project_id}/tokens",
                json={"name": "otel", "scopes": ["read_api", "read_observability", "write_observability"]})
    assert token.status_code == 201, token.text
    return {"namespace_id": ns_id, "project_id": project_id, "token": token.json()["secret"]}


def export_one_span(monkeypatch, clew: ClewServer, project: dict, headers: str | None, name: str) -> tuple[SpanExportResult, str]:
    endpoint = f"http://{clew.otlp_http}/v3/{project['namespace_id']}/{project['project_id']}/ingest/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    if headers is None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", raising=False)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", headers)
    exporter = OTLPSpanExporter()  # configured by the environment alone
    results: list[SpanExportResult] = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span) -> None:
            results.append(self.span_exporter.export((span,)))

    provider = TracerProvider(resource=Resource.create({"service.name": "shop-frontend"}))
    provider.add_span_processor(Recording(exporter))
    with provider.get_tracer("gitlab-e2e").start_as_current_span(name) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    return results[0], trace_id


def test_the_documented_configuration_stores_spans_per_project(monkeypatch, clew_auth: ClewServer, project: dict) -> None:
    enabled = api(clew_auth, "PUT", f"/api/v1/projects/{project['project_id']}/tracing")
    assert enabled.status_code == 200, enabled.text
    result, trace_id = export_one_span(monkeypatch, clew_auth, project, f"PRIVATE-TOKEN={project['token']}", "checkout")
    assert result is SpanExportResult.SUCCESS, clew_auth.log_tail()

    token = {"PRIVATE-TOKEN": project["token"]}
    found = api(clew_auth, "GET", f"/api/v1/traces/{trace_id}", token=token)
    assert found.status_code == 200, found.text
    spans = [s for rs in found.json()["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert [s["name"] for s in spans] == ["checkout"]
    # The same trace is not in the default project, and needs a token to be read at all.
    assert api(clew_auth, "GET", f"/api/v1/traces/{trace_id}?project=default/default").status_code == 404
    assert api(clew_auth, "GET", f"/api/v1/traces/{trace_id}", token={}).status_code == 401
    # Bearer works like PRIVATE-TOKEN.
    bearer = {"Authorization": f"Bearer {project['token']}"}
    assert api(clew_auth, "GET", f"/api/v1/traces/{trace_id}", token=bearer).status_code == 200

    usage = api(clew_auth, "GET", f"/api/v1/namespaces/{project['namespace_id']}/usage")
    assert usage.status_code == 200, usage.text
    assert sum(day["ingested_spans"] for day in usage.json()["days"]) >= 1


def test_without_the_token_or_with_tracing_disabled_nothing_is_stored(monkeypatch, clew_auth: ClewServer, project: dict) -> None:
    token = {"PRIVATE-TOKEN": project["token"]}
    result, trace_id = export_one_span(monkeypatch, clew_auth, project, None, "anonymous")
    assert result is SpanExportResult.FAILURE
    assert api(clew_auth, "GET", f"/api/v1/traces/{trace_id}", token=token).status_code == 404

    disabled = api(clew_auth, "DELETE", f"/api/v1/projects/{project['project_id']}/tracing")
    assert disabled.status_code == 200, disabled.text
    raw = requests.post(
        f"http://{clew_auth.otlp_http}/v3/{project['namespace_id']}/{project['project_id']}/ingest/traces",
        headers={**token, "Content-Type": "application/json"}, data=b'{"resourceSpans":[]}', timeout=10)
    assert raw.status_code == 403 and "enable" in raw.text, raw.text
    result, trace_id = export_one_span(monkeypatch, clew_auth, project, f"PRIVATE-TOKEN={project['token']}", "disabled")
    assert result is SpanExportResult.FAILURE
    assert api(clew_auth, "GET", f"/api/v1/traces/{trace_id}", token=token).status_code == 404
    assert api(clew_auth, "PUT", f"/api/v1/projects/{project['project_id']}/tracing").status_code == 200
