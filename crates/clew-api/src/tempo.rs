//! Grafana Tempo's HTTP query API under `/tempo`, so that Grafana's Tempo data source can point
//! at `http://host:4320/tempo`: trace by ID (v1 and v2, JSON or protobuf), TraceQL and tag
//! search, and tag name and value discovery.
//!
//! Response shapes follow Tempo's `tempopb` messages as Tempo's `jsonpb` writes them (64-bit
//! integers as strings). Failures are answered as Tempo answers them: a status and a plain-text
//! body ([`TempoError`]), never the native API's JSON error.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clew_model::otlp::trace::v1::TracesData;
use clew_model::{assemble, TenantId, TraceId};
use clew_query::{Filters, Order, QueryError, Search, TimeRange, TraceSummary};
use clew_storage::{StorageError, Value};
use clew_traceql::{CmpOp, Field, FieldExpr, Intrinsic, Static};
use prost::Message;
use serde::Serialize;

use crate::error::{ApiError, Failure, PlainText};
use crate::params::{whole, Params, MAX_NUMBER};
use crate::reader::Reader;
use crate::routes::Routes;
use crate::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .get("/tempo/api/echo", || async { "echo" })
        .get("/tempo/api/traces/{trace_id}", trace_v1)
        .get("/tempo/api/v2/traces/{trace_id}", trace_v2)
        .get("/tempo/api/search", search)
        .get("/tempo/api/search/tags", tags_v1)
        .get("/tempo/api/v2/search/tags", tags_v2)
        .get("/tempo/api/search/tag/{tag}/values", tag_values_v1)
        .get("/tempo/api/v2/search/tag/{tag}/values", tag_values_v2)
}

/// What Tempo shows as the root service of a trace whose root span has not arrived.
const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// The latest time `start` and `end` may name, in Unix seconds (the year 2286), as for the
/// native API's times.
const MAX_SECONDS: u64 = 9_999_999_999;

/// Default and largest number of values a tag values request returns.
const VALUES_LIMIT: (usize, usize) = (1000, 10_000);

const PROTOBUF: &str = "application/protobuf";

/// A failed request, answered as Tempo answers one: the status and a plain-text message.
type TempoError = Failure<PlainText>;

/// Tempo's `TraceByIDResponse`: a `tempopb.Trace` (wire-identical to OTLP `TracesData`) at
/// field 1; `status` 0 (`COMPLETE`) is the protobuf default and so never written.
#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

/// A trace ID as Tempo reads it: up to 32 hex digits, left-padded with zeros.
fn trace_id(text: &str) -> Result<TraceId, TempoError> {
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(TempoError::bad_request(format!(
            "trace IDs can only contain hex characters: invalid character {c:?} at position {}",
            at + 1
        )));
    }
    if text.len() > 32 {
        return Err(TempoError::bad_request("trace IDs can't be larger than 128 bits"));
    }
    let padded = format!("{text:0>32}");
    padded.parse().map_err(|e| TempoError::bad_request(format!("invalid trace ID {text:?}: {e}")))
}

async fn fetch_trace(state: &AppState, tenant: &TenantId, text: &str) -> Result<(TraceId, TracesData), TempoError> {
    let id = trace_id(text)?;
    let rows = state.storage.trace(tenant, id).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("trace not found: {id}")).into());
    }
    let resource_spans =
        assemble(rows).map_err(|e| StorageError::Corrupt { location: format!("trace {id}"), reason: e.to_string() })?;
    Ok((id, TracesData { resource_spans }))
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| v.to_str().is_ok_and(|v| v.contains(PROTOBUF)))
}

fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn encode_json(id: TraceId, traces: &mut TracesData) -> Result<Vec<u8>, TempoError> {
    clew_model::otlp_json::encode_traces(traces)
        .map_err(|e| ApiError::internal(&format!("encode trace {id} as JSON"), e).into())
}

