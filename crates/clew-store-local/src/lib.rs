//! The embedded storage engine Clew runs by default.
//!
//! Owns everything under the data directory: the write-ahead log (`wal/`), the in-memory head
//! that serves recent spans, Parquet segments per tenant and day (`segments/`), their trace-ID
//! indexes, compaction, and recovery (`recovery`), flushing and compaction loops (`flush`), and
//! per-day usage and dropping (`retention`). It implements the traits of `clew-storage` and knows
//! nothing of receivers, APIs or configuration files. The file format and the guarantees are
//! described in this crate's README.

mod attributes;
mod compaction;
mod flush;
mod head;
mod metrics;
mod recovery;
mod retention;
mod rollup_file;
mod scan;
mod segment;
mod wal;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::mem;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clew_model::{day_of, rows_from_batch, SpanBatch, SpanRow, TenantId, TraceId};
use clew_rollup::{Builder, Observations, Rollup, RollupQuery, MINUTE_NANOS};
use clew_storage::{
    Catalog, DayUsage, FindRequest, Result, SpanWriter, Storage, StorageError, Target, TimeRange, TraceHit,
    TraceReader, Value, WriteReceipt,
};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, RwLock, Semaphore};
use tokio::task::JoinHandle;

use crate::flush::{compaction_loop, flush_loop};
use crate::head::Head;
use crate::metrics::EngineMetrics;
use crate::recovery::{day_of_minute, recover, Recovered};
use crate::scan::Snapshot;
use crate::segment::Segment;
use crate::wal::Wal;

pub use clew_rollup::BuilderOptions;

/// How the engine sizes itself. The composition root fills this from the configuration.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    /// The head is flushed to segments once it holds this many bytes.
    pub head_flush_bytes: u64,
    /// Writes are refused (retry later) while the head, with any part being flushed, holds
    /// this many bytes.
    pub head_max_bytes: u64,
    /// A head that is not empty is flushed at least this often.
    pub flush_interval: Duration,
    /// Writes are refused (retry later) while this many bytes wait for the WAL.
    pub wal_max_pending_bytes: u64,
    /// A day with this many small segments is compacted.
    pub compaction_min_segments: usize,
    /// Segments with fewer spans than this are "small"; compaction aims for this size.
    pub compaction_target_spans: u64,
    /// What refused writes are told to wait.
    pub retry_after: Duration,
    /// How rollups (service map, RED metrics) are aggregated.
    pub rollups: BuilderOptions,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            head_flush_bytes: 64 << 20,
            head_max_bytes: 256 << 20,
            flush_interval: Duration::from_secs(30),
            wal_max_pending_bytes: 256 << 20,
            compaction_min_segments: 4,
            compaction_target_spans: 2_000_000,
            retry_after: Duration::from_secs(1),
            rollups: BuilderOptions::default(),
        }
    }
}

struct State {
    /// Takes new spans.
    active: Head,
    /// Being written to segments; still served to readers until its segments are registered.
    frozen: Option<Arc<Head>>,
    segments: BTreeMap<TenantId, Vec<Arc<Segment>>>,
}

struct Inner {
    options: EngineOptions,
    segments_dir: PathBuf,
    wal_dir: PathBuf,
    wal: Wal,
    /// Appends hold it shared from WAL append to head insert; a flush holds it exclusively
    /// while it rotates the WAL and freezes the head, so every record of the rotated files is
    /// in the frozen head.
    rotation: RwLock<()>,
    /// One flush at a time.
    flush_lock: tokio::sync::Mutex<()>,
    /// One compaction at a time.
    compaction_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Counts the days dropped, raised under the `state` lock as their segments leave it and
    /// before their files are deleted: a read that finds a file gone after it changed looks
    /// again without counting that as a failed attempt (see `read_files`).
    drops: AtomicU64,
    /// Rollup builders per tenant; appends hold it from computing a request's aggregates to
    /// adding them to the head.
    builders: Mutex<Builders>,
    /// Segments of the frozen head that are on disk but not yet checkpointed and registered.
    unregistered: Mutex<Option<Vec<Segment>>>,
    pending_wal_bytes: Arc<Semaphore>,
    next_segment_id: Arc<AtomicU64>,
    flush_wanted: Notify,
    /// Signalled when a flush adds segments: the only event that can make compaction due.
    compaction_wanted: Notify,
    closed: AtomicBool,
    metrics: EngineMetrics,
}

