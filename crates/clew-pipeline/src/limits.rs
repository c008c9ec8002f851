//! Limits that truncate visibly: values, attributes, events and links over a limit are cut,
//! the span's OTLP dropped counts grow by what was cut, and the span gets the attribute
//! `clew.truncated` listing what was (`attribute_values`, `attributes`, `events`, `links`),
//! instead of the whole request being refused. A trace keeps its first `max_spans_per_trace`
//! spans ([`TraceSpanCounts`], counted across requests) and the first span past the limit,
//! marked `trace_spans`; later ones are cut.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::any_value::Value;
use clew_model::otlp::common::v1::{AnyValue, ArrayValue, KeyValue};
use clew_model::otlp::trace::v1::Span;
use clew_model::wire::{AttributesRef, ValueRef};
use clew_model::SpanBatch;
use serde::{Deserialize, Serialize};

/// The attribute a truncated span carries.
pub const TRUNCATED: &str = "clew.truncated";

/// Per-span limits (`[pipeline.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanLimits {
    /// Longest string or bytes attribute value, in bytes (cut at a character boundary).
    pub max_attribute_value_bytes: usize,
    /// Attributes kept per span, event and link (the first ones).
    pub max_attributes: usize,
    pub max_events: usize,
    pub max_links: usize,
    /// Spans kept per trace (the first to arrive), counted over the traces that received a
    /// span in the last one to two minutes.
    pub max_spans_per_trace: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attribute_value_bytes: 16 * 1024,
            max_attributes: 256,
            max_events: 256,
            max_links: 256,
            max_spans_per_trace: 50_000,
        }
    }
}

/// What the limits cut in one request, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    pub attribute_values: u64,
    pub attributes: u64,
    pub events: u64,
    pub links: u64,
    /// Spans cut because their trace was over `max_spans_per_trace`.
    pub trace_spans: u64,
}

impl SpanLimits {
    /// Whether a span of `batch` is over a limit: only then does [`SpanLimits::apply`] change it.
    pub fn any_over(&self, batch: &SpanBatch) -> bool {
        let attributes = |list: AttributesRef<'_>| {
            let mut count = 0;
            list.iter().any(|a| {
                count += 1;
                count > self.max_attributes || self.value_over(&a.value)
            })
        };
        batch.spans().any(|span| {
            let own = span.attributes();
            span.event_count() > self.max_events
                || span.link_count() > self.max_links
                || own.len() > self.max_attributes
                || own.iter().any(|a| {
                    a.value_len().is_some_and(|len| len > self.max_attribute_value_bytes)
                        || (a.is_nested() && self.value_over(&a.value()))
                })
                || span.events().any(|event| attributes(event.attributes()))
                || span.links().any(|link| attributes(link.attributes()))
        })
    }

    /// Whether [`SpanLimits::value`] would cut something of `value`.
    fn value_over(&self, value: &ValueRef<'_>) -> bool {
        match value {
            ValueRef::Str(text) => text.len() > self.max_attribute_value_bytes,
            ValueRef::Bytes(bytes) => bytes.len() > self.max_attribute_value_bytes,
            ValueRef::Array(values) => values.iter().any(|v| self.value_over(&v)),
            ValueRef::Map(list) => list.iter().any(|a| self.value_over(&a.value)),
            _ => false,
        }
    }

    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> Truncated {
        let mut total = Truncated::default();
        for span in request.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
            let cut = self.span(span);
            let mut what = Vec::new();
            for (n, name, sum) in [
                (cut.attribute_values, "attribute_values", &mut total.attribute_values),
                (cut.attributes, "attributes", &mut total.attributes),
                (cut.events, "events", &mut total.events),
                (cut.links, "links", &mut total.links),
            ] {
                if n > 0 {
                    *sum += n;
                    what.push(name);
                }
            }
            mark(span, what);
        }
        total
    }

    fn span(&self, span: &mut Span) -> Truncated {
        let mut cut = Truncated::default();
        let attributes = |list: &mut Vec<KeyValue>, dropped: &mut u32, cut: &mut Truncated| {
            if list.len() > self.max_attributes {
                let over = list.len() - self.max_attributes;
                list.truncate(self.max_attributes);
                *dropped = dropped.saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
                cut.attributes += over as u64;
            }
            for kv in list.iter_mut() {
                if let Some(value) = kv.value.as_mut().and_then(|v| v.value.as_mut()) {
                    cut.attribute_values += self.value(value);
                }
            }
        };
        attributes(&mut span.attributes, &mut span.dropped_attributes_count, &mut cut);
        if span.events.len() > self.max_events {
            let over = span.events.len() - self.max_events;
            span.events.truncate(self.max_events);
            span.dropped_events_count =
                span.dropped_events_count.saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
            cut.events += over as u64;
        }
        for event in &mut span.events {
            attributes(&mut event.attributes, &mut event.dropped_attributes_count, &mut cut);
        }
        if span.links.len() > self.max_links {
            let over = span.links.len() - self.max_links;
            span.links.truncate(self.max_links);
            span.dropped_links_count = span.dropped_links_count.saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
            cut.links += over as u64;
        }
        for link in &mut span.links {
            attributes(&mut link.attributes, &mut link.dropped_attributes_count, &mut cut);
        }
        cut
    }

    /// Cuts long strings and bytes (inside arrays and maps too); returns how many were cut.
    fn value(&self, value: &mut Value) -> u64 {
        let max = self.max_attribute_value_bytes;
        match value {
            Value::StringValue(text) if text.len() > max => {
                let mut end = max;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                1
            }
            Value::BytesValue(bytes) if bytes.len() > max => {
                bytes.truncate(max);
                1
            }
            Value::ArrayValue(array) => {
                array.values.iter_mut().filter_map(|v| v.value.as_mut()).map(|v| self.value(v)).sum()
            }
            Value::KvlistValue(list) => list
                .values
                .iter_mut()
                .filter_map(|kv| kv.value.as_mut().and_then(|v| v.value.as_mut()))
                .map(|v| self.value(v))
                .sum(),
            _ => 0,
        }
    }
}