/// `GET /api/traces/{id}`: `{"batches": [ResourceSpans]}`, or a `tempopb.Trace`.
async fn trace_v1(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    Path(text): Path<String>,
    headers: HeaderMap,
) -> Result<Response, TempoError> {
    let (id, mut traces) = fetch_trace(&state, &tenant, &text).await?;
    if wants_protobuf(&headers) {
        return Ok(protobuf(traces.encode_to_vec()));
    }
    let body = encode_json(id, &mut traces)?;
    // Tempo renames the field the same way: its `Trace` message once called it `batches`.
    const OTLP_PREFIX: &[u8] = b"{\"resourceSpans\":";
    let rest = body
        .strip_prefix(OTLP_PREFIX)
        .ok_or_else(|| ApiError::internal("encode trace for Tempo", "OTLP/JSON did not start with resourceSpans"))?;
    let mut v1 = Vec::with_capacity(body.len());
    v1.extend_from_slice(b"{\"batches\":");
    v1.extend_from_slice(rest);
    Ok(json_bytes(v1))
}

/// `GET /api/v2/traces/{id}`: `{"trace": {"resourceSpans": [...]}, "status": "COMPLETE"}`, or a
/// `tempopb.TraceByIDResponse`.
async fn trace_v2(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    Path(text): Path<String>,
    headers: HeaderMap,
) -> Result<Response, TempoError> {
    let (id, mut traces) = fetch_trace(&state, &tenant, &text).await?;
    if wants_protobuf(&headers) {
        return Ok(protobuf(TraceByIdResponse { trace: Some(traces) }.encode_to_vec()));
    }
    let trace = encode_json(id, &mut traces)?;
    let mut body = Vec::with_capacity(trace.len() + 32);
    body.extend_from_slice(b"{\"trace\":");
    body.extend_from_slice(&trace);
    body.extend_from_slice(b",\"status\":\"COMPLETE\"}");
    Ok(json_bytes(body))
}

/// A non-negative integer parameter, Tempo's way: `invalid limit: ...`.
fn uint<T: TryFrom<u64>>(params: &Params, name: &str, default: T) -> Result<T, TempoError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => whole(text).and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
            TempoError::bad_request(format!(
                "invalid {name}: expected a non-negative integer of at most {MAX_NUMBER}, got {text:?}"
            ))
        }),
    }
}

/// `start` and `end` in Unix seconds, the last hour by default. `end` covers its whole second.
fn seconds_range(params: &Params) -> Result<TimeRange, TempoError> {
    let seconds = |name: &str| -> Result<Option<u64>, TempoError> {
        let Some(text) = params.get(name) else { return Ok(None) };
        whole(text).filter(|&s| s <= MAX_SECONDS).map(Some).ok_or_else(|| {
            TempoError::bad_request(format!("invalid {name}: expected Unix seconds up to {MAX_SECONDS}, got {text:?}"))
        })
    };
    let (start, end) = (seconds("start")?, seconds("end")?);
    if let (Some(start), Some(end)) = (start, end) {
        if end <= start {
            return Err(TempoError::bad_request(format!(
                "http parameter start must be before end. received start={start} end={end}"
            )));
        }
    }
    let nanos = |s: u64| s * 1_000_000_000;
    let end = end.map(|e| nanos(e) + 999_999_999);
    Ok(clew_query::range(start.map(nanos), end)?)
}

/// A Go duration parameter (`minDuration=100ms`).
fn duration_param(params: &Params, name: &str) -> Result<Option<u64>, TempoError> {
    params
        .get(name)
        .map(|text| {
            clew_query::duration(name, text).map_err(|e| TempoError::bad_request(format!("invalid {name}: {e}")))
        })
        .transpose()
}

