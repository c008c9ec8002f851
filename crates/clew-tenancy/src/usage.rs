//! Usage accounting: what each namespace ingested and had refused, per UTC day. Counted in
//! memory on the ingest path and added to the metadata store by [`Usage::flush`] (the server
//! calls it every few seconds and at shutdown); readers see stored and pending counts alike.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::metadata::{Metadata, RefusedCount, Result, UsageDay};
use crate::Clock;

/// Why a request of a known namespace was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Over the namespace's ingest rate limit.
    RateLimited,
    /// The project has tracing disabled.
    TracingDisabled,
    /// The caller may not write to the project.
    Forbidden,
    /// The request could not be decoded or had invalid spans.
    Invalid,
    /// Storage was full or unavailable.
    Unavailable,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::TracingDisabled => "tracing_disabled",
            Refusal::Forbidden => "forbidden",
            Refusal::Invalid => "invalid",
            Refusal::Unavailable => "unavailable",
        }
    }
}

#[derive(Default)]
struct Pending {
    ingested: HashMap<(i64, u32), (u64, u64)>,
    refused: HashMap<(i64, u32, Refusal), (u64, u64)>,
}

/// Per-namespace, per-day counters.
#[derive(Clone)]
pub struct Usage {
    metadata: Metadata,
    clock: Arc<dyn Clock>,
    pending: Arc<Mutex<Pending>>,
}

const SECONDS_PER_DAY: i64 = 86_400;

impl Usage {
    pub fn new(metadata: Metadata, clock: Arc<dyn Clock>) -> Self {
        Self { metadata, clock, pending: Arc::default() }
    }

    fn today(&self) -> u32 {
        u32::try_from(self.clock.unix_seconds() / SECONDS_PER_DAY).unwrap_or(0)
    }

    pub fn ingested(&self, namespace: i64, bytes: u64, spans: u64) {
        let day = self.today();
        let mut pending = self.pending.lock();
        let entry = pending.ingested.entry((namespace, day)).or_default();
        entry.0 += bytes;
        entry.1 += spans;
    }

    pub fn refused(&self, namespace: i64, reason: Refusal, bytes: u64) {
        let day = self.today();
        let mut pending = self.pending.lock();
        let entry = pending.refused.entry((namespace, day, reason)).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }

    /// Adds what was counted since the last flush to the metadata store. Counts that could not
    /// be written are kept for the next flush.
    pub async fn flush(&self) -> Result<()> {
        let taken = std::mem::take(&mut *self.pending.lock());
        let mut failed = Pending::default();
        let mut first_error = None;
        for (&(namespace, day), &(bytes, spans)) in &taken.ingested {
            if let Err(e) = self.metadata.add_usage(namespace, day, bytes, spans).await {
                failed.ingested.insert((namespace, day), (bytes, spans));
                first_error.get_or_insert(e);
            }
        }
        for (&(namespace, day, reason), &(requests, bytes)) in &taken.refused {
            if let Err(e) = self.metadata.add_refusals(namespace, day, reason.as_str(), requests, bytes).await {
                failed.refused.insert((namespace, day, reason), (requests, bytes));
                first_error.get_or_insert(e);
            }
        }
        if first_error.is_some() {
            let mut pending = self.pending.lock();
            for (key, (a, b)) in failed.ingested {
                let entry = pending.ingested.entry(key).or_default();
                entry.0 += a;
                entry.1 += b;
            }
            for (key, (a, b)) in failed.refused {
                let entry = pending.refused.entry(key).or_default();
                entry.0 += a;
                entry.1 += b;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A namespace's usage for the last `days` days (today included), stored and pending.
    pub async fn days(&self, namespace: i64, days: u32) -> Result<Vec<UsageDay>> {
        let from = self.today().saturating_sub(days.saturating_sub(1));
        let mut stored = self.metadata.usage(namespace, from).await?;
        let pending = self.pending.lock();
        let day = |day: u32, stored: &mut Vec<UsageDay>| -> usize {
            match stored.binary_search_by_key(&day, |d| d.day) {
                Ok(i) => i,
                Err(i) => {
                    stored.insert(i, UsageDay { day, ..UsageDay::default() });
                    i
                }
            }
        };
        for (&(ns, d), &(bytes, spans)) in &pending.ingested {
            if ns == namespace && d >= from {
                let i = day(d, &mut stored);
                stored[i].ingested_bytes += bytes;
                stored[i].ingested_spans += spans;
            }
        }
        for (&(ns, d, reason), &(requests, bytes)) in &pending.refused {
            if ns == namespace && d >= from {
                let i = day(d, &mut stored);
                let entry = stored[i].refused.entry(reason.as_str().to_owned()).or_insert(RefusedCount::default());
                entry.requests += requests;
                entry.bytes += bytes;
            }
        }
        Ok(stored)
    }
}
