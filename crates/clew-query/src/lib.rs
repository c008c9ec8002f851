//! The query layer: search with TraceQL or simple filters, trace summaries, discovery, the
//! service map and RED metrics.
//!
//! Owns the translation from TraceQL to storage conditions ([`plan`]), the evaluation of the
//! exact query on candidate traces, result ordering and paging ([`search`]), and the parsing of
//! the parameters every API shares (time ranges, durations, attribute filters). Talks to
//! storage only through [`clew_storage::TraceReader`]; knows nothing of HTTP.
//!
//! Also reads rollups into the [`service_map`], [`red`] series and [`Exemplars`] queries, and
//! analyses whole traces: the [`critical_path`] of one, the structural diff ([`compare`]) of two.

mod compare;
mod critical_path;
mod filters;
#[cfg(feature = "golden")]
pub mod golden;
mod metrics;
mod plan;
mod search;
mod summary;
mod trace;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use clew_storage::TimeRange;
pub use compare::{
    change, compare, Change, ComparedSpan, Comparison, ComparisonTotals, PathComparison, PathStatus, SpanPair,
    SIGNIFICANT_NANOS, SIGNIFICANT_PERCENT,
};
pub use critical_path::{critical_path, CriticalPath, PathSegment, PathSpan};
pub use filters::{attribute_filter, duration, field, kind, kind_name, status, text_equals, typed_literal, Filters};
pub use metrics::{
    dependencies, dimension_filter, family, red, service_map, Edge, Exemplars, Node, Red, RedPoint, RedRequest,
    RedResult, RedSeries, ServiceMap,
};
pub use plan::{kind_code, plan, status_code, target_of};
pub use search::{search, Cursor, Limits, Order, Search, SearchResult};
pub use summary::{root_of, summarize, MatchedSpan, ServiceCount, TraceSummary, STATUS_ERROR};
pub use trace::{evaluate, to_trace, Match};

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Why a query failed: the client's fault ([`QueryError::Invalid`]) or the store's.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] clew_storage::StorageError),
}

impl QueryError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

impl From<clew_traceql::ParseError> for QueryError {
    fn from(e: clew_traceql::ParseError) -> Self {
        Self::Invalid(format!("invalid TraceQL: {e}"))
    }
}

/// Serializes a number as a decimal string: 64-bit integers lose precision as JSON numbers.
pub(crate) mod decimal {
    use std::fmt::Display;

    use serde::Serializer;

    pub(crate) fn serialize<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }
}

/// The current time in Unix nanoseconds.
pub fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// How far back a search looks when no start is given.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3600);

/// A time range from optional bounds in Unix nanoseconds: `end` defaults to now, `start` to
/// [`DEFAULT_LOOKBACK`] before `end`. The end is inclusive for callers (a span starting at
/// exactly `end` is in range).
pub fn range(start: Option<u64>, end: Option<u64>) -> Result<TimeRange> {
    let end = end.unwrap_or_else(now_nanos);
    let start = start.unwrap_or_else(|| end.saturating_sub(DEFAULT_LOOKBACK.as_nanos() as u64));
    if start > end {
        return Err(QueryError::invalid(format!("time range starts ({start}) after it ends ({end})")));
    }
    Ok(TimeRange { start, end: end.saturating_add(1) })
}

/// A timestamp given as Unix seconds (fractions allowed) or RFC 3339, in Unix nanoseconds.
pub fn parse_time(name: &str, text: &str) -> Result<u64> {
    if let Ok(seconds) = text.parse::<f64>() {
        if (0.0..1e10).contains(&seconds) {
            return Ok((seconds * 1e9) as u64);
        }
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .ok_or_else(|| {
            QueryError::invalid(format!(
                "`{name}` must be Unix seconds or an RFC 3339 time like 2024-05-01T12:00:00Z, not {text:?}"
            ))
        })
}
