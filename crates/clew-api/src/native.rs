//! The native search and discovery API under `/api/v1` (described in `docs/openapi.yaml`).

use std::str::FromStr;

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use clew_model::TenantId;
use clew_query::{Filters, Order, Search};
use clew_storage::Value;
use serde_json::json;

use crate::params::Params;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{service}/operations", get(operations))
        .route("/api/v1/attributes", get(attributes))
        .route("/api/v1/attributes/{name}/values", get(values))
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

async fn search(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<serde_json::Value>, ApiError> {
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
    let result = clew_query::search(&*state.storage, &TenantId::default_tenant(), &search, &state.limits).await?;
    let mut body = serde_json::to_value(&result).map_err(|e| ApiError::internal("encode search results", e))?;
    body["query"] = json!(search.query.to_string());
    body["order"] = json!(order);
    body["start"] = json!(search.range.start.to_string());
    body["end"] = json!((search.range.end - 1).to_string());
    Ok(Json(body))
}

async fn services(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&TenantId::default_tenant(), range(&params)?).await?;
    Ok(Json(json!({ "services": catalog.services() })))
}

async fn operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&TenantId::default_tenant(), range(&params)?).await?;
    let operations: Vec<_> = catalog
        .operations
        .iter()
        .filter(|o| o.service == service)
        .map(|o| json!({ "name": o.name, "kind": kind_name(o.kind) }))
        .collect();
    Ok(Json(json!({ "service": service, "operations": operations })))
}

/// TraceQL's name for an OTLP span kind.
pub(crate) fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

/// Intrinsics a search can filter on, in TraceQL spelling.
pub(crate) const INTRINSICS: [&str; 9] =
    ["name", "status", "statusMessage", "kind", "duration", "rootServiceName", "rootName", "traceDuration", "span:id"];

async fn attributes(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let catalog = state.storage.catalog(&TenantId::default_tenant(), range(&params)?).await?;
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
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.number("limit", VALUES_LIMIT.0)?.min(VALUES_LIMIT.1);
    let field = clew_query::field(&name)?;
    let values = crate::values(&state, &field, range(&params)?, limit).await?;
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
