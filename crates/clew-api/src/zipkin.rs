//! Zipkin's v2 query API under `/zipkin/api/v2`, so that Zipkin's UI (Lens) and Grafana's Zipkin
//! data source can point at `http://host:4320/zipkin`: service, span and remote service names,
//! trace search, traces by ID, dependency links and tag autocompletion. Spans are written in
//! Zipkin's JSON by `clew-zipkin`; `POST /zipkin/api/v2/spans` belongs to `clew-ingest`.
//!
//! Failures are answered as Zipkin answers them: a status and a plain-text message
//! ([`ZipkinApiError`]).
//!
//! Trace search keeps Zipkin's meaning: when `serviceName` is given, every other condition
//! (`spanName`, `remoteServiceName`, each `annotationQuery` term, the duration bounds) must hold
//! on some span of that service, not necessarily the same one, and conditions read spans as
//! Zipkin shows them (tags, annotations, endpoints). The query layer finds candidates with one
//! TraceQL spanset per condition; the conditions TraceQL cannot state exactly (annotation
//! values, tags derived from OTLP fields) are checked on the translated spans.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use clew_model::{assemble, SpanRow, TraceId};
use clew_query::{Limits, Order, Search, TimeRange};
use clew_storage::{StorageError, Target, Value};
use clew_traceql::{CmpOp, Field, FieldExpr, Intrinsic, Query, SpansetExpr, Static, StatusValue};
use clew_zipkin::keys;
use clew_zipkin::ZipkinSpan;
use serde::Serialize;

use crate::error::{ApiError, Failure, PlainText};
use crate::params::Params;
use crate::reader::Reader;
use crate::routes::Routes;
use crate::AppState;

const PREFIX: &str = "/zipkin/api/v2";

pub(crate) fn routes() -> Routes {
    let path = |p: &str| format!("{PREFIX}{p}");
    Routes::new()
        .get(path("/services"), services)
        .get(path("/spans"), span_names)
        .get(path("/remoteServices"), remote_services)
        .get(path("/traces"), traces)
        .get(path("/trace/{trace_id}"), trace)
        .get(path("/traceMany"), trace_many)
        .get(path("/dependencies"), dependencies)
        .get(path("/autocompleteKeys"), autocomplete_keys)
        .get(path("/autocompleteValues"), autocomplete_values)
}

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
/// Zipkin's default `lookback` (its `QUERY_LOOKBACK`): one day, in milliseconds.
const DEFAULT_LOOKBACK_MS: u64 = 86_400_000;
/// Traces `/traces` returns when `limit` is absent (Zipkin's default).
const DEFAULT_LIMIT: usize = 10;
/// Most pages of candidates `/traces` reads while conditions checked on Zipkin spans reject
/// candidates, before it answers with what it has.
const SEARCH_PAGES: usize = 10;
/// Most values `/autocompleteValues` lists, and most `peer.service` values `/remoteServices`
/// considers.
const VALUES_LIMIT: usize = 1000;
/// Span attributes the translation turns into endpoint fields or flags, never tags: not
/// offered for autocompletion, since a tag query on them finds nothing.
const NOT_TAGS: [&str; 10] = [
    keys::PEER_SERVICE,
    keys::NETWORK_PEER_ADDRESS,
    keys::NETWORK_PEER_PORT,
    keys::NETWORK_LOCAL_ADDRESS,
    keys::NETWORK_LOCAL_PORT,
    keys::ZIPKIN_LOCAL_IPV6,
    keys::ZIPKIN_REMOTE_IPV6,
    keys::ZIPKIN_SHARED,
    keys::ZIPKIN_DEBUG,
    keys::ABSENT_START_TIME,
];
/// Tags the translation derives from OTLP fields no attribute filter reads: conditions on them
/// are only checked on the translated spans.
const DERIVED_TAGS: [&str; 9] = [
    keys::SPAN_KIND,
    keys::OTEL_SCOPE_NAME,
    keys::OTEL_SCOPE_VERSION,
    keys::OTEL_LIBRARY_NAME,
    keys::OTEL_LIBRARY_VERSION,
    keys::W3C_TRACESTATE,
    keys::DROPPED_ATTRIBUTES_COUNT,
    keys::DROPPED_EVENTS_COUNT,
    keys::DROPPED_LINKS_COUNT,
];