/// Adds `what` to the span's `clew.truncated` list.
fn mark(span: &mut Span, what: Vec<&str>) {
    if what.is_empty() {
        return;
    }
    let values = what.into_iter().map(|name| AnyValue { value: Some(Value::StringValue(name.into())) });
    let existing = span.attributes.iter_mut().find(|kv| kv.key == TRUNCATED);
    match existing.and_then(|kv| kv.value.as_mut()).and_then(|v| v.value.as_mut()) {
        Some(Value::ArrayValue(list)) => list.values.extend(values),
        _ => span.attributes.push(KeyValue {
            key: TRUNCATED.into(),
            value: Some(AnyValue { value: Some(Value::ArrayValue(ArrayValue { values: values.collect() })) }),
            ..KeyValue::default()
        }),
    }
}

/// How long a trace's span count is remembered after its last span: one to two of these.
const TRACE_COUNT_WINDOW: Duration = Duration::from_secs(60);

/// Spans seen per trace, across requests, for `max_spans_per_trace`. Counts live in two
/// generations that turn over every [`TRACE_COUNT_WINDOW`], so memory holds only the traces
/// that are still receiving spans.
#[derive(Debug)]
pub struct TraceSpanCounts {
    max: usize,
    counts: Mutex<Generations>,
}

#[derive(Debug)]
struct Generations {
    since: Instant,
    current: HashMap<u64, u32>,
    previous: HashMap<u64, u32>,
}

impl TraceSpanCounts {
    pub fn new(max: usize) -> Self {
        let counts = Generations { since: Instant::now(), current: HashMap::new(), previous: HashMap::new() };
        Self { max, counts: Mutex::new(counts) }
    }

    /// Counts the spans of `batch` into their traces (of `tenant`): which of them are past the
    /// limit.
    pub fn count(&self, tenant: &str, batch: &SpanBatch) -> TraceCut {
        let mut cut = TraceCut::default();
        let mut tenant_hasher = DefaultHasher::new();
        tenant.hash(&mut tenant_hasher);
        let keys: Vec<u64> = batch
            .spans()
            .map(|span| {
                let mut hasher = tenant_hasher.clone();
                span.trace_id().hash(&mut hasher);
                hasher.finish()
            })
            .collect();
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.since.elapsed() >= TRACE_COUNT_WINDOW {
            counts.previous = std::mem::take(&mut counts.current);
            counts.since = Instant::now();
        }
        let Generations { current, previous, .. } = &mut *counts;
        let limit = self.max.saturating_add(1);
        // Spans of one trace usually come together: the counts are looked up once per run.
        let mut at = 0;
        while at < keys.len() {
            let key = keys[at];
            let run = keys[at..].iter().take_while(|k| **k == key).count();
            let count = current.entry(key).or_insert_with(|| previous.remove(&key).unwrap_or(0));
            let before = *count as usize;
            *count = count.saturating_add(u32::try_from(run).unwrap_or(u32::MAX));
            for (i, seen) in (at..at + run).zip(before + 1..).skip(limit.saturating_sub(before + 1)) {
                match seen.cmp(&limit) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => cut.marked.push(i),
                    std::cmp::Ordering::Greater => cut.cut.push(i),
                }
            }
            at += run;
        }
        cut
    }
}

/// What the span-per-trace limit does to one request, by span index in request order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TraceCut {
    /// The first span past the limit: kept, marked `trace_spans`.
    pub marked: Vec<usize>,
    /// Later spans: cut.
    pub cut: Vec<usize>,
}