/// The embedded engine. Cheap to share through `Arc`; background flush and compaction run
/// until [`Storage::close`].
pub struct LocalEngine {
    inner: Arc<Inner>,
    /// The background flusher; `close` lets it finish its flush rather than abort it, since a
    /// flush abandoned between writing segments and registering them would be written twice.
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// The background compactor; safe to abort anywhere (see the crate README).
    compactor: Mutex<Option<JoinHandle<()>>>,
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |e| StorageError::internal(context, e)
}

impl LocalEngine {
    /// Opens (or creates) the store in `options.data_dir`: loads segments, finishes or undoes
    /// interrupted flushes and compactions, replays the WAL into the head, and starts the
    /// background work. Must be called inside a Tokio runtime.
    pub async fn open(options: EngineOptions, registry: &mut Registry) -> Result<Self> {
        let metrics = EngineMetrics::register(registry);
        let opened = {
            let options = options.clone();
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || recover(&options, &metrics))
                .await
                .map_err(|e| StorageError::internal("recover the data directory", e))??
        };
        let Recovered { head, builders, segments, next_segment_id, next_wal_seq } = opened;
        let wal_dir = options.data_dir.join("wal");
        let wal = Wal::start(wal_dir.clone(), next_wal_seq, metrics.clone()).map_err(io_err("start the WAL"))?;
        let mut by_tenant: BTreeMap<TenantId, Vec<Arc<Segment>>> = BTreeMap::new();
        for segment in segments {
            by_tenant.entry(segment.meta.tenant.clone()).or_default().push(Arc::new(segment));
        }
        let permits = usize::try_from(options.wal_max_pending_bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        let inner = Arc::new(Inner {
            segments_dir: options.data_dir.join("segments"),
            wal_dir,
            wal,
            rotation: RwLock::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            compaction_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State { active: head, frozen: None, segments: by_tenant }),
            drops: AtomicU64::new(0),
            builders: Mutex::new(builders),
            unregistered: Mutex::new(None),
            pending_wal_bytes: Arc::new(Semaphore::new(permits)),
            next_segment_id: Arc::new(AtomicU64::new(next_segment_id)),
            flush_wanted: Notify::new(),
            compaction_wanted: Notify::new(),
            closed: AtomicBool::new(false),
            metrics,
            options,
        });
        inner.update_gauges();
        let flusher = Mutex::new(Some(tokio::spawn(flush_loop(inner.clone()))));
        let compactor = Mutex::new(Some(tokio::spawn(compaction_loop(inner.clone()))));
        Ok(Self { inner, flusher, compactor })
    }

    /// Merges small segments until no day qualifies. Runs in the background too; exposed for
    /// tests and benchmarks.
    pub async fn compact(&self) -> Result<usize> {
        let mut merged = 0;
        while self.inner.compact_once().await? {
            merged += 1;
        }
        Ok(merged)
    }

    /// Figures about what is stored, for benchmarks and tests.
    pub fn stats(&self) -> EngineStats {
        let state = self.inner.state.lock();
        let segments = state.segments.values().flatten();
        EngineStats {
            head_spans: state.active.spans + state.frozen.as_ref().map_or(0, |f| f.spans),
            segments: segments.clone().count(),
            segment_spans: segments.clone().map(|s| s.spans).sum(),
            segment_bytes: segments.map(|s| s.bytes).sum(),
        }
    }
}

/// See [`LocalEngine::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    pub head_spans: usize,
    pub segments: usize,
    pub segment_spans: u64,
    pub segment_bytes: u64,
}

/// The rollup builders of every tenant, created on first use, and the aggregates of the rows
/// appended to the active head (kept here, where they are added to, rather than merged into the
/// head on every append; they join the head when it is frozen).
struct Builders {
    options: Arc<BuilderOptions>,
    tenants: HashMap<TenantId, (Builder, Rollup)>,
}

impl Builders {
    fn new(options: &BuilderOptions) -> Self {
        Self { options: Arc::new(options.clone()), tenants: HashMap::new() }
    }

    /// Adds what spans `observed`, arriving now for `tenant`, complete.
    fn add(&mut self, tenant: &TenantId, observed: Observations) {
        let options = &self.options;
        let (builder, pending) = self
            .tenants
            .entry(tenant.clone())
            .or_insert_with(|| (Builder::new(options.clone()), Rollup::new(options.dimensions.clone())));
        builder.add_observed(observed, Instant::now(), pending);
    }