type Result<T, E = ZipkinApiError> = std::result::Result<T, E>;

/// A failed request, answered as Zipkin answers one: the status and a plain-text message.
type ZipkinApiError = Failure<PlainText>;

fn bad_request(message: impl Into<String>) -> ZipkinApiError {
    ZipkinApiError::bad_request(message)
}

/// What names are listed from, and what `/remoteServices` searches: the longest range a search
/// may cover, ending now. (Zipkin lists names from its whole retention.)
fn recent(limits: &Limits) -> TimeRange {
    let end = clew_query::now_nanos().saturating_add(1);
    TimeRange { start: end.saturating_sub(limits.max_range_nanos), end }
}

/// A required, non-empty parameter.
fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str> {
    params.get(name).ok_or_else(|| bad_request(format!("{name} is required")))
}

/// `GET /services`: local service names, sorted.
async fn services(State(state): State<AppState>, Reader(tenant, _): Reader<PlainText>) -> Result<Json<Vec<String>>> {
    let catalog = state.storage.catalog(&tenant, recent(&state.limits)).await?;
    Ok(Json(catalog.services().into_iter().map(str::to_owned).collect()))
}

/// `GET /spans?serviceName=`: the span names the service uses, sorted.
async fn span_names(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>> {
    let params = Params::parse(query.as_deref())?;
    let service = required(&params, "serviceName")?;
    let catalog = state.storage.catalog(&tenant, recent(&state.limits)).await?;
    let mut names: Vec<String> =
        catalog.operations.into_iter().filter(|o| o.service == service).map(|o| o.name).collect();
    // One name may come with several kinds; the catalog is sorted, so they are adjacent.
    names.dedup();
    Ok(Json(names))
}

/// `GET /remoteServices?serviceName=`: the remote service names (`peer.service`) the service's
/// spans name, sorted.
///
/// The store lists the `peer.service` values of every service; each is kept when a search finds
/// a span of this service with it.
async fn remote_services(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>> {
    let params = Params::parse(query.as_deref())?;
    let service = required(&params, "serviceName")?;
    let range = recent(&state.limits);
    let target = Target::SpanAttribute(keys::PEER_SERVICE.to_owned());
    let mut names = Vec::new();
    for value in state.storage.values(&tenant, range, &target, VALUES_LIMIT).await? {
        let Value::Str(name) = value else { continue };
        if name.is_empty() {
            continue;
        }
        let condition = FieldExpr::and(service_is(service), equals(Field::span(keys::PEER_SERVICE), &name));
        let search = Search {
            query: Query { root: SpansetExpr::Filter(condition) },
            range,
            order: Order::Newest,
            limit: 1,
            spans_per_trace: 0,
            cursor: None,
        };
        if !clew_query::search(&*state.storage, &tenant, &search, &state.limits).await?.traces.is_empty() {
            names.push(name);
        }
    }
    names.sort();
    Ok(Json(names))
}

fn service_is(service: &str) -> FieldExpr {
    equals(Field::resource(clew_model::SERVICE_NAME), service)
}

fn equals(field: Field, value: &str) -> FieldExpr {
    FieldExpr::compare(field, CmpOp::Eq, Static::Str(value.to_owned()))
}

/// One `annotationQuery` term: a tag `key=value`, or a word (`value` `None`) that an annotation
/// value or a tag key must equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    key: String,
    value: Option<String>,
}

/// `error and http.method=GET`: terms joined by ` and `, as Zipkin reads them.
fn annotation_query(text: &str) -> Result<Vec<Term>> {
    let mut terms: Vec<Term> = Vec::new();
    for part in text.split(" and ") {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim()).filter(|v| !v.is_empty())),
            None => (part.trim(), None),
        };
        if key.is_empty() {
            if value.is_none() {
                continue;
            }
            return Err(bad_request(format!("annotationQuery term {:?} has no key before `=`", part.trim())));
        }
        let term = Term { key: key.to_owned(), value: value.map(str::to_owned) };
        // Later terms with the same key win, as in Zipkin's map.
        terms.retain(|t| t.key != term.key);
        terms.push(term);
    }
    Ok(terms)
}