/// `GET /api/search`: TraceQL (`q`) and/or logfmt tags (`tags`), trace duration bounds, time
/// range, `limit` and spans per spanset (`spss`).
async fn search(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<SearchResponse>, TempoError> {
    let params = Params::parse(query.as_deref())?;
    let traceql = params
        .get("q")
        .filter(|q| !q.trim().is_empty())
        .map(|q| clew_traceql::parse(q).map_err(|e| TempoError::bad_request(format!("invalid TraceQL query: {e}"))))
        .transpose()?;
    let mut filters = match params.get("tags") {
        Some(tags) => tag_filters(tags)?,
        None => Filters::default(),
    };
    // Tempo bounds the duration of the whole trace here, not of a span.
    let trace_duration = Field::Intrinsic(Intrinsic::TraceDuration);
    // 0 means no bound.
    let min = duration_param(&params, "minDuration")?.filter(|&m| m > 0);
    let max = duration_param(&params, "maxDuration")?.filter(|&m| m > 0);
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(TempoError::bad_request("invalid maxDuration: must be greater than minDuration"));
        }
    }
    if let Some(min) = min {
        filters.attributes.push(FieldExpr::compare(trace_duration.clone(), CmpOp::Ge, Static::Duration(min)));
    }
    if let Some(max) = max {
        filters.attributes.push(FieldExpr::compare(trace_duration, CmpOp::Le, Static::Duration(max)));
    }
    let limit: usize = uint(&params, "limit", 20)?;
    if limit == 0 {
        return Err(TempoError::bad_request("invalid limit: must be a positive number"));
    }
    let search = Search {
        query: filters.to_query(traceql),
        range: seconds_range(&params)?,
        order: Order::Newest,
        limit: limit.min(state.limits.max_limit),
        spans_per_trace: uint(&params, "spss", 3)?,
        cursor: None,
    };
    let result = clew_query::search(&*state.storage, &tenant, &search, &state.limits).await?;
    Ok(Json(SearchResponse {
        traces: result.traces.iter().map(trace_metadata).collect(),
        metrics: SearchMetrics { inspected_traces: result.inspected, completed_jobs: 1, total_jobs: 1 },
    }))
}

/// Tempo's `SearchResponse`.
#[derive(Serialize)]
struct SearchResponse {
    traces: Vec<TraceSearchMetadata>,
    metrics: SearchMetrics,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchMetrics {
    inspected_traces: usize,
    completed_jobs: u32,
    total_jobs: u32,
}

/// Tempo's `TraceSearchMetadata`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    trace_id: String,
    root_service_name: String,
    /// Absent when the root span has not arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    root_trace_name: Option<String>,
    #[serde(serialize_with = "as_string")]
    start_time_unix_nano: u64,
    duration_ms: u64,
    /// The first of `spanSets`, which Tempo still writes for older clients.
    span_set: SpanSet,
    span_sets: [SpanSet; 1],
    service_stats: BTreeMap<String, ServiceStats>,
}

#[derive(Clone, Serialize)]
struct SpanSet {
    spans: Vec<SpanSetSpan>,
    matched: usize,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanSetSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    name: String,
    #[serde(serialize_with = "as_string")]
    start_time_unix_nano: u64,
    #[serde(serialize_with = "as_string")]
    duration_nanos: u64,
    attributes: Vec<StringKeyValue>,
}

