//! An OTLP/protobuf export request as the receivers get it: `SpanBatch` must give the verdict
//! prost gives (the same bytes accepted or refused), never panic, and read back what it accepted.
#![no_main]

use bytes::Bytes;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::SpanBatch;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let ours = SpanBatch::decode(Bytes::copy_from_slice(data));
    let prost = ExportTraceServiceRequest::decode(data);
    assert_eq!(ours.is_ok(), prost.is_ok(), "verdicts differ: ours {:?}, prost {:?}", ours.err(), prost.err());
    if let (Ok(batch), Ok(request)) = (ours, prost) {
        assert_eq!(batch.span_count(), request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum::<usize>());
        let again = batch.to_request().expect("an accepted batch reads back");
        assert_eq!(again, request);
    }
});
