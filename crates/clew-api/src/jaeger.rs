//! Jaeger's HTTP query API under `/jaeger/api`: the calls Jaeger UI and Grafana's Jaeger data
//! source make (services, operations, trace search, traces by ID, dependencies).
//!
//! Every answer, failures included, is Jaeger's `{data, total, limit, offset, errors}` envelope
//! (`structuredResponse` in Jaeger's `http_handler.go`). The JSON shapes, the OTLP→Jaeger
//! conversion and the parsing of `tag`/`tags` and trace IDs belong to `clew-jaeger`; this module
//! only maps parameters onto the query layer and errors onto statuses.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clew_jaeger::{DependencyLink, Operation, ResponseError, Trace};
use clew_model::{assemble, SpanRow, TenantId, TraceId};
use clew_query::{Filters, Limits, Order, Search, TimeRange};
use clew_storage::StorageError;
use clew_traceql::{CmpOp, Field, FieldExpr, Intrinsic, Static, StatusValue};

use crate::error::{ApiError, ErrorFormat, Failure};
use crate::params::{whole, Params};
use crate::reader::Reader;
use crate::routes::Routes;
use crate::AppState;
use clew_model::Code;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .get("/jaeger/api/services", services)
        .get("/jaeger/api/services/{service}/operations", service_operations)
        .get("/jaeger/api/operations", operations)
        .get("/jaeger/api/traces", search)
        .get("/jaeger/api/traces/{trace_id}", trace)
        .get("/jaeger/api/dependencies", dependencies)
}

/// Traces a search returns when `limit` is absent or 0 (what Jaeger UI asks for by default).
const DEFAULT_LIMIT: usize = 20;
const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_HOUR: u64 = 3_600_000_000_000;
/// How far back a search looks when neither `start` nor `lookback` is given (Jaeger's default).
const DEFAULT_SEARCH_LOOKBACK: u64 = 48 * NANOS_PER_HOUR;
/// How far back `/dependencies` looks when `lookback` is absent (Jaeger's default).
const DEFAULT_DEPENDENCY_LOOKBACK: u64 = 24 * NANOS_PER_HOUR;
/// Jaeger's message for a trace the store does not hold.
const TRACE_NOT_FOUND: &str = "trace not found";

type Result<T, E = JaegerError> = std::result::Result<T, E>;

/// A failed request, answered as Jaeger answers one: the status, and the envelope with
/// `"data": null` and `"errors": [{"code": <status>, "msg": ...}]`.
pub(crate) type JaegerError = Failure<Jaeger>;

#[derive(Debug)]
pub(crate) struct Jaeger;

impl ErrorFormat for Jaeger {
    const API: &'static str = "jaeger";