impl TraceCut {
    pub fn is_empty(&self) -> bool {
        self.marked.is_empty() && self.cut.is_empty()
    }

    /// Marks and cuts the spans of `request` (the request the count was taken of).
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) {
        crate::retain_spans(request, |i, span| {
            if self.marked.contains(&i) {
                mark(span, vec!["trace_spans"]);
            }
            !self.cut.contains(&i)
        });
    }
}

#[cfg(test)]
mod tests {
    use clew_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans};

    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
            ..KeyValue::default()
        }
    }

    fn request(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![span], ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn only(request: &ExportTraceServiceRequest) -> &Span {
        &request.resource_spans[0].scope_spans[0].spans[0]
    }

    fn marker(span: &Span) -> Vec<String> {
        span.attributes
            .iter()
            .filter(|kv| kv.key == TRUNCATED)
            .flat_map(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::ArrayValue(a)) => a.values.clone(),
                _ => Vec::new(),
            })
            .filter_map(|v| match v.value {
                Some(Value::StringValue(s)) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_span_within_the_limits_is_untouched() {
        let span = Span { name: "ok".into(), attributes: vec![kv("a", "b")], ..Span::default() };
        let mut r = request(span.clone());
        assert_eq!(SpanLimits::default().apply(&mut r), Truncated::default());
        assert_eq!(only(&r), &span);
    }

    #[test]
    fn excess_is_cut_counted_and_marked() {
        let limits = SpanLimits {
            max_attribute_value_bytes: 5,
            max_attributes: 2,
            max_events: 1,
            max_links: 0,
            ..SpanLimits::default()
        };
        let span = Span {
            attributes: vec![kv("a", "ærlig talt"), kv("b", "short"), kv("c", "dropped"), kv("d", "dropped")],
            dropped_attributes_count: 1,
            events: vec![
                span::Event { name: "kept".into(), attributes: vec![kv("e", "123456789")], ..span::Event::default() },
                span::Event { name: "cut".into(), ..span::Event::default() },
            ],
            links: vec![span::Link::default(), span::Link::default()],
            ..Span::default()
        };
        let mut r = request(span);
        let cut = limits.apply(&mut r);
        assert_eq!(cut, Truncated { attribute_values: 2, attributes: 2, events: 1, links: 2, trace_spans: 0 });
        let span = only(&r);
        // "æ" is 2 bytes, so 5 bytes hold "ærli".
        assert_eq!(span.attributes[0], kv("a", "ærli"));
        assert_eq!(span.attributes[1], kv("b", "short"));
        assert_eq!(span.dropped_attributes_count, 3, "adds to what the SDK dropped");
        assert_eq!((span.events.len(), span.dropped_events_count), (1, 1));
        assert_eq!(span.events[0].attributes[0], kv("e", "12345"));
        assert_eq!((span.links.len(), span.dropped_links_count), (0, 2));
        assert_eq!(marker(span), ["attribute_values", "attributes", "events", "links"]);
    }

    #[test]
    fn strings_are_cut_at_character_boundaries() {
        let limits = SpanLimits { max_attribute_value_bytes: 2, ..SpanLimits::default() };
        let mut r = request(Span { attributes: vec![kv("a", "€uro")], ..Span::default() });
        limits.apply(&mut r);
        assert_eq!(only(&r).attributes[0], kv("a", ""), "the 3-byte € does not fit in 2 bytes");
    }

    #[test]
    fn a_trace_keeps_its_first_spans_across_requests_and_says_it_was_cut() {
        let counts = TraceSpanCounts::new(3);
        let batch = |trace: u8, n: usize| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..n)
                        .map(|i| Span { trace_id: vec![trace; 16], span_id: vec![i as u8; 8], ..Span::default() })
                        .collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let spans = |r: &ExportTraceServiceRequest| -> Vec<Span> {
            r.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| s.spans.clone()).collect()
        };
        let apply = |tenant: &str, mut request: ExportTraceServiceRequest| {
            let cut = counts.count(tenant, &request.clone().into());
            cut.apply(&mut request);
            (cut.cut.len(), request)
        };
        assert_eq!(apply("t", batch(1, 2)).0, 0);
        let (cut, second) = apply("t", batch(1, 3));
        assert_eq!(cut, 1);
        let kept = spans(&second);
        assert_eq!(kept.len(), 2);
        assert!(marker(&kept[0]).is_empty());
        assert_eq!(marker(&kept[1]), ["trace_spans"], "the first span past the limit says so");
        let (cut, third) = apply("t", batch(1, 2));
        assert_eq!(cut, 2);
        assert!(third.resource_spans.is_empty(), "empty groups go");
        // Another trace, and the same trace ID in another tenant, count on their own.
        assert_eq!(apply("t", batch(2, 3)).0, 0);
        assert_eq!(apply("u", batch(1, 3)).0, 0);
    }
}
