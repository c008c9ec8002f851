use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::Protocol;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabel {
    what: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct IngestMetrics {
    truncated: Family<WhatLabel, Counter>,
    spans_dropped: Family<RuleLabel, Counter>,
    values_redacted: Family<RuleLabel, Counter>,
    requests: Family<OutcomeLabels, Counter>,
    spans_received: Family<ProtocolLabel, Counter>,
    bytes_received: Family<ProtocolLabel, Counter>,
    spans_rejected: Family<ReasonLabels, Counter>,
}

impl IngestMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("clew_ingest");
        r.register(
            "requests",
            "Export requests by outcome (ok, partial, refused, error, bad_request, denied, rate_limited)",
            m.requests.clone(),
        );
        r.register("spans_received", "Spans received, valid or not", m.spans_received.clone());
        r.register("bytes_received", "Request bytes received, as sent on the wire", m.bytes_received.clone());
        r.register(
            "spans_rejected",
            "Spans not stored: invalid (partial success), refused (retry later), error",
            m.spans_rejected.clone(),
        );
        let p = registry.sub_registry_with_prefix("clew_pipeline");
        p.register("spans_dropped", "Spans removed by a drop rule, by rule", m.spans_dropped.clone());
        p.register(
            "values_redacted",
            "Values (and span names) masked by a redaction rule, by rule",
            m.values_redacted.clone(),
        );
        p.register(
            "truncated",
            "What the span limits cut: attribute_values, attributes, events, links",
            m.truncated.clone(),
        );
        m
    }

    /// What the pipeline did to one request.
    pub(crate) fn pipeline(&self, applied: &clew_pipeline::Applied) {
        for (rule, n) in &applied.dropped {
            self.spans_dropped.get_or_create(&RuleLabel { rule: rule.clone() }).inc_by(*n);
        }
        for (rule, n) in &applied.redacted {
            self.values_redacted.get_or_create(&RuleLabel { rule: rule.clone() }).inc_by(*n);
        }
        let cut = applied.truncated;
        for (what, n) in [
            ("attribute_values", cut.attribute_values),
            ("attributes", cut.attributes),
            ("events", cut.events),
            ("links", cut.links),
            ("trace_spans", cut.trace_spans),
        ] {
            if n > 0 {
                self.truncated.get_or_create(&WhatLabel { what }).inc_by(n);
            }
        }
    }

    pub(crate) fn received(&self, protocol: Protocol, spans: usize, bytes: usize) {
        let label = ProtocolLabel { protocol: protocol.as_str() };
        self.spans_received.get_or_create(&label).inc_by(spans as u64);
        self.bytes_received.get_or_create(&label).inc_by(bytes as u64);
    }

    pub(crate) fn rejected(&self, protocol: Protocol, reason: &'static str, spans: usize) {
        if spans > 0 {
            self.spans_rejected
                .get_or_create(&ReasonLabels { protocol: protocol.as_str(), reason })
                .inc_by(spans as u64);
        }
    }

    pub(crate) fn request(&self, protocol: Protocol, outcome: &'static str) {
        self.requests.get_or_create(&OutcomeLabels { protocol: protocol.as_str(), outcome }).inc();
    }
}
