"""Sends two known traces to a running clew over OTLP/HTTP JSON and creates a user, so that
schemathesis (which draws path parameters from them half the time, see schemathesis.toml)
checks the answers about things that exist against the spec, not only the 404s. The traces
hold what the conversions must carry: several services, every span kind, error status,
attributes of every type, events (an exception among them) and links.

    python seed.py <otlp http port> <api port>
"""

import json
import sys
import time
import urllib.request

TRACES = ["5b8efff798038103d269b633813fc60c", "0af7651916cd43dd8448eb211c80319c"]


def value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    return {"stringValue": v}


def attributes(**kv):
    return [{"key": k.replace("__", "."), "value": value(v)} for k, v in kv.items()]


def trace(trace_id, now):
    start = now - 60_000_000_000

    def span(span_id, parent, name, kind, offset_ms, duration_ms, error=False, **extra):
        s = {
            "traceId": trace_id,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(start + offset_ms * 1_000_000),
            "endTimeUnixNano": str(start + (offset_ms + duration_ms) * 1_000_000),
            "status": {"code": 2, "message": "card declined"} if error else {"code": 1},
        }
        s.update(extra)
        return s

    frontend = span(
        "aaaaaaaaaaaaaaa1", "", "GET /checkout", 2, 0, 120,
        attributes=attributes(http__request__method="GET", http__route="/checkout", http__response__status_code=200),
        events=[{"timeUnixNano": str(start + 5_000_000), "name": "cache miss", "attributes": attributes(key="cart")}],
    )
    call = span("aaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaa1", "POST /pay", 3, 10, 80, attributes=attributes(peer__service="payment"))
    payment = span(
        "aaaaaaaaaaaaaaa3", "aaaaaaaaaaaaaaa2", "charge", 2, 12, 70, error=True,
        attributes=attributes(amount=12.5, retries=2, card__saved=True, tags=["a", "b"]),
        events=[{
            "timeUnixNano": str(start + 70_000_000),
            "name": "exception",
            "attributes": attributes(exception__type="CardError", exception__message="card 4242 declined"),
        }],
        links=[{"traceId": TRACES[1] if trace_id == TRACES[0] else TRACES[0], "spanId": "bbbbbbbbbbbbbbb1",
                "attributes": attributes(reason="retry")}],
    )
    produce = span("aaaaaaaaaaaaaaa4", "aaaaaaaaaaaaaaa3", "publish receipt", 4, 75, 2)
    consume = span("aaaaaaaaaaaaaaa5", "aaaaaaaaaaaaaaa4", "send receipt", 5, 80, 30)
    internal = span("aaaaaaaaaaaaaaa6", "aaaaaaaaaaaaaaa5", "render", 1, 85, 10)

    def resource(service, *spans):
        return {
            "resource": {"attributes": attributes(service__name=service, deployment__environment__name="production")},
            "scopeSpans": [{"scope": {"name": "seed", "version": "1"}, "spans": list(spans)}],
        }

    return [resource("frontend", frontend, call), resource("payment", payment, produce), resource("email", consume, internal)]


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def main():
    otlp, api = int(sys.argv[1]), int(sys.argv[2])
    now = time.time_ns()
    body = {"resourceSpans": [rs for trace_id in TRACES for rs in trace(trace_id, now)]}
    answer = post(f"http://127.0.0.1:{otlp}/v1/traces", body)
    if (answer.get("partialSuccess") or {}).get("rejectedSpans"):
        sys.exit(f"clew rejected seeded spans: {answer}")
    post(f"http://127.0.0.1:{api}/api/v1/admin/users", {"username": "seed-user", "password": "seed-password"})


if __name__ == "__main__":
    main()
