//! Search: candidates from the store, the exact query on each candidate trace, summaries in a
//! deterministic order with keyset paging.

use std::fmt;
use std::str::FromStr;

use clew_model::{SpanRow, TenantId, TraceId};
use clew_storage::{TimeRange, TraceHit, TraceReader};
use clew_traceql::Query;
use serde::Serialize;

use crate::plan::plan;
use crate::summary::{summarize, MatchedSpan, TraceSummary};
use crate::trace::{evaluate, selected_text};
use crate::{QueryError, Result};

/// Most traces read from the store at once.
const MAX_BATCH: usize = 256;

/// The order of results. Ties are broken by trace ID, so the order is total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Latest trace start first.
    #[default]
    Newest,
    /// Longest trace first.
    Longest,
}

impl FromStr for Order {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "newest" => Ok(Self::Newest),
            "longest" => Ok(Self::Longest),
            other => Err(QueryError::invalid(format!("order must be `newest` or `longest`, not `{other}`"))),
        }
    }
}

/// Where a page ended: the sort key of its last trace. Opaque to clients: `{order}.{key}.{trace}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    order: Order,
    key: u64,
    trace_id: TraceId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = match self.order {
            Order::Newest => 'n',
            Order::Longest => 'l',
        };
        write!(f, "{order}{}.{}", self.key, self.trace_id)
    }
}

impl FromStr for Cursor {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || QueryError::invalid(format!("cursor `{s}` is not one this server handed out"));
        let order = match s.chars().next() {
            Some('n') => Order::Newest,
            Some('l') => Order::Longest,
            _ => return Err(bad()),
        };
        let (key, trace) = s[1..].split_once('.').ok_or_else(bad)?;
        Ok(Self { order, key: key.parse().map_err(|_| bad())?, trace_id: trace.parse().map_err(|_| bad())? })
    }
}

/// Limits that keep one search bounded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most traces one page may hold.
    pub max_limit: usize,
    /// Longest time range one search may cover.
    pub max_range_nanos: u64,
    /// Most candidate traces one page evaluates before it returns what it has.
    pub max_inspected: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_limit: 1000, max_range_nanos: 7 * 86_400 * 1_000_000_000, max_inspected: 20_000 }
    }
}

/// One search.
#[derive(Clone, Debug)]
pub struct Search {
    pub query: Query,
    pub range: TimeRange,
    pub order: Order,
    pub limit: usize,
    /// Matched spans listed per trace (Tempo's `spss`).
    pub spans_per_trace: usize,
    pub cursor: Option<Cursor>,
}

/// A page of results.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub traces: Vec<TraceSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Candidate traces the store returned and traces evaluated for this page.
    pub candidates: usize,
    pub inspected: usize,
    /// Set when the page stopped at the inspection limit before it was full: there may be more
    /// matches, which `nextCursor` continues to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}

impl Search {
    /// Checks the search against `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        if self.range.end <= self.range.start {
            return Err(QueryError::invalid("time range is empty: `end` must be after `start`"));
        }
        if self.range.end - self.range.start > limits.max_range_nanos {
            return Err(QueryError::invalid(format!(
                "time range is longer than the {} h one search may cover; narrow `start`/`end`",
                limits.max_range_nanos / 3_600_000_000_000
            )));
        }
        if self.limit == 0 || self.limit > limits.max_limit {
            return Err(QueryError::invalid(format!("limit must be between 1 and {}", limits.max_limit)));
        }
        if let Some(cursor) = &self.cursor {
            if cursor.order != self.order {
                return Err(QueryError::invalid("cursor belongs to a search in another order"));
            }
        }
        Ok(())
    }

    fn key(&self, hit: &TraceHit) -> u64 {
        match self.order {
            Order::Newest => hit.start_unix_nano,
            Order::Longest => hit.duration_nanos(),
        }
    }
}