    /// Adds to `out` what `query` selects of `tenant`'s aggregates not yet in a head.
    fn select(&self, tenant: &TenantId, query: &RollupQuery, out: &mut Rollup) {
        if let Some((_, pending)) = self.tenants.get(tenant) {
            pending.select_into(query, out);
        }
    }

    /// Ends `tenant`'s waits for the other side of its calls (as closing does), keeping what
    /// that adds except to minutes of `day`: spans of a dropped day add nothing to it later.
    fn forget_day(&mut self, tenant: &TenantId, day: u32) {
        let Some((builder, pending)) = self.tenants.get_mut(tenant) else {
            return;
        };
        let mut ended = builder.finish();
        ended.entries.retain(|key, _| day_of_minute(key.minute) != day);
        pending.merge(ended);
    }

    /// Moves the aggregates into `head`, after ending the waits that are over (all of them
    /// when `all`); how many spans stopped waiting for a parent that did not come.
    fn move_into(&mut self, head: &mut Head, all: bool) -> u64 {
        let mut unpaired = 0;
        let now = Instant::now();
        for (tenant, (builder, pending)) in &mut self.tenants {
            if all {
                pending.merge(builder.finish());
            } else {
                builder.expire(now, pending);
            }
            unpaired += builder.take_unpaired();
            let fresh = Rollup::new(pending.dimensions.clone());
            head.add_rollup(tenant, mem::replace(pending, fresh));
        }
        unpaired
    }
}

impl Inner {
    fn overloaded(&self, reason: &str) -> StorageError {
        self.metrics.refused.inc();
        StorageError::Overloaded { reason: reason.into(), retry_after: self.options.retry_after }
    }

    fn update_gauges(&self) {
        let state = self.state.lock();
        let frozen = state.frozen.as_ref();
        self.metrics.head(
            state.active.spans + frozen.map_or(0, |f| f.spans),
            state.active.bytes + frozen.map_or(0, |f| f.bytes),
        );
        let segments = state.segments.values().flatten();
        self.metrics.segments(
            segments.clone().count(),
            segments.clone().map(|s| s.spans).sum(),
            segments.map(|s| s.bytes).sum(),
        );
    }