/// A `/traces` request, as Zipkin's `QueryRequest` reads it.
#[derive(Debug)]
struct TraceQuery {
    service: Option<String>,
    span_name: Option<String>,
    remote_service: Option<String>,
    terms: Vec<Term>,
    /// Microseconds, both inclusive.
    min_duration: Option<u64>,
    max_duration: Option<u64>,
    range: TimeRange,
    limit: usize,
}

impl TraceQuery {
    fn parse(params: &Params, limits: &Limits) -> Result<Self> {
        // Zipkin's older UI sends `all` for "any".
        let name = |key: &str| params.get(key).filter(|v| *v != "all").map(str::to_owned);
        let min_duration = params.get("minDuration").map(|_| params.number::<u64>("minDuration", 0)).transpose()?;
        let max_duration = params.get("maxDuration").map(|_| params.number::<u64>("maxDuration", 0)).transpose()?;
        match (min_duration, max_duration) {
            (Some(0), _) => return Err(bad_request("minDuration must be a positive number of microseconds")),
            (None, Some(_)) => return Err(bad_request("maxDuration is only valid with minDuration")),
            (Some(min), Some(max)) if max < min => {
                return Err(bad_request("maxDuration must not be below minDuration"))
            }
            _ => {}
        }
        let limit = match params.number("limit", DEFAULT_LIMIT)? {
            0 => return Err(bad_request("limit must be positive")),
            limit => limit.min(limits.max_limit),
        };
        Ok(Self {
            service: name("serviceName"),
            span_name: name("spanName"),
            remote_service: name("remoteServiceName"),
            terms: params.get("annotationQuery").map(annotation_query).transpose()?.unwrap_or_default(),
            min_duration,
            max_duration,
            range: window(params, limits, DEFAULT_LOOKBACK_MS)?,
            limit,
        })
    }

    /// Candidates: one spanset per condition, each on a span of the service. Conservative: it
    /// admits every trace [`TraceQuery::matches`] accepts.
    fn to_query(&self) -> Query {
        let on_service = |condition: FieldExpr| match &self.service {
            Some(service) => FieldExpr::and(service_is(service), condition),
            None => condition,
        };
        let mut conditions = Vec::new();
        if let Some(name) = &self.span_name {
            conditions.push(equals(Field::Intrinsic(Intrinsic::Name), name));
        }
        if let Some(remote) = &self.remote_service {
            conditions.push(equals(Field::span(keys::PEER_SERVICE), remote));
        }
        if let Some(min) = self.min_duration {
            // Zipkin durations are whole microseconds, rounded down and at least 1.
            let duration = Field::Intrinsic(Intrinsic::Duration);
            let min_nanos = if min <= 1 { 1 } else { min.saturating_mul(NANOS_PER_MICRO) };
            let mut condition = FieldExpr::compare(duration.clone(), CmpOp::Ge, Static::Duration(min_nanos));
            if let Some(max) = self.max_duration {
                let max_nanos = max.saturating_add(1).saturating_mul(NANOS_PER_MICRO) - 1;
                condition =
                    FieldExpr::and(condition, FieldExpr::compare(duration, CmpOp::Le, Static::Duration(max_nanos)));
            }
            conditions.push(condition);
        }
        conditions.extend(self.terms.iter().filter_map(|t| t.value.as_deref().and_then(|v| tag_condition(&t.key, v))));
        if conditions.is_empty() {
            conditions.push(FieldExpr::Static(Static::Bool(true)));
        }
        let root = conditions
            .into_iter()
            .map(|condition| SpansetExpr::Filter(on_service(condition)))
            .reduce(|a, b| SpansetExpr::And(Box::new(a), Box::new(b)))
            .unwrap_or(SpansetExpr::Filter(FieldExpr::Static(Static::Bool(true))));
        Query { root }
    }

