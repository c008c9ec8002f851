//! End-to-end: the real `clew` binary, driven through its real protocols.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clew_model::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
use clew_model::otlp::trace::v1::TracesData;
use clew_model::TraceId;
use clew_storage::conformance::every_field_request;
use clew_testkit::{now_nanos, Profile, TestServer, Workload};
use prost::Message;
use tonic::codec::CompressionEncoding;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_clew");

fn server() -> TestServer {
    TestServer::start(BIN).unwrap()
}

/// A server whose configuration file holds `toml`.
fn server_with_config(toml: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clew.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = TestServer::start_in(BIN, &data, &["--config", config.to_str().unwrap()]).unwrap();
    (server, dir)
}

async fn grpc(server: &TestServer) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(format!("http://{}", server.otlp_grpc)).await.unwrap()
}

async fn get_trace(server: &TestServer, id: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}/api/v1/traces/{id}", server.http_url())).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn read_back(server: &TestServer, trace: [u8; 16]) -> TracesData {
    let (status, body) = get_trace(server, &hex(&trace)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post(server: &TestServer, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", server.otlp_http))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_protocol_round_trips_every_field() {
    let server = server();
    let start = now_nanos();
    let mut client = grpc(&server).await;
    let mut gzip_client = grpc(&server).await.send_compressed(CompressionEncoding::Gzip);

    let cases: Vec<([u8; 16], &str)> = vec![
        ([1; 16], "grpc"),
        ([2; 16], "grpc+gzip"),
        ([3; 16], "http protobuf"),
        ([4; 16], "http protobuf gzip"),
        ([5; 16], "http json"),
        ([6; 16], "http json gzip"),
    ];
    for (trace, how) in &cases {
        let request = every_field_request(*trace, start);
        match *how {
            "grpc" => assert_eq!(
                client.export(request.clone()).await.unwrap().into_inner(),
                ExportTraceServiceResponse::default()
            ),
            "grpc+gzip" => {
                gzip_client.export(request.clone()).await.unwrap();
            }
            _ => {
                let json = how.contains("json");
                let body = if json { serde_json::to_vec(&request).unwrap() } else { request.encode_to_vec() };
                let (body, encoding) = if how.ends_with("gzip") { (gzip(&body), Some("gzip")) } else { (body, None) };
                let content_type = if json { "application/json" } else { "application/x-protobuf" };
                let response = post(&server, content_type, encoding, body).await;
                assert_eq!(response.status(), 200, "{how}");
                assert_eq!(response.headers()["content-type"], content_type, "{how}");
            }
        }
        assert_eq!(read_back(&server, *trace).await.resource_spans, request.resource_spans, "{how}");
    }
}

#[tokio::test]
async fn bad_http_input_gets_a_clear_error() {
    let (server, _dir) = server_with_config("[ingest]\nmax_request_bytes = \"64KiB\"\n");
    let valid = every_field_request([9; 16], now_nanos()).encode_to_vec();
    let big = vec![b'x'; 70 * 1024];
    // (content type, content encoding, body, expected status, expected message)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("application/x-protobuf", None, b"\xff\xff\xff".to_vec(), 400, "decode OTLP/protobuf request"),
        (
            "application/json",
            None,
            b"{\"resourceSpans\": [}".to_vec(),
            400,
            "decode OTLP/JSON request: expected value at line 1 column 20",
        ),
        (
            "application/json",
            None,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.to_vec(),
            400,
            "decode OTLP/JSON request",
        ),
        ("text/plain", None, valid.clone(), 415, "unsupported content type \"text/plain\""),
        ("application/x-protobuf", Some("br"), valid.clone(), 415, "unsupported content encoding \"br\""),
        ("application/x-protobuf", Some("gzip"), valid.clone(), 400, "gunzip body"),
        ("application/x-protobuf", None, big.clone(), 413, "larger than the limit of 65536 bytes"),
        (
            "application/x-protobuf",
            Some("gzip"),
            gzip(&big),
            413,
            "larger than the limit of 65536 bytes once decompressed",
        ),
    ];
    for (content_type, encoding, body, status, message) in cases {
        let response = post(&server, content_type, encoding, body).await;
        assert_eq!(response.status().as_u16(), status, "{content_type} {encoding:?} {message}");
        let answered_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let bytes = response.bytes().await.unwrap();
        let text = if answered_type == "application/x-protobuf" {
            // google.rpc.Status: field 2 is the message.
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["message"].as_str().unwrap().to_owned()
        };
        assert!(text.contains(message), "expected {message:?} in {text:?}");
    }
    let metrics = reqwest::get(format!("{}/metrics", server.http_url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clew_ingest_requests_total{protocol=\"http\",outcome=\"bad_request\"} 8"), "{metrics}");

    let elsewhere =
        reqwest::Client::new().post(format!("http://{}/v1/metrics", server.otlp_http)).send().await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    assert!(elsewhere.text().await.unwrap().contains("POST /v1/traces"));
}

#[tokio::test]
async fn invalid_spans_are_rejected_one_by_one_and_the_rest_stored() {
    let server = server();
    let mut request = every_field_request([7; 16], now_nanos());
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    spans[1].span_id = vec![0; 8];
    let mut short = spans[0].clone();
    short.trace_id = vec![7; 15];
    let mut backwards = spans[0].clone();
    backwards.span_id = vec![0x42; 8];
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    spans.push(short);
    spans.push(backwards);

    for protocol in ["http", "grpc"] {
        let response = if protocol == "http" {
            let body =
                post(&server, "application/x-protobuf", None, request.encode_to_vec()).await.bytes().await.unwrap();
            ExportTraceServiceResponse::decode(body).unwrap()
        } else {
            grpc(&server).await.export(request.clone()).await.unwrap().into_inner()
        };
        let partial = response.partial_success.expect("partial success");
        assert_eq!(partial.rejected_spans, 3, "{protocol}");
        for reason in ["span ID must not be all zeros", "trace ID must be 16 bytes", "ends before it starts"] {
            assert!(
                partial.error_message.contains(reason),
                "{protocol}: {reason:?} not in {:?}",
                partial.error_message
            );
        }
    }
    let stored = read_back(&server, [7; 16]).await;
    let count: usize = stored.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(count, 2, "the two valid spans are stored (once: the second export is an identical copy)");
}

#[tokio::test]
async fn grpc_errors_use_the_otlp_codes() {
    let (server, _dir) =
        server_with_config("[ingest]\nmax_request_bytes = \"64KiB\"\n[storage]\nwal_max_pending_bytes = \"64KiB\"\n");
    let mut client = grpc(&server).await;
    let (big, _) = Workload::new(Profile::Wide, 1).request(now_nanos());
    let status = client.export(big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Not a protobuf message: sent raw over HTTP/2 with a gRPC frame header.
    let garbage = [0u8, 0, 0, 0, 3, 0xff, 0xff, 0xff];
    let response = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!("http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export", server.otlp_grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(garbage.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "3", "{:?}", response.headers());
}

#[tokio::test]
async fn overload_pushes_back_with_retry_after_and_stores_nothing_refused() {
    let (server, _dir) = server_with_config("[storage]\nhead_flush_bytes = \"1KiB\"\nhead_max_bytes = \"1KiB\"\n");
    let mut workload = Workload::new(Profile::Std, 3);
    let mut refused_http = None;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..200 {
        let (request, ids) = workload.request(now_nanos());
        let response = post(&server, "application/x-protobuf", None, request.encode_to_vec()).await;
        if response.status() == 503 {
            refused_http = Some(response.headers()["retry-after"].to_str().unwrap().to_owned());
            refused.push(ids[0]);
            break;
        }
        assert_eq!(response.status(), 200);
        accepted.push(ids[0]);
    }
    assert_eq!(refused_http.as_deref(), Some("1"), "a full head answers 503 with Retry-After");
    let mut grpc_refusal = None;
    let mut client = grpc(&server).await;
    for _ in 0..200 {
        let (request, ids) = workload.request(now_nanos());
        match client.export(request).await {
            Ok(_) => accepted.push(ids[0]),
            Err(status) => {
                grpc_refusal = Some(status.code());
                refused.push(ids[0]);
                break;
            }
        }
    }
    assert_eq!(grpc_refusal, Some(tonic::Code::Unavailable));
    for id in accepted {
        assert_eq!(get_trace(&server, &id.to_string()).await.0, 200);
    }
    for id in refused {
        assert_eq!(get_trace(&server, &id.to_string()).await.0, 404, "a refused request stores nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_span() {
    let mut server = server();
    let endpoint = format!("http://{}", server.otlp_grpc);
    // The kill comes once this many traces are acknowledged, with every sender mid-stream.
    const KILL_AFTER_TRACES: usize = 3_000;
    let counted = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut senders = Vec::new();
    for seed in 0..4u64 {
        let (endpoint, counted, enough) = (endpoint.clone(), counted.clone(), enough.clone());
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            let mut workload = Workload::new(Profile::Small, seed);
            let mut acknowledged: Vec<TraceId> = Vec::new();
            loop {
                let (request, ids) = workload.request(now_nanos());
                match client.export(request).await {
                    Ok(response) => {
                        assert_eq!(response.into_inner().partial_success, None, "the workload's spans are all valid");
                        if counted.fetch_add(ids.len(), Ordering::Relaxed) + ids.len() >= KILL_AFTER_TRACES {
                            enough.notify_one();
                        }
                        acknowledged.extend(ids);
                    }
                    // The server died mid-request: this one was never acknowledged.
                    Err(_) => return acknowledged,
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), enough.notified()).await.expect("load never reached the kill point");
    server.kill9();
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(acknowledged.len() >= KILL_AFTER_TRACES, "{} traces acknowledged", acknowledged.len());
    server.restart().unwrap();
    common::assert_stored(&server.http_url(), &acknowledged, 10, "after kill -9").await;
}

fn run_clew(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_to_segments_and_exits_cleanly() {
    let mut server = server();
    let mut client = grpc(&server).await;
    client.export(every_field_request([8; 16], now_nanos())).await.unwrap();
    // The client's connection stays open: shutdown must not wait for it forever.
    let status = tokio::task::block_in_place(|| server.terminate()).unwrap();
    drop(client);
    assert!(status.success(), "{status:?}");
    assert!(server.log().contains("storage flushed"), "{}", server.log());
    let segments = count_files(&server.data_dir().join("segments"), "parquet");
    assert_eq!(segments, 1, "the head was written to a segment");
    server.restart().unwrap();
    assert_eq!(read_back(&server, [8; 16]).await.resource_spans.len(), 1);
}

fn count_files(dir: &Path, extension: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        count_files(&path, extension)
                    } else {
                        usize::from(path.extension().is_some_and(|x| x == extension))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn non_loopback_listeners_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_clew(&["serve", "--data-dir", dir.path().to_str().unwrap(), "--listen-otlp-grpc", "0.0.0.0:0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen.otlp_grpc = 0.0.0.0:0") && stderr.contains("no authentication"), "{stderr}");
}

#[tokio::test]
async fn clew_trace_prints_a_waterfall_and_explains_failures() {
    let server = server();
    grpc(&server).await.export(every_field_request([0x11; 16], now_nanos())).await.unwrap();
    let url = server.http_url();
    let output = run_clew(&["trace", &"11".repeat(16), "--server", &url]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("3 spans, 1 service,") && stdout.contains("    checkout GET /orders/3"), "{stdout}");

    let output = run_clew(&["trace", &"12".repeat(16), "--server", &url]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("404 Not Found: trace 1212"), "{output:?}");
    let output = run_clew(&["trace", "nope", "--server", &url]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid trace ID \"nope\""), "{output:?}");
}

#[tokio::test]
async fn clew_search_prints_summaries_and_explains_bad_queries() {
    let server = server();
    grpc(&server).await.export(every_field_request([0x21; 16], now_nanos())).await.unwrap();
    let url = server.http_url();
    let output = run_clew(&["search", r#"{ resource.service.name = "checkout" && status = error }"#, "--server", &url]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.starts_with("TRACE ID"), "{stdout}");
    assert!(stdout.contains(&"21".repeat(16)) && stdout.contains("checkout: GET /orders/1"), "{stdout}");

    let output = run_clew(&["search", r#"{ resource.service.name = "nobody" }"#, "--server", &url, "--since", "5m"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("no traces found"), "{output:?}");

    let output = run_clew(&["search", "{ name = }", "--server", &url]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("400 Bad Request") && stderr.contains("line 1, column 10"), "{stderr}");
}

#[tokio::test]
async fn health_and_metrics_report_ingest_and_storage() {
    let server = server();
    let ready = reqwest::get(format!("{}/health/ready", server.http_url())).await.unwrap();
    assert_eq!(ready.status(), 200);
    grpc(&server).await.export(every_field_request([0x21; 16], now_nanos())).await.unwrap();
    let metrics = reqwest::get(format!("{}/metrics", server.http_url())).await.unwrap().text().await.unwrap();
    for expected in [
        "clew_ingest_spans_received_total{protocol=\"grpc\"} 3",
        "clew_ingest_requests_total{protocol=\"grpc\",outcome=\"ok\"} 1",
        "clew_storage_wal_records_written_total 1",
        "clew_storage_spans_written_total 3",
    ] {
        assert!(metrics.contains(expected), "{expected:?} missing from\n{metrics}");
    }
}