    async fn write(&self, tenant: &TenantId, batch: SpanBatch) -> Result<WriteReceipt> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        // Refuse before doing any work when the head is full.
        let head_bytes = {
            let state = self.state.lock();
            state.active.bytes + state.frozen.as_ref().map_or(0, |f| f.bytes)
        };
        if head_bytes as u64 >= self.options.head_max_bytes {
            self.flush_wanted.notify_one();
            return Err(self.overloaded("the in-memory head is full while a flush catches up"));
        }
        let framed = wal::record(tenant.as_str(), batch.bytes());
        let size = u32::try_from(framed.len()).map_err(|_| self.overloaded("request larger than the WAL backlog"))?;
        let _permit = self
            .pending_wal_bytes
            .clone()
            .try_acquire_many_owned(size)
            .map_err(|_| self.overloaded("the WAL backlog is full"))?;
        let observed = Observations::of_batch(&self.options.rollups, &batch);
        let rows = rows_from_batch(&batch);
        drop(batch);
        let spans = rows.len();
        let _shared = self.rotation.read().await;
        self.wal.append(framed).await.map_err(|e| StorageError::Unavailable {
            context: "append to the WAL".into(),
            retry_after: self.options.retry_after,
            source: Box::new(e),
        })?;
        let flush_due = {
            // Rows and their aggregates go in under the rotation lock, so a freeze takes both.
            self.builders.lock().add(tenant, observed);
            let mut state = self.state.lock();
            state.active.insert(tenant, rows);
            state.active.bytes as u64 >= self.options.head_flush_bytes
        };
        if flush_due {
            self.flush_wanted.notify_one();
        }
        self.metrics.spans_written.inc_by(spans as u64);
        Ok(WriteReceipt { spans })
    }

    async fn trace(&self, tenant: &TenantId, trace_id: TraceId) -> Result<Vec<SpanRow>> {
        let what = format!("read trace {trace_id}");
        let mut rows = self
            .read_files(&what, &format!("trace {trace_id}"), || {
                let state = self.state.lock();
                let segments: Vec<Arc<Segment>> = state
                    .segments
                    .get(tenant)
                    .map(|all| all.iter().filter(|s| s.contains(&trace_id)).cloned().collect())
                    .unwrap_or_default();
                let mut rows = state.active.trace(tenant, &trace_id);
                if let Some(frozen) = &state.frozen {
                    rows.extend(frozen.trace(tenant, &trace_id));
                }
                move || {
                    for segment in segments {
                        rows.extend(segment.trace(trace_id)?);
                    }
                    Ok(rows)
                }
            })
            .await?;
        // A client that retried an export, or a crash between a flush and its checkpoint,
        // can store a span twice; identical copies are shown once.
        rows.sort_by_key(segment::sort_key);
        rows.dedup();
        Ok(rows)
    }

    /// Runs `read` on a snapshot of `tenant`'s head and of its segments of the days `range`
    /// touches, off the async threads.
    async fn read_snapshot<T: Send + 'static>(
        &self,
        tenant: &TenantId,
        range: TimeRange,
        what: &str,
        read: impl Fn(&Snapshot) -> io::Result<T> + Send + Sync + 'static,
    ) -> Result<T> {
        let read = Arc::new(read);
        let (first, last) = (day_of(range.start), day_of(range.end.saturating_sub(1)));
        self.read_files(what, &format!("segments of {tenant}"), || {
            let state = self.state.lock();
            let mut head = state.active.chunks(tenant);
            if let Some(frozen) = &state.frozen {
                head.extend(frozen.chunks(tenant));
            }
            let segments = state
                .segments
                .get(tenant)
                .map(|all| all.iter().filter(|s| (first..=last).contains(&s.meta.day)).cloned().collect())
                .unwrap_or_default();
            let snapshot = Snapshot { head, segments };
            let read = read.clone();
            move || read(&snapshot)
        })
        .await
    }

    /// The aggregates `query` selects: from the heads under the lock, then from the rollup
    /// files of the segments of the days it touches (and the day after, which holds calls to
    /// peers whose wait ended after midnight).
    async fn rollups(&self, tenant: &TenantId, query: &RollupQuery) -> Result<Rollup> {
        let first = day_of(u64::from(query.start_minute) * MINUTE_NANOS);
        let last = day_of(u64::from(query.end_minute.max(query.start_minute + 1) - 1) * MINUTE_NANOS) + 1;
        self.read_files("read rollups", &format!("rollups of {tenant}"), || {
            let mut out = query.output();
            let state = self.state.lock();
            self.builders.lock().select(tenant, query, &mut out);
            if let Some(frozen) = &state.frozen {
                frozen.select_rollup(tenant, query, &mut out);
            }
            let segments: Vec<&Arc<Segment>> = state
                .segments
                .get(tenant)
                .map(|all| all.iter().filter(|s| (first..=last).contains(&s.meta.day)).collect())
                .unwrap_or_default();
            let paths: Vec<PathBuf> = segments.iter().map(|s| rollup_file::path_of(&s.path)).collect();
            // A file may hold aggregates of other days (calls whose wait ended after midnight
            // are stored with the next day); those of a day without segments are what spans of
            // a dropped day left behind, and are not served.
            let mut stored: Vec<u32> = segments.iter().map(|s| s.meta.day).collect();
            stored.sort_unstable();
            stored.dedup();
            let query = query.clone();
            move || {
                let keep = |minute: u32| stored.binary_search(&day_of_minute(minute)).is_ok();
                for path in &paths {
                    rollup_file::select(path, &query, keep, &mut out)?;
                }
                Ok(out)
            }
        })
        .await
    }

    /// Runs the file reads `prepare` makes off the async threads. `prepare` takes what to read
    /// under the engine lock; a compaction may delete a segment between then and the read, but
    /// by then its replacement is registered, so a read that finds a file gone is prepared and
    /// run again (at most three times). A dropped day's segments leave the list before their
    /// files are deleted, so a read that finds a file gone while a day was dropped is run
    /// again without counting the attempt: the next snapshot no longer has that segment.
    /// `location` names what was read when the data is corrupt.
    async fn read_files<T, R>(&self, what: &str, location: &str, mut prepare: impl FnMut() -> R) -> Result<T>
    where
        T: Send + 'static,
        R: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let mut attempts = 0;
        loop {
            let drops = self.drops.load(Ordering::SeqCst);
            attempts += 1;
            let result =
                tokio::task::spawn_blocking(prepare()).await.map_err(|e| StorageError::internal(what.to_owned(), e))?;
            match result {
                Ok(value) => return Ok(value),
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.drops.load(Ordering::SeqCst) != drops => {
                    attempts -= 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(StorageError::Corrupt { location: location.to_owned(), reason: e.to_string() })
                }
                Err(e) => return Err(StorageError::internal(what.to_owned(), e)),
            }
        }
    }
}