    /// Zipkin's test of one trace: every condition holds on some span of the service.
    fn matches(&self, spans: &[ZipkinSpan]) -> bool {
        let mut service_found = self.service.is_none();
        let mut name_found = self.span_name.is_none();
        let mut remote_found = self.remote_service.is_none();
        let mut duration_found = self.min_duration.is_none();
        let mut remaining: Vec<&Term> = self.terms.iter().collect();
        for span in spans {
            let local = span.local_endpoint.as_ref().and_then(|e| e.service_name.as_deref());
            if self.service.as_deref().is_some_and(|service| local != Some(service)) {
                continue;
            }
            service_found = true;
            name_found |= span.name.is_some() && span.name == self.span_name;
            let remote = span.remote_endpoint.as_ref().and_then(|e| e.service_name.as_deref());
            remote_found |= remote.is_some() && remote == self.remote_service.as_deref();
            if let Some(min) = self.min_duration {
                let duration = span.duration.unwrap_or(0);
                duration_found |= duration >= min && self.max_duration.is_none_or(|max| duration <= max);
            }
            remaining.retain(|term| match &term.value {
                None => !(span.tags.contains_key(&term.key) || span.annotations.iter().any(|a| a.value == term.key)),
                Some(value) => span.tags.get(&term.key) != Some(value),
            });
        }
        service_found && name_found && remote_found && duration_found && remaining.is_empty()
    }
}

/// A tag equality as a condition on span fields: the attribute (of the span, else of its
/// resource) equals the text, as a string or as the number or boolean it reads as; tags derived
/// from the span's status also match the status. `None` for tags no field condition can find.
fn tag_condition(key: &str, value: &str) -> Option<FieldExpr> {
    if DERIVED_TAGS.contains(&key) {
        return None;
    }
    let condition = clew_query::text_equals(Field::any(key), value);
    let status = |status| FieldExpr::compare(Field::Intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(status));
    let derived = match key {
        keys::ERROR => Some(status(StatusValue::Error)),
        keys::OTEL_STATUS_CODE => {
            clew_query::status(value.strip_prefix("STATUS_CODE_").unwrap_or(value)).ok().map(status)
        }
        keys::OTEL_STATUS_DESCRIPTION => Some(equals(Field::Intrinsic(Intrinsic::StatusMessage), value)),
        _ => None,
    };
    Some(match derived {
        Some(derived) => FieldExpr::or(condition, derived),
        None => condition,
    })
}

/// `[endTs - lookback, endTs]` from `endTs` (Unix milliseconds, default now) and `lookback`
/// (milliseconds), shortened to the most recent part a search may cover.
fn window(params: &Params, limits: &Limits, default_lookback_ms: u64) -> Result<TimeRange> {
    let end = match params.get("endTs") {
        None => clew_query::now_nanos(),
        Some(_) => match params.number::<u64>("endTs", 0)? {
            0 => return Err(bad_request("endTs must be a positive number of epoch milliseconds")),
            // The whole millisecond: a span starting at 12.9 ms is at or before endTs 12.
            ms => ms.saturating_mul(NANOS_PER_MILLI).saturating_add(NANOS_PER_MILLI - 1),
        },
    };
    let lookback = match params.number::<u64>("lookback", default_lookback_ms)? {
        0 => return Err(bad_request("lookback must be a positive number of milliseconds")),
        ms => ms.saturating_mul(NANOS_PER_MILLI),
    };
    let range = clew_query::range(Some(end.saturating_sub(lookback)), Some(end))?;
    Ok(TimeRange { start: range.start.max(range.end.saturating_sub(limits.max_range_nanos)), end: range.end })
}

