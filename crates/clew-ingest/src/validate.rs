//! Per-span validation: what cannot be stored is taken out of the request and reported through
//! OTLP partial success, while the rest of the request is stored.

use clew_model::{SpanBatch, SpanId, SpanView, TraceId};

/// How many individual reasons an error message lists before summarising.
const MAX_REASONS: usize = 5;

/// The spans validation found unfit to store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    /// Their indexes, in request order.
    indices: Vec<usize>,
    reasons: Vec<String>,
}

impl Rejections {
    fn add(&mut self, index: usize, span: &SpanView<'_>, reason: String) {
        self.indices.push(index);
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("span {:?} ({}): {reason}", span.name(), hex_or_empty(span.span_id())));
        }
    }

    pub fn spans(&self) -> usize {
        self.indices.len()
    }

    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The OTLP `error_message`: every reason up to a few, then a count of the rest.
    pub fn message(&self) -> String {
        let mut message = format!("{} span(s) rejected: {}", self.spans(), self.reasons.join("; "));
        if self.spans() > self.reasons.len() {
            message.push_str(&format!("; and {} more", self.spans() - self.reasons.len()));
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

fn check(span: &SpanView<'_>) -> Result<(), String> {
    TraceId::from_slice(span.trace_id()).map_err(|e| format!("invalid trace ID: {e}"))?;
    SpanId::from_slice(span.span_id()).map_err(|e| format!("invalid span ID: {e}"))?;
    let parent = span.parent_span_id();
    if !parent.is_empty() && parent.len() != SpanId::LEN {
        return Err(format!(
            "invalid parent span ID: must be empty or {} bytes, got {} bytes",
            SpanId::LEN,
            parent.len()
        ));
    }
    let (start, end) = (span.start_unix_nano(), span.end_unix_nano());
    if start == 0 {
        return Err("start time is missing".into());
    }
    if start > i64::MAX as u64 || end > i64::MAX as u64 {
        return Err("timestamp is after the year 2262".into());
    }
    if end < start {
        return Err(format!("ends before it starts (start {start} ns, end {end} ns)"));
    }
    Ok(())
}

/// The spans of `batch` that cannot be stored, and why.
pub fn validate(batch: &SpanBatch) -> Rejections {
    let mut rejections = Rejections::default();
    for (i, span) in batch.spans().enumerate() {
        if let Err(reason) = check(&span) {
            rejections.add(i, &span, reason);
        }
    }
    rejections
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use clew_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

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
        let req = request(vec![
            span(vec![1; 16], vec![1; 8], 10, 20),
            span(vec![1; 15], vec![2; 8], 10, 20),
            span(vec![0; 16], vec![3; 8], 10, 20),
            span(vec![1; 16], vec![0; 8], 10, 20),
            span(vec![1; 16], vec![5; 8], 30, 20),
            span(vec![1; 16], vec![6; 8], 0, 20),
        ]);
        let rejections = validate(&req.into());
        assert_eq!(rejections.indices(), [1, 2, 3, 4, 5]);
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
        let req = request((0..9).map(|_| span(vec![], vec![], 1, 1)).collect());
        let rejections = validate(&req.into());
        assert!(rejections.message().ends_with("; and 4 more"), "{}", rejections.message());
    }
}
