//! The service map, RED metrics (rate, errors, duration) and their exemplars, all read from
//! the store's per-minute rollups; exemplars are found by searching the spans behind a point.

use std::collections::{BTreeMap, HashMap};

use clew_model::TenantId;
use clew_rollup::{Family, Key, RollupQuery, Stats, MINUTE_NANOS, PEER_ATTRIBUTES};
use clew_storage::{TimeRange, TraceReader};
use clew_traceql::{
    CmpOp, Field, FieldExpr, Intrinsic, KindValue, Query, Scope, SpansetExpr, Static, StatusValue, StructuralOp,
};
use serde::Serialize;

use crate::{decimal, QueryError, Result};

/// Most points one RED series may have.
const MAX_POINTS: u64 = 1_500;
/// Points a RED series has at most when no step is given...
const DEFAULT_POINTS: u64 = 120;
/// ... with the first of these steps (minutes) that keeps to it.
const NICE_STEPS: [u64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

/// Rate, errors and duration of a set of spans or calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Red {
    /// Spans or calls, re-weighted by their sampling weight.
    pub requests: f64,
    /// Per second over the time covered.
    pub rate: f64,
    pub errors: f64,
    /// Errors per request (0 when there were none).
    pub error_rate: f64,
    /// Duration percentiles in nanoseconds (within 1%), absent without requests.
    #[serde(skip_serializing_if = "Option::is_none", with = "optional_decimal")]
    pub p50_nanos: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", with = "optional_decimal")]
    pub p95_nanos: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", with = "optional_decimal")]
    pub p99_nanos: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", with = "optional_decimal")]
    pub avg_nanos: Option<u64>,
}

mod optional_decimal {
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.collect_str(v),
            None => serializer.serialize_none(),
        }
    }
}

impl Red {
    /// The figures of `stats` over `seconds`.
    pub fn of(stats: &Stats, seconds: f64) -> Self {
        let quantile = |q| stats.latency.quantile(q);
        Self {
            requests: stats.count,
            rate: if seconds > 0.0 { stats.count / seconds } else { 0.0 },
            errors: stats.errors,
            error_rate: if stats.count > 0.0 { stats.errors / stats.count } else { 0.0 },
            p50_nanos: quantile(0.5),
            p95_nanos: quantile(0.95),
            p99_nanos: quantile(0.99),
            avg_nanos: (stats.count > 0.0).then(|| (stats.duration_sum / stats.count).round() as u64),
        }
    }
}

/// A service or an uninstrumented peer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    /// `service`, `database` or `external`.
    pub kind: &'static str,
    /// For a service: its server and consumer spans; for a peer: the calls it received.
    #[serde(flatten)]
    pub red: Red,
}

/// Calls from one node to another.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub source: String,
    pub target: String,
    /// `call`, `messaging`, `database` or `external`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub red: Red,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMap {
    #[serde(with = "decimal")]
    pub start_unix_nano: u64,
    #[serde(with = "decimal")]
    pub end_unix_nano: u64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// The minutes `range` covers, as a rollup query, with dimension `filters` and `group_by`
/// checked against what the store keeps (`kept`, for `what`, listed by the setting `setting`).
fn minutes(
    range: TimeRange,
    (kept, what, setting): (&[String], &str, &str),
    filters: &[(String, String)],
    group_by: &[String],
) -> Result<RollupQuery> {
    if let Some(unknown) = filters.iter().map(|(name, _)| name).chain(group_by).find(|name| !kept.contains(name)) {
        return Err(QueryError::invalid(format!(
            "`{unknown}` is not a rollup dimension; {what} {} (set {setting} to change)",
            if kept.is_empty() { "nothing".to_owned() } else { kept.join(", ") }
        )));
    }
    if range.end <= range.start {
        return Err(QueryError::invalid("time range is empty: `end` must be after `start`"));
    }
    let mut query = RollupQuery::minutes(range.start, range.end);
    query.filters = filters.to_vec();
    query.group_by = group_by.to_vec();
    Ok(query)
}

/// Seconds in the whole minutes a rollup query covers.
fn seconds(query: &RollupQuery) -> f64 {
    f64::from(query.end_minute - query.start_minute) * 60.0
}

const SERVER: i32 = 2;
const CONSUMER: i32 = 5;

