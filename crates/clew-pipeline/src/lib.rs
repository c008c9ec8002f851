//! The ingest pipeline: what happens to spans between validation and storage.
//!
//! Owns the drop rules ([`SpanRules`]: spans matching a name, kind or attribute glob are taken
//! out of the request and their children re-parented to the nearest kept ancestor) and the
//! redaction rules ([`Redactor`]: regex matches in chosen attributes, and optionally span
//! names, replaced with a mask). Both run on the decoded request before it reaches the WAL,
//! so dropped spans and masked values are never written anywhere. Then [`SpanLimits`] cut
//! attribute values, attributes, events, links and spans per trace over their limits,
//! visibly. Last comes the tail-sampling policy ([`TailSampling`]), which `clew-sampler`
//! applies to whole traces. Rules are data ([`SpanRule`], [`RedactRule`], [`SamplingConfig`])
//! that [`PipelineSettings`] gathers from the configuration and a project's settings.

mod drop;
mod limits;
mod redact;
mod sample;

use std::sync::Arc;

pub use drop::{Kind, SpanRule, SpanRules, DEFAULT_DROP_RULE};
pub use limits::{SpanLimits, TraceCut, TraceSpanCounts, Truncated, TRUNCATED};
pub use redact::{Builtin, RedactRule, Redactor};
pub use sample::{Decision, Reason, SamplingConfig, TailSampling, TraceSummary};

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::trace::v1::Span;
use clew_model::wire::WireError;
use clew_model::SpanBatch;
use serde::{Deserialize, Serialize};

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

/// The pipeline as configured (`[pipeline]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Drop health-check and metrics-scrape spans by URL path (`url.path`, `http.target`,
    /// `http.route`, `url.full` matching `*/isAlive`, `*/isReady`, `*/prometheus`,
    /// `*/metrics`, `*/actuator/*`, `*/internal/health*`, `*/internal/status*`).
    pub drop_health_checks: bool,
    /// More drop rules (`[[pipeline.drop]]`).
    pub drop: Vec<SpanRule>,
    /// Built-in redaction rules: `national_id` (default), `email`, `payment_card`,
    /// `bearer_token`.
    pub redact_builtins: Vec<Builtin>,
    /// More redaction rules (`[[pipeline.redact]]`).
    pub redact: Vec<RedactRule>,
    /// Limits over which values, attributes, events, links and spans are cut, visibly.
    pub limits: SpanLimits,
    /// Tail-based sampling (off by default).
    pub sampling: SamplingConfig,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            drop_health_checks: true,
            drop: Vec::new(),
            redact_builtins: vec![Builtin::NationalId],
            redact: Vec::new(),
            limits: SpanLimits::default(),
            sampling: SamplingConfig::default(),
        }
    }
}

/// What a project adds to the server's pipeline: its own drop and redaction rules run after
/// the server's (which a project cannot turn off); its limits and sampling, when given,
/// replace the server's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectPipeline {
    pub drop: Vec<SpanRule>,
    pub redact: Vec<RedactRule>,
    pub limits: Option<SpanLimits>,
    pub sampling: Option<SamplingConfig>,
}

impl PipelineSettings {
    /// The compiled pipeline; a bad glob, regex or setting is an error naming its rule.
    pub fn build(&self) -> Result<Pipeline, RuleError> {
        let mut drop = self.drop.clone();
        if self.drop_health_checks {
            drop.insert(0, SpanRule::health_checks());
        }
        let sampling = if self.sampling.enabled { Some(Arc::new(TailSampling::new(&self.sampling)?)) } else { None };
        Ok(Pipeline {
            drop: SpanRules::new(&drop)?,
            redact: Redactor::new(&self.redact_builtins, &self.redact)?,
            limits: self.limits,
            trace_spans: TraceSpanCounts::new(self.limits.max_spans_per_trace),
            sampling,
        })
    }

    /// These settings with a project's additions.
    pub fn with_project(&self, project: &ProjectPipeline) -> Self {
        let mut settings = self.clone();
        settings.drop.extend(project.drop.iter().cloned());
        settings.redact.extend(project.redact.iter().cloned());
        if let Some(limits) = project.limits {
            settings.limits = limits;
        }
        if let Some(sampling) = &project.sampling {
            settings.sampling = sampling.clone();
        }
        settings
    }
}

/// What the pipeline did to one request, per rule name, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Spans dropped, by drop rule.
    pub dropped: Vec<(String, u64)>,
    /// Values masked, by redaction rule.
    pub redacted: Vec<(String, u64)>,
    /// What the limits cut.
    pub truncated: Truncated,
}

impl Applied {
    /// Spans taken out of the request: dropped by a rule or cut by the span-per-trace limit.
    pub fn removed_spans(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum::<u64>() + self.truncated.trace_spans
    }
}

/// Keeps the spans of `request` for which `keep` (given each span's index in request order)
/// says so, and the scopes and resources that still have spans.
pub(crate) fn retain_spans(request: &mut ExportTraceServiceRequest, mut keep: impl FnMut(usize, &mut Span) -> bool) {
    let mut i = 0;
    for resource in &mut request.resource_spans {
        for scope in &mut resource.scope_spans {
            scope.spans.retain_mut(|span| {
                i += 1;
                keep(i - 1, span)
            });
        }
        resource.scope_spans.retain(|scope| !scope.spans.is_empty());
    }
    request.resource_spans.retain(|resource| !resource.scope_spans.is_empty());
}

/// The stages in order: drop, redact, cut what is over the limits. Tail sampling, when on,
/// comes after, in `clew-sampler`.
#[derive(Debug)]
pub struct Pipeline {
    drop: SpanRules,
    redact: Redactor,
    limits: SpanLimits,
    trace_spans: TraceSpanCounts,
    sampling: Option<Arc<TailSampling>>,
}

impl Pipeline {
    /// Runs the stages over `batch` (of `tenant`), after taking out the spans at `invalid`
    /// (indexes in request order). The stages first only read the batch; only when one of them
    /// has something to change is it decoded, changed and encoded again, so a request nothing
    /// changes reaches storage as the bytes that arrived.
    pub fn apply(&self, tenant: &str, batch: SpanBatch, invalid: &[usize]) -> Result<(SpanBatch, Applied), WireError> {
        let mut applied = Applied::default();
        let changes = !invalid.is_empty()
            || self.drop.any_match(&batch)
            || self.redact.any_match(&batch)
            || self.limits.any_over(&batch);
        let batch = if changes {
            let mut request = batch.to_request()?;
            retain_spans(&mut request, |i, _| !invalid.contains(&i));
            applied.dropped = self.drop.apply(&mut request);
            applied.redacted = self.redact.apply(&mut request);
            applied.truncated = self.limits.apply(&mut request);
            SpanBatch::from_request(&request)?
        } else {
            batch
        };
        let cut = self.trace_spans.count(tenant, &batch);
        if cut.is_empty() {
            return Ok((batch, applied));
        }
        applied.truncated.trace_spans = cut.cut.len() as u64;
        let mut request = batch.to_request()?;
        cut.apply(&mut request);
        Ok((SpanBatch::from_request(&request)?, applied))
    }

    /// The tail-sampling policy, when sampling is on.
    pub fn sampling(&self) -> Option<&Arc<TailSampling>> {
        self.sampling.as_ref()
    }
}
