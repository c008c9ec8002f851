//! The storage boundary: what ingest may ask of a span store and what queries may read back.
//!
//! Owns [`SpanWriter`], [`TraceReader`], [`Storage`], [`StorageError`], and (feature
//! `conformance`) the suite every backend must pass. Backends (the embedded engine, ClickHouse)
//! implement these traits; nothing above this crate names a backend except the composition root.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clew_model::{Code, Coded, SpanBatch, SpanRow, TenantId, TraceId};

#[cfg(feature = "conformance")]
pub mod conformance;
mod query;

pub use clew_rollup::{Dimensions, Family, Key as RollupKey, Latency, Rollup, RollupQuery, Stats as RollupStats};
pub use query::{Catalog, Condition, FindRequest, Op, Operation, Target, Test, TimeRange, TraceHit, Value, ValueRef};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything a span store can fail with, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Memory or WAL backlog is full; the caller should retry later (HTTP 503, gRPC UNAVAILABLE).
    #[error("storage is overloaded ({reason}); retry in {}s", retry_after.as_secs().max(1))]
    Overloaded { reason: String, retry_after: Duration },
    /// The disk or a remote store cannot take writes now (disk full, server down).
    #[error("storage unavailable while trying to {context}: {source}")]
    Unavailable {
        context: String,
        retry_after: Duration,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data could not be read back as written.
    #[error("corrupt data in {location}: {reason}")]
    Corrupt { location: String, reason: String },
    /// Any other failure of the underlying system, with what was being done.
    #[error("storage failed to {context}: {source}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("storage is shut down")]
    Closed,
}

impl StorageError {
    pub fn internal(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal { context: context.into(), source: source.into() }
    }

    /// Whether the same request may succeed if sent again later (here, or on another node
    /// when this one is shutting down).
    pub fn is_retryable(&self) -> bool {
        self.code() == Code::Unavailable
    }
}

impl Coded for StorageError {
    fn code(&self) -> Code {
        match self {
            Self::Overloaded { .. } | Self::Unavailable { .. } | Self::Closed => Code::Unavailable,
            Self::Corrupt { .. } | Self::Internal { .. } => Code::Internal,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after, .. } | Self::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What a successful write stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteReceipt {
    pub spans: usize,
}

/// Accepts validated spans. When `write` returns `Ok`, the spans are durable: a crash of the
/// process or the machine does not lose them.
#[async_trait]
pub trait SpanWriter: Send + Sync {
    /// Stores every span of `batch` for `tenant`. IDs have been validated by the caller.
    async fn write(&self, tenant: &TenantId, batch: SpanBatch) -> Result<WriteReceipt>;
}

/// Reads spans back.
#[async_trait]
pub trait TraceReader: Send + Sync {
    /// All spans of one trace that belong to `tenant`, in no particular order; empty when the
    /// trace is unknown.
    async fn trace(&self, tenant: &TenantId, trace_id: TraceId) -> Result<Vec<SpanRow>>;

    /// Several traces at once, in the order asked; a backend may read them in one pass.
    async fn traces(&self, tenant: &TenantId, trace_ids: &[TraceId]) -> Result<Vec<Vec<SpanRow>>> {
        let mut traces = Vec::with_capacity(trace_ids.len());
        for trace_id in trace_ids {
            traces.push(self.trace(tenant, *trace_id).await?);
        }
        Ok(traces)
    }

    /// Every trace of `tenant` with, for each condition, a span within the range that
    /// satisfies it; in no particular order. May return traces that do not (conservative
    /// evaluation), never misses one that does.
    async fn find(&self, tenant: &TenantId, request: &FindRequest) -> Result<Vec<TraceHit>>;

    /// Services, operations and attribute names of spans stored for `tenant` in the days
    /// `range` touches.
    async fn catalog(&self, tenant: &TenantId, range: TimeRange) -> Result<Catalog>;

    /// Up to `limit` distinct values `target` takes on spans within `range`, most frequent
    /// first.
    async fn values(&self, tenant: &TenantId, range: TimeRange, target: &Target, limit: usize) -> Result<Vec<Value>>;

    /// The per-minute aggregates of `tenant`'s spans and calls (see `clew-rollup`) that
    /// `query` selects, regrouped as it asks. Covers everything acknowledged, stored or not.
    async fn rollups(&self, tenant: &TenantId, query: &RollupQuery) -> Result<Rollup>;

    /// The attributes rollups are kept by (what [`RollupQuery`] may filter and group by).
    fn rollup_dimensions(&self) -> Dimensions;
}

/// What one tenant keeps for one UTC day (days since the Unix epoch, as `clew_model::day_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayUsage {
    pub day: u32,
    pub bytes: u64,
    pub spans: u64,
}

/// A complete backend, as the composition root holds it.
#[async_trait]
pub trait Storage: SpanWriter + TraceReader {
    /// Moves everything acknowledged so far into long-term storage (for the embedded engine:
    /// from the WAL-backed head into segments).
    async fn flush(&self) -> Result<()>;

    /// Flushes and stops background work; later writes fail with [`StorageError::Closed`].
    async fn close(&self) -> Result<()>;

    /// Whether the store accepts writes right now (for readiness probes).
    fn is_ready(&self) -> bool;

    /// The tenants that have stored data (for maintenance loops), sorted.
    async fn tenants(&self) -> Result<Vec<TenantId>>;

    /// Per UTC day of span start, what `tenant` keeps in long-term storage (for the local
    /// engine: segment files on disk incl. their trace-ID index and rollup files; data still
    /// only in the head/WAL is not counted), oldest first; days with nothing are absent.
    async fn days(&self, tenant: &TenantId) -> Result<Vec<DayUsage>>;

    /// Deletes everything `tenant` stored for `day` — spans, indexes, rollups — including
    /// acknowledged spans of that day not yet flushed. Returns what was freed. Deleting a day
    /// with nothing is Ok with zero usage.
    async fn drop_day(&self, tenant: &TenantId, day: u32) -> Result<DayUsage>;
}

pub type DynStorage = Arc<dyn Storage>;
