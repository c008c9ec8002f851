//! The native search, discovery and trace analysis API under `/api/v1` (described in `docs/openapi.yaml`).

use std::str::FromStr;

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use clew_model::{SpanRow, TraceId};
use clew_query::{Filters, Order, Search};
use clew_storage::Value;
use serde_json::json;

use crate::error::ApiError;
use crate::params::Params;
use crate::reader::Reader;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{service}/operations", get(operations))
        .route("/api/v1/attributes", get(attributes))
        .route("/api/v1/attributes/{name}/values", get(values))
        .route("/api/v1/traces/{trace_id}/critical-path", get(critical_path))
        .route("/api/v1/traces/{a}/compare/{b}", get(compare))
        .route("/api/v1/service-map", get(service_map))
        .route("/api/v1/metrics/red", get(red))
        .route("/api/v1/exemplars", get(exemplars))
}

/// Default and largest number of values `/attributes/{name}/values` returns.
const VALUES_LIMIT: (usize, usize) = (100, 1000);

fn range(params: &Params) -> Result<clew_query::TimeRange, ApiError> {
    let start = params.get("start").map(|t| clew_query::parse_time("start", t)).transpose()?;
    let end = params.get("end").map(|t| clew_query::parse_time("end", t)).transpose()?;
    let start = match (start, params.get("since")) {
        (None, Some(since)) => {
            Some(end.unwrap_or_else(clew_query::now_nanos).saturating_sub(clew_query::duration("since", since)?))
        }
        (start, _) => start,
    };
    Ok(clew_query::range(start, end)?)
}

async fn search(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let traceql = params
        .get("q")
        .filter(|q| !q.trim().is_empty())
        .map(clew_traceql::parse)
        .transpose()
        .map_err(clew_query::QueryError::from)?;
    let filters = Filters {
        service: params.get("service").map(str::to_owned),
        name: params.get("name").map(str::to_owned),
        kind: params.get("kind").map(clew_query::kind).transpose()?,
        status: params.get("status").map(clew_query::status).transpose()?,
        min_duration: params.get("minDuration").map(|d| clew_query::duration("minDuration", d)).transpose()?,
        max_duration: params.get("maxDuration").map(|d| clew_query::duration("maxDuration", d)).transpose()?,
        attributes: params.all("attr").map(clew_query::attribute_filter).collect::<Result<_, _>>()?,
    };
    let order = params.get("order").map(Order::from_str).transpose()?.unwrap_or_default();
    let search = Search {
        query: filters.to_query(traceql),
        range: range(&params)?,
        order,
        limit: params.number("limit", 20)?,
        spans_per_trace: params.number("spss", 3)?,
        cursor: params.get("cursor").map(clew_query::Cursor::from_str).transpose()?,
    };
    let result = clew_query::search(&*state.storage, &tenant, &search, &state.limits).await?;
    let mut body = serde_json::to_value(&result).map_err(|e| ApiError::internal("encode search results", e))?;
    body["query"] = json!(search.query.to_string());
    body["order"] = json!(order);
    body["start"] = json!(search.range.start.to_string());
    body["end"] = json!((search.range.end - 1).to_string());
    Ok(Json(body))
}

async fn services(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&tenant, range(&params)?).await?;
    Ok(Json(json!({ "services": catalog.services() })))
}

async fn operations(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&tenant, range(&params)?).await?;
    let operations: Vec<_> = catalog
        .operations
        .iter()
        .filter(|o| o.service == service)
        .map(|o| json!({ "name": o.name, "kind": clew_query::kind_name(o.kind) }))
        .collect();
    Ok(Json(json!({ "service": service, "operations": operations })))
}

/// Intrinsics a search can filter on, in TraceQL spelling.
pub(crate) const INTRINSICS: [&str; 9] =
    ["name", "status", "statusMessage", "kind", "duration", "rootServiceName", "rootName", "traceDuration", "span:id"];

async fn attributes(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&tenant, range(&params)?).await?;
    let scope = params.get("scope").unwrap_or("all");
    let mut body = serde_json::Map::new();
    if matches!(scope, "all" | "span") {
        body.insert("span".into(), json!(catalog.span_attributes));
    }
    if matches!(scope, "all" | "resource") {
        body.insert("resource".into(), json!(catalog.resource_attributes));
    }
    if matches!(scope, "all" | "intrinsic") {
        body.insert("intrinsic".into(), json!(INTRINSICS));
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "scope must be one of all, span, resource, intrinsic; not {scope:?}"
        )));
    }
    Ok(Json(body.into()))
}

async fn values(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.number("limit", VALUES_LIMIT.0)?.min(VALUES_LIMIT.1);
    let field = clew_query::field(&name)?;
    let values = crate::values(&state, &tenant, &field, range(&params)?, limit).await?;
    let values: Vec<_> = values.iter().map(typed_value).collect();
    Ok(Json(json!({ "name": name, "values": values })))
}

/// `{"type": "string"|"int"|"float"|"bool", "value": ...}`
pub(crate) fn typed_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Str(s) => json!({ "type": "string", "value": s }),
        Value::Int(i) => json!({ "type": "int", "value": i }),
        Value::Float(f) => json!({ "type": "float", "value": f }),
        Value::Bool(b) => json!({ "type": "bool", "value": b }),
        Value::Other => json!({ "type": "other", "value": null }),
    }
}

/// A trace ID from the path; `role` ("trace A") names it in the error when there are two.
fn parse_trace_id(text: &str, role: Option<&str>) -> Result<TraceId, ApiError> {
    text.parse().map_err(|e| {
        let role = role.map(|r| format!(" for {r}")).unwrap_or_default();
        ApiError::BadRequest(format!("invalid trace ID {text:?}{role}: {e}"))
    })
}

