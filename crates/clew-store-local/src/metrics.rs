//! What the engine reports in `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::wal::WalObserver;

#[derive(Clone, Default)]
pub(crate) struct EngineMetrics {
    wal_bytes: Counter,
    wal_records: Counter,
    wal_syncs: Counter,
    wal_replayed_records: Counter,
    wal_cut_bytes: Counter,
    pub(crate) spans_written: Counter,
    pub(crate) refused: Counter,
    pub(crate) flushes: Counter,
    pub(crate) flush_failures: Counter,
    pub(crate) compactions: Counter,
    pub(crate) unpaired_spans: Counter,
    pub(crate) days_dropped: Counter,
    head_spans: Gauge,
    head_bytes: Gauge,
    segments: Gauge,
    segment_spans: Gauge,
    segment_bytes: Gauge,
}

impl EngineMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("clew_storage");
        r.register("wal_bytes_written", "Bytes appended to the WAL", m.wal_bytes.clone());
        r.register("wal_records_written", "Requests appended to the WAL", m.wal_records.clone());
        r.register("wal_syncs", "WAL fsyncs (one per group commit)", m.wal_syncs.clone());
        r.register("wal_replayed_records", "WAL records replayed at startup", m.wal_replayed_records.clone());
        r.register("wal_cut_bytes", "Bytes cut from torn WAL tails at startup", m.wal_cut_bytes.clone());
        r.register("spans_written", "Spans made durable", m.spans_written.clone());
        r.register("writes_refused", "Writes refused because memory or the WAL backlog was full", m.refused.clone());
        r.register("flushes", "Head flushes to segments", m.flushes.clone());
        r.register("flush_failures", "Head flushes that failed and will be retried", m.flush_failures.clone());
        r.register("compactions", "Segment compactions", m.compactions.clone());
        r.register(
            "rollup_unpaired_spans",
            "Spans whose parent did not arrive within the pair window (counted as spans, not as calls)",
            m.unpaired_spans.clone(),
        );
        r.register(
            "days_dropped",
            "Tenant days deleted with everything stored for them (retention, quotas)",
            m.days_dropped.clone(),
        );
        r.register("head_spans", "Spans in the in-memory head", m.head_spans.clone());
        r.register("head_bytes", "Estimated bytes in the in-memory head", m.head_bytes.clone());
        r.register("segments", "Segments on disk", m.segments.clone());
        r.register("segment_spans", "Spans in segments", m.segment_spans.clone());
        r.register("segment_bytes", "Bytes of segments and their indexes on disk", m.segment_bytes.clone());
        m
    }

    pub(crate) fn recovered(&self, records: u64, cut_bytes: u64) {
        self.wal_replayed_records.inc_by(records);
        self.wal_cut_bytes.inc_by(cut_bytes);
    }

    pub(crate) fn head(&self, spans: usize, bytes: usize) {
        self.head_spans.set(spans as i64);
        self.head_bytes.set(bytes as i64);
    }

    pub(crate) fn segments(&self, count: usize, spans: u64, bytes: u64) {
        self.segments.set(count as i64);
        self.segment_spans.set(spans as i64);
        self.segment_bytes.set(bytes as i64);
    }
}

impl WalObserver for EngineMetrics {
    fn synced(&self, bytes: u64, records: u64) {
        self.wal_bytes.inc_by(bytes);
        self.wal_records.inc_by(records);
        self.wal_syncs.inc();
    }
}
