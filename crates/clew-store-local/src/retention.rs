//! What each tenant stores, day by day, and dropping a day (retention and quotas).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clew_model::TenantId;
use clew_storage::{DayUsage, Result, StorageError};

use crate::segment::Segment;
use crate::{segment, Inner};

impl Inner {
    /// Tenants with segments or with spans in the head, sorted.
    pub(crate) fn tenants(&self) -> Vec<TenantId> {
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
    pub(crate) fn days(&self, tenant: &TenantId) -> Vec<DayUsage> {
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
    pub(crate) async fn drop_day(&self, tenant: &TenantId, day: u32) -> Result<DayUsage> {
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