/// The services, peers and calls between them within `range`, of spans whose dimensions equal
/// `filters`.
pub async fn service_map(
    reader: &dyn TraceReader,
    tenant: &TenantId,
    range: TimeRange,
    filters: &[(String, String)],
) -> Result<ServiceMap> {
    let dimensions = reader.rollup_dimensions();
    let mut query =
        minutes(range, (&dimensions.calls, "the service map can filter by", "rollups.call_dimensions"), filters, &[])?;
    query.step_minutes = query.end_minute - query.start_minute;
    let rollup = reader.rollups(tenant, &query).await?;
    let mut nodes: BTreeMap<String, (&'static str, Stats)> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String, Family), Stats> = BTreeMap::new();
    for (key, stats) in &rollup.entries {
        match key.family {
            Family::Span => {
                let (_, node) = nodes.entry(key.service.to_string()).or_insert(("service", Stats::default()));
                if key.kind == SERVER || key.kind == CONSUMER {
                    node.merge(stats);
                }
            }
            family => {
                edges.entry((key.service.to_string(), key.name.to_string(), family)).or_default().merge(stats);
                nodes.entry(key.service.to_string()).or_insert(("service", Stats::default()));
            }
        }
    }
    // Peers are nodes too, measured by the calls they received; a peer named like a service is
    // that service.
    let mut peers: HashMap<String, (&'static str, Stats)> = HashMap::new();
    for ((_, target, family), stats) in &edges {
        let kind = match family {
            Family::Database => "database",
            Family::External => "external",
            _ => continue,
        };
        peers.entry(target.clone()).or_insert((kind, Stats::default())).1.merge(stats);
    }
    for (id, peer) in peers {
        nodes.entry(id).or_insert(peer);
    }
    let seconds = seconds(&query);
    let nodes = nodes.into_iter().map(|(id, (kind, stats))| Node { red: Red::of(&stats, seconds), id, kind }).collect();
    let edges = edges
        .into_iter()
        .map(|((source, target, family), stats)| Edge {
            source,
            target,
            kind: family.name(),
            red: Red::of(&stats, seconds),
        })
        .collect();
    Ok(ServiceMap { start_unix_nano: range.start, end_unix_nano: range.end - 1, nodes, edges })
}

/// What RED series to compute.
#[derive(Clone, Debug, Default)]
pub struct RedRequest {
    pub range: TimeRange,
    /// Bucket width in nanoseconds (whole minutes); chosen for about 120 points when absent.
    pub step_nanos: Option<u64>,
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Span kinds (OTLP codes) counted; all when empty.
    pub kinds: Vec<i32>,
    /// Dimension filters: attribute = value.
    pub filters: Vec<(String, String)>,
    /// One series per distinct value of these: `service`, `operation`, `kind`, or dimensions.
    pub group_by: Vec<String>,
}

/// Names [`RedRequest::group_by`] accepts besides dimensions.
const KEY_GROUPS: [&str; 3] = ["service", "operation", "kind"];

/// One RED series: its labels, its figures over the whole range and per step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedSeries {
    pub labels: BTreeMap<String, Option<String>>,
    pub total: Red,
    pub points: Vec<RedPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedPoint {
    #[serde(with = "decimal")]
    pub start_unix_nano: u64,
    #[serde(flatten)]
    pub red: Red,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedResult {
    #[serde(with = "decimal")]
    pub start_unix_nano: u64,
    #[serde(with = "decimal")]
    pub end_unix_nano: u64,
    #[serde(with = "decimal")]
    pub step_nanos: u64,
    pub group_by: Vec<String>,
    pub series: Vec<RedSeries>,
}

/// Rate, errors and duration percentiles per step, one series per group.
pub async fn red(reader: &dyn TraceReader, tenant: &TenantId, request: &RedRequest) -> Result<RedResult> {
    let dimensions: Vec<String> =
        request.group_by.iter().filter(|g| !KEY_GROUPS.contains(&g.as_str())).cloned().collect();
    let kept = reader.rollup_dimensions();
    let mut query = minutes(
        request.range,
        (&kept.spans, "RED metrics can filter and group by", "rollups.dimensions"),
        &request.filters,
        &dimensions,
    )?;
    let step_minutes = match request.step_nanos {
        Some(step) if step < MINUTE_NANOS || step % MINUTE_NANOS != 0 => {
            return Err(QueryError::invalid("step must be a whole number of minutes, like 1m or 5m"))
        }
        Some(step) => step / MINUTE_NANOS,
        None => {
            let wanted = u64::from(query.end_minute - query.start_minute).div_ceil(DEFAULT_POINTS);
            NICE_STEPS.into_iter().find(|&s| s >= wanted).unwrap_or(wanted)
        }
    };
    // Steps start at multiples of the step, as in Prometheus: the same minutes fall in the same
    // step whatever the range, and hour and quarter-hour aggregates fit in steps.
    query.start_minute -= (u64::from(query.start_minute) % step_minutes) as u32;
    let span = u64::from(query.end_minute - query.start_minute);
    if span.div_ceil(step_minutes) > MAX_POINTS {
        return Err(QueryError::invalid(format!(
            "{} points of {step_minutes} min exceed the {MAX_POINTS} a series may have; choose a longer step",
            span.div_ceil(step_minutes)
        )));
    }
    query.step_minutes = step_minutes as u32;
    query.families = vec![Family::Span];
    query.service = request.service.clone();
    let rollup = reader.rollups(tenant, &query).await?;

    let label = |key: &Key, name: &str| -> Option<String> {
        match name {
            "service" => Some(key.service.to_string()),
            "operation" => Some(key.name.to_string()),
            "kind" => Some(crate::kind_name(key.kind).to_owned()),
            dimension => {
                let i = dimensions.iter().position(|d| d == dimension)?;
                key.dims.get(i).cloned().flatten().map(|v| v.to_string())
            }
        }
    };
    let mut groups: BTreeMap<Vec<Option<String>>, BTreeMap<u32, Stats>> = BTreeMap::new();
    for (key, stats) in &rollup.entries {
        if request.operation.as_deref().is_some_and(|op| op != &*key.name)
            || (!request.kinds.is_empty() && !request.kinds.contains(&key.kind))
        {
            continue;
        }
        let labels = request.group_by.iter().map(|g| label(key, g)).collect();
        groups.entry(labels).or_default().entry(key.minute).or_default().merge(stats);
    }
    let step_seconds = (step_minutes * 60) as f64;
    let series = groups
        .into_iter()
        .map(|(labels, by_minute)| {
            let mut total = Stats::default();
            let points = (0..span.div_ceil(step_minutes))
                .map(|i| {
                    let minute = query.start_minute + (i * step_minutes) as u32;
                    let stats = by_minute.get(&minute).cloned().unwrap_or_default();
                    total.merge(&stats);
                    // The last bucket may be cut short by the end of the range.
                    let covered = (span - i * step_minutes).min(step_minutes) as f64 * 60.0;
                    RedPoint {
                        start_unix_nano: u64::from(minute) * MINUTE_NANOS,
                        red: Red::of(&stats, covered.min(step_seconds)),
                    }
                })
                .collect();
            RedSeries {
                labels: request.group_by.iter().cloned().zip(labels).collect(),
                total: Red::of(&total, seconds(&query)),
                points,
            }
        })
        .collect();
    Ok(RedResult {
        start_unix_nano: u64::from(query.start_minute) * MINUTE_NANOS,
        end_unix_nano: u64::from(query.end_minute) * MINUTE_NANOS,
        step_nanos: step_minutes * MINUTE_NANOS,
        group_by: request.group_by.clone(),
        series,
    })
}

/// A point of the service map or of a RED series, to find example traces of.
#[derive(Clone, Debug)]
pub struct Exemplars {
    pub family: Family,
    /// The service of the spans, or the calling service of a call.
    pub service: String,
    /// The operation of the spans, or the called service or peer of a call.
    pub name: Option<String>,
    pub kind: Option<KindValue>,
    pub min_duration: Option<u64>,
    pub max_duration: Option<u64>,
    pub errors_only: bool,
    pub filters: Vec<(String, String)>,
}

impl Exemplars {
    /// The TraceQL query whose matches are the spans behind the point: for spans, the spans;
    /// for calls, the called spans (whose parent is in the calling service); for peers, the
    /// calling service's client or producer spans that name the peer.
    ///
    /// A call's latency and failure are the client span's when the caller recorded one (kind
    /// client), else the called span's, as in the rollups; so a call query has one branch per
    /// case. Dimension filters apply to the called span, as in the rollups.
    pub fn query(&self) -> Query {
        let equals = |field: Field, value: &str| FieldExpr::compare(field, CmpOp::Eq, Static::Str(value.to_owned()));
        let service = |name: &str| equals(Field::resource("service.name"), name);
        let mut duration = Vec::new();
        if let Some(min) = self.min_duration {
            duration.push(FieldExpr::compare(Field::Intrinsic(Intrinsic::Duration), CmpOp::Ge, Static::Duration(min)));
        }
        if let Some(max) = self.max_duration {
            duration.push(FieldExpr::compare(Field::Intrinsic(Intrinsic::Duration), CmpOp::Le, Static::Duration(max)));
        }
        let failed =
            FieldExpr::compare(Field::Intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(StatusValue::Error));
        let kind =
            |op: CmpOp, kind: KindValue| FieldExpr::compare(Field::Intrinsic(Intrinsic::Kind), op, Static::Kind(kind));
        let dimensions: Vec<FieldExpr> = self
            .filters
            .iter()
            .map(|(name, value)| crate::text_equals(Field::Attribute { scope: Scope::Any, name: name.clone() }, value))
            .collect();
        let filter = |conditions: Vec<FieldExpr>| {
            SpansetExpr::Filter(
                conditions.into_iter().reduce(FieldExpr::and).unwrap_or(FieldExpr::Static(Static::Bool(true))),
            )
        };
        let child = |parent: Vec<FieldExpr>, child: Vec<FieldExpr>| {
            SpansetExpr::Structural(StructuralOp::Child, Box::new(filter(parent)), Box::new(filter(child)))
        };
        let errors = |conditions: &mut Vec<FieldExpr>| {
            if self.errors_only {
                conditions.push(failed.clone());
            }
        };
        let root = match self.family {
            Family::Span => {
                let mut spans = vec![service(&self.service)];
                spans.extend(self.name.iter().map(|n| equals(Field::Intrinsic(Intrinsic::Name), n)));
                spans.extend(self.kind.map(|k| kind(CmpOp::Eq, k)));
                spans.extend(duration);
                errors(&mut spans);
                spans.extend(dimensions);
                filter(spans)
            }
            Family::Call | Family::Messaging => {
                let mut callee = dimensions;
                callee.extend(self.name.iter().map(|n| service(n)));
                let caller = vec![service(&self.service)];
                let mut branches = Vec::new();
                if duration.is_empty() {
                    // Any caller: the call failed when the called span did...
                    let mut called = callee.clone();
                    errors(&mut called);
                    branches.push(child(caller.clone(), called));
                } else {
                    // Measured on the client span...
                    let mut client = caller.clone();
                    client.push(kind(CmpOp::Eq, KindValue::Client));
                    client.extend(duration.iter().cloned());
                    let mut called = callee.clone();
                    errors(&mut called);
                    branches.push(child(client, called));
                    // ... or, without one, on the called span.
                    let mut other = caller.clone();
                    other.push(kind(CmpOp::Ne, KindValue::Client));
                    let mut called = callee.clone();
                    called.extend(duration.iter().cloned());
                    errors(&mut called);
                    branches.push(child(other, called));
                }
                if self.errors_only {
                    // ... or when the client span failed.
                    let mut failed_client = caller;
                    failed_client.extend([kind(CmpOp::Eq, KindValue::Client), failed.clone()]);
                    failed_client.extend(duration);
                    branches.push(child(failed_client, callee));
                }
                branches
                    .into_iter()
                    .reduce(|a, b| SpansetExpr::Or(Box::new(a), Box::new(b)))
                    .unwrap_or_else(|| filter(Vec::new()))
            }
            Family::Database | Family::External => {
                let mut spans = vec![
                    service(&self.service),
                    FieldExpr::or(kind(CmpOp::Eq, KindValue::Client), kind(CmpOp::Eq, KindValue::Producer)),
                ];
                if let Some(peer) = &self.name {
                    spans.extend(PEER_ATTRIBUTES.iter().map(|a| equals(Field::span(*a), peer)).reduce(FieldExpr::or));
                }
                spans.extend(duration);
                errors(&mut spans);
                spans.extend(dimensions);
                filter(spans)
            }
        };
        Query { root }
    }
}

/// The family an API names: `span`, `call`, `messaging`, `database` or `external`.
pub fn family(text: &str) -> Result<Family> {
    Family::ALL.into_iter().find(|f| f.name() == text).ok_or_else(|| {
        QueryError::invalid(format!("family must be one of span, call, messaging, database, external; not {text:?}"))
    })
}

/// `name=value` dimension filters as the APIs give them (`attr=deployment.environment=prod`).
pub fn dimension_filter(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().trim_matches('"').to_owned()))
        }
        _ => Err(QueryError::invalid(format!(
            "filter must be name=value, like deployment.environment=prod; not {text:?}"
        ))),
    }
}

/// Every edge of the service map, for the Jaeger and Zipkin dependency APIs: (caller, callee,
/// calls, failed calls).
pub async fn dependencies(reader: &dyn TraceReader, tenant: &TenantId, range: TimeRange) -> Result<Vec<Edge>> {
    Ok(service_map(reader, tenant, range, &[]).await?.edges)
}
