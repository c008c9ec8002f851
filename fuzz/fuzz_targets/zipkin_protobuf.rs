//! A Zipkin `ListOfSpans` protobuf body: translated to OTLP or refused, never a panic.
#![no_main]

use clew_model::SpanBatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = clew_zipkin::decode_proto(data) {
        let _ = SpanBatch::from_request(&request);
    }
});