    fn body(status: StatusCode, _: Code, message: String) -> Response {
        (status, Json(clew_jaeger::Response::error(status.as_u16(), message))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> JaegerError {
    JaegerError::bad_request(message)
}

/// A successful answer in Jaeger's envelope, `total` being the number of items in `data`.
fn answer<T: serde::Serialize>(data: Vec<T>) -> Json<clew_jaeger::Response<Vec<T>>> {
    let total = data.len();
    Json(clew_jaeger::Response::new(data, total))
}

/// What services and operations are listed from: the longest range a search may cover, ending
/// now. (Jaeger lists every service it has ever seen; Clew's catalog is kept per day.)
fn catalog_range(limits: &Limits) -> TimeRange {
    let end = clew_query::now_nanos();
    TimeRange { start: end.saturating_sub(limits.max_range_nanos), end: end.saturating_add(1) }
}

/// `GET /services`: service names, sorted.
async fn services(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<Jaeger>,
) -> Result<Json<clew_jaeger::Response<Vec<String>>>> {
    let catalog = state.storage.catalog(&tenant, catalog_range(&state.limits)).await?;
    Ok(answer(catalog.services().into_iter().map(str::to_owned).collect()))
}

/// `GET /services/{service}/operations`: the service's operation names, whatever their kind.
async fn service_operations(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<Jaeger>,
    Path(service): Path<String>,
) -> Result<Json<clew_jaeger::Response<Vec<String>>>> {
    let catalog = state.storage.catalog(&tenant, catalog_range(&state.limits)).await?;
    let mut names: Vec<String> =
        catalog.operations.into_iter().filter(|o| o.service == service).map(|o| o.name).collect();
    // One name may come with several kinds; the catalog is sorted, so they are adjacent.
    names.dedup();
    Ok(answer(names))
}

/// `GET /operations?service=&spanKind=`: `[{name, spanKind}]`; `service` is required, and an
/// absent or empty `spanKind` means every kind.
async fn operations(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<Jaeger>,
    RawQuery(query): RawQuery,
) -> Result<Json<clew_jaeger::Response<Vec<Operation>>>> {
    let params = Params::parse(query.as_deref())?;
    let service = params.get("service").ok_or_else(|| bad_request("parameter 'service' is required"))?;
    let kind = params
        .get("spanKind")
        .map(|name| {
            clew_jaeger::span_kind_from_name(name).ok_or_else(|| {
                bad_request(format!(
                    "unable to parse param 'spanKind': expecting one of server, client, producer, consumer, \
                     internal, unspecified; not {name:?}"
                ))
            })
        })
        .transpose()?;
    let catalog = state.storage.catalog(&tenant, catalog_range(&state.limits)).await?;
    Ok(answer(
        catalog
            .operations
            .into_iter()
            .filter(|o| o.service == service && kind.is_none_or(|kind| o.kind == kind))
            .map(|o| clew_jaeger::operation(o.name, o.kind))
            .collect(),
    ))
}

/// `GET /traces`: a search, or the traces named by `traceID` parameters.
///
/// Parameters as Jaeger reads them: `service`, `operation`, `tag=key:value` (repeatable) and
/// `tags={"key":"value"}`, `minDuration`/`maxDuration` as Go durations, `start`/`end` in Unix
/// microseconds, `lookback` (`1h`, `2d`; used when `start` is absent, `custom` meaning none),
/// `limit` (0 or absent: 20). All filters apply to one span. A range longer than a search may
/// cover is shortened to its most recent part.
async fn search(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<Jaeger>,
    RawQuery(query): RawQuery,
) -> Result<Json<clew_jaeger::Response<Vec<Trace>>>> {
    let params = Params::parse(query.as_deref())?;
    let search = search_of(&params, &state.limits)?;
    let mut ids: Vec<TraceId> = Vec::new();
    for text in params.all("traceID") {
        let id = clew_jaeger::parse_trace_id(text)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if !ids.is_empty() {
        return traces_by_id(&state, &tenant, &ids).await;
    }
    let result = clew_query::search(&*state.storage, &tenant, &search, &state.limits).await?;
    let ids: Vec<TraceId> = result.traces.iter().map(|t| t.trace_id).collect();
    let rows = state.storage.traces(&tenant, &ids).await?;
    let traces = ids
        .into_iter()
        .zip(rows)
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(id, rows)| to_jaeger(id, rows))
        .collect::<Result<_>>()?;
    Ok(answer(traces))
}

/// The search Jaeger's parameters describe (see [`search`]).
fn search_of(params: &Params, limits: &Limits) -> Result<Search> {
    let tag_params: Vec<String> = params.all("tag").map(str::to_owned).collect();
    let mut tags = clew_jaeger::parse_tags(None, &tag_params)?;
    // `tags` may be repeated too; later objects win, as in Jaeger.
    for json in params.all("tags") {
        for (key, value) in clew_jaeger::parse_tags(Some(json), &[])? {
            match tags.iter_mut().find(|(k, _)| *k == key) {
                Some((_, existing)) => *existing = value,
                None => tags.push((key, value)),
            }
        }
    }

    // Jaeger reads a zero duration as "no bound".
    let duration = |name: &str| -> Result<Option<u64>> {
        Ok(params.get(name).map(|d| clew_query::duration(name, d)).transpose()?.filter(|&d| d > 0))
    };
    let (min_duration, max_duration) = (duration("minDuration")?, duration("maxDuration")?);
    if let (Some(min), Some(max)) = (min_duration, max_duration) {
        if max < min {
            return Err(bad_request("'maxDuration' should be greater than 'minDuration'"));
        }
    }

    let end = unix_time(params, "end", NANOS_PER_MICRO, "microseconds")?.unwrap_or_else(clew_query::now_nanos);
    let start = match unix_time(params, "start", NANOS_PER_MICRO, "microseconds")? {
        Some(start) => start,
        None => {
            let lookback = params.get("lookback").filter(|l| *l != "custom").map(lookback).transpose()?;
            end.saturating_sub(lookback.unwrap_or(DEFAULT_SEARCH_LOOKBACK))
        }
    };
    let range = clamp(clew_query::range(Some(start), Some(end))?, limits);

    let limit = match params.number("limit", DEFAULT_LIMIT)? {
        0 => DEFAULT_LIMIT,
        limit if limit > limits.max_limit => {
            return Err(bad_request(format!(
                "unable to parse param 'limit': at most {} traces may be asked for, not {limit}",
                limits.max_limit
            )))
        }
        limit => limit,
    };

    let filters = Filters {
        service: params.get("service").map(str::to_owned),
        name: params.get("operation").map(str::to_owned),
        min_duration,
        max_duration,
        attributes: tags.iter().map(|(key, value)| tag_filter(key, value)).collect(),
        ..Filters::default()
    };
    Ok(Search { query: filters.to_query(None), range, order: Order::Newest, limit, spans_per_trace: 0, cursor: None })
}

/// A `start`/`end`/`endTs` parameter: a Unix time in some unit, in nanoseconds.
fn unix_time(params: &Params, name: &str, nanos_per_unit: u64, unit: &str) -> Result<Option<u64>> {
    params
        .get(name)
        .map(|text| {
            whole(text).and_then(|t| t.checked_mul(nanos_per_unit)).ok_or_else(|| {
                bad_request(format!("unable to parse param '{name}': expecting Unix {unit}, not {text:?}"))
            })
        })
        .transpose()
}

/// A search's `lookback`: a Go duration, or whole days as Jaeger UI writes them (`2d`).
fn lookback(text: &str) -> Result<u64> {
    if let Some(days) = text.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        return Ok(days.saturating_mul(24 * NANOS_PER_HOUR));
    }
    Ok(clew_query::duration("lookback", text)?)
}

/// `range` shortened to the most recent part a search may cover. Jaeger UI's "Last 7 days" is
/// exactly as long as the default limit; a longer range loses its oldest part, not the request.
fn clamp(range: TimeRange, limits: &Limits) -> TimeRange {
    TimeRange { start: range.start.max(range.end.saturating_sub(limits.max_range_nanos)), end: range.end }
}

/// One Jaeger tag filter as a condition on a span.
///
/// Jaeger tags are strings, OTLP attributes are typed: the attribute (of the span, else of its
/// resource) may equal the text as a string or, when the text reads as one, as an integer,
/// float or boolean (`http.status_code=500` finds the integer 500). Tags that the Jaeger
/// conversion derives from span fields also match those fields: `error=true` a span whose
/// status is an error, `span.kind`, `otel.status_code` and `otel.status_description` its kind,
/// status and status message.
fn tag_filter(key: &str, value: &str) -> FieldExpr {
    let expr = clew_query::text_equals(Field::any(key), value);
    let intrinsic = |intrinsic, value| FieldExpr::compare(Field::Intrinsic(intrinsic), CmpOp::Eq, value);
    let derived = match key {
        clew_jaeger::TAG_ERROR => {
            (value == "true").then(|| intrinsic(Intrinsic::Status, Static::Status(StatusValue::Error)))
        }
        clew_jaeger::TAG_SPAN_KIND => clew_query::kind(value).ok().map(|k| intrinsic(Intrinsic::Kind, Static::Kind(k))),
        clew_jaeger::TAG_STATUS_CODE => {
            clew_query::status(value).ok().map(|s| intrinsic(Intrinsic::Status, Static::Status(s)))
        }
        clew_jaeger::TAG_STATUS_DESCRIPTION => Some(intrinsic(Intrinsic::StatusMessage, Static::Str(value.to_owned()))),
        _ => None,
    };
    match derived {
        Some(derived) => FieldExpr::or(expr, derived),
        None => expr,
    }
}

/// The traces `ids` names that the store holds; each missing one is reported in `errors` with
/// its ID, as Jaeger does.
async fn traces_by_id(
    state: &AppState,
    tenant: &TenantId,
    ids: &[TraceId],
) -> Result<Json<clew_jaeger::Response<Vec<Trace>>>> {
    let rows = state.storage.traces(tenant, ids).await?;
    let mut traces = Vec::new();
    let mut errors = Vec::new();
    for (id, rows) in ids.iter().zip(rows) {
        if rows.is_empty() {
            errors.push(ResponseError { code: 0, msg: TRACE_NOT_FOUND.to_owned(), trace_id: Some(id.to_hex()) });
        } else {
            traces.push(to_jaeger(*id, rows)?);
        }
    }
    let Json(mut response) = answer(traces);
    response.errors = (!errors.is_empty()).then_some(errors);
    Ok(Json(response))
}

/// `GET /traces/{traceID}`: `[trace]`, or 404.
async fn trace(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<Jaeger>,
    Path(trace_id): Path<String>,
) -> Result<Json<clew_jaeger::Response<Vec<Trace>>>> {
    let id = clew_jaeger::parse_trace_id(&trace_id)?;
    let rows = state.storage.trace(&tenant, id).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(TRACE_NOT_FOUND.to_owned()).into());
    }
    Ok(answer(vec![to_jaeger(id, rows)?]))
}

