//! The native search, discovery and trace analysis API under `/api/v1` (described in `docs/openapi.yaml`).

use std::str::FromStr;

use axum::extract::{RawQuery, State};
use axum::Json;
use clew_model::{SpanRow, TraceId};
use clew_query::{Filters, Order, Search, SearchResult};
use clew_storage::Value;
use serde::Serialize;

use crate::error::ApiError;
use crate::params::{Params, Path};
use crate::reader::Reader;
use crate::routes::Routes;
use crate::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/search", search)
        .get("/api/v1/services", services)
        .get("/api/v1/services/{service}/operations", operations)
        .get("/api/v1/attributes", attributes)
        .get("/api/v1/attributes/{name}/values", values)
        .get("/api/v1/traces/{trace_id}/critical-path", critical_path)
        .get("/api/v1/traces/{a}/compare/{b}", compare)
        .get("/api/v1/service-map", service_map)
        .get("/api/v1/metrics/red", red)
        .get("/api/v1/exemplars", exemplars)
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
) -> Result<Json<SearchAnswer>, ApiError> {
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
        attributes: params.filters("attr")?.into_iter().map(clew_query::attribute_filter).collect::<Result<_, _>>()?,
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
    Ok(Json(SearchAnswer {
        result,
        query: search.query.to_string(),
        order,
        start: search.range.start,
        end: search.range.end - 1,
    }))
}

/// `/search`: a page of results, and the search as it ran: its query in canonical TraceQL, its
/// order and its range (inclusive, Unix nanoseconds as strings).
#[derive(Serialize)]
struct SearchAnswer {
    #[serde(flatten)]
    result: SearchResult,
    query: String,
    order: Order,
    #[serde(serialize_with = "as_string")]
    start: u64,
    #[serde(serialize_with = "as_string")]
    end: u64,
}

/// A 64-bit integer as the OTLP/JSON mapping writes one: a decimal string.
fn as_string<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

async fn services(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<Services>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&tenant, range(&params)?).await?;
    Ok(Json(Services { services: catalog.services().into_iter().map(str::to_owned).collect() }))
}

#[derive(Serialize)]
struct Services {
    services: Vec<String>,
}

async fn operations(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Operations>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&tenant, range(&params)?).await?;
    let operations = catalog
        .operations
        .into_iter()
        .filter(|o| o.service == service)
        .map(|o| Operation { kind: clew_query::kind_name(o.kind), name: o.name })
        .collect();
    Ok(Json(Operations { service, operations }))
}

#[derive(Serialize)]
struct Operations {
    service: String,
    operations: Vec<Operation>,
}

#[derive(Serialize)]
struct Operation {
    name: String,
    /// The span kind in TraceQL spelling (`server`, `client`, ...).
    kind: &'static str,
}

/// Intrinsics a search can filter on, in TraceQL spelling.
pub(crate) const INTRINSICS: [&str; 9] =
    ["name", "status", "statusMessage", "kind", "duration", "rootServiceName", "rootName", "traceDuration", "span:id"];

async fn attributes(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<Attributes>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let scope = params.get("scope").unwrap_or("all");
    if !matches!(scope, "all" | "span" | "resource" | "intrinsic") {
        return Err(ApiError::BadRequest(format!(
            "scope must be one of all, span, resource, intrinsic; not {scope:?}"
        )));
    }
    let catalog = state.storage.catalog(&tenant, range(&params)?).await?;
    let asked = |name: &str| scope == "all" || scope == name;
    Ok(Json(Attributes {
        span: asked("span").then_some(catalog.span_attributes),
        resource: asked("resource").then_some(catalog.resource_attributes),
        intrinsic: asked("intrinsic").then_some(INTRINSICS),
    }))
}

/// Attribute names by scope; a scope not asked for is absent.
#[derive(Serialize)]
struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intrinsic: Option<[&'static str; 9]>,
}