/// `GET /traces`: the newest traces matching the query, as `[[span, ...], ...]`.
async fn traces(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Vec<ZipkinSpan>>>> {
    let params = Params::parse(query.as_deref())?;
    let request = TraceQuery::parse(&params, &state.limits)?;
    let mut search = Search {
        query: request.to_query(),
        range: request.range,
        order: Order::Newest,
        limit: request.limit,
        spans_per_trace: 0,
        cursor: None,
    };
    let mut traces = Vec::new();
    'pages: for _ in 0..SEARCH_PAGES {
        let page = clew_query::search(&*state.storage, &tenant, &search, &state.limits).await?;
        let ids: Vec<TraceId> = page.traces.iter().map(|t| t.trace_id).collect();
        let rows = state.storage.traces(&tenant, &ids).await?;
        for (id, rows) in ids.into_iter().zip(rows) {
            let spans = zipkin_spans(id, rows)?;
            if !spans.is_empty() && request.matches(&spans) {
                traces.push(spans);
                if traces.len() == request.limit {
                    break 'pages;
                }
            }
        }
        match page.next_cursor {
            Some(cursor) => search.cursor = Some(cursor.parse()?),
            None => break,
        }
    }
    Ok(Json(traces))
}

/// A trace ID as Zipkin reads one: up to 32 hex characters, left-padded with zeros (a 64-bit
/// ID is stored with its upper half zero).
fn trace_id(text: &str) -> Result<TraceId> {
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request(format!("trace ID must be 16 or 32 hex characters, not {text:?}")));
    }
    format!("{:0>32}", text.to_ascii_lowercase())
        .parse()
        .map_err(|e| bad_request(format!("invalid trace ID {text:?}: {e}")))
}

fn zipkin_spans(trace_id: TraceId, rows: Vec<SpanRow>) -> Result<Vec<ZipkinSpan>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let resource_spans = assemble(rows)
        .map_err(|e| StorageError::Corrupt { location: format!("trace {trace_id}"), reason: e.to_string() })?;
    Ok(clew_zipkin::to_zipkin(&resource_spans))
}

/// `GET /trace/{traceId}`: the trace's spans, or 404.
async fn trace(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    Path(text): Path<String>,
) -> Result<Json<Vec<ZipkinSpan>>> {
    let id = trace_id(&text)?;
    let spans = zipkin_spans(id, state.storage.trace(&tenant, id).await?)?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("trace {text} not found")).into());
    }
    Ok(Json(spans))
}

/// `GET /traceMany?traceIds=a,b`: the traces of those (at least two) that the store holds.
async fn trace_many(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Vec<ZipkinSpan>>>> {
    let params = Params::parse(query.as_deref())?;
    let mut ids: Vec<TraceId> = Vec::new();
    required(&params, "traceIds")?;
    // Comma-separated, as Zipkin reads it; given repeatedly, the lists join.
    for text in params.all("traceIds").flat_map(|list| list.split(',')) {
        let id = trace_id(text.trim())?;
        if ids.contains(&id) {
            return Err(bad_request(format!("traceIds lists {} twice", text.trim())));
        }
        ids.push(id);
    }
    if ids.len() < 2 {
        return Err(bad_request("traceIds must list at least two trace IDs; use /trace/{traceId} for one"));
    }
    let mut traces = Vec::new();
    for (id, rows) in ids.iter().zip(state.storage.traces(&tenant, &ids).await?) {
        let spans = zipkin_spans(*id, rows)?;
        if !spans.is_empty() {
            traces.push(spans);
        }
    }
    Ok(Json(traces))
}

/// One link of the service graph, as Zipkin's `DependencyLink`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DependencyLink {
    parent: String,
    child: String,
    call_count: u64,
    error_count: u64,
}