/// An OTLP/JSON `KeyValue` holding a string.
#[derive(Clone, Serialize)]
struct StringKeyValue {
    key: String,
    value: StringValue,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct StringValue {
    string_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceStats {
    span_count: usize,
    error_count: usize,
}

/// A 64-bit integer as `jsonpb` writes one: a decimal string.
fn as_string<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Clew finds one spanset per trace; it is both the deprecated `spanSet` and the only entry of
/// `spanSets`.
fn trace_metadata(summary: &TraceSummary) -> TraceSearchMetadata {
    let spans = summary
        .matched
        .iter()
        .map(|span| {
            let mut attributes = vec![string_kv(clew_model::SERVICE_NAME, &span.service)];
            attributes.extend(span.attributes.iter().map(|(key, value)| string_kv(key, value)));
            SpanSetSpan {
                span_id: span.span_id.to_string(),
                name: span.name.clone(),
                start_time_unix_nano: span.start_unix_nano,
                duration_nanos: span.duration_nanos,
                attributes,
            }
        })
        .collect();
    let span_set = SpanSet { spans, matched: summary.matched_count };
    let service_stats = summary
        .services
        .iter()
        .map(|s| (s.name.clone(), ServiceStats { span_count: s.spans, error_count: s.errors }))
        .collect();
    let root_service = if summary.root_missing { ROOT_NOT_RECEIVED } else { summary.root_service.as_str() };
    TraceSearchMetadata {
        trace_id: summary.trace_id.to_string(),
        root_service_name: root_service.to_owned(),
        root_trace_name: (!summary.root_missing).then(|| summary.root_name.clone()),
        start_time_unix_nano: summary.start_unix_nano,
        duration_ms: summary.duration_nanos / 1_000_000,
        span_set: span_set.clone(),
        span_sets: [span_set],
        service_stats,
    }
}

fn string_kv(key: &str, value: &str) -> StringKeyValue {
    StringKeyValue { key: key.to_owned(), value: StringValue { string_value: value.to_owned() } }
}

/// Search filters from Tempo's logfmt `tags` (`service.name="api" http.status_code=500`): each
/// tag must hold on the same span. `name`, `status`, `kind`, `duration` and the other TraceQL
/// intrinsics are intrinsics; Tempo's older tags `status.code`, `error=true`, `root.name` and
/// `root.service.name` mean what they meant there; anything else is an attribute of the span or
/// its resource. A tag without a value asks that the attribute exist.
fn tag_filters(text: &str) -> Result<Filters, TempoError> {
    let invalid = |e: QueryError| match e {
        QueryError::Invalid(message) => TempoError::bad_request(format!("invalid tags: {message}")),
        other => other.into(),
    };
    let mut filters = Filters::default();
    let mut seen = BTreeSet::new();
    for (key, value) in logfmt(text).map_err(|e| TempoError::bad_request(format!("invalid tags: {e}")))? {
        if !seen.insert(key.clone()) {
            return Err(TempoError::bad_request(format!("invalid tags: tag {key} has been set twice")));
        }
        let value = value.unwrap_or_default();
        let (key, value) = match (key.as_str(), value.as_str()) {
            ("service.name" | "resource.service.name", v) if !v.is_empty() => {
                filters.service = Some(value);
                continue;
            }
            ("status.code", v) => ("status", v),
            ("error", "true") => ("status", "error"),
            ("root.name", v) => ("rootName", v),
            ("root.service.name", v) => ("rootServiceName", v),
            (k, v) => (k, v),
        };
        let field = clew_query::field(key).map_err(invalid)?;
        let condition = match field {
            Field::Intrinsic(_) if value.is_empty() => {
                return Err(TempoError::bad_request(format!("invalid tags: tag {key} needs a value")));
            }
            Field::Intrinsic(_) => clew_query::attribute_filter(&format!("{key}={value}")).map_err(invalid)?,
            field if value.is_empty() => FieldExpr::Exists { field, exists: true },
            field => clew_query::text_equals(field, value),
        };
        filters.attributes.push(condition);
    }
    Ok(filters)
}

/// Splits logfmt text into `(key, value)` pairs; `None` for a bare key. Keys run to `=` or
/// whitespace; values are bare (no `"` or `=`) or double-quoted with backslash escapes.
fn logfmt(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let is_space = |c: char| c <= ' ';
    let unexpected = |at: usize| format!("unexpected {:?} at position {}", chars[at], at + 1);
    let mut pairs = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }
        if i == chars.len() {
            return Ok(pairs);
        }
        let key_start = i;
        while i < chars.len() && !is_space(chars[i]) && chars[i] != '=' && chars[i] != '"' {
            i += 1;
        }
        if i == key_start || (i < chars.len() && chars[i] == '"') {
            return Err(unexpected(i));
        }
        let key: String = chars[key_start..i].iter().collect();
        if i == chars.len() || is_space(chars[i]) {
            pairs.push((key, None));
            continue;
        }
        i += 1; // '='
        let mut value = String::new();
        if i < chars.len() && chars[i] == '"' {
            let open = i;
            i += 1;
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err(format!("unterminated quoted value starting at position {}", open + 1));
                };
                i += 1;
                match c {
                    '"' => break,
                    '\\' => {
                        let escaped = chars.get(i).copied();
                        i += 1;
                        value.push(match escaped {
                            Some('"') => '"',
                            Some('\\') => '\\',
                            Some('/') => '/',
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some(other) => {
                                return Err(format!("invalid escape \\{other} at position {}", i - 1));
                            }
                            None => return Err(format!("unterminated quoted value starting at position {}", open + 1)),
                        });
                    }
                    c => value.push(c),
                }
            }
            if i < chars.len() && !is_space(chars[i]) {
                return Err(unexpected(i));
            }
        } else {
            while i < chars.len() && !is_space(chars[i]) {
                if chars[i] == '=' || chars[i] == '"' {
                    return Err(unexpected(i));
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        pairs.push((key, Some(value)));
    }
}

/// Tempo's intrinsic tag names: the unscoped spellings, then the scoped ones.
fn intrinsic_names() -> Vec<&'static str> {
    let short = Intrinsic::ALL.into_iter().filter_map(Intrinsic::short_name);
    short.chain(Intrinsic::ALL.into_iter().map(Intrinsic::canonical_name)).collect()
}

