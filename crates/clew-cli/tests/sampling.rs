//! End-to-end: tail-based sampling in the real `clew` binary. Every error trace, every slow
//! trace and every trace a keep rule matches is stored whole; about the configured share of the
//! others is, with the weight that re-scales counts; late spans follow their trace's decision;
//! held-back spans survive `kill -9`; when memory is short the sampler decides early instead of
//! dropping.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;
use std::time::{Duration, Instant};

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{status::StatusCode, ResourceSpans, ScopeSpans, Span, Status};
use clew_testkit::{now_nanos, TestServer};
use prost::Message;

const BIN: &str = env!("CARGO_BIN_EXE_clew");

/// A deterministic stream of 64-bit values (splitmix64): the workload is the same every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_le_bytes());
        id[8..].copy_from_slice(&self.next().to_le_bytes());
        id
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Error,
    Slow,
    Checkout,
    Plain,
}

struct Trace {
    id: [u8; 16],
    kind: Kind,
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Span `n` of a trace: 1 is the root, 2 and 3 its children. A slow trace's root lasts 3 s,
/// an error trace's span 3 fails, a checkout trace's root is named for the keep rule.
fn span(trace: &Trace, n: u8, start: u64) -> Span {
    let root = n == 1;
    let duration = if root && trace.kind == Kind::Slow { 3_000_000_000 } else { 20_000_000 };
    Span {
        trace_id: trace.id.to_vec(),
        span_id: vec![n; 8],
        parent_span_id: if root { Vec::new() } else { vec![1; 8] },
        name: match (root, trace.kind) {
            (true, Kind::Checkout) => "checkout".into(),
            (true, _) => "GET /items".into(),
            _ => format!("step {n}"),
        },
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        status: (n == 3 && trace.kind == Kind::Error)
            .then(|| Status { code: StatusCode::Error as i32, ..Status::default() }),
        ..Span::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(Value::StringValue("shop".into())) }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

/// Posts over OTLP/HTTP, waiting out "retry later" answers as an SDK would.
async fn send(server: &TestServer, request: &ExportTraceServiceRequest) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let response = client
            .post(format!("http://{}/v1/traces", server.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => return,
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("export answered {other}: {}", response.text().await.unwrap()),
        }
    }
    panic!("the server kept refusing");
}

/// Sends each trace's root in one request and its two children in a later one, `batch`
/// traces per request, so the sampler must gather traces across requests.
async fn send_traces(server: &TestServer, traces: &[Trace], batch: usize) {
    let start = now_nanos() - 10_000_000_000;
    for chunk in traces.chunks(batch) {
        send(server, &request(chunk.iter().map(|t| span(t, 1, start)).collect())).await;
        send(server, &request(chunk.iter().flat_map(|t| [span(t, 2, start), span(t, 3, start)]).collect())).await;
    }
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.http_url())).await.unwrap().text().await.unwrap()
}

