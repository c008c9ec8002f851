//! What several end-to-end test files share.

#![allow(dead_code, unreachable_pub)] // each test file uses part of this module

use clew_model::otlp::trace::v1::TracesData;
use clew_model::TraceId;

/// Reads every trace of `ids` through the HTTP API at `url`, four at a time, and asserts that
/// each is stored whole (`spans` spans); `what` says where the traces came from.
pub async fn assert_stored(url: &str, ids: &[TraceId], spans: usize, what: &str) {
    let mut readers = tokio::task::JoinSet::new();
    for part in ids.chunks(ids.len().div_ceil(4).max(1)) {
        let (part, url, what) = (part.to_vec(), url.to_owned(), what.to_owned());
        readers.spawn(async move {
            let client = reqwest::Client::new();
            for id in part {
                let response = client.get(format!("{url}/api/v1/traces/{id}")).send().await.unwrap();
                assert_eq!(response.status(), 200, "acknowledged trace {id} lost {what}");
                let trace: TracesData = response.json().await.unwrap();
                let stored: usize =
                    trace.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
                assert_eq!(stored, spans, "trace {id} lost spans {what}");
            }
        });
    }
    while let Some(done) = readers.join_next().await {
        done.unwrap();
    }
}
