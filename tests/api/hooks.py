"""Generators for the string formats docs/openapi.yaml names where JSON Schema has no words
for the grammar (TraceQL, Go durations, times, filters, logfmt, Jaeger tags), and the rules
the spec states in prose between parameters and against the clock (`map_case`). Schema-valid
requests built with these must be answered with success; anything else is a mismatch between
spec and server."""

import json
from datetime import datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

# Text as a client might send it: printable characters and a few others, escaped where quoted.
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
name = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,2}\Z")


def quoted(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


go_duration = st.one_of(
    st.just("0"),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h"])),
        min_size=1,
        max_size=3,
    ).map(lambda parts: "".join(f"{n}{unit}" for n, unit in parts)),
    st.tuples(st.integers(0, 100), st.integers(0, 999), st.sampled_from(["ms", "s", "m"])).map(
        lambda t: f"{t[0]}.{t[1]}{t[2]}"
    ),
)

# Within the last 30 days, as Unix seconds (whole or fractional) or RFC 3339 in UTC.
NOW = datetime.now(timezone.utc)
instant = st.integers(0, 30 * 86_400).map(lambda s: NOW - timedelta(seconds=s))
clew_time = st.one_of(
    instant.map(lambda t: str(int(t.timestamp()))),
    instant.map(lambda t: f"{t.timestamp():.3f}"),
    instant.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")),
)

# TraceQL scopes every attribute (a bare name is an intrinsic); the search API's `attr` filters
# also take bare names.
traceql_name = st.tuples(st.sampled_from(["span.", "resource.", "."]), name).map(lambda t: t[0] + t[1])
scoped_name = st.one_of(name, traceql_name)
number = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
)
literal = st.one_of(text.map(quoted), number, st.sampled_from(["true", "false"]))
comparison = st.one_of(
    st.tuples(traceql_name, st.sampled_from(["=", "!="]), literal).map(" ".join),
    st.tuples(traceql_name, st.sampled_from([">", ">=", "<", "<="]), number).map(" ".join),
    st.tuples(traceql_name, st.sampled_from(["=~", "!~"]), st.sampled_from(['".*"', '"GET .*"', '"a|b"'])).map(" ".join),
    st.sampled_from(["status = error", "status = ok", "status != unset", "kind = server", "kind = client"]),
    st.tuples(st.sampled_from(["duration", "traceDuration"]), st.sampled_from([">", "<", ">="]), go_duration.filter(lambda d: d != "0")).map(
        " ".join
    ),
    st.tuples(st.sampled_from(["name", "rootServiceName", "rootName", "resource.service.name"]), st.sampled_from(["=", "!="]), text.map(quoted)).map(
        " ".join
    ),
)
spanset = st.lists(comparison, max_size=3).map(lambda cs: "{ " + " && ".join(cs) + " }" if cs else "{}")
traceql = st.one_of(
    spanset,
    st.tuples(spanset, st.sampled_from(["&&", "||", ">>", ">", "~", "<<"]), spanset).map(" ".join),
)

attribute_filter = st.one_of(
    st.tuples(scoped_name, st.sampled_from(["=", "!=", ">", ">=", "<", "<="]), literal).map(lambda t: "".join(t)),
    scoped_name,
    scoped_name.map(lambda n: "!" + n),
    st.sampled_from(["status=error", "kind=server", "duration>10ms", "name=GET /"]),
)

# The default rollup dimensions (rollups.dimensions), and those of calls (rollups.call_dimensions).
CALL_DIMENSIONS = ["deployment.environment.name", "deployment.environment"]
DIMENSIONS = CALL_DIMENSIONS + ["http.route", "http.response.status_code"]


def filter_on(dimensions):
    return st.tuples(st.sampled_from(dimensions), text).map(lambda t: f"{t[0]}={t[1]}")


# Jaeger: `tags` is a JSON object of tag names to strings, numbers or booleans; `lookback` a Go
# duration, whole days or `custom`.
jaeger_tags = st.dictionaries(
    text.filter(bool), st.one_of(text, st.integers(-(10**9), 10**9), st.booleans()), max_size=3
).map(json.dumps)
jaeger_lookback = st.one_of(go_duration, st.integers(0, 30).map(lambda d: f"{d}d"), st.just("custom"))

# Tempo: logfmt tags, each key once; keys are attribute names (not the intrinsics Tempo's tags
# give a meaning of their own).
INTRINSIC_TAGS = {"name", "status", "kind", "duration", "error", "status.code", "root.name", "root.service.name"}
logfmt_tags = st.dictionaries(
    name.filter(lambda n: n not in INTRINSIC_TAGS), st.one_of(text.map(quoted), number), max_size=3
).map(lambda tags: " ".join(f"{k}={v}" for k, v in tags.items()))

cursor = st.tuples(
    st.sampled_from("nl"), st.integers(0, 2**63), st.from_regex(r"\A[0-9a-f]{32}\Z").filter(lambda t: t.strip("0"))
).map(lambda t: f"{t[0]}{t[1]}.{t[2]}")

for format_name, strategy in {
    "go-duration": go_duration,
    "clew-time": clew_time,
    "traceql": traceql,
    "attribute-filter": attribute_filter,
    "dimension-filter": filter_on(DIMENSIONS),
    "call-dimension-filter": filter_on(CALL_DIMENSIONS),
    "search-cursor": cursor,
    "jaeger-tags": jaeger_tags,
    "jaeger-lookback": jaeger_lookback,
    "logfmt-tags": logfmt_tags,
}.items():
    schemathesis.openapi.format(format_name, strategy)