/// The value of one sample in Prometheus text, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Polls `check` until it yields a value; fails with `what` and the last state after `within`.
async fn eventually<T, F: std::future::Future<Output = Result<T, String>>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) => assert!(Instant::now() < deadline, "not in time: {state}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `decided` traces are decided and nothing is held back; the metrics then.
async fn wait_decided(server: &TestServer, decided: f64, within: Duration) -> String {
    eventually(within, || async {
        let m = metrics(server).await;
        let total: f64 = m
            .lines()
            .filter(|l| l.starts_with("clew_sampler_traces_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        if total >= decided && sample(&m, "clew_sampler_buffered_traces") == 0.0 {
            Ok(m)
        } else {
            Err(format!("{total} of {decided} traces decided:\n{m}"))
        }
    })
    .await
}

/// A stored trace's spans as OTLP/JSON, empty when it is not stored.
async fn stored(server: &TestServer, id: &[u8]) -> Vec<serde_json::Value> {
    let response = reqwest::get(format!("{}/api/v1/traces/{}", server.http_url(), hex(id))).await.unwrap();
    if response.status() == 404 {
        return Vec::new();
    }
    assert_eq!(response.status(), 200);
    let trace: serde_json::Value = response.json().await.unwrap();
    trace["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap().clone())
        .collect()
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["attributes"].as_array()?.iter().find(|kv| kv["key"] == key).map(|kv| &kv["value"])
}

fn start(dir: &Path, config: &str) -> TestServer {
    let path = dir.join("clew.toml");
    std::fs::write(&path, config).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    TestServer::start_in(BIN, &data, &["--config", path.to_str().unwrap()]).unwrap()
}

#[tokio::test]
async fn errors_slow_traces_and_rule_matches_are_all_kept_and_a_weighted_share_of_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        r#"
[pipeline.sampling]
enabled = true
decision_wait = "1s"
max_wait = "20s"
keep_slower_than = "1s"
probability = 0.25
max_traces_per_second = 0
keep = [{ name = "checkout", span_names = ["checkout*"] }]
"#,
    );
    let mut seeded = Seeded(42);
    let kinds = [Kind::Error, Kind::Slow, Kind::Checkout, Kind::Plain, Kind::Plain, Kind::Plain, Kind::Plain];
    let traces: Vec<Trace> = (0..1400).map(|i| Trace { id: seeded.trace_id(), kind: kinds[i % kinds.len()] }).collect();
    send_traces(&server, &traces, 100).await;
    // Nothing is stored before its trace is decided.
    assert!(stored(&server, &traces[0].id).await.is_empty(), "held back until the trace is complete");
    let m = wait_decided(&server, 1400.0, Duration::from_secs(60)).await;

    let mut plain_kept = Vec::new();
    let mut plain_dropped = Vec::new();
    for trace in &traces {
        let spans = stored(&server, &trace.id).await;
        let (reason, weight) = match trace.kind {
            Kind::Error => ("error", 1.0),
            Kind::Slow => ("slow", 1.0),
            Kind::Checkout => ("rule:checkout", 1.0),
            Kind::Plain if spans.is_empty() => {
                plain_dropped.push(trace);
                continue;
            }
            Kind::Plain => {
                plain_kept.push(trace);
                ("probabilistic", 4.0)
            }
        };
        assert_eq!(spans.len(), 3, "{:?} trace {} is kept whole", trace.kind, hex(&trace.id));
        for span in &spans {
            assert_eq!(attribute(span, "clew.sampling.reason").unwrap()["stringValue"], reason);
            assert_eq!(attribute(span, "clew.sampling.weight").unwrap()["doubleValue"], weight);
        }
    }
    // 800 plain traces at 0.25: 200 expected, standard deviation 12.2; four of them either way.
    let share = plain_kept.len();
    assert!((151..=249).contains(&share), "kept {share} of 800 plain traces");
    assert_eq!(sample(&m, "clew_sampler_traces_total{decision=\"kept\",reason=\"error\"}"), 200.0);
    assert_eq!(sample(&m, "clew_sampler_traces_total{decision=\"kept\",reason=\"slow\"}"), 200.0);
    assert_eq!(sample(&m, "clew_sampler_traces_total{decision=\"kept\",reason=\"rule\"}"), 200.0);
    assert_eq!(sample(&m, "clew_sampler_traces_total{decision=\"kept\",reason=\"probabilistic\"}"), share as f64);
    assert_eq!(
        sample(&m, "clew_sampler_traces_total{decision=\"dropped\",reason=\"unsampled\"}"),
        (800 - share) as f64
    );
    assert_eq!(sample(&m, "clew_sampler_spans_total{decision=\"kept\"}"), ((600 + share) * 3) as f64);

    // Late spans follow the decision: a kept trace grows, a dropped one stays dropped.
    let start = now_nanos() - 5_000_000_000;
    let (kept, dropped) = (plain_kept[0], plain_dropped[0]);
    send(&server, &request(vec![span(kept, 4, start), span(dropped, 4, start)])).await;
    let spans = stored(&server, &kept.id).await;
    assert_eq!(spans.len(), 4);
    let late = spans.iter().find(|s| s["spanId"] == "0404040404040404").unwrap();
    assert_eq!(attribute(late, "clew.sampling.weight").unwrap()["doubleValue"], 4.0);
    assert!(stored(&server, &dropped.id).await.is_empty());
    let m = metrics(&server).await;
    assert_eq!(sample(&m, "clew_sampler_late_spans_total{decision=\"kept\"}"), 1.0);
    assert_eq!(sample(&m, "clew_sampler_late_spans_total{decision=\"dropped\"}"), 1.0);

    // Rates computed later count each kept span by its weight: the probabilistic share stands
    // for the plain traces that were dropped.
    let url = format!("{}/api/v1/metrics/red?since=1h", server.http_url());
    let red: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let requests: f64 =
        red["series"].as_array().unwrap().iter().map(|s| s["total"]["requests"].as_f64().unwrap()).sum();
    assert_eq!(requests, (600 * 3 + share * 3 * 4 + 4) as f64, "{red}");
}

#[tokio::test]
async fn held_back_spans_survive_kill_9_and_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = |wait: &str| {
        format!("[pipeline.sampling]\nenabled = true\ndecision_wait = \"{wait}\"\nmax_wait = \"10m\"\nprobability = 1.0\nmax_traces_per_second = 0\n")
    };
    let mut server = start(dir.path(), &config("10m"));
    let mut seeded = Seeded(7);
    let traces: Vec<Trace> = (0..60).map(|_| Trace { id: seeded.trace_id(), kind: Kind::Plain }).collect();
    send_traces(&server, &traces, 20).await;
    assert!(stored(&server, &traces[59].id).await.is_empty(), "still held back");
    server.kill9();

    std::fs::write(dir.path().join("clew.toml"), config("1s")).unwrap();
    server.restart().unwrap();
    let log = server.log();
    assert!(log.contains("sampler wal replayed") && log.contains("traces=60 spans=180"), "{log}");
    wait_decided(&server, 60.0, Duration::from_secs(30)).await;
    for trace in &traces {
        let spans = stored(&server, &trace.id).await;
        assert_eq!(spans.len(), 3, "trace {}: every acknowledged span, once", hex(&trace.id));
    }
    // Decided and stored: a second restart brings nothing back (the gauges show what replay
    // brought back as soon as the server answers).
    server.restart().unwrap();
    let m = metrics(&server).await;
    assert_eq!(sample(&m, "clew_sampler_buffered_traces"), 0.0, "{m}");
    assert_eq!(stored(&server, &traces[0].id).await.len(), 3);
}

