//! The in-memory head: every acknowledged span not yet in a segment, indexed by trace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use clew_model::{day_of, SpanRow, TenantId, TraceId};
use clew_rollup::{Rollup, RollupQuery};

use crate::segment::sort_key;

/// One tenant's rows, in chunks as they were written: readers take the chunks (cheap `Arc`
/// clones) and search them without holding the engine's lock.
#[derive(Default)]
struct TenantHead {
    chunks: Vec<Arc<Vec<SpanRow>>>,
    /// (chunk, row in chunk) of each trace's rows.
    by_trace: HashMap<TraceId, Vec<(u32, u32)>>,
}

#[derive(Default)]
pub(crate) struct Head {
    tenants: HashMap<TenantId, TenantHead>,
    /// Aggregates of the head's spans per tenant, added when the head is frozen; a tenant may
    /// have aggregates without rows (calls to peers whose wait ended).
    rollups: HashMap<TenantId, Rollup>,
    pub(crate) bytes: usize,
    pub(crate) spans: usize,
    /// When the first span arrived, to flush an idle head after a while.
    pub(crate) since: Option<Instant>,
    /// The WAL files that hold this head's spans end at this sequence (set when frozen).
    pub(crate) wal_upto: u64,
}

impl Head {
    pub(crate) fn is_empty(&self) -> bool {
        self.spans == 0 && self.rollups.is_empty()
    }

    pub(crate) fn insert(&mut self, tenant: &TenantId, rows: Vec<SpanRow>) {
        if rows.is_empty() {
            return;
        }
        self.since.get_or_insert_with(Instant::now);
        let head = self.tenants.entry(tenant.clone()).or_default();
        let chunk = head.chunks.len() as u32;
        for (i, row) in rows.iter().enumerate() {
            self.bytes += row.estimated_size();
            self.spans += 1;
            head.by_trace.entry(row.trace_id).or_default().push((chunk, i as u32));
        }
        head.chunks.push(Arc::new(rows));
    }

    pub(crate) fn add_rollup(&mut self, tenant: &TenantId, rollup: Rollup) {
        if rollup.is_empty() {
            return;
        }
        match self.rollups.get_mut(tenant) {
            Some(existing) => existing.merge(rollup),
            None => {
                self.rollups.insert(tenant.clone(), rollup);
            }
        }
    }

    /// Adds to `out` what `query` selects from `tenant`'s aggregates.
    pub(crate) fn select_rollup(&self, tenant: &TenantId, query: &RollupQuery, out: &mut Rollup) {
        if let Some(rollup) = self.rollups.get(tenant) {
            rollup.select_into(query, out);
        }
    }

    /// Tenants with aggregates but no rows here, each with the day of its latest aggregate:
    /// they are stored as segments without rows.
    pub(crate) fn rowless_tenants(&self) -> Vec<(TenantId, u32)> {
        let mut rowless: Vec<(TenantId, u32)> = self
            .rollups
            .iter()
            .filter(|(tenant, _)| !self.tenants.contains_key(*tenant))
            .filter_map(|(tenant, rollup)| {
                let minute = rollup.entries.keys().map(|k| k.minute).max()?;
                Some((tenant.clone(), day_of(u64::from(minute) * clew_rollup::MINUTE_NANOS)))
            })
            .collect();
        rowless.sort();
        rowless
    }

    /// The part of `tenant`'s aggregates each of its `days` stores: the minutes of that day,
    /// and those of days without rows go to the last day.
    pub(crate) fn rollup_parts(&self, tenant: &TenantId, days: &[u32]) -> HashMap<u32, Rollup> {
        let mut parts: HashMap<u32, Rollup> = HashMap::new();
        let (Some(rollup), Some(&last)) = (self.rollups.get(tenant), days.iter().max()) else {
            return parts;
        };
        for (key, stats) in &rollup.entries {
            let day = day_of(u64::from(key.minute) * clew_rollup::MINUTE_NANOS);
            let day = if days.contains(&day) { day } else { last };
            parts.entry(day).or_insert_with(|| Rollup::new(rollup.dimensions.clone())).merge_entry(key.clone(), stats);
        }
        parts
    }

    /// The tenants with rows here.
    pub(crate) fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.tenants.keys()
    }

    /// The rows of `tenant`, in chunks.
    pub(crate) fn chunks(&self, tenant: &TenantId) -> Vec<Arc<Vec<SpanRow>>> {
        self.tenants.get(tenant).map(|head| head.chunks.clone()).unwrap_or_default()
    }

    pub(crate) fn trace(&self, tenant: &TenantId, trace_id: &TraceId) -> Vec<SpanRow> {
        let Some(head) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        head.by_trace
            .get(trace_id)
            .map(|positions| positions.iter().map(|&(c, i)| head.chunks[c as usize][i as usize].clone()).collect())
            .unwrap_or_default()
    }

    /// The head's rows split by tenant and day, each part in segment order; tenants with only
    /// aggregates have one part without rows.
    pub(crate) fn partitions(&self) -> Vec<(TenantId, u32, Vec<&SpanRow>)> {
        let mut parts: HashMap<(&TenantId, u32), Vec<&SpanRow>> = HashMap::new();
        for (tenant, head) in &self.tenants {
            for row in head.chunks.iter().flat_map(|c| c.iter()) {
                parts.entry((tenant, day_of(row.start_unix_nano))).or_default().push(row);
            }
        }
        let mut parts: Vec<_> = parts
            .into_iter()
            .map(|((tenant, day), mut rows)| {
                rows.sort_unstable_by_key(|row| sort_key(row));
                (tenant.clone(), day, rows)
            })
            .collect();
        parts.extend(self.rowless_tenants().into_iter().map(|(tenant, day)| (tenant, day, Vec::new())));
        parts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        parts
    }
}