fn to_jaeger(trace_id: TraceId, rows: Vec<SpanRow>) -> Result<Trace> {
    let resource_spans = assemble(rows)
        .map_err(|e| StorageError::Corrupt { location: format!("trace {trace_id}"), reason: e.to_string() })?;
    Ok(clew_jaeger::trace_to_jaeger(trace_id, &resource_spans))
}

/// `GET /dependencies?endTs=&lookback=&service=`: calls between services in the window
/// `[endTs - lookback, endTs]` (Unix milliseconds and milliseconds; defaults now and 24 hours),
/// as `[{parent, child, callCount}]`, whole minutes, from the service map's rollups (calls to
/// uninstrumented databases and peers included). With `service`, only links to or from it.
async fn dependencies(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<Jaeger>,
    RawQuery(query): RawQuery,
) -> Result<Json<clew_jaeger::Response<Vec<DependencyLink>>>> {
    let params = Params::parse(query.as_deref())?;
    let end = unix_time(&params, "endTs", NANOS_PER_MILLI, "milliseconds")?.unwrap_or_else(clew_query::now_nanos);
    let lookback = match params.get("lookback") {
        None => DEFAULT_DEPENDENCY_LOOKBACK,
        Some(text) => whole(text).and_then(|ms| ms.checked_mul(NANOS_PER_MILLI)).ok_or_else(|| {
            bad_request(format!("unable to parse param 'lookback': expecting milliseconds, not {text:?}"))
        })?,
    };
    let range = clamp(clew_query::range(Some(end.saturating_sub(lookback)), Some(end))?, &state.limits);
    let edges = clew_query::dependencies(&*state.storage, &tenant, range).await?;
    let service = params.get("service");
    Ok(answer(
        edges
            .into_iter()
            .filter(|e| service.is_none_or(|s| s == e.source || s == e.target))
            .map(|e| DependencyLink { parent: e.source, child: e.target, call_count: e.red.requests.round() as u64 })
            .collect(),
    ))
}
