//! Drop rules: spans that match are removed before storage; a removed span's children in the
//! same request are re-parented to its nearest kept ancestor, so the trace stays connected.

use std::collections::HashMap;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::any_value::Value;
use clew_model::otlp::trace::v1::Span;
use clew_model::wire::ValueRef;
use clew_model::{SpanAttribute, SpanBatch, SpanView};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::RuleError;

/// A span kind as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    fn code(self) -> i32 {
        match self {
            Kind::Unspecified => 0,
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
            Kind::Producer => 4,
            Kind::Consumer => 5,
        }
    }
}

/// A rule that matches spans: a drop rule, or a tail-sampling rule that keeps the traces with a
/// matching span. A span matches when every condition given holds: its name matches one of
/// `span_names`, its kind is one of `kinds`, and one of `attributes` (span attributes) has a
/// string value matching one of `values`. Globs: `*` matches any run of characters,
/// `/` included; `?` one character; `[abc]` a class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpanRule {
    pub name: String,
    #[serde(default)]
    pub span_names: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub attributes: Vec<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

/// The name of the built-in rule that drops health checks and metrics scrapes.
pub const DEFAULT_DROP_RULE: &str = "health_checks";

impl SpanRule {
    /// Health-check and metrics-scrape noise, by URL path.
    pub fn health_checks() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        Self {
            name: DEFAULT_DROP_RULE.into(),
            span_names: Vec::new(),
            kinds: Vec::new(),
            attributes: strings(&["url.path", "http.target", "http.route", "url.full"]),
            values: strings(&[
                "*/isAlive",
                "*/isReady",
                "*/prometheus",
                "*/metrics",
                "*/actuator/*",
                "*/internal/health*",
                "*/internal/status*",
            ]),
        }
    }
}

#[derive(Debug)]
struct Compiled {
    name: String,
    span_names: Option<GlobSet>,
    kinds: Vec<i32>,
    attributes: Vec<String>,
    values: Option<GlobSet>,
}

fn globs(rule: &str, patterns: &[String]) -> Result<Option<GlobSet>, RuleError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| RuleError::Glob {
            rule: rule.into(),
            pattern: pattern.clone(),
            reason: e.kind().to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(|e| RuleError::Glob {
        rule: rule.into(),
        pattern: patterns.join(", "),
        reason: e.to_string(),
    })
}

impl Compiled {
    fn matches(&self, span: &Span) -> bool {
        let strings = span.attributes.iter().filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.as_str(), s.as_str())),
            _ => None,
        });
        self.matches_parts(&span.name, span.kind, strings)
    }

    fn matches_view(&self, span: &SpanView<'_>) -> bool {
        let wanted = |a: &SpanAttribute<'_>| self.attributes.iter().any(|k| k.as_bytes() == a.key_bytes());
        let strings = span.attributes().iter().filter(wanted).filter_map(|a| match a.value() {
            ValueRef::Str(s) => Some((a.key(), s)),
            _ => None,
        });
        self.matches_parts(span.name(), span.kind(), strings)
    }

    /// Whether a span of this name and kind, with these string attributes, matches.
    fn matches_parts<'a>(&self, name: &str, kind: i32, mut strings: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        if self.span_names.as_ref().is_some_and(|names| !names.is_match(name)) {
            return false;
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return false;
        }
        match &self.values {
            None => true,
            Some(values) => {
                strings.any(|(key, value)| self.attributes.iter().any(|a| a == key) && values.is_match(value))
            }
        }
    }
}

/// A compiled set of span rules.
#[derive(Debug, Default)]
pub struct SpanRules {
    rules: Vec<Compiled>,
}

