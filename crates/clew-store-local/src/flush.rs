//! Flushing the head to segments and compacting segments: the work itself and the loops that
//! run it in the background.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clew_model::TenantId;
use clew_rollup::Rollup;
use clew_storage::{Result, StorageError};

use crate::head::Head;
use crate::segment::{FlushTag, Segment, SegmentMeta, SegmentWriter, BATCH_ROWS};
use crate::{attributes, compaction, io_err, segment, wal, Inner};

impl Inner {
    /// Freezes the head (or retries a frozen head that failed to flush), writes it as segments,
    /// records the checkpoint and drops the covered WAL files.
    pub(crate) async fn flush_once(&self) -> Result<()> {
        let one_at_a_time = self.flush_lock.lock().await;
        self.flush_locked(&one_at_a_time).await
    }

    /// [`Inner::flush_once`] for a caller that holds the flush lock.
    pub(crate) async fn flush_locked(&self, _flush_lock: &tokio::sync::MutexGuard<'_, ()>) -> Result<()> {
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

    pub(crate) async fn compact_once(&self) -> Result<bool> {
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

pub(crate) async fn flush_loop(inner: Arc<Inner>) {
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

pub(crate) async fn compaction_loop(inner: Arc<Inner>) {
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
