//! The ingest pipeline: what happens to spans between validation and storage.
//!
//! Owns the drop rules ([`DropRules`]: spans matching a name, kind or attribute glob are taken
//! out of the request and their children re-parented to the nearest kept ancestor) and the
//! redaction rules ([`Redactor`]: regex matches in chosen attributes, and optionally span
//! names, replaced with a mask). Both run on the decoded request before it reaches the WAL,
//! so dropped spans and masked values are never written anywhere. Last, [`SpanLimits`] cut
//! attribute values, attributes, events and links over their limits, visibly. Rules are data
//! ([`DropRule`], [`RedactRule`]) that the configuration deserializes.

mod drop;
mod limits;
mod redact;

pub use drop::{DropRule, DropRules, Kind, DEFAULT_DROP_RULE};
pub use limits::{SpanLimits, Truncated, TRUNCATED};
pub use redact::{Builtin, RedactRule, Redactor};

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;

/// Why a rule set cannot be built, naming the rule and the bad pattern.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule {rule:?}: invalid glob {pattern:?}: {reason}")]
    Glob { rule: String, pattern: String, reason: String },
    #[error("rule {rule:?}: invalid regex {pattern:?}: {reason}")]
    Regex { rule: String, pattern: String, reason: String },
    #[error("rule {rule:?}: {reason}")]
    Invalid { rule: String, reason: String },
}

/// What the pipeline did to one request, per rule name, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Spans dropped, by drop rule.
    pub dropped: Vec<(String, u64)>,
    /// Values masked, by redaction rule.
    pub redacted: Vec<(String, u64)>,
    /// What the span limits cut.
    pub truncated: Truncated,
}

impl Applied {
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

/// The stages in order: drop, redact, then cut what is over the span limits.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub drop: DropRules,
    pub redact: Redactor,
    pub limits: SpanLimits,
}

impl Pipeline {
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> Applied {
        let dropped = self.drop.apply(request);
        let redacted = self.redact.apply(request);
        let truncated = self.limits.apply(request);
        Applied { dropped, redacted, truncated }
    }
}
