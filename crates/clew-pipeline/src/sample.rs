//! The tail-sampling policy: which complete traces to keep. The sampler (`clew-sampler`) holds
//! spans back until their trace is complete and asks [`TailSampling::decide`].

use std::time::Duration;

use clew_model::otlp::trace::v1::{status::StatusCode, Span};
use serde::{Deserialize, Serialize};

use crate::{RuleError, SpanRule, SpanRules};

/// Tail sampling as configured (`[pipeline.sampling]`, or a project's pipeline settings).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    pub enabled: bool,
    /// A trace is complete when no new span of it arrived for this long.
    #[serde(with = "humantime_serde")]
    pub decision_wait: Duration,
    /// A trace is decided this long after its first span even if spans keep coming.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Keep every trace with a span whose status is error.
    pub keep_errors: bool,
    /// Keep every trace that lasts longer than this (first span start to last span end).
    #[serde(with = "humantime_serde")]
    pub keep_slower_than: Option<Duration>,
    /// Keep every trace with a span matching one of these rules.
    pub keep: Vec<SpanRule>,
    /// The share of the other traces kept, from 0 to 1, chosen by trace ID (so every node
    /// keeps the same traces).
    pub probability: f64,
    /// At most this many traces per second kept by `probability`, per project (0: no cap).
    pub max_traces_per_second: u32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            decision_wait: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            keep_errors: true,
            keep_slower_than: Some(Duration::from_secs(2)),
            keep: Vec::new(),
            probability: 0.1,
            max_traces_per_second: 100,
        }
    }
}

/// Why a trace was kept, as the `clew.sampling.reason` attribute of its spans says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Error,
    Slow,
    /// A keep rule matched; its name.
    Rule(String),
    Probabilistic,
}

impl Reason {
    /// The reason's name in metrics; a rule's name is in the span attribute only.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Error => "error",
            Reason::Slow => "slow",
            Reason::Rule(_) => "rule",
            Reason::Probabilistic => "probabilistic",
        }
    }

    /// The value of the `clew.sampling.reason` attribute.
    pub fn attribute(&self) -> String {
        match self {
            Reason::Rule(name) => format!("rule:{name}"),
            other => other.label().to_owned(),
        }
    }
}

/// What the policy says about one trace. A [`Reason::Probabilistic`] keep is still subject
/// to the per-second cap, which the sampler applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep, each span standing for `weight` spans of the traffic.
    Keep {
        reason: Reason,
        weight: f64,
    },
    Drop,
}

/// A compiled tail-sampling policy.
#[derive(Debug)]
pub struct TailSampling {
    pub decision_wait: Duration,
    pub max_wait: Duration,
    pub max_traces_per_second: u32,
    keep_errors: bool,
    keep_slower_than: Option<u64>,
    keep: SpanRules,
    probability: f64,
}

impl TailSampling {
    pub fn new(config: &SamplingConfig) -> Result<Self, RuleError> {
        let invalid = |reason: &str| RuleError::Invalid { rule: "sampling".into(), reason: reason.into() };
        if !(0.0..=1.0).contains(&config.probability) {
            return Err(invalid("probability must be between 0 and 1"));
        }
        if config.decision_wait.is_zero() || config.max_wait < config.decision_wait {
            return Err(invalid("decision_wait must be positive and no longer than max_wait"));
        }
        Ok(Self {
            decision_wait: config.decision_wait,
            max_wait: config.max_wait,
            max_traces_per_second: config.max_traces_per_second,
            keep_errors: config.keep_errors,
            keep_slower_than: config.keep_slower_than.map(|d| d.as_nanos().min(u64::MAX as u128) as u64),
            keep: SpanRules::new(&config.keep)?,
            probability: config.probability,
        })
    }

    /// Decides on the spans of one trace (all that arrived so far).
    pub fn decide<'a>(&self, trace_id: &[u8], spans: impl Iterator<Item = &'a Span> + Clone) -> Decision {
        let mut summary = TraceSummary::default();
        spans.clone().for_each(|span| {
            let error = span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32);
            summary.add(error, span.start_time_unix_nano, span.end_time_unix_nano);
        });
        self.decide_summary(trace_id, &summary, || {
            spans.clone().find_map(|s| self.keep.first_match(s)).map(str::to_owned)
        })
    }

    /// The first keep rule `span` matches.
    pub fn keep_rule(&self, span: &Span) -> Option<&str> {
        self.keep.first_match(span)
    }

    /// Whether the policy has keep rules, which need the spans themselves, not their summary.
    pub fn has_keep_rules(&self) -> bool {
        !self.keep.is_empty()
    }

    /// [`TailSampling::decide`] from what a trace's spans add up to; `keep_rule` names the first
    /// keep rule a span matches, and is asked only when the policy has keep rules and neither
    /// an error nor the duration decided.
    pub fn decide_summary(
        &self,
        trace_id: &[u8],
        summary: &TraceSummary,
        keep_rule: impl FnOnce() -> Option<String>,
    ) -> Decision {
        let keep = |reason| Decision::Keep { reason, weight: 1.0 };
        if self.keep_errors && summary.error {
            return keep(Reason::Error);
        }
        if let Some(threshold) = self.keep_slower_than {
            if summary.end.saturating_sub(summary.start) > threshold {
                return keep(Reason::Slow);
            }
        }
        if self.has_keep_rules() {
            if let Some(rule) = keep_rule() {
                return keep(Reason::Rule(rule));
            }
        }
        if self.probability > 0.0 && (trace_hash(trace_id) as f64) < self.probability * TWO_TO_64 {
            return Decision::Keep { reason: Reason::Probabilistic, weight: 1.0 / self.probability };
        }
        Decision::Drop
    }
}