#[tokio::test]
async fn short_of_memory_the_sampler_decides_early_and_pushes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(
        dir.path(),
        r#"
[ingest]
sampler_buffer = "32KiB"

[pipeline.sampling]
enabled = true
decision_wait = "10m"
max_wait = "10m"
probability = 1.0
max_traces_per_second = 0
"#,
    );
    let mut seeded = Seeded(9);
    let traces: Vec<Trace> = (0..600).map(|_| Trace { id: seeded.trace_id(), kind: Kind::Plain }).collect();
    let started = Instant::now();
    send_traces(&server, &traces, 50).await;
    // Ten minutes of decision wait, yet traces are stored now: decided early, kept whole by
    // the policy (probability 1), not dropped.
    eventually(Duration::from_secs(30), || async {
        let spans = stored(&server, &traces[0].id).await.len();
        if spans == 3 {
            Ok(())
        } else {
            Err(format!("the oldest trace has {spans} of 3 spans stored"))
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(120));
    let m = metrics(&server).await;
    assert!(sample(&m, "clew_sampler_early_decisions_total") > 0.0, "{m}");
    assert!(sample(&m, "clew_sampler_buffered_bytes") <= 2.0 * 32.0 * 1024.0 + 16_384.0, "{m}");
    // A clean stop decides the rest; nothing acknowledged is missing.
    assert!(server.terminate().unwrap().success());
    server.restart().unwrap();
    for trace in &traces {
        assert_eq!(stored(&server, &trace.id).await.len(), 3, "trace {}: {}", hex(&trace.id), server.log());
    }
}