def _seconds(value):
    try:
        return float(value)
    except ValueError:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(value):
    total, number = 0.0, ""
    unit = ""
    for c in value + "0":
        if c.isdigit() or c == ".":
            if unit:
                total += float(number) * UNITS[unit]
                number, unit = "", ""
            number += c
        else:
            unit += c
    return total


WEEK = 7 * 86_400
# The latest Unix second Tempo's parameters may name.
MAX_SECONDS = 9_999_999_999
# The largest whole number a query parameter may hold.
MAX_NUMBER = 2**52
# Most points a RED series may have.
MAX_POINTS = 1500


@schemathesis.hook
def map_case(context, case):
    """Positive cases keep the rules the spec states between parameters and against the clock:
    a range starts before it ends (and a search covers at most 7 days); a RED series has at most
    1,500 points; a cursor is one of the order it is sent with; a lower duration bound is not
    above the upper one; a token expires in the future."""
    meta = case._meta
    if meta is None or meta.generation.mode != "positive":
        return case
    if isinstance(case.body, dict) and isinstance(case.body.get("expires_at"), int):
        case.body["expires_at"] = int(NOW.timestamp()) + 86_400 + abs(case.body["expires_at"]) % 10**8
    if case.path == "/zipkin/api/v2/spans" and isinstance(case.body, list):
        _zipkin_spans_end_in_time(case.body)
    if not isinstance(case.query, dict):
        return case
    query = case.query
    if case.path.startswith("/api/v1/"):
        _native_range(case, query)
        _cursor_of_its_order(case, query)
    elif case.path.startswith("/tempo/"):
        if query.get("start") not in (None, "") and query.get("end") in (None, ""):
            query["end"] = min(int(query["start"]) + 3600, MAX_SECONDS)  # else the range ends now, maybe before start
        # `end` covers its whole second.
        _ordered(
            query, "start", "end", strictly=True, at_most=WEEK - 1 if case.path.endswith("/search") else None, largest=MAX_SECONDS
        )
        _ordered_durations(query, _duration)
    elif case.path.startswith("/jaeger/"):
        _ordered(query, "start", "end", strictly=False, at_most=None)
        _ordered_durations(query, _duration)
    elif case.path.startswith("/zipkin/"):
        _zipkin_durations(query)
        _distinct_trace_ids(query)
    return case


def _zipkin_durations(query):
    """Zipkin reads maxDuration only with minDuration, and not below it."""
    if query.get("minDuration") in (None, ""):
        query.pop("maxDuration", None)
    try:
        if int(query["maxDuration"]) < int(query["minDuration"]):
            query["maxDuration"] = query["minDuration"]
    except (KeyError, TypeError, ValueError):
        return


# The latest time a span may end, in microseconds (the year 2262).
ZIPKIN_LATEST = 9223372036854775


def _zipkin_spans_end_in_time(spans):
    for span in spans:
        if isinstance(span, dict) and isinstance(span.get("timestamp"), int) and isinstance(span.get("duration"), int):
            span["duration"] = min(span["duration"], ZIPKIN_LATEST - span["timestamp"])


def _distinct_trace_ids(query):
    """`traceIds` names each trace once: `abc` and `0abc` are one trace."""
    ids = query.get("traceIds")
    joined = isinstance(ids, str)
    if joined:
        ids = ids.split(",")
    if not isinstance(ids, list):
        return
    seen, distinct = set(), []
    for text in ids:
        key = str(text).strip().lower().rjust(32, "0")
        if key not in seen:
            seen.add(key)
            distinct.append(text)
    filler = 1
    while len(distinct) < 2:
        key = format(filler, "032x")
        if key not in seen:
            seen.add(key)
            distinct.append(key)
        filler += 1
    query["traceIds"] = ",".join(map(str, distinct)) if joined else distinct


def _native_range(case, query):
    if not any(k in query for k in ("start", "end", "since")):
        return
    try:
        end = _seconds(query["end"]) if query.get("end") else NOW.timestamp()
        if query.get("start"):
            start = _seconds(query["start"])
        elif query.get("since"):
            start = end - _duration(query["since"])
        else:
            start = end - 3600
    except (ValueError, KeyError):
        return
    if not 0 <= end - start <= WEEK:
        query.pop("since", None)
        start = end - 3600
        query["start"] = f"{start:.3f}"
    step = query.get("step")
    if case.path == "/api/v1/metrics/red" and step:
        minutes = _duration(step) / 60
        if (end - start) / 60 / minutes > MAX_POINTS - 2:
            query["step"] = f"{int((end - start) / 60 / (MAX_POINTS - 2)) + 1}m"


def _cursor_of_its_order(case, query):
    cursor = query.get("cursor")
    if isinstance(cursor, str) and cursor[:1] in ("n", "l"):
        default = "longest" if case.path == "/api/v1/exemplars" else "newest"
        query["cursor"] = str(query.get("order") or default)[0] + cursor[1:]


def _ordered(query, low, high, strictly, at_most, largest=MAX_NUMBER):
    """Integer bounds `low` < `high` (or <=), at most `at_most` apart, neither above `largest`."""
    try:
        start, end = int(query[low]), int(query[high])
    except (KeyError, TypeError, ValueError):
        return
    if end < start or (strictly and end == start):
        start = min(start, largest - 1)
        end = start + 1
    if at_most is not None and end - start > at_most:
        end = start + at_most
    query[low], query[high] = start, end


def _ordered_durations(query, read):
    """minDuration at most maxDuration when both bound (0 means no bound)."""
    try:
        low, high = query["minDuration"], query["maxDuration"]
        if read(low) and read(high) and read(low) > read(high):
            query["minDuration"], query["maxDuration"] = high, low
    except (KeyError, TypeError, ValueError):
        return