#[async_trait]
impl SpanWriter for LocalEngine {
    async fn write(&self, tenant: &TenantId, batch: SpanBatch) -> Result<WriteReceipt> {
        // A write runs to its end even when the client goes away mid-request, so that a record
        // in the WAL is always in the head too.
        let inner = self.inner.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { inner.write(&tenant, batch).await })
            .await
            .map_err(|e| StorageError::internal("finish a write", e))?
    }
}

#[async_trait]
impl TraceReader for LocalEngine {
    async fn trace(&self, tenant: &TenantId, trace_id: TraceId) -> Result<Vec<SpanRow>> {
        self.inner.trace(tenant, trace_id).await
    }

    /// Reads the traces a few at a time in parallel: each lookup reads a few pages of its own.
    async fn traces(&self, tenant: &TenantId, trace_ids: &[TraceId]) -> Result<Vec<Vec<SpanRow>>> {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        let mut traces = vec![Vec::new(); trace_ids.len()];
        for (part, ids) in trace_ids.chunks(parallel).enumerate() {
            let mut lookups = tokio::task::JoinSet::new();
            for (i, trace_id) in ids.iter().enumerate() {
                let (inner, tenant, trace_id) = (self.inner.clone(), tenant.clone(), *trace_id);
                lookups.spawn(async move { (part * parallel + i, inner.trace(&tenant, trace_id).await) });
            }
            while let Some(done) = lookups.join_next().await {
                let (i, rows) = done.map_err(|e| StorageError::internal("read traces", e))?;
                traces[i] = rows?;
            }
        }
        Ok(traces)
    }

    async fn find(&self, tenant: &TenantId, request: &FindRequest) -> Result<Vec<TraceHit>> {
        let mut request = request.clone();
        if request.conditions.is_empty() {
            // Every trace with a span in the range.
            request.conditions.push(clew_storage::Condition::True);
        }
        self.inner.read_snapshot(tenant, request.range, "search", move |s| s.find(&request)).await
    }

    async fn catalog(&self, tenant: &TenantId, range: TimeRange) -> Result<Catalog> {
        self.inner.read_snapshot(tenant, range, "list services and attributes", move |s| s.catalog(range)).await
    }

    async fn values(&self, tenant: &TenantId, range: TimeRange, target: &Target, limit: usize) -> Result<Vec<Value>> {
        let target = target.clone();
        self.inner.read_snapshot(tenant, range, "list attribute values", move |s| s.values(range, &target, limit)).await
    }

    async fn rollups(&self, tenant: &TenantId, query: &RollupQuery) -> Result<Rollup> {
        self.inner.rollups(tenant, query).await
    }

    fn rollup_dimensions(&self) -> clew_storage::Dimensions {
        self.inner.options.rollups.kept_dimensions()
    }
}

#[async_trait]
impl Storage for LocalEngine {
    async fn flush(&self) -> Result<()> {
        // A frozen head that failed earlier is retried first; then the active head.
        self.inner.flush_once().await?;
        self.inner.flush_once().await
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(compactor) = self.compactor.lock().take() {
            compactor.abort();
        }
        self.inner.flush_wanted.notify_one();
        let flusher = self.flusher.lock().take();
        if let Some(flusher) = flusher {
            // It sees `closed` once its current flush, if any, is done.
            let _ = flusher.await;
        }
        // Wait out appends in flight, then flush what they added.
        drop(self.inner.rotation.write().await);
        self.inner.flush_once().await?;
        self.inner.flush_once().await
    }

    fn is_ready(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    async fn tenants(&self) -> Result<Vec<TenantId>> {
        Ok(self.inner.tenants())
    }

    async fn days(&self, tenant: &TenantId) -> Result<Vec<DayUsage>> {
        Ok(self.inner.days(tenant))
    }

    async fn drop_day(&self, tenant: &TenantId, day: u32) -> Result<DayUsage> {
        // Runs to its end even when the caller goes away: a drop abandoned between taking the
        // day's segments out of the list and renaming its directory would leave them unlisted.
        let inner = self.inner.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { inner.drop_day(&tenant, day).await })
            .await
            .map_err(|e| StorageError::internal("finish dropping a day", e))?
    }
}

impl Drop for LocalEngine {
    /// Without `close`, stops like a crash would: whatever is half done is recovered at the
    /// next open.
    fn drop(&mut self) {
        for task in [self.flusher.lock().take(), self.compactor.lock().take()].into_iter().flatten() {
            task.abort();
        }
    }
}