/// Scopes Tempo accepts that Clew keeps no tag names for.
const EMPTY_SCOPES: [&str; 3] = ["event", "link", "instrumentation"];

fn check_scope(scope: &str) -> Result<(), TempoError> {
    match scope {
        "" | "none" | "span" | "resource" | "intrinsic" => Ok(()),
        s if EMPTY_SCOPES.contains(&s) => Ok(()),
        other => Err(TempoError::bad_request(format!("invalid scope: {other}"))),
    }
}

/// The scope (empty when absent) and range a tag names request asks for.
fn tags_query(query: Option<&str>) -> Result<(String, TimeRange), TempoError> {
    let params = Params::parse(query)?;
    let scope = params.get("scope").unwrap_or("").to_owned();
    check_scope(&scope)?;
    Ok((scope, seconds_range(&params)?))
}

/// `GET /api/search/tags?scope=`: attribute names (intrinsics only when asked for by scope).
async fn tags_v1(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<TagNames>, TempoError> {
    let (scope, range) = tags_query(query.as_deref())?;
    let scope = scope.as_str();
    let names: Vec<String> = match scope {
        "intrinsic" => intrinsic_names().into_iter().map(str::to_owned).collect(),
        s if EMPTY_SCOPES.contains(&s) => Vec::new(),
        _ => {
            let catalog = state.storage.catalog(&tenant, range).await?;
            match scope {
                "span" => catalog.span_attributes,
                "resource" => catalog.resource_attributes,
                _ => {
                    let all: BTreeSet<String> =
                        catalog.span_attributes.into_iter().chain(catalog.resource_attributes).collect();
                    all.into_iter().collect()
                }
            }
        }
    };
    Ok(Json(TagNames { tag_names: names }))
}

/// `GET /api/v2/search/tags?scope=`: attribute names by scope, intrinsics included unless a
/// single other scope is asked for.
async fn tags_v2(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<TagScopes>, TempoError> {
    let (scope, range) = tags_query(query.as_deref())?;
    let scope = scope.as_str();
    let mut scopes = Vec::new();
    if matches!(scope, "" | "none" | "span" | "resource") {
        let catalog = state.storage.catalog(&tenant, range).await?;
        if scope != "resource" {
            scopes.push(TagScope { name: "span", tags: catalog.span_attributes });
        }
        if scope != "span" {
            scopes.push(TagScope { name: "resource", tags: catalog.resource_attributes });
        }
    }
    if matches!(scope, "" | "none" | "intrinsic") {
        scopes.push(TagScope { name: "intrinsic", tags: intrinsic_names().into_iter().map(str::to_owned).collect() });
    }
    Ok(Json(TagScopes { scopes }))
}

/// `/api/search/tags`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagNames {
    tag_names: Vec<String>,
}

/// `/api/v2/search/tags`.
#[derive(Serialize)]
struct TagScopes {
    scopes: Vec<TagScope>,
}

#[derive(Serialize)]
struct TagScope {
    name: &'static str,
    tags: Vec<String>,
}

/// `/api/search/tag/{tag}/values` (`T` = text) and `/api/v2/...` (`T` = [`TypedTagValue`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagValues<T> {
    tag_values: Vec<T>,
}

#[derive(Serialize)]
struct TypedTagValue {
    #[serde(rename = "type")]
    kind: &'static str,
    value: String,
}

/// The values `field` takes; none for durations, as in Tempo (they are not worth listing).
async fn field_values(
    state: &AppState,
    tenant: &TenantId,
    field: &Field,
    params: &Params,
) -> Result<Vec<Value>, TempoError> {
    let limit = uint(params, "limit", VALUES_LIMIT.0)?.min(VALUES_LIMIT.1);
    let range = seconds_range(params)?;
    if matches!(field, Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration)) {
        return Ok(Vec::new());
    }
    Ok(crate::values(state, tenant, field, range, limit).await?)
}

fn value_text(value: &Value) -> Option<(&'static str, String)> {
    match value {
        Value::Str(s) => Some(("string", s.clone())),
        Value::Int(i) => Some(("int", i.to_string())),
        Value::Float(f) => Some(("float", f.to_string())),
        Value::Bool(b) => Some(("bool", b.to_string())),
        Value::Other => None,
    }
}