/// What the policy reads of a trace's spans besides its keep rules: whether one failed, and
/// when the first started and the last ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSummary {
    pub error: bool,
    pub start: u64,
    pub end: u64,
}

impl Default for TraceSummary {
    fn default() -> Self {
        Self { error: false, start: u64::MAX, end: 0 }
    }
}

impl TraceSummary {
    pub fn add(&mut self, error: bool, start: u64, end: u64) {
        self.error |= error;
        self.start = self.start.min(start);
        self.end = self.end.max(end);
    }

    pub fn merge(&mut self, other: &TraceSummary) {
        self.add(other.error, other.start, other.end);
    }
}

const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;

/// A well-mixed 64-bit hash of a trace ID (splitmix64 over its halves), so that trace IDs
/// that are not random still sample evenly.
fn trace_hash(trace_id: &[u8]) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut halves = [0u64; 2];
    for (i, chunk) in trace_id.chunks(8).take(2).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        halves[i] = u64::from_le_bytes(bytes);
    }
    mix(halves[0] ^ mix(halves[1].wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use clew_model::otlp::trace::v1::Status;

    use super::*;

    fn span(start: u64, end: u64, error: bool) -> Span {
        Span {
            name: "op".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: error.then(|| Status { code: StatusCode::Error as i32, ..Status::default() }),
            ..Span::default()
        }
    }

    fn policy(config: SamplingConfig) -> TailSampling {
        TailSampling::new(&config).unwrap()
    }

    #[test]
    fn errors_slow_traces_and_rules_are_kept_whole() {
        let p = policy(SamplingConfig {
            probability: 0.0,
            keep: vec![SpanRule {
                name: "checkout".into(),
                span_names: vec!["POST /checkout*".into()],
                ..SpanRule::default()
            }],
            ..SamplingConfig::default()
        });
        let id = [7u8; 16];
        let ok = [span(0, 1_000, false), span(10, 500, false)];
        assert_eq!(p.decide(&id, ok.iter()), Decision::Drop);
        let failed = [span(0, 1_000, false), span(10, 500, true)];
        assert_eq!(p.decide(&id, failed.iter()), Decision::Keep { reason: Reason::Error, weight: 1.0 });
        // Two spans that do not overlap still make a 3 s trace.
        let slow = [span(0, 1_000_000_000, false), span(2_000_000_000, 3_000_000_000, false)];
        assert_eq!(p.decide(&id, slow.iter()), Decision::Keep { reason: Reason::Slow, weight: 1.0 });
        let mut checkout = span(0, 10, false);
        checkout.name = "POST /checkout/confirm".into();
        let kept = p.decide(&id, [checkout].iter());
        assert_eq!(kept, Decision::Keep { reason: Reason::Rule("checkout".into()), weight: 1.0 });
    }

    #[test]
    fn the_probabilistic_share_is_close_and_weighted() {
        let p = policy(SamplingConfig { probability: 0.25, ..SamplingConfig::default() });
        let spans = [span(0, 10, false)];
        let mut kept = 0;
        // Sequential IDs are as far from random as IDs get; the hash must still spread them.
        for n in 0u64..40_000 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&n.to_be_bytes());
            if let Decision::Keep { weight, .. } = p.decide(&id, spans.iter()) {
                assert_eq!(weight, 4.0);
                kept += 1;
            }
        }
        let share = f64::from(kept) / 40_000.0;
        assert!((share - 0.25).abs() < 0.01, "kept {share}");
        let all = policy(SamplingConfig { probability: 1.0, ..SamplingConfig::default() });
        assert!(matches!(all.decide(&[0xff; 16], spans.iter()), Decision::Keep { .. }));
    }

    #[test]
    fn bad_settings_are_refused() {
        for config in [
            SamplingConfig { probability: 1.5, ..SamplingConfig::default() },
            SamplingConfig { decision_wait: Duration::from_secs(90), ..SamplingConfig::default() },
            SamplingConfig {
                keep: vec![SpanRule { name: "all".into(), ..SpanRule::default() }],
                ..SamplingConfig::default()
            },
        ] {
            assert!(TailSampling::new(&config).is_err(), "{config:?}");
        }
    }
}