/// `GET /dependencies?endTs=&lookback=`: calls between services in `[endTs - lookback, endTs]`
/// (Unix milliseconds and milliseconds; `endTs` is required, `lookback` defaults to a day),
/// whole minutes, from the service map's rollups (calls to uninstrumented databases and peers
/// included). A call failed when the callee failed or the caller is a failed client span.
async fn dependencies(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<DependencyLink>>> {
    let params = Params::parse(query.as_deref())?;
    required(&params, "endTs")?;
    let range = window(&params, &state.limits, DEFAULT_LOOKBACK_MS)?;
    let edges = clew_query::dependencies(&*state.storage, &tenant, range).await?;
    Ok(Json(
        edges
            .into_iter()
            .map(|e| DependencyLink {
                parent: e.source,
                child: e.target,
                call_count: e.red.requests.round() as u64,
                error_count: e.red.errors.round() as u64,
            })
            .collect(),
    ))
}

/// `GET /autocompleteKeys`: the span attribute names that read back as tags, sorted.
async fn autocomplete_keys(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
) -> Result<Json<Vec<String>>> {
    let catalog = state.storage.catalog(&tenant, recent(&state.limits)).await?;
    Ok(Json(catalog.span_attributes.into_iter().filter(|key| !NOT_TAGS.contains(&key.as_str())).collect()))
}

/// `GET /autocompleteValues?key=`: values of that span attribute as tag text, most frequent
/// first.
async fn autocomplete_values(
    State(state): State<AppState>,
    Reader(tenant, _): Reader<PlainText>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>> {
    let params = Params::parse(query.as_deref())?;
    let key = required(&params, "key")?;
    let target = Target::SpanAttribute(key.to_owned());
    let values = state.storage.values(&tenant, recent(&state.limits), &target, VALUES_LIMIT).await?;
    let mut texts: Vec<String> = Vec::new();
    for value in values {
        let text = match value {
            Value::Other => continue,
            other => other.to_string(),
        };
        // An int and a string may read the same.
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    Ok(Json(texts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(key: &str, value: Option<&str>) -> Term {
        Term { key: key.into(), value: value.map(Into::into) }
    }

    #[test]
    fn annotation_queries_read_as_zipkin_reads_them() {
        assert_eq!(
            annotation_query("error and http.method=GET and  retried ").unwrap(),
            [term("error", None), term("http.method", Some("GET")), term("retried", None)]
        );
        assert_eq!(annotation_query("http.uri=/a=b").unwrap(), [term("http.uri", Some("/a=b"))]);
        assert_eq!(annotation_query("k=1 and k=2").unwrap(), [term("k", Some("2"))]);
        assert_eq!(annotation_query("k=").unwrap(), [term("k", None)], "an empty value asks for the key");
        assert!(annotation_query("=x").is_err());
    }

    #[test]
    fn trace_ids_are_padded_and_checked() {
        assert_eq!(trace_id("abcd").unwrap().to_hex(), format!("{:0>32}", "abcd"));
        assert_eq!(trace_id(&"AB".repeat(16)).unwrap().to_hex(), "ab".repeat(16));
        for bad in ["", "xyz", &"a".repeat(33), &"0".repeat(16)] {
            assert!(trace_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conditions_become_one_spanset_each_on_the_service() {
        let query = TraceQuery {
            service: Some("api".into()),
            span_name: Some("get".into()),
            remote_service: None,
            terms: vec![term("error", None), term("http.status_code", Some("500"))],
            min_duration: Some(2),
            max_duration: Some(3),
            range: TimeRange { start: 0, end: 1 },
            limit: 1,
        };
        assert_eq!(
            query.to_query().to_string(),
            "{ resource.service.name = \"api\" && span:name = \"get\" } && \
             { resource.service.name = \"api\" && (span:duration >= 2us && span:duration <= 3999ns) } && \
             { resource.service.name = \"api\" && (.http.status_code = 500 || .http.status_code = \"500\") }"
        );
    }
}
