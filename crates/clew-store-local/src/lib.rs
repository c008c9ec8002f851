//! The embedded storage engine Clew runs by default.
//!
//! Owns everything under the data directory: the write-ahead log (`wal/`), the in-memory head
//! that serves recent spans, Parquet segments per tenant and day (`segments/`), their trace-ID
//! indexes, compaction, and recovery. It implements the traits of `clew-storage` and knows
//! nothing of receivers, APIs or configuration files. The file format and the guarantees are
//! described in this crate's README.

mod attributes;
mod compaction;
mod head;
mod metrics;
mod rollup_file;
mod scan;
mod segment;
mod wal;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::mem;
use std::path::{Path, PathBuf};
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
use prost::Message;
use tokio::sync::{Notify, RwLock, Semaphore};
use tokio::task::JoinHandle;

use crate::head::Head;
use crate::metrics::EngineMetrics;
use crate::scan::Snapshot;
use crate::segment::{FlushTag, Segment, SegmentMeta, SegmentWriter, BATCH_ROWS};
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

struct Recovered {
    head: Head,
    builders: Builders,
    segments: Vec<Segment>,
    next_segment_id: u64,
    next_wal_seq: u64,
}

fn recover(options: &EngineOptions, metrics: &EngineMetrics) -> Result<Recovered> {
    let wal_dir = options.data_dir.join("wal");
    let segments_dir = options.data_dir.join("segments");
    for dir in [&wal_dir, &segments_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::internal(format!("create directory {}", dir.display()), e))?;
    }
    let mut segments = Vec::new();
    for path in segment::find_segment_files(&segments_dir).map_err(io_err("list segments"))? {
        match Segment::open(&path) {
            Ok(segment) => segments.push(segment),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Keep serving everything else; the file stays for inspection.
                tracing::error!(segment = %path.display(), error = %e, "segment is unreadable; setting it aside");
                let aside = path.with_extension("parquet.corrupt");
                std::fs::rename(&path, &aside).map_err(io_err("set aside a corrupt segment"))?;
            }
            Err(e) => return Err(StorageError::internal(format!("open segment {}", path.display()), e)),
        }
    }
    let next_segment_id = segments.iter().map(|s| s.meta.id).max().unwrap_or(0) + 1;

    // A compaction that finished writing replaces its inputs, even if it crashed before
    // deleting them.
    let replaced: Vec<u64> = segments.iter().flat_map(|s| s.meta.replaces.iter().copied()).collect();
    let (gone, kept): (Vec<_>, Vec<_>) = segments.into_iter().partition(|s| replaced.contains(&s.meta.id));
    for segment in gone {
        Segment::remove_files(&segment.path).map_err(io_err("remove compacted segment"))?;
    }

    // A flush whose segments are all present is complete even if the checkpoint was not yet
    // written; an incomplete one is undone, and its spans come back from the WAL.
    let mut checkpoint = wal::read_checkpoint(&wal_dir).map_err(io_err("read the WAL checkpoint"))?;
    let mut flushes: HashMap<u64, (u32, u32)> = HashMap::new();
    for tag in kept.iter().filter_map(|s| s.meta.flush).filter(|t| t.wal_upto > checkpoint) {
        let entry = flushes.entry(tag.wal_upto).or_insert((tag.segments, 0));
        entry.1 += 1;
    }
    let complete = |wal_upto: u64| flushes.get(&wal_upto).is_some_and(|(want, have)| want == have);
    let mut segments = Vec::new();
    for segment in kept {
        match segment.meta.flush {
            Some(tag) if tag.wal_upto > checkpoint && !complete(tag.wal_upto) => {
                tracing::warn!(segment = %segment.path.display(), "removing segment of an interrupted flush; the WAL has its spans");
                Segment::remove_files(&segment.path).map_err(io_err("remove segment of an interrupted flush"))?;
            }
            _ => segments.push(segment),
        }
    }
    if let Some(done) = flushes.keys().copied().filter(|&w| complete(w)).max() {
        checkpoint = checkpoint.max(done);
        wal::checkpoint(&wal_dir, checkpoint).map_err(io_err("write the WAL checkpoint"))?;
    }
    for segment in &mut segments {
        if rebuild_rollup(options, segment).map_err(io_err("rebuild a segment's rollup"))? {
            segment.rollup_bytes =
                segment::file_len(&rollup_file::path_of(&segment.path)).map_err(io_err("measure a rebuilt rollup"))?;
        }
    }

    let mut head = Head::default();
    let mut builders = Builders::new(&options.rollups);
    let mut bad_records = 0u64;
    let report = wal::replay(&wal_dir, |_, payload| {
        let Ok(record) = wal::WalRecord::decode(payload) else { return false };
        let decoded = record.tenant.parse::<TenantId>().ok().zip(SpanBatch::decode(record.request).ok());
        match decoded {
            Some((tenant, batch)) => {
                builders.add(&tenant, Observations::of_batch(&options.rollups, &batch));
                let rows = rows_from_batch(&batch);
                head.insert(&tenant, rows);
            }
            None => bad_records += 1,
        }
        true
    })
    .map_err(io_err("replay the WAL"))?;
    if bad_records > 0 {
        tracing::error!(records = bad_records, "wal records with a valid checksum did not decode; skipped");
    }
    metrics.recovered(report.records as u64, report.cut_bytes);
    tracing::info!(
        segments = segments.len(),
        wal_files = report.files,
        wal_records = report.records,
        head_spans = head.spans,
        cut_bytes = report.cut_bytes,
        "storage recovered"
    );
    Ok(Recovered { head, builders, segments, next_segment_id, next_wal_seq: report.last_seq.max(checkpoint) + 1 })
}