/// Runs a search for `tenant`.
pub async fn search(
    reader: &dyn TraceReader,
    tenant: &TenantId,
    search: &Search,
    limits: &Limits,
) -> Result<SearchResult> {
    search.validate(limits)?;
    let find = plan(&search.query, search.range);
    let mut hits = reader.find(tenant, &find).await?;
    let candidates = hits.len();
    // Descending key, then ascending trace ID.
    hits.sort_unstable_by(|a, b| search.key(b).cmp(&search.key(a)).then(a.trace_id.cmp(&b.trace_id)));
    if let Some(cursor) = &search.cursor {
        let after = hits.partition_point(|h| {
            let key = search.key(h);
            key > cursor.key || (key == cursor.key && h.trace_id <= cursor.trace_id)
        });
        hits.drain(..after);
    }
    let mut traces = Vec::new();
    let mut inspected = 0;
    let mut last = None;
    let mut truncated = None;
    let mut next = 0;
    // Load only as many traces as the page still needs, more when candidates turn out not to
    // match (the conditions the store evaluates are wider than the query).
    let mut batch = search.limit.min(MAX_BATCH);
    'pages: while next < hits.len() && traces.len() < search.limit {
        let chunk = &hits[next..(next + batch).min(hits.len())];
        next += chunk.len();
        let ids: Vec<TraceId> = chunk.iter().map(|h| h.trace_id).collect();
        let rows = reader.traces(tenant, &ids).await?;
        for (hit, rows) in chunk.iter().zip(rows) {
            if traces.len() == search.limit {
                break 'pages;
            }
            if inspected == limits.max_inspected {
                truncated = Some(format!(
                    "stopped after evaluating {inspected} candidate traces; continue with nextCursor or narrow the query"
                ));
                break 'pages;
            }
            inspected += 1;
            last = Some(*hit);
            if let Some(summary) = matches(search, hit.trace_id, rows)? {
                traces.push(summary);
            }
        }
        batch = (batch * 2).min(MAX_BATCH);
    }
    let more = truncated.is_some() || (traces.len() == search.limit && last.is_some_and(|l| Some(&l) != hits.last()));
    let next_cursor = last
        .filter(|_| more)
        .map(|hit| Cursor { order: search.order, key: search.key(&hit), trace_id: hit.trace_id }.to_string());
    Ok(SearchResult { traces, next_cursor, candidates, inspected, truncated })
}

/// Evaluates the query on one trace; its summary when it matches.
fn matches(search: &Search, trace_id: TraceId, rows: Vec<SpanRow>) -> Result<Option<TraceSummary>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let Some(result) = evaluate(&search.query, trace_id, &rows, search.range)? else {
        return Ok(None);
    };
    let matched_count = result.len();
    let matched = result
        .into_iter()
        .take(search.spans_per_trace)
        .map(|m| MatchedSpan::of(&rows[m.row], selected_text(&m.selected)))
        .collect();
    Ok(Some(summarize(trace_id, &rows, matched, matched_count)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_what_the_server_did_not_make() {
        let cursor = Cursor { order: Order::Longest, key: 1_500, trace_id: TraceId::from_bytes([7; 16]).unwrap() };
        assert_eq!(cursor.to_string().parse::<Cursor>().unwrap(), cursor);
        for bad in ["", "x1.07070707070707070707070707070707", "n.abc", "nabc.0707", "n1.zz"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn searches_outside_the_limits_are_refused() {
        let search = |range: TimeRange, limit| Search {
            query: clew_traceql::parse("{}").unwrap(),
            range,
            order: Order::Newest,
            limit,
            spans_per_trace: 3,
            cursor: None,
        };
        let limits = Limits::default();
        let day = 86_400 * 1_000_000_000;
        assert!(search(TimeRange { start: 0, end: day }, 20).validate(&limits).is_ok());
        assert!(search(TimeRange { start: 5, end: 5 }, 20).validate(&limits).is_err());
        assert!(search(TimeRange { start: 0, end: 8 * day }, 20).validate(&limits).is_err());
        assert!(search(TimeRange { start: 0, end: day }, 0).validate(&limits).is_err());
        assert!(search(TimeRange { start: 0, end: day }, 1001).validate(&limits).is_err());
    }
}