/// `GET /api/search/tag/{tag}/values`: `tag` is an attribute name as Tempo's tag search spells
/// it (`service.name`, `http.method`, `status.code`) or an intrinsic.
async fn tag_values_v1(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    Path(tag): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<TagValues<String>>, TempoError> {
    let params = Params::parse(query.as_deref())?;
    let name = if tag == "status.code" { "status" } else { tag.as_str() };
    let field = clew_query::field(name)?;
    let values = field_values(&state, &tenant, &field, &params).await?;
    let tag_values = values.iter().filter_map(value_text).map(|(_, text)| text).collect();
    Ok(Json(TagValues { tag_values }))
}

/// `GET /api/v2/search/tag/{tag}/values`: `tag` is a TraceQL field (`resource.service.name`,
/// `span.http.method`, `.foo`, `name`, `status`); values are typed, as text.
async fn tag_values_v2(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    Path(tag): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<TagValues<TypedTagValue>>, TempoError> {
    let params = Params::parse(query.as_deref())?;
    let field = clew_query::field(&tag)?;
    let keyword = matches!(field, Field::Intrinsic(Intrinsic::Status | Intrinsic::Kind));
    let values = field_values(&state, &tenant, &field, &params).await?;
    let tag_values = values
        .iter()
        .filter_map(value_text)
        .map(|(kind, value)| TypedTagValue { kind: if keyword { "keyword" } else { kind }, value })
        .collect();
    Ok(Json(TagValues { tag_values }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, Option<String>)> {
        logfmt(text).unwrap()
    }

    #[test]
    fn logfmt_reads_bare_quoted_and_empty_values() {
        let some = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
        assert_eq!(
            pairs(r#" service.name="my api"  http.status_code=500 name=GET empty= flag "#),
            vec![
                some("service.name", "my api"),
                some("http.status_code", "500"),
                some("name", "GET"),
                some("empty", ""),
                ("flag".to_owned(), None)
            ]
        );
        assert_eq!(pairs(r#"msg="say \"hi\"\n" path=/a/b"#), vec![some("msg", "say \"hi\"\n"), some("path", "/a/b")]);
        assert!(pairs("").is_empty());
    }

    #[test]
    fn logfmt_rejects_malformed_text_with_a_position() {
        assert_eq!(logfmt(r#"a="open"#).unwrap_err(), "unterminated quoted value starting at position 3");
        assert_eq!(logfmt("a=b=c").unwrap_err(), "unexpected '=' at position 4");
        assert_eq!(logfmt("=b").unwrap_err(), "unexpected '=' at position 1");
        assert_eq!(logfmt(r#"a="b"c"#).unwrap_err(), "unexpected 'c' at position 6");
        assert_eq!(logfmt(r#"a"b=1"#).unwrap_err(), "unexpected '\"' at position 2");
        assert!(logfmt(r#"a="\q""#).unwrap_err().contains("invalid escape"));
    }

    #[test]
    fn tags_become_one_span_filter() {
        let query = |tags: &str| tag_filters(tags).unwrap().to_query(None).to_string();
        assert_eq!(
            query(r#"service.name="api" name="GET /x" status=error"#),
            "{ resource.service.name = \"api\" && span:name = \"GET /x\" && span:status = error }"
        );
        assert_eq!(query("http.status_code=500"), "{ .http.status_code = 500 || .http.status_code = \"500\" }");
        assert_eq!(query("kind=server retry=true"), "{ span:kind = server && (.retry = true || .retry = \"true\") }");
        assert_eq!(query("error=true user.id"), "{ span:status = error && .user.id != nil }");
        let message = |tags: &str| tag_filters(tags).unwrap_err().0.to_string();
        assert!(message("a=1 a=2").contains("tag a has been set twice"));
        assert!(message("duration=fast").starts_with("invalid tags: "));
        assert!(message("a=\"x").starts_with("invalid tags: unterminated"));
    }

    #[test]
    fn short_trace_ids_are_left_padded() {
        assert_eq!(trace_id("abc").unwrap().to_string(), format!("{}abc", "0".repeat(29)));
        assert!(trace_id("xyz").unwrap_err().0.to_string().contains("invalid character 'x' at position 1"));
        assert!(trace_id(&"1".repeat(33)).unwrap_err().0.to_string().contains("larger than 128 bits"));
        assert!(trace_id("000").unwrap_err().0.to_string().contains("all zeros"));
    }
}