async fn values(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Values>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.number("limit", VALUES_LIMIT.0)?.min(VALUES_LIMIT.1);
    let field = clew_query::field(&name)?;
    let values = crate::values(&state, &tenant, &field, range(&params)?, limit).await?;
    Ok(Json(Values { name, values: values.into_iter().map(TypedValue::from).collect() }))
}

#[derive(Serialize)]
struct Values {
    name: String,
    values: Vec<TypedValue>,
}

/// `{"type": "string"|"int"|"float"|"bool", "value": ...}`; `other` (arrays, maps, bytes) with
/// a null value.
#[derive(Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
enum TypedValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other(()),
}

impl From<Value> for TypedValue {
    fn from(value: Value) -> Self {
        match value {
            Value::Str(s) => Self::String(s),
            Value::Int(i) => Self::Int(i),
            Value::Float(f) => Self::Float(f),
            Value::Bool(b) => Self::Bool(b),
            Value::Other => Self::Other(()),
        }
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

/// `GET /api/v1/traces/{trace_id}/critical-path`: [`clew_query::CriticalPath`] and `traceId`.
async fn critical_path(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path(trace_id): Path<String>,
) -> Result<Json<CriticalPathAnswer>, ApiError> {
    let id = parse_trace_id(&trace_id, None)?;
    let rows = found("trace", id, state.storage.trace(&tenant, id).await?)?;
    Ok(Json(CriticalPathAnswer { path: clew_query::critical_path(&rows), trace_id: id }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CriticalPathAnswer {
    #[serde(flatten)]
    path: clew_query::CriticalPath,
    trace_id: TraceId,
}

/// `GET /api/v1/traces/{a}/compare/{b}`: [`clew_query::Comparison`] of B against A, and
/// `traceIdA`, `traceIdB`. Both IDs are checked before either trace is read.
async fn compare(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    Path((a, b)): Path<(String, String)>,
) -> Result<Json<ComparisonAnswer>, ApiError> {
    let ids = [parse_trace_id(&a, Some("trace A"))?, parse_trace_id(&b, Some("trace B"))?];
    let mut traces = state.storage.traces(&tenant, &ids).await?.into_iter();
    let a = found("trace A", ids[0], traces.next().unwrap_or_default())?;
    let b = found("trace B", ids[1], traces.next().unwrap_or_default())?;
    Ok(Json(ComparisonAnswer { comparison: clew_query::compare(&a, &b), trace_id_a: ids[0], trace_id_b: ids[1] }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComparisonAnswer {
    #[serde(flatten)]
    comparison: clew_query::Comparison,
    #[serde(rename = "traceIdA")]
    trace_id_a: TraceId,
    #[serde(rename = "traceIdB")]
    trace_id_b: TraceId,
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
    Ok(params.filters("attr")?.into_iter().map(clew_query::dimension_filter).collect::<Result<_, _>>()?)
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
) -> Result<Json<clew_query::ServiceMap>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let range = metrics_range(&params, &state)?;
    Ok(Json(clew_query::service_map(&*state.storage, &tenant, range, &dimension_filters(&params)?).await?))
}

/// `GET /api/v1/metrics/red?service=&operation=&kind=&groupBy=&step=&attr=`:
/// [`clew_query::RedResult`]. Grouped by operation for one service, else by service.
async fn red(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<clew_query::RedResult>, ApiError> {
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
    Ok(Json(clew_query::red(&*state.storage, &tenant, &request).await?))
}

/// `GET /api/v1/exemplars?family=&service=&name=&kind=&minDuration=&maxDuration=&error=&attr=`:
/// example traces behind a point of the service map or a RED series, as search results (slowest
/// first by default) with the TraceQL query that finds them.
async fn exemplars(
    State(state): State<AppState>,
    Reader(tenant, _): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<ExemplarsAnswer>, ApiError> {
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
    Ok(Json(ExemplarsAnswer { result, query: search.query.to_string() }))
}

/// Example traces as search results, with the TraceQL query that finds them.
#[derive(Serialize)]
struct ExemplarsAnswer {
    #[serde(flatten)]
    result: SearchResult,
    query: String,
}