/// Writes the rollup of a segment stored before rollups existed (or whose rollup file was
/// deleted), from its rows alone; whether it had to.
fn rebuild_rollup(options: &EngineOptions, segment: &Segment) -> io::Result<bool> {
    let path = rollup_file::path_of(&segment.path);
    if path.exists() {
        return Ok(false);
    }
    tracing::info!(segment = %segment.path.display(), "computing the rollup of a segment written without one");
    let mut rows = Vec::new();
    for batch in segment.scan()? {
        rows.extend(batch?);
    }
    rollup_file::write(&path, &Builder::once(Arc::new(options.rollups.clone()), &rows))?;
    Ok(true)
}

/// The UTC day a rollup minute falls on.
fn day_of_minute(minute: u32) -> u32 {
    day_of(u64::from(minute) * MINUTE_NANOS)
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

    /// Freezes the head (or retries a frozen head that failed to flush), writes it as segments,
    /// records the checkpoint and drops the covered WAL files.
    async fn flush_once(&self) -> Result<()> {
        let one_at_a_time = self.flush_lock.lock().await;
        self.flush_locked(&one_at_a_time).await
    }

    /// [`Inner::flush_once`] for a caller that holds the flush lock.
    async fn flush_locked(&self, _flush_lock: &tokio::sync::MutexGuard<'_, ()>) -> Result<()> {
        let existing = self.state.lock().frozen.clone();
        let frozen = match existing {
            Some(frozen) => frozen,
            None => {
                let _exclusive = self.rotation.write().await;
                {
                    // Calls whose wait is over belong to this head; at close every wait ends.
                    let mut state = self.state.lock();
                    let unpaired =
                        self.builders.lock().move_into(&mut state.active, self.closed.load(Ordering::Acquire));
                    self.metrics.unpaired_spans.inc_by(unpaired);
                    if state.active.is_empty() {
                        return Ok(());
                    }
                }
                let next = self.wal.rotate().await.map_err(io_err("rotate the WAL"))?;
                let mut state = self.state.lock();
                let mut head = mem::take(&mut state.active);
                head.wal_upto = next - 1;
                let head = Arc::new(head);
                state.frozen = Some(head.clone());
                head
            }
        };
        let ids = self.next_segment_id.clone();
        let segments_dir = self.segments_dir.clone();
        let wal_dir = self.wal_dir.clone();
        let head = frozen.clone();
        // Segments written by an attempt whose checkpoint failed are kept, not written again.
        let already_written = self.unregistered.lock().take();
        let written =
            tokio::task::spawn_blocking(move || -> Result<Vec<Segment>, (Option<Vec<Segment>>, io::Error)> {
                let segments = match already_written {
                    Some(segments) => segments,
                    None => write_head(&segments_dir, &head, &ids).map_err(|e| (None, e))?,
                };
                match wal::checkpoint(&wal_dir, head.wal_upto) {
                    Ok(()) => Ok(segments),
                    Err(e) => Err((Some(segments), e)),
                }
            })
            .await
            .map_err(|e| StorageError::internal("flush the head", e))?;
        let segments = match written {
            Ok(segments) => segments,
            Err((segments, e)) => {
                *self.unregistered.lock() = segments;
                self.metrics.flush_failures.inc();
                return Err(StorageError::Unavailable {
                    context: "flush the head to segments".into(),
                    retry_after: self.options.retry_after,
                    source: Box::new(e),
                });
            }
        };
        {
            let mut state = self.state.lock();
            for segment in segments {
                state.segments.entry(segment.meta.tenant.clone()).or_default().push(Arc::new(segment));
            }
            state.frozen = None;
        }
        self.metrics.flushes.inc();
        self.compaction_wanted.notify_one();
        self.update_gauges();
        tracing::debug!(spans = frozen.spans, "head flushed");
        Ok(())
    }

    async fn compact_once(&self) -> Result<bool> {
        let _one_at_a_time = self.compaction_lock.lock().await;
        let inputs = {
            let state = self.state.lock();
            compaction::pick(
                &state.segments,
                self.options.compaction_min_segments,
                self.options.compaction_target_spans,
            )
        };
        let Some(inputs) = inputs else {
            return Ok(false);
        };
        let id = self.next_segment_id.fetch_add(1, Ordering::Relaxed);
        let root = self.segments_dir.clone();
        let merge_inputs = inputs.clone();
        let target = self.options.compaction_target_spans;
        let merged = tokio::task::spawn_blocking(move || compaction::merge(&root, id, &merge_inputs, target))
            .await
            .map_err(|e| StorageError::internal("compact segments", e))?
            .map_err(io_err("compact segments"))?;
        let tenant = merged.meta.tenant.clone();
        {
            let mut state = self.state.lock();
            let list = state.segments.entry(tenant).or_default();
            list.retain(|s| !inputs.iter().any(|i| Arc::ptr_eq(i, s)));
            list.push(Arc::new(merged));
        }
        // The merged segment is registered before its inputs are deleted: a lookup that read
        // the old list and finds an input gone looks again (see `trace`).
        let paths: Vec<PathBuf> = inputs.iter().map(|s| s.path.clone()).collect();
        tokio::task::spawn_blocking(move || paths.iter().try_for_each(|p| Segment::remove_files(p)))
            .await
            .map_err(|e| StorageError::internal("remove compacted segments", e))?
            .map_err(io_err("remove compacted segments"))?;
        self.metrics.compactions.inc();
        self.update_gauges();
        Ok(true)
    }

    /// Tenants with segments or with spans in the head, sorted.
    fn tenants(&self) -> Vec<TenantId> {
        let state = self.state.lock();
        let mut tenants: BTreeSet<TenantId> =
            state.segments.iter().filter(|(_, list)| !list.is_empty()).map(|(tenant, _)| tenant.clone()).collect();
        tenants.extend(state.active.tenants().cloned());
        if let Some(frozen) = &state.frozen {
            tenants.extend(frozen.tenants().cloned());
        }
        tenants.into_iter().collect()
    }

    /// What `tenant`'s segments keep per day, oldest first.
    fn days(&self, tenant: &TenantId) -> Vec<DayUsage> {
        let state = self.state.lock();
        let mut days: BTreeMap<u32, DayUsage> = BTreeMap::new();
        for segment in state.segments.get(tenant).into_iter().flatten() {
            let day = segment.meta.day;
            let usage = days.entry(day).or_insert(DayUsage { day, bytes: 0, spans: 0 });
            usage.bytes += segment.disk_bytes();
            usage.spans += segment.spans;
        }
        days.into_values().collect()
    }

    /// Deletes everything `tenant` stored for `day`. Holds the compaction lock and then the
    /// flush lock throughout, so no segment of the day is written, merged or registered
    /// meanwhile (the compaction lock first: a long merge then delays the drop, not flushes).
    ///
    /// 1. Flushes: every span acknowledged so far is in a segment, and the WAL checkpoint is
    ///    past it, so no replay brings the day back.
    /// 2. Ends the tenant's rollup waits, forgetting what they add to the day.
    /// 3. Takes the day's segments out of the list readers snapshot (see `read_files`).
    /// 4. Renames the day's directory to `{day}.dropped` and syncs its parent: from then on a
    ///    crash cannot bring the day back, startup deletes whatever is left under that name.
    ///    If the rename fails, the segments go back to the list and nothing was dropped.
    /// 5. Deletes the renamed directory, and the tenant's directory if that leaves it empty.
    async fn drop_day(&self, tenant: &TenantId, day: u32) -> Result<DayUsage> {
        let _no_compaction = self.compaction_lock.lock().await;
        let no_flush = self.flush_lock.lock().await;
        // Checked under the locks: `close` sets it before it aborts the compactor, whose merge
        // may still be writing when the lock is released.
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        // A frozen head that failed to flush earlier is retried first; then the active head.
        self.flush_locked(&no_flush).await?;
        self.flush_locked(&no_flush).await?;
        // What the head held is in segments now; what the tenant's spans still wait for would
        // add calls to the day later.
        self.builders.lock().forget_day(tenant, day);
        let dropped: Vec<Arc<Segment>> = {
            let mut state = self.state.lock();
            let dropped = match state.segments.get_mut(tenant) {
                Some(list) => {
                    let (dropped, kept) = mem::take(list).into_iter().partition(|s| s.meta.day == day);
                    *list = kept;
                    dropped
                }
                None => Vec::new(),
            };
            if state.segments.get(tenant).is_some_and(Vec::is_empty) {
                state.segments.remove(tenant);
            }
            self.drops.fetch_add(1, Ordering::SeqCst);
            dropped
        };
        let usage = DayUsage {
            day,
            bytes: dropped.iter().map(|s| s.disk_bytes()).sum(),
            spans: dropped.iter().map(|s| s.spans).sum(),
        };
        let dir = segment::day_dir(&self.segments_dir, tenant, day);
        let tombstone = segment::dropped_dir(&self.segments_dir, tenant, day);
        let deleted = tokio::task::spawn_blocking(move || delete_day_dir(&dir, &tombstone))
            .await
            .map_err(|e| StorageError::internal("delete a dropped day", e))?;
        match deleted {
            Ok(()) => {}
            Err(Deletion::NotRenamed(e)) => {
                let mut state = self.state.lock();
                state.segments.entry(tenant.clone()).or_default().extend(dropped);
                return Err(StorageError::internal(format!("drop day {} of {tenant}", segment::day_name(day)), e));
            }
            Err(Deletion::NotRemoved(e)) => {
                self.update_gauges();
                return Err(StorageError::internal(
                    format!(
                        "delete the files of dropped day {} of {tenant} (no longer served; deleted at the next start)",
                        segment::day_name(day)
                    ),
                    e,
                ));
            }
        }
        if !dropped.is_empty() {
            self.metrics.days_dropped.inc();
            let name = segment::day_name(day);
            tracing::info!(%tenant, day = %name, spans = usage.spans, bytes = usage.bytes, "day dropped");
        }
        self.update_gauges();
        Ok(usage)
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

/// How deleting a day's directory failed.
enum Deletion {
    /// Before the rename: the day is still there.
    NotRenamed(io::Error),
    /// After it: the day is gone, some of its files are left under the `.dropped` name.
    NotRemoved(io::Error),
}

/// Deletes the day directory `dir` by renaming it to `tombstone` (durably) and then removing
/// that; `dir` not existing is success.
fn delete_day_dir(dir: &Path, tombstone: &Path) -> Result<(), Deletion> {
    fn remove_all(path: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    // What an earlier drop of this day could not delete.
    remove_all(tombstone).map_err(Deletion::NotRenamed)?;
    match std::fs::rename(dir, tombstone) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Deletion::NotRenamed(e)),
    }
    let tenant_dir = dir.parent().ok_or_else(|| Deletion::NotRemoved(io::Error::other("day without a parent")))?;
    std::fs::File::open(tenant_dir).and_then(|d| d.sync_all()).map_err(Deletion::NotRemoved)?;
    remove_all(tombstone).map_err(Deletion::NotRemoved)?;
    // Only if empty; a tenant with other days keeps its directory.
    if std::fs::remove_dir(tenant_dir).is_ok() {
        if let Some(root) = tenant_dir.parent() {
            let _ = std::fs::File::open(root).and_then(|d| d.sync_all());
        }
    }
    Ok(())
}

fn write_head(root: &Path, head: &Head, ids: &AtomicU64) -> io::Result<Vec<Segment>> {
    let parts = head.partitions();
    let mut rollups: HashMap<(TenantId, u32), Rollup> = HashMap::new();
    let mut days: HashMap<&TenantId, Vec<u32>> = HashMap::new();
    for (tenant, day, _) in &parts {
        days.entry(tenant).or_default().push(*day);
    }
    for (tenant, days) in days {
        rollups.extend(head.rollup_parts(tenant, &days).into_iter().map(|(day, r)| ((tenant.clone(), day), r)));
    }
    let count = parts.len() as u32;
    let first_id = ids.fetch_add(parts.len() as u64, Ordering::Relaxed);
    let mut segments = Vec::with_capacity(parts.len());
    for (i, (tenant, day, rows)) in parts.into_iter().enumerate() {
        let meta = SegmentMeta {
            id: first_id + i as u64,
            tenant: tenant.clone(),
            day,
            replaces: Vec::new(),
            flush: Some(FlushTag { wal_upto: head.wal_upto, segments: count }),
        };
        let rollup = rollups.remove(&(tenant, day)).unwrap_or_default();
        let written = attributes::choose(&rows)
            .and_then(|columns| SegmentWriter::create(root, meta, columns, segment::ZSTD_FAST))
            .and_then(|mut writer| {
                for chunk in rows.chunks(BATCH_ROWS) {
                    writer.write(chunk)?;
                }
                writer.finish(&rollup)
            });
        match written {
            Ok(segment) => segments.push(segment),
            Err(e) => {
                // Leave no partial flush behind: the retry writes the whole head again.
                for segment in &segments {
                    if let Err(e) = Segment::remove_files(&segment.path) {
                        tracing::warn!(segment = %segment.path.display(), error = %e, "cannot remove segment of a failed flush");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(segments)
}

async fn flush_loop(inner: Arc<Inner>) {
    let tick = (inner.options.flush_interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::select! {
            () = inner.flush_wanted.notified() => {}
            () = tokio::time::sleep(tick) => {}
        }
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let due = {
            let state = inner.state.lock();
            state.frozen.is_some()
                || state.active.bytes as u64 >= inner.options.head_flush_bytes
                || state.active.since.is_some_and(|t| t.elapsed() >= inner.options.flush_interval)
        };
        if due {
            if let Err(e) = inner.flush_once().await {
                tracing::error!(error = %e, "flush failed; retrying");
                tokio::time::sleep(inner.options.retry_after).await;
            }
        }
        inner.update_gauges();
    }
}

async fn compaction_loop(inner: Arc<Inner>) {
    // Segments recovered at startup may already call for compaction.
    inner.compaction_wanted.notify_one();
    loop {
        inner.compaction_wanted.notified().await;
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        loop {
            match inner.compact_once().await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(error = %e, "compaction failed");
                    break;
                }
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
