//! Limits that truncate visibly: values, attributes, events and links over a limit are cut,
//! the span's OTLP dropped counts grow by what was cut, and the span gets the attribute
//! `clew.truncated` listing what was (`attribute_values`, `attributes`, `events`, `links`),
//! instead of the whole request being refused.

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::any_value::Value;
use clew_model::otlp::common::v1::{AnyValue, ArrayValue, KeyValue};
use clew_model::otlp::trace::v1::Span;
use serde::Deserialize;

/// The attribute a truncated span carries.
pub const TRUNCATED: &str = "clew.truncated";

/// Per-span limits (`[pipeline.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanLimits {
    /// Longest string or bytes attribute value, in bytes (cut at a character boundary).
    pub max_attribute_value_bytes: usize,
    /// Attributes kept per span, event and link (the first ones).
    pub max_attributes: usize,
    pub max_events: usize,
    pub max_links: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self { max_attribute_value_bytes: 16 * 1024, max_attributes: 256, max_events: 256, max_links: 256 }
    }
}

/// What the limits cut in one request, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    pub attribute_values: u64,
    pub attributes: u64,
    pub events: u64,
    pub links: u64,
}

impl SpanLimits {
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
                    what.push(AnyValue { value: Some(Value::StringValue(name.into())) });
                }
            }
            if !what.is_empty() {
                span.attributes.push(KeyValue {
                    key: TRUNCATED.into(),
                    value: Some(AnyValue { value: Some(Value::ArrayValue(ArrayValue { values: what })) }),
                    ..KeyValue::default()
                });
            }
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
        let limits = SpanLimits { max_attribute_value_bytes: 5, max_attributes: 2, max_events: 1, max_links: 0 };
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
        assert_eq!(cut, Truncated { attribute_values: 2, attributes: 2, events: 1, links: 2 });
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
}
