//! A TraceQL query: parsed or refused with a positioned error, never a panic; what parses
//! prints as canonical TraceQL that parses again to the same query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(query) = clew_traceql::parse(text) {
        let printed = query.to_string();
        let again = clew_traceql::parse(&printed).unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
        assert_eq!(again.to_string(), printed, "printing is not stable");
    }
});