/// The spans of a trace that must exist; `which` ("trace", "trace A") names it in the error.
fn found(which: &str, id: TraceId, rows: Vec<SpanRow>) -> Result<Vec<SpanRow>, ApiError> {
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("{which} {id} not found")));
    }
    Ok(rows)
}

fn encode(what: &str, value: &impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(what, e))
}

/// `GET /api/v1/traces/{trace_id}/critical-path`: [`clew_query::CriticalPath`] and `traceId`.
async fn critical_path(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(trace_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_trace_id(&trace_id, None)?;
    let rows = found("trace", id, state.storage.trace(&tenant, id).await?)?;
    let mut body = encode("encode critical path", &clew_query::critical_path(&rows))?;
    body["traceId"] = json!(id);
    Ok(Json(body))
}

/// `GET /api/v1/traces/{a}/compare/{b}`: [`clew_query::Comparison`] of B against A, and
/// `traceIdA`, `traceIdB`. Both IDs are checked before either trace is read.
async fn compare(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path((a, b)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ids = [parse_trace_id(&a, Some("trace A"))?, parse_trace_id(&b, Some("trace B"))?];
    let mut traces = state.storage.traces(&tenant, &ids).await?.into_iter();
    let a = found("trace A", ids[0], traces.next().unwrap_or_default())?;
    let b = found("trace B", ids[1], traces.next().unwrap_or_default())?;
    let mut body = encode("encode trace comparison", &clew_query::compare(&a, &b))?;
    body["traceIdA"] = json!(ids[0]);
    body["traceIdB"] = json!(ids[1]);
    Ok(Json(body))
}

/// A range for the service map and RED metrics, within the longest a search may cover.
fn metrics_range(params: &Params, state: &AppState) -> Result<clew_query::TimeRange, ApiError> {
    let range = range(params)?;
    if range.end - range.start > state.limits.max_range_nanos {
        return Err(ApiError::BadRequest(format!(
            "time range is longer than the {} h the service map and RED metrics cover; narrow `start`/`end`",
            state.limits.max_range_nanos / 3_600_000_000_000
        )));
    }
    Ok(range)
}

/// Dimension filters, `attr=name=value`, repeatable.
fn dimension_filters(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    Ok(params.all("attr").map(clew_query::dimension_filter).collect::<Result<_, _>>()?)
}

/// Every value of a parameter given repeatedly or comma-separated.
fn list(params: &Params, name: &str) -> Vec<String> {
    params.all(name).flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect()
}

/// `GET /api/v1/service-map?start=&end=&attr=`: [`clew_query::ServiceMap`].
async fn service_map(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let range = metrics_range(&params, &state)?;
    let map = clew_query::service_map(&*state.storage, &tenant, range, &dimension_filters(&params)?).await?;
    Ok(Json(encode("encode the service map", &map)?))
}

/// `GET /api/v1/metrics/red?service=&operation=&kind=&groupBy=&step=&attr=`:
/// [`clew_query::RedResult`]. Grouped by operation for one service, else by service.
async fn red(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let service = params.get("service").map(str::to_owned);
    let mut group_by = list(&params, "groupBy");
    if group_by.is_empty() {
        group_by.push(if service.is_some() { "operation" } else { "service" }.to_owned());
    }
    let request = clew_query::RedRequest {
        range: metrics_range(&params, &state)?,
        step_nanos: params.get("step").map(|s| clew_query::duration("step", s)).transpose()?,
        service,
        operation: params.get("operation").map(str::to_owned),
        kinds: list(&params, "kind")
            .iter()
            .map(|k| clew_query::kind(k).map(|k| clew_query::kind_code(k) as i32))
            .collect::<Result<_, _>>()?,
        filters: dimension_filters(&params)?,
        group_by,
    };
    let result = clew_query::red(&*state.storage, &tenant, &request).await?;
    Ok(Json(encode("encode RED metrics", &result)?))
}

/// `GET /api/v1/exemplars?family=&service=&name=&kind=&minDuration=&maxDuration=&error=&attr=`:
/// example traces behind a point of the service map or a RED series, as search results (slowest
/// first by default) with the TraceQL query that finds them.
async fn exemplars(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let service = params.get("service").ok_or_else(|| {
        ApiError::BadRequest("`service` is required: the service of the spans or the calling service".into())
    })?;
    let errors_only = match params.get("error") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("`error` must be true or false, not {other:?}"))),
    };
    let exemplars = clew_query::Exemplars {
        family: clew_query::family(params.get("family").unwrap_or("span"))?,
        service: service.to_owned(),
        name: params.get("name").map(str::to_owned),
        kind: params.get("kind").map(clew_query::kind).transpose()?,
        min_duration: params.get("minDuration").map(|d| clew_query::duration("minDuration", d)).transpose()?,
        max_duration: params.get("maxDuration").map(|d| clew_query::duration("maxDuration", d)).transpose()?,
        errors_only,
        filters: dimension_filters(&params)?,
    };
    let search = Search {
        query: exemplars.query(),
        range: range(&params)?,
        order: params.get("order").map(Order::from_str).transpose()?.unwrap_or(Order::Longest),
        limit: params.number("limit", 10)?,
        spans_per_trace: params.number("spss", 3)?,
        cursor: params.get("cursor").map(clew_query::Cursor::from_str).transpose()?,
    };
    let result = clew_query::search(&*state.storage, &tenant, &search, &state.limits).await?;
    let mut body = encode("encode exemplars", &result)?;
    body["query"] = json!(search.query.to_string());
    Ok(Json(body))
}
