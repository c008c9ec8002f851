//! Retention and storage quotas, as GitLab's design has them: a loop deletes, per top-level
//! namespace, every whole day older than the namespace's retention, then, while the namespace
//! stores more than its quota, its oldest whole day (in all its projects at once). The current
//! day is never deleted for the quota: a namespace that fills its quota within one day stays
//! over it until the next (bound that with the ingest rate limit).

use clew_model::TenantId;
use clew_storage::{DayUsage, Storage, StorageError};
use serde::Serialize;

use crate::metadata::{Metadata, MetadataError};
use crate::Clock;

const SECONDS_PER_DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("retention: {0}")]
    Storage(#[from] StorageError),
}

/// Why a day was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Retention,
    Quota,
}

/// One day of one project deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub namespace_id: i64,
    pub project_id: i64,
    /// Days since the Unix epoch.
    pub day: u32,
    pub bytes: u64,
    pub spans: u64,
    pub reason: Reason,
}

/// What one project stores, for the usage page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub project_id: i64,
    pub path: String,
    pub bytes: u64,
    pub spans: u64,
    pub days: usize,
}

/// Applies every namespace's retention and quota once, at the clock's time.
pub async fn enforce(
    metadata: &Metadata,
    storage: &dyn Storage,
    clock: &dyn Clock,
) -> Result<Vec<Dropped>, MaintenanceError> {
    let now = clock.unix_seconds();
    let today = u32::try_from(now / SECONDS_PER_DAY).unwrap_or(0);
    let mut dropped = Vec::new();
    for namespace in metadata.namespaces().await? {
        let limits = namespace.limits;
        let retention_start = now - i64::from(limits.retention_days) * SECONDS_PER_DAY;
        // Days before this one are wholly older than the retention period.
        let keep_from = u32::try_from(retention_start.div_euclid(SECONDS_PER_DAY)).unwrap_or(0);
        let mut projects = Vec::new();
        for project in metadata.projects(Some(namespace.id)).await? {
            let Ok(tenant) = project.tenant.parse::<TenantId>() else { continue };
            let days = storage.days(&tenant).await?;
            projects.push((project.id, tenant, days));
        }
        let mut drop = |project_id: i64, day: u32, usage: DayUsage, reason: Reason| {
            dropped.push(Dropped {
                namespace_id: namespace.id,
                project_id,
                day,
                bytes: usage.bytes,
                spans: usage.spans,
                reason,
            })
        };
        for (project_id, tenant, days) in &mut projects {
            for day in days.iter().filter(|d| d.day < keep_from).map(|d| d.day).collect::<Vec<_>>() {
                let freed = storage.drop_day(tenant, day).await?;
                drop(*project_id, day, freed, Reason::Retention);
            }
            days.retain(|d| d.day >= keep_from);
        }
        let Some(quota) = limits.storage_quota_bytes else { continue };
        let mut total: u64 = projects.iter().flat_map(|(_, _, days)| days).map(|d| d.bytes).sum();
        while total > quota {
            let oldest = projects.iter().flat_map(|(_, _, days)| days).map(|d| d.day).filter(|&d| d < today).min();
            let Some(oldest) = oldest else {
                tracing::warn!(namespace = %namespace.path, stored = total, quota, "namespace is over its storage quota with today's data alone");
                break;
            };
            for (project_id, tenant, days) in &mut projects {
                if days.iter().any(|d| d.day == oldest) {
                    let freed = storage.drop_day(tenant, oldest).await?;
                    total = total.saturating_sub(days.iter().find(|d| d.day == oldest).map_or(0, |d| d.bytes));
                    drop(*project_id, oldest, freed, Reason::Quota);
                    days.retain(|d| d.day != oldest);
                }
            }
        }
    }
    for d in &dropped {
        tracing::info!(namespace = d.namespace_id, project = d.project_id, day = d.day, bytes = d.bytes, spans = d.spans, reason = ?d.reason, "deleted a day of spans");
    }
    Ok(dropped)
}

/// What each of a namespace's projects stores (bytes, spans, days), in storage.
pub async fn stored(
    metadata: &Metadata,
    storage: &dyn Storage,
    namespace_id: i64,
) -> Result<Vec<Stored>, MaintenanceError> {
    let mut out = Vec::new();
    for project in metadata.projects(Some(namespace_id)).await? {
        let Ok(tenant) = project.tenant.parse::<TenantId>() else { continue };
        // One entry per day, oldest first.
        let days = storage.days(&tenant).await?;
        out.push(Stored {
            project_id: project.id,
            path: project.path,
            bytes: days.iter().map(|d| d.bytes).sum(),
            spans: days.iter().map(|d| d.spans).sum(),
            days: days.len(),
        });
    }
    Ok(out)
}
