//! An OTLP/JSON export request: decoded or refused with an error, never a panic; what decodes
//! is a request a `SpanBatch` can be built from without panicking.
#![no_main]

use clew_model::SpanBatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = clew_model::otlp_json::decode_request(data) {
        let _ = SpanBatch::from_request(&request);
    }
});