impl SpanRules {
    pub fn new(rules: &[SpanRule]) -> Result<Self, RuleError> {
        let compiled = rules
            .iter()
            .map(|rule| {
                let invalid = |reason: &str| RuleError::Invalid { rule: rule.name.clone(), reason: reason.into() };
                if rule.span_names.is_empty() && rule.kinds.is_empty() && rule.values.is_empty() {
                    return Err(invalid("a rule needs span_names, kinds or values, or it would match every span"));
                }
                if rule.values.is_empty() != rule.attributes.is_empty() {
                    return Err(invalid("attributes and values go together: which attributes, matching which globs"));
                }
                Ok(Compiled {
                    name: rule.name.clone(),
                    span_names: globs(&rule.name, &rule.span_names)?,
                    kinds: rule.kinds.iter().map(|k| k.code()).collect(),
                    attributes: rule.attributes.clone(),
                    values: globs(&rule.name, &rule.values)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules: compiled })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The name of the first rule `span` matches.
    pub fn first_match(&self, span: &Span) -> Option<&str> {
        self.rules.iter().find(|rule| rule.matches(span)).map(|rule| rule.name.as_str())
    }

    /// Whether a rule matches a span of `batch`: only then does [`SpanRules::apply`] change it.
    pub fn any_match(&self, batch: &SpanBatch) -> bool {
        !self.rules.is_empty() && batch.spans().any(|span| self.rules.iter().any(|rule| rule.matches_view(&span)))
    }

    /// Removes matching spans from `request`, re-parenting their children in it; returns the
    /// count per rule (the first rule that matches a span gets it).
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> Vec<(String, u64)> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let mut counts = vec![0u64; self.rules.len()];
        // (trace ID, span ID) of each dropped span -> its parent span ID.
        let mut dropped: HashMap<(Vec<u8>, Vec<u8>), Vec<u8>> = HashMap::new();
        for resource in &mut request.resource_spans {
            for scope in &mut resource.scope_spans {
                scope.spans.retain(|span| match self.rules.iter().position(|rule| rule.matches(span)) {
                    Some(i) => {
                        counts[i] += 1;
                        dropped.insert((span.trace_id.clone(), span.span_id.clone()), span.parent_span_id.clone());
                        false
                    }
                    None => true,
                });
            }
        }
        if !dropped.is_empty() {
            for span in request.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
                // Follow dropped ancestors up to a kept one (or the root); a cycle stops the walk.
                let mut hops = 0;
                while let Some(parent) = dropped.get(&(span.trace_id.clone(), span.parent_span_id.clone())) {
                    span.parent_span_id = parent.clone();
                    hops += 1;
                    if hops > dropped.len() {
                        break;
                    }
                }
            }
            for resource in &mut request.resource_spans {
                resource.scope_spans.retain(|scope| !scope.spans.is_empty());
            }
            request.resource_spans.retain(|resource| !resource.scope_spans.is_empty());
        }
        self.rules.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(rule, n)| (rule.name.clone(), n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use clew_model::otlp::common::v1::{AnyValue, KeyValue};
    use clew_model::otlp::trace::v1::{ResourceSpans, ScopeSpans};

    use super::*;

    fn span(id: u8, parent: Option<u8>, name: &str, path: Option<&str>) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            kind: 2,
            attributes: path
                .map(|p| KeyValue {
                    key: "url.path".into(),
                    value: Some(AnyValue { value: Some(Value::StringValue(p.into())) }),
                    ..KeyValue::default()
                })
                .into_iter()
                .collect(),
            ..Span::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn kept(request: &ExportTraceServiceRequest) -> Vec<(u8, Option<u8>)> {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| (s.span_id[0], s.parent_span_id.first().copied()))
            .collect()
    }

    #[test]
    fn the_default_rule_drops_health_checks_by_path() {
        let rules = SpanRules::new(&[SpanRule::health_checks()]).unwrap();
        for path in [
            "/isAlive",
            "/api/isReady",
            "/prometheus",
            "/metrics",
            "/actuator/health/liveness",
            "/app/internal/health",
            "/internal/healthz",
            "/internal/status/ready",
        ] {
            let mut r = request(vec![span(1, None, "GET", Some(path))]);
            assert_eq!(rules.apply(&mut r), vec![(DEFAULT_DROP_RULE.to_owned(), 1)], "{path}");
            assert!(r.resource_spans.is_empty(), "{path}: emptied containers are removed");
        }
        for path in ["/orders", "/metrics/orders", "/isAliveX", "/internal/users"] {
            let mut r = request(vec![span(1, None, "GET", Some(path))]);
            assert!(rules.apply(&mut r).is_empty(), "{path} kept");
            assert_eq!(kept(&r).len(), 1);
        }
    }

    #[test]
    fn children_of_dropped_spans_move_up_to_the_nearest_kept_ancestor() {
        let rules = SpanRules::new(&[SpanRule {
            name: "internal".into(),
            span_names: vec!["noise*".into()],
            kinds: vec![],
            attributes: vec![],
            values: vec![],
        }])
        .unwrap();
        // 1 <- 2 (noise) <- 3 (noise) <- 4; 2 <- 5; and a dropped root 6 <- 7.
        let mut r = request(vec![
            span(1, None, "root", None),
            span(2, Some(1), "noise a", None),
            span(3, Some(2), "noise b", None),
            span(4, Some(3), "work", None),
            span(5, Some(2), "more work", None),
            span(6, None, "noise root", None),
            span(7, Some(6), "orphan", None),
        ]);
        assert_eq!(rules.apply(&mut r), vec![("internal".to_owned(), 3)]);
        assert_eq!(kept(&r), vec![(1, None), (4, Some(1)), (5, Some(1)), (7, None)]);
    }

    #[test]
    fn conditions_combine_and_bad_rules_are_named() {
        let rule = SpanRule {
            name: "client pings".into(),
            span_names: vec!["GET *".into()],
            kinds: vec![Kind::Client],
            attributes: vec!["url.path".into()],
            values: vec!["*/ping".into()],
        };
        let rules = SpanRules::new(std::slice::from_ref(&rule)).unwrap();
        let mut client = span(1, None, "GET /ping", Some("/ping"));
        client.kind = 3;
        let server = span(2, None, "GET /ping", Some("/ping"));
        let mut r = request(vec![client, server]);
        rules.apply(&mut r);
        assert_eq!(kept(&r), vec![(2, None)], "the server span is not a client span");

        let err = SpanRules::new(&[SpanRule { values: vec!["[".into()], ..rule.clone() }]).unwrap_err();
        assert!(err.to_string().contains("client pings") && err.to_string().contains("\"[\""), "{err}");
        let everything = SpanRule { span_names: vec![], kinds: vec![], attributes: vec![], values: vec![], ..rule };
        assert!(SpanRules::new(&[everything]).unwrap_err().to_string().contains("every span"));
    }
}
