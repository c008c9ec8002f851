//! Per-span validation: what cannot be stored is taken out of the request and reported through
//! OTLP partial success, while the rest of the request is stored.

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::trace::v1::Span;
use clew_model::{SpanId, TraceId};

/// How many individual reasons an error message lists before summarising.
const MAX_REASONS: usize = 5;

/// What validation took out of a request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    pub spans: usize,
    reasons: Vec<String>,
}

impl Rejections {
    fn add(&mut self, span: &Span, reason: String) {
        self.spans += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("span {:?} ({}): {reason}", span.name, hex_or_empty(&span.span_id)));
        }
    }

    /// The OTLP `error_message`: every reason up to a few, then a count of the rest.
    pub fn message(&self) -> String {
        let mut message = format!("{} span(s) rejected: {}", self.spans, self.reasons.join("; "));
        if self.spans > self.reasons.len() {
            message.push_str(&format!("; and {} more", self.spans - self.reasons.len()));
        }
        message
    }
}

fn hex_or_empty(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "no span ID".into()
    } else {
        format!("span ID {}", clew_model::otlp_hex(bytes))
    }
}

fn check(span: &Span) -> Result<(), String> {
    TraceId::from_slice(&span.trace_id).map_err(|e| format!("invalid trace ID: {e}"))?;
    SpanId::from_slice(&span.span_id).map_err(|e| format!("invalid span ID: {e}"))?;
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != SpanId::LEN {
        return Err(format!(
            "invalid parent span ID: must be empty or {} bytes, got {} bytes",
            SpanId::LEN,
            span.parent_span_id.len()
        ));
    }
    if span.start_time_unix_nano == 0 {
        return Err("start time is missing".into());
    }
    if span.start_time_unix_nano > i64::MAX as u64 || span.end_time_unix_nano > i64::MAX as u64 {
        return Err("timestamp is after the year 2262".into());
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(format!(
            "ends before it starts (start {} ns, end {} ns)",
            span.start_time_unix_nano, span.end_time_unix_nano
        ));
    }
    Ok(())
}

/// Removes the spans that cannot be stored, and empty scopes and resources, from `request`.
pub fn validate(request: &mut ExportTraceServiceRequest) -> Rejections {
    let mut rejections = Rejections::default();
    for resource_spans in &mut request.resource_spans {
        for scope_spans in &mut resource_spans.scope_spans {
            scope_spans.spans.retain(|span| match check(span) {
                Ok(()) => true,
                Err(reason) => {
                    rejections.add(span, reason);
                    false
                }
            });
        }
        resource_spans.scope_spans.retain(|s| !s.spans.is_empty());
    }
    request.resource_spans.retain(|r| !r.scope_spans.is_empty());
    rejections
}

/// Spans in a request, valid or not.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_model::otlp::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(trace: Vec<u8>, id: Vec<u8>, start: u64, end: u64) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            name: "op".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn invalid_spans_are_taken_out_and_explained() {
        let mut req = request(vec![
            span(vec![1; 16], vec![1; 8], 10, 20),
            span(vec![1; 15], vec![2; 8], 10, 20),
            span(vec![0; 16], vec![3; 8], 10, 20),
            span(vec![1; 16], vec![0; 8], 10, 20),
            span(vec![1; 16], vec![5; 8], 30, 20),
            span(vec![1; 16], vec![6; 8], 0, 20),
        ]);
        let rejections = validate(&mut req);
        assert_eq!(span_count(&req), 1);
        assert_eq!(rejections.spans, 5);
        let message = rejections.message();
        for expected in [
            "5 span(s) rejected",
            "invalid trace ID: trace ID must be 16 bytes (32 hex characters), got 15 bytes",
            "invalid trace ID: trace ID must not be all zeros",
            "invalid span ID: span ID must not be all zeros",
            "ends before it starts",
            "start time is missing",
        ] {
            assert!(message.contains(expected), "{expected:?} not in {message:?}");
        }
    }

    #[test]
    fn long_lists_of_reasons_are_summarised() {
        let mut req = request((0..9).map(|_| span(vec![], vec![], 1, 1)).collect());
        let rejections = validate(&mut req);
        assert!(rejections.message().ends_with("; and 4 more"), "{}", rejections.message());
        assert!(req.resource_spans.is_empty(), "empty resources are dropped");
    }
}
