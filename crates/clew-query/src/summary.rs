//! Trace summaries: what a search result says about a trace without showing all of it.

use std::collections::BTreeMap;

use clew_model::{SpanRow, TraceId};
use serde::Serialize;

/// OTLP `STATUS_CODE_ERROR`.
pub const STATUS_ERROR: i32 = 2;

/// One trace found by a search.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    pub trace_id: TraceId,
    /// Service of the root span, or of the earliest span when the root is missing.
    pub root_service: String,
    /// Name of the root span, or of the earliest span when the root is missing.
    pub root_name: String,
    /// Whether no span of the trace is a root (the root is missing or not yet received).
    pub root_missing: bool,
    #[serde(with = "crate::decimal")]
    pub start_unix_nano: u64,
    #[serde(with = "crate::decimal")]
    pub duration_nanos: u64,
    pub span_count: usize,
    pub error_count: usize,
    /// Spans and errors per service, by service name.
    pub services: Vec<ServiceCount>,
    /// The spans that matched the query (at most the spans-per-spanset limit).
    pub matched: Vec<MatchedSpan>,
    /// How many spans matched in all.
    pub matched_count: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceCount {
    pub name: String,
    pub spans: usize,
    pub errors: usize,
}

/// A span that matched, with the attributes the query selected.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedSpan {
    pub span_id: String,
    pub service: String,
    pub name: String,
    pub kind: i32,
    pub status_code: i32,
    #[serde(with = "crate::decimal")]
    pub start_unix_nano: u64,
    #[serde(with = "crate::decimal")]
    pub duration_nanos: u64,
    /// Selected fields (`select(...)`) and their values, as text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
}

/// 64-bit integers as JSON strings, as OTLP/JSON writes them (JavaScript loses precision past
/// 2^53).
/// The index in `rows` of the root span: a span without a parent (the earliest of several),
/// else the earliest span; and whether a real root was found.
pub fn root_of(rows: &[SpanRow]) -> Option<(usize, bool)> {
    let earliest = |candidates: &mut dyn Iterator<Item = (usize, &SpanRow)>| {
        candidates.min_by_key(|(_, r)| (r.start_unix_nano, r.span_id)).map(|(i, _)| i)
    };
    if let Some(root) = earliest(&mut rows.iter().enumerate().filter(|(_, r)| r.parent_span_id.is_empty())) {
        return Some((root, true));
    }
    earliest(&mut rows.iter().enumerate()).map(|i| (i, false))
}

/// Summarises a whole trace; `matched` are indexes into `rows`.
pub fn summarize(trace_id: TraceId, rows: &[SpanRow], matched: Vec<MatchedSpan>, matched_count: usize) -> TraceSummary {
    let (root_service, root_name, root_missing) = match root_of(rows) {
        Some((i, found)) => (rows[i].service_name.to_string(), rows[i].name.clone(), !found),
        None => (String::new(), String::new(), true),
    };
    let start = rows.iter().map(|r| r.start_unix_nano).min().unwrap_or(0);
    let end = rows.iter().map(|r| r.end_unix_nano).max().unwrap_or(0);
    let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for row in rows {
        let entry = services.entry(&row.service_name).or_default();
        entry.0 += 1;
        entry.1 += usize::from(row.status_code == STATUS_ERROR);
    }
    TraceSummary {
        trace_id,
        root_service,
        root_name,
        root_missing,
        start_unix_nano: start,
        duration_nanos: end.saturating_sub(start),
        span_count: rows.len(),
        error_count: rows.iter().filter(|r| r.status_code == STATUS_ERROR).count(),
        services: services
            .into_iter()
            .map(|(name, (spans, errors))| ServiceCount { name: name.to_owned(), spans, errors })
            .collect(),
        matched,
        matched_count,
    }
}

impl MatchedSpan {
    pub fn of(row: &SpanRow, attributes: Vec<(String, String)>) -> Self {
        Self {
            span_id: row.span_id.to_string(),
            service: row.service_name.to_string(),
            name: row.name.clone(),
            kind: row.kind,
            status_code: row.status_code,
            start_unix_nano: row.start_unix_nano,
            duration_nanos: row.duration_nanos(),
            attributes,
        }
    }
}
