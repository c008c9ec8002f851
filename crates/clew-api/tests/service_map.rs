//! The service map, RED metrics, exemplars and the Jaeger and Zipkin dependency APIs, driven
//! with `oneshot` over the real embedded engine, on hand-built traces whose figures are known
//! exactly (percentiles within the latency sketch's 1%).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value, KeyValue};
use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::otlp::trace::v1::status::StatusCode as OtlpStatus;
use clew_model::otlp::trace::v1::Status;
use clew_storage::Storage;
use clew_store_local::{BuilderOptions, EngineOptions, LocalEngine};
use common::{hex, json, kv, resource_spans, span, text, timed as at, write, App, SpanSpec, MILLI};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

const SECOND: u64 = 1_000 * MILLI;
const MINUTE: u64 = 60 * SECOND;
/// The sketch's relative accuracy.
const ACCURACY: f64 = 0.01;

/// The start of a whole minute ten minutes ago, Unix nanoseconds: every test trace starts in it.
fn recent_minute() -> u64 {
    (clew_query::now_nanos() / MINUTE - 10) * MINUTE
}

/// The router over an engine in `dir` whose rollups wait `window` for the other side of a call.
async fn open(dir: tempfile::TempDir, window: Duration) -> App {
    let mut registry = Registry::default();
    let options = EngineOptions {
        rollups: BuilderOptions { window, ..BuilderOptions::default() },
        ..EngineOptions::new(dir.path())
    };
    let engine = Arc::new(LocalEngine::open(options, &mut registry).await.unwrap());
    common::router_over(dir, engine, registry).await
}

/// Closes the engine (which ends every wait for the other side of a call) and opens the same
/// directory again, with the default window: everything is then read from segments.
async fn reopen(app: App) -> App {
    let App { router, engine, draining, _dir } = app;
    engine.close().await.unwrap();
    drop((router, engine, draining));
    open(_dir, BuilderOptions::default().window).await
}

fn failed() -> Option<Status> {
    Some(Status { code: OtlpStatus::Error as i32, message: "boom".into() })
}

fn environment(name: &str) -> Vec<KeyValue> {
    vec![kv("deployment.environment", text(name))]
}

/// The trace IDs of the topology, one per request.
fn trace_id(t: usize) -> [u8; 16] {
    [0x10 + t as u8; 16]
}

/// How long frontend's call to cart takes in trace `t`, milliseconds.
fn call_millis(t: usize) -> u64 {
    10 * (t as u64 + 1)
}

/// Four traces (`t` = 0..3) starting `5 + t` seconds into `minute`, all in one request;
/// frontend and cart run in `deployment.environment=prod`, mailer in `staging`:
/// - frontend `GET /checkout` (server root, 100 + 10·t ms, `http.route` /checkout for t < 2,
///   else /cart) → frontend `call cart` (client, 10·(t+1) ms) → cart `PlaceOrder` (server,
///   2 ms shorter than the client, failed in trace 1);
/// - under `PlaceOrder`: cart `redis GET` (client, `db.system`=redis, `server.address`=cache-1,
///   2·(t+1) ms, traces 0 and 1 only), cart `publish order` (producer, 1 ms,
///   `messaging.system`=kafka) → mailer `send mail` (consumer, 5·(t+1) ms), and in trace 3 only
///   cart `POST /charge` (client, `server.address`=payments.example.com, 12 ms).
fn topology(minute: u64) -> ExportTraceServiceRequest {
    let (mut frontend, mut cart, mut mailer) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..4 {
        let trace = trace_id(t);
        let base = minute + (5 + t as u64) * SECOND;
        let call = call_millis(t);
        let route = if t < 2 { "/checkout" } else { "/cart" };
        frontend.push(span(SpanSpec {
            attributes: vec![kv("http.route", text(route))],
            ..at(trace, 1, None, "GET /checkout", SpanKind::Server, base, 100 + 10 * t as u64)
        }));
        frontend.push(span(at(trace, 2, Some(1), "call cart", SpanKind::Client, base + MILLI, call)));
        cart.push(span(SpanSpec {
            status: if t == 1 { failed() } else { None },
            ..at(trace, 3, Some(2), "PlaceOrder", SpanKind::Server, base + 2 * MILLI, call - 2)
        }));
        if t < 2 {
            cart.push(span(SpanSpec {
                attributes: vec![kv("db.system", text("redis")), kv("server.address", text("cache-1"))],
                ..at(trace, 4, Some(3), "redis GET", SpanKind::Client, base + 3 * MILLI, 2 * (t as u64 + 1))
            }));
        }
        cart.push(span(SpanSpec {
            attributes: vec![kv("messaging.system", text("kafka"))],
            ..at(trace, 5, Some(3), "publish order", SpanKind::Producer, base + 5 * MILLI, 1)
        }));
        if t == 3 {
            cart.push(span(SpanSpec {
                attributes: vec![kv("server.address", text("payments.example.com"))],
                ..at(trace, 7, Some(3), "POST /charge", SpanKind::Client, base + 6 * MILLI, 12)
            }));
        }
        mailer.push(span(at(
            trace,
            6,
            Some(5),
            "send mail",
            SpanKind::Consumer,
            base + 50 * MILLI,
            5 * (t as u64 + 1),
        )));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", environment("prod"), frontend),
            resource_spans("cart", environment("prod"), cart),
            resource_spans("mailer", environment("staging"), mailer),
        ],
    }
}

/// A root span of a service nobody calls, half an hour before `minute`: writing it after a
/// batch ends that batch's wait for answers (with a zero window) without touching the minute.
fn unrelated(minute: u64) -> ExportTraceServiceRequest {
    let span = span(at([0x77; 16], 1, None, "tick", SpanKind::Server, minute - 30 * MINUTE, 1));
    ExportTraceServiceRequest { resource_spans: vec![resource_spans("ticker", Vec::new(), vec![span])] }
}

/// The topology over an engine that pairs only within a request, with the topology's waits
/// ended, so its calls to redis and payments are counted.
async fn topology_app(minute: u64) -> App {
    let app = open(tempfile::tempdir().unwrap(), Duration::ZERO).await;
    write(&app.engine, topology(minute)).await;
    write(&app.engine, unrelated(minute)).await;
    app
}

/// `start` and `end` (Unix seconds) covering the one minute that starts at `minute`.
fn one_minute(minute: u64) -> String {
    format!("start={}&end={}", minute / SECOND, (minute + MINUTE) / SECOND - 1)
}

/// `GET uri` answered 200, as JSON.
async fn ok(router: &axum::Router, uri: &str) -> Value {
    let (status, body) = common::get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    json(&body)
}

/// `GET uri` answered 400 in the native format; its message.
async fn bad_request(router: &axum::Router, uri: &str) -> String {
    let (status, body) = common::get(router, uri).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    let body = json(&body);
    assert_eq!(body["error"]["code"], "bad_request", "{uri}: {body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

fn encoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The duration quantile a DDSketch answers, exactly: the value of rank ⌊q·(n−1)⌋.
fn lower_quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[(q * (sorted.len() as f64 - 1.0)) as u64 as usize]
}

/// Checks the counts of a node, edge, point or total built from spans or calls lasting
/// `millis` (one entry per weighted request) over `seconds`, `errors` of them failed: counts
/// and rates exactly, the mean to the nanosecond.
fn assert_counts(what: &str, got: &Value, seconds: f64, errors: f64, millis: &[u64]) {
    let requests = millis.len() as f64;
    let number = |key: &str| got[key].as_f64().unwrap_or_else(|| panic!("{what}: no {key} in {got}"));
    assert_eq!(number("requests"), requests, "{what}: requests in {got}");
    assert_eq!(number("rate"), if requests > 0.0 { requests / seconds } else { 0.0 }, "{what}: rate in {got}");
    assert_eq!(number("errors"), errors, "{what}: errors in {got}");
    assert_eq!(number("errorRate"), if requests > 0.0 { errors / requests } else { 0.0 }, "{what}: errorRate");
    let mean = (!millis.is_empty()).then(|| (millis.iter().sum::<u64>() * MILLI) as f64 / requests);
    assert_eq!(nanos(got, "avgNanos"), mean.map(|m| m.round() as u64), "{what}: avgNanos in {got}");
}

/// Checks the duration percentiles of what [`assert_counts`] checks: within 1%, and none
/// without requests.
fn assert_latency(what: &str, got: &Value, millis: &[u64]) {
    let mut sorted: Vec<u64> = millis.iter().map(|ms| ms * MILLI).collect();
    sorted.sort_unstable();
    for (key, q) in [("p50Nanos", 0.5), ("p95Nanos", 0.95), ("p99Nanos", 0.99)] {
        let actual = nanos(got, key);
        if sorted.is_empty() {
            assert_eq!(actual, None, "{what}: {key} without requests in {got}");
            continue;
        }
        let exact = lower_quantile(&sorted, q) as f64;
        let actual = actual.unwrap_or_else(|| panic!("{what}: no {key} in {got}")) as f64;
        assert!((actual - exact).abs() <= exact * ACCURACY, "{what}: {key} {actual} is not within 1% of {exact}");
    }
}

fn assert_red(what: &str, got: &Value, seconds: f64, errors: f64, millis: &[u64]) {
    assert_counts(what, got, seconds, errors, millis);
    assert_latency(what, got, millis);
}

/// A duration in nanoseconds, written as a decimal string.
fn nanos(got: &Value, key: &str) -> Option<u64> {
    got.get(key).map(|v| v.as_str().unwrap_or_else(|| panic!("{key} is not a string in {got}")).parse().unwrap())
}

/// A node or edge of the service map, or a RED series, expected: its identity (or labels),
/// errors, and durations in milliseconds (one per weighted request).
type Expected<'a> = (Value, f64, &'a [u64]);

/// Checks a service map's nodes and edges over one minute: which, in order, then every count,
/// then every percentile and the fields each has.
fn assert_map(map: &Value, nodes: &[Expected<'_>], edges: &[Expected<'_>]) {
    let lists = [("nodes", ["id", "kind"].as_slice(), nodes), ("edges", &["source", "target", "kind"], edges)];
    let items = |list: &str| map[list].as_array().unwrap_or_else(|| panic!("no {list} in {map}")).clone();
    for (list, identity, expected) in lists {
        let outline: Vec<Value> = items(list)
            .iter()
            .map(|item| Value::Array(identity.iter().map(|key| item[*key].clone()).collect()))
            .collect();
        let wanted: Vec<Value> = expected.iter().map(|(id, _, _)| id.clone()).collect();
        assert_eq!(outline, wanted, "{list} of {map}");
    }
    for (list, _, expected) in lists {
        for (item, (id, errors, millis)) in items(list).iter().zip(expected) {
            assert_counts(&format!("{list} {id}"), item, 60.0, *errors, millis);
        }
    }
    for (list, identity, expected) in lists {
        for (item, (id, _, millis)) in items(list).iter().zip(expected) {
            assert_latency(&format!("{list} {id}"), item, millis);
            let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut wanted: Vec<&str> =
                identity.iter().copied().chain(["requests", "rate", "errors", "errorRate"]).collect();
            if !millis.is_empty() {
                wanted.extend(["p50Nanos", "p95Nanos", "p99Nanos", "avgNanos"]);
            }
            wanted.sort_unstable();
            assert_eq!(keys, wanted, "fields of {list} {id}");
        }
    }
}

#[tokio::test]
async fn service_map_counts_every_node_and_edge() {
    let minute = recent_minute();
    let app = topology_app(minute).await;
    let window = one_minute(minute);
    let map = ok(&app.router, &format!("/api/v1/service-map?{window}")).await;
    assert_eq!(map["startUnixNano"], minute.to_string());
    assert_eq!(map["endUnixNano"], (minute + MINUTE - SECOND).to_string());
    let nodes: [Expected<'_>; 5] = [
        // Cart's server spans, each 2 ms shorter than the client span that called it.
        (json!(["cart", "service"]), 1.0, &[8, 18, 28, 38]),
        (json!(["frontend", "service"]), 0.0, &[100, 110, 120, 130]),
        (json!(["mailer", "service"]), 0.0, &[5, 10, 15, 20]),
        (json!(["payments.example.com", "external"]), 0.0, &[12]),
        // `db.system` names the peer before `server.address`.
        (json!(["redis", "database"]), 0.0, &[2, 4]),
    ];
    let edges: [Expected<'_>; 4] = [
        // A producer's call lasts as long as its consumer.
        (json!(["cart", "mailer", "messaging"]), 0.0, &[5, 10, 15, 20]),
        (json!(["cart", "payments.example.com", "external"]), 0.0, &[12]),
        (json!(["cart", "redis", "database"]), 0.0, &[2, 4]),
        // A client's call lasts as long as the client span; the server's failure fails it.
        (json!(["frontend", "cart", "call"]), 1.0, &[10, 20, 30, 40]),
    ];
    assert_map(&map, &nodes, &edges);

    // A window of three minutes around it: the same counts, a third of the rate.
    let wide = format!("start={}&end={}", (minute - MINUTE) / SECOND, (minute + 2 * MINUTE) / SECOND - 1);
    let map3 = ok(&app.router, &format!("/api/v1/service-map?{wide}")).await;
    assert_eq!(map3["nodes"][1]["requests"].as_f64(), Some(4.0));
    assert_eq!(map3["nodes"][1]["rate"].as_f64(), Some(4.0 / 180.0));
    assert_eq!(map3["edges"][3]["rate"].as_f64(), Some(4.0 / 180.0));
    // A window of the minute before holds nothing.
    let before = one_minute(minute - MINUTE);
    assert_eq!(ok(&app.router, &format!("/api/v1/service-map?{before}")).await["nodes"], json!([]));

    // Once closed and opened again, the same map is read from the segments' rollups.
    let app = reopen(app).await;
    assert_map(&ok(&app.router, &format!("/api/v1/service-map?{window}")).await, &nodes, &edges);
    app.engine.close().await.unwrap();
}

#[tokio::test]
async fn service_map_filters_by_dimension() {
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = topology_app(minute).await;
    let window = one_minute(minute);
    let filtered = |attr: &str| format!("/api/v1/service-map?{window}&attr={}", encoded(attr));

    // Mailer runs in staging: its spans and the messages it consumed (whose dimensions are the
    // consumer's) are left out; calls to peers have the calling span's dimensions.
    let prod = ok(&router, &filtered("deployment.environment=prod")).await;
    assert_map(
        &prod,
        &[
            (json!(["cart", "service"]), 1.0, &[8, 18, 28, 38]),
            (json!(["frontend", "service"]), 0.0, &[100, 110, 120, 130]),
            (json!(["payments.example.com", "external"]), 0.0, &[12]),
            (json!(["redis", "database"]), 0.0, &[2, 4]),
        ],
        &[
            (json!(["cart", "payments.example.com", "external"]), 0.0, &[12]),
            (json!(["cart", "redis", "database"]), 0.0, &[2, 4]),
            (json!(["frontend", "cart", "call"]), 1.0, &[10, 20, 30, 40]),
        ],
    );
    // Only the messages: cart is there as their source, with none of its own spans.
    let staging = ok(&router, &filtered("deployment.environment=staging")).await;
    assert_map(
        &staging,
        &[(json!(["cart", "service"]), 0.0, &[]), (json!(["mailer", "service"]), 0.0, &[5, 10, 15, 20])],
        &[(json!(["cart", "mailer", "messaging"]), 0.0, &[5, 10, 15, 20])],
    );
    // Calls keep only the call dimensions: the map cannot be filtered by a route.
    let message = bad_request(&router, &filtered("http.route=/cart")).await;
    assert_eq!(
        message,
        "`http.route` is not a rollup dimension; the service map can filter by deployment.environment.name, \
         deployment.environment (set rollups.call_dimensions to change)"
    );
    let none = ok(&router, &filtered("deployment.environment=dev")).await;
    assert_eq!((&none["nodes"], &none["edges"]), (&json!([]), &json!([])));
    engine.close().await.unwrap();
}

/// Trace A: cart's server span (15 ms) is written before frontend's root and client span
/// (`server.address`=cart, 20 ms). Trace B: frontend's root and failed client span (25 ms,
/// `server.address`=cart) first, cart's server span (10 ms) after. Trace C: frontend's client
/// span to an uninstrumented `inventory` (`peer.service`, before `server.address`), 7 ms.
fn split_requests(minute: u64) -> Vec<ExportTraceServiceRequest> {
    let (a, b, c) = ([0xa1; 16], [0xb2; 16], [0xc3; 16]);
    let request = |service: &str, spans| ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(service, Vec::new(), spans)],
    };
    let base = minute + 5 * SECOND;
    let to_cart = || vec![kv("server.address", text("cart"))];
    vec![
        request("cart", vec![span(at(a, 3, Some(2), "GetCart", SpanKind::Server, base + 2 * MILLI, 15))]),
        request(
            "frontend",
            vec![
                span(at(a, 1, None, "GET /cart", SpanKind::Server, base, 50)),
                span(SpanSpec {
                    attributes: to_cart(),
                    ..at(a, 2, Some(1), "call cart", SpanKind::Client, base + MILLI, 20)
                }),
            ],
        ),
        request(
            "frontend",
            vec![
                span(at(b, 1, None, "GET /cart", SpanKind::Server, base + SECOND, 50)),
                span(SpanSpec {
                    attributes: to_cart(),
                    status: failed(),
                    ..at(b, 2, Some(1), "call cart", SpanKind::Client, base + SECOND + MILLI, 25)
                }),
            ],
        ),
        request("cart", vec![span(at(b, 3, Some(2), "GetCart", SpanKind::Server, base + SECOND + 2 * MILLI, 10))]),
        request(
            "frontend",
            vec![
                span(at(c, 1, None, "GET /stock", SpanKind::Server, base + 2 * SECOND, 30)),
                span(SpanSpec {
                    attributes: vec![kv("peer.service", text("inventory")), kv("server.address", text("inv.internal"))],
                    ..at(c, 2, Some(1), "check stock", SpanKind::Client, base + 2 * SECOND + MILLI, 7)
                }),
            ],
        ),
    ]
}

#[tokio::test]
async fn calls_pair_across_requests_and_peers_wait_for_an_answer() {
    let minute = recent_minute();
    let app = open(tempfile::tempdir().unwrap(), BuilderOptions::default().window).await;
    for request in split_requests(minute) {
        write(&app.engine, request).await;
    }
    let uri = format!("/api/v1/service-map?{}", one_minute(minute));
    let nodes: [Expected<'_>; 2] =
        [(json!(["cart", "service"]), 0.0, &[15, 10]), (json!(["frontend", "service"]), 0.0, &[50, 50, 30])];
    // The client's failure fails the call; its latency is the client's.
    let call: Expected<'_> = (json!(["frontend", "cart", "call"]), 1.0, &[20, 25]);
    // Inventory's client span is still waiting for an answer.
    assert_map(&ok(&app.router, &uri).await, &nodes, std::slice::from_ref(&call));

    // Closing ends every wait: the unanswered client becomes a call to its peer, the answered
    // ones do not.
    let app = reopen(app).await;
    let inventory: &[u64] = &[7];
    assert_map(
        &ok(&app.router, &uri).await,
        &[nodes[0].clone(), nodes[1].clone(), (json!(["inventory", "external"]), 0.0, inventory)],
        &[call, (json!(["frontend", "inventory", "external"]), 0.0, inventory)],
    );
    app.engine.close().await.unwrap();
}

/// A frontend health check sampled at one in four (`clew.sampling.weight`=4), 3 ms, 20 s into
/// `minute`, whose span attribute `deployment.environment`=canary overrides the resource's prod.
fn weighted(minute: u64) -> ExportTraceServiceRequest {
    let health = span(SpanSpec {
        attributes: vec![
            kv("clew.sampling.weight", any_value::Value::DoubleValue(4.0)),
            kv("deployment.environment", text("canary")),
            kv("http.route", text("/health")),
        ],
        ..at([0x20; 16], 1, None, "GET /health", SpanKind::Server, minute + 20 * SECOND, 3)
    });
    ExportTraceServiceRequest { resource_spans: vec![resource_spans("frontend", environment("prod"), vec![health])] }
}

/// [`assert_counts`], or [`assert_latency`] with the same arguments.
type Check = fn(&str, &Value, f64, f64, &[u64]);

/// Checks RED series over the three minutes from `minute - 1 min`, one step each: their labels
/// in order, and per series its errors and durations, all in the middle minute; every count
/// before any percentile.
fn assert_series(result: &Value, expected: &[Expected<'_>]) {
    let series = result["series"].as_array().unwrap_or_else(|| panic!("no series in {result}"));
    let labels: Vec<&Value> = series.iter().map(|s| &s["labels"]).collect();
    let wanted: Vec<&Value> = expected.iter().map(|(labels, _, _)| labels).collect();
    assert_eq!(labels, wanted, "{result}");
    let start: u64 = result["startUnixNano"].as_str().unwrap().parse().unwrap();
    let checks: [Check; 2] = [assert_counts, |what, got, _, _, millis| assert_latency(what, got, millis)];
    for check in checks {
        for (series, (labels, errors, millis)) in series.iter().zip(expected) {
            check(&format!("total of {labels}"), &series["total"], 180.0, *errors, millis);
            let points = series["points"].as_array().unwrap();
            let starts: Vec<Value> = points.iter().map(|p| p["startUnixNano"].clone()).collect();
            let wanted: Vec<Value> = (0..3).map(|i| json!((start + i * MINUTE).to_string())).collect();
            assert_eq!(starts, wanted, "points of {labels}");
            check(&format!("first point of {labels}"), &points[0], 60.0, 0.0, &[]);
            check(&format!("second point of {labels}"), &points[1], 60.0, *errors, millis);
            check(&format!("third point of {labels}"), &points[2], 60.0, 0.0, &[]);
        }
    }
}

#[tokio::test]
async fn red_metrics_per_operation_route_kind_and_environment() {
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = common::app_with([topology(minute), weighted(minute)]).await;
    let range = format!("start={}&end={}&step=1m", (minute - MINUTE) / SECOND, (minute + 2 * MINUTE) / SECOND - 1);
    let red = |query: &str| format!("/api/v1/metrics/red?{range}&{query}");

    // One service: by operation.
    let cart = ok(&router, &red("service=cart")).await;
    assert_eq!(cart["startUnixNano"], (minute - MINUTE).to_string());
    assert_eq!(cart["endUnixNano"], (minute + 2 * MINUTE).to_string());
    assert_eq!(cart["stepNanos"], MINUTE.to_string());
    assert_eq!(cart["groupBy"], json!(["operation"]));
    assert_series(
        &cart,
        &[
            (json!({"operation": "POST /charge"}), 0.0, &[12]),
            (json!({"operation": "PlaceOrder"}), 1.0, &[8, 18, 28, 38]),
            (json!({"operation": "publish order"}), 0.0, &[1, 1, 1, 1]),
            (json!({"operation": "redis GET"}), 0.0, &[2, 4]),
        ],
    );
    // Kinds, comma-separated or repeated.
    for kinds in ["kind=server,client", "kind=server&kind=client"] {
        let result = ok(&router, &red(&format!("service=cart&{kinds}"))).await;
        assert_series(
            &result,
            &[
                (json!({"operation": "POST /charge"}), 0.0, &[12]),
                (json!({"operation": "PlaceOrder"}), 1.0, &[8, 18, 28, 38]),
                (json!({"operation": "redis GET"}), 0.0, &[2, 4]),
            ],
        );
    }
    // Two-minute steps start at even minutes: the range (the minute before the traces' to the
    // minute after) takes two of them, one holding the traces.
    let two = ok(&router, &red("service=cart&operation=PlaceOrder&step=2m")).await;
    assert_eq!(two["stepNanos"], (2 * MINUTE).to_string());
    let points = two["series"][0]["points"].as_array().unwrap();
    let first = minute / MINUTE - 1;
    let aligned = first - first % 2;
    assert_eq!(points.len(), 2, "{two}");
    assert_eq!(points[0]["startUnixNano"], json!((aligned * MINUTE).to_string()));
    let holding = ((minute / MINUTE - aligned) / 2) as usize;
    assert_red("the step of the traces", &points[holding], 120.0, 1.0, &[8, 18, 28, 38]);
    assert_eq!(points[1 - holding]["requests"], json!(0.0), "{two}");
    // The total's rate is over the minutes the steps cover.
    let covered = ((minute / MINUTE + 2 - aligned) * 60) as f64;
    assert_red("total of two steps", &two["series"][0]["total"], covered, 1.0, &[8, 18, 28, 38]);

    let one = ok(&router, &red("service=cart&operation=PlaceOrder&groupBy=operation,http.route")).await;
    assert_eq!(one["groupBy"], json!(["operation", "http.route"]));
    assert_series(&one, &[(json!({"operation": "PlaceOrder", "http.route": null}), 1.0, &[8, 18, 28, 38])]);

    // By route: the weighted health check counts four times, the client spans have no route.
    let weighted_health: &[u64] = &[3, 3, 3, 3];
    let routes: [Expected<'_>; 3] = [
        (json!({"http.route": "/cart"}), 0.0, &[120, 130]),
        (json!({"http.route": "/checkout"}), 0.0, &[100, 110]),
        (json!({"http.route": "/health"}), 0.0, weighted_health),
    ];
    let servers = ok(&router, &red("service=frontend&groupBy=http.route&kind=server")).await;
    assert_series(&servers, &routes);
    let all = ok(&router, &red("service=frontend&groupBy=http.route")).await;
    let mut with_clients: Vec<Expected<'_>> = vec![(json!({"http.route": null}), 0.0, &[10, 20, 30, 40])];
    with_clients.extend(routes.iter().cloned());
    assert_series(&all, &with_clients);
    let kinds = ok(&router, &red("service=frontend&groupBy=kind")).await;
    assert_series(
        &kinds,
        &[
            (json!({"kind": "client"}), 0.0, &[10, 20, 30, 40]),
            (json!({"kind": "server"}), 0.0, &[100, 110, 120, 130, 3, 3, 3, 3]),
        ],
    );

    // Every service, by service.
    let services = ok(&router, &red("")).await;
    assert_eq!(services["groupBy"], json!(["service"]));
    let totals: Vec<(Value, Option<f64>, Option<f64>)> = services["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["labels"].clone(), s["total"]["requests"].as_f64(), s["total"]["errors"].as_f64()))
        .collect();
    assert_eq!(
        totals,
        [
            (json!({"service": "cart"}), Some(11.0), Some(1.0)),
            (json!({"service": "frontend"}), Some(12.0), Some(0.0)),
            (json!({"service": "mailer"}), Some(4.0), Some(0.0)),
        ]
    );

    // A resource attribute, and a span attribute that overrides it.
    let prod = ok(&router, &red("service=frontend&attr=deployment.environment=prod")).await;
    assert_series(
        &prod,
        &[
            (json!({"operation": "GET /checkout"}), 0.0, &[100, 110, 120, 130]),
            (json!({"operation": "call cart"}), 0.0, &[10, 20, 30, 40]),
        ],
    );
    let canary = ok(&router, &red("service=frontend&attr=deployment.environment=canary")).await;
    assert_series(&canary, &[(json!({"operation": "GET /health"}), 0.0, weighted_health)]);
    let staging = ok(&router, &red("attr=deployment.environment=staging")).await;
    assert_series(&staging, &[(json!({"service": "mailer"}), 0.0, &[5, 10, 15, 20])]);
    for nothing in
        ["attr=deployment.environment=dev", "service=mailer&attr=deployment.environment=prod", "service=nobody"]
    {
        assert_eq!(ok(&router, &red(nothing)).await["series"], json!([]), "{nothing}");
    }
    engine.close().await.unwrap();
}

/// The trace IDs an exemplar search returns, in order, after checking it names its query.
async fn exemplars(router: &axum::Router, minute: u64, query: &str) -> Vec<String> {
    let result = ok(router, &format!("/api/v1/exemplars?{}&{query}", one_minute(minute))).await;
    assert!(result["query"].as_str().is_some_and(|q| !q.is_empty()), "{query}: {result}");
    result["traces"].as_array().unwrap().iter().map(|t| t["traceId"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn exemplars_find_the_traces_behind_a_point() {
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = topology_app(minute).await;
    let id = |t: usize| hex(trace_id(t));

    // The failed call: the trace whose cart span failed.
    let failed_call = "family=call&service=frontend&name=cart&error=true";
    assert_eq!(exemplars(&router, minute, failed_call).await, [id(1)]);
    let result = ok(&router, &format!("/api/v1/exemplars?{}&{failed_call}", one_minute(minute))).await;
    assert_eq!(
        result["query"],
        r#"{ resource.service.name = "frontend" } > { resource.service.name = "cart" && span:status = error } || { resource.service.name = "frontend" && span:kind = client && span:status = error } > { resource.service.name = "cart" }"#
    );
    let matched = &result["traces"][0]["matched"];
    assert_eq!((&matched[0]["service"], &matched[0]["name"]), (&json!("cart"), &json!("PlaceOrder")), "{result}");
    assert_eq!(
        exemplars(&router, minute, "family=call&service=frontend&name=cart").await,
        [id(3), id(2), id(1), id(0)]
    );
    assert_eq!(exemplars(&router, minute, "family=call&service=frontend&name=mailer").await, Vec::<String>::new());
    assert_eq!(exemplars(&router, minute, "family=call&service=frontend&name=cart&error=false").await.len(), 4);

    // Spans of a service by duration, longest trace first.
    assert_eq!(exemplars(&router, minute, "family=span&service=cart&minDuration=25ms").await, [id(3), id(2)]);
    assert_eq!(exemplars(&router, minute, "service=cart&name=PlaceOrder&maxDuration=20ms").await, [id(1), id(0)]);
    assert_eq!(exemplars(&router, minute, "service=cart&kind=client&maxDuration=3ms").await, [id(0)]);
    assert_eq!(exemplars(&router, minute, "service=cart&minDuration=25ms&limit=1").await, [id(3)]);

    // Messages, by the consumer's duration.
    assert_eq!(
        exemplars(&router, minute, "family=messaging&service=cart&name=mailer&minDuration=15ms").await,
        [id(3), id(2)]
    );
    // Uninstrumented peers, by any of the attributes that name them.
    assert_eq!(exemplars(&router, minute, "family=database&service=cart&name=redis").await, [id(1), id(0)]);
    assert_eq!(exemplars(&router, minute, "family=external&service=cart&name=payments.example.com").await, [id(3)]);
    assert_eq!(exemplars(&router, minute, "family=database&service=cart&name=postgresql").await, Vec::<String>::new());

    // Dimension filters apply to the spans behind the point.
    let route = encoded("http.route=/cart");
    assert_eq!(exemplars(&router, minute, &format!("service=frontend&attr={route}")).await, [id(3), id(2)]);
    let staging = encoded("deployment.environment=staging");
    let messages = format!("family=messaging&service=cart&name=mailer&attr={staging}");
    assert_eq!(exemplars(&router, minute, &messages).await.len(), 4);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn jaeger_and_zipkin_dependencies_are_the_maps_edges() {
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = topology_app(minute).await;
    let links = [
        ("cart", "mailer", 4, 0),
        ("cart", "payments.example.com", 1, 0),
        ("cart", "redis", 2, 0),
        ("frontend", "cart", 4, 1),
    ];

    let jaeger = |query: &str| format!("/jaeger/api/dependencies?{query}");
    let expected: Vec<Value> = links
        .iter()
        .map(|&(parent, child, calls, _)| json!({"parent": parent, "child": child, "callCount": calls}))
        .collect();
    for query in ["", &format!("endTs={}&lookback=60000", (minute + MINUTE) / MILLI - 1)] {
        let answer = ok(&router, &jaeger(query)).await;
        assert_eq!(answer["data"], json!(expected), "{query}");
        assert_eq!(
            (&answer["total"], &answer["limit"], &answer["offset"], &answer["errors"]),
            (&json!(4), &json!(0), &json!(0), &Value::Null)
        );
    }
    assert_eq!(ok(&router, &jaeger("service=redis")).await["data"], json!([expected[2]]));
    assert_eq!(ok(&router, &jaeger("service=cart")).await["data"], json!(expected));
    let earlier = format!("endTs={}&lookback=60000", minute / MILLI - 1);
    assert_eq!(ok(&router, &jaeger(&earlier)).await["data"], json!([]));

    let zipkin: Vec<Value> = links
        .iter()
        .map(|&(parent, child, calls, errors)| {
            json!({"parent": parent, "child": child, "callCount": calls, "errorCount": errors})
        })
        .collect();
    let now = clew_query::now_nanos() / MILLI;
    assert_eq!(ok(&router, &format!("/zipkin/api/v2/dependencies?endTs={now}")).await, json!(zipkin));
    let last_minute = format!("endTs={}&lookback=60000", (minute + MINUTE) / MILLI - 1);
    assert_eq!(ok(&router, &format!("/zipkin/api/v2/dependencies?{last_minute}")).await, json!(zipkin));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = topology_app(minute).await;
    let dimensions = "deployment.environment.name, deployment.environment, http.route, http.response.status_code";
    let not_a_dimension = |name: &str| {
        format!(
            "`{name}` is not a rollup dimension; RED metrics can filter and group by {dimensions} (set \
             rollups.dimensions to change)"
        )
    };
    let start = minute / SECOND;
    // 1,500 whole minutes is the most a series may have; one more is refused.
    let most = format!("start={start}&end={}", start + 1_500 * 60 - 1);
    let too_many = format!("start={start}&end={}", start + 1_500 * 60);
    assert_eq!(
        ok(&router, &format!("/api/v1/metrics/red?{most}&step=1m")).await["series"][0]["points"]
            .as_array()
            .unwrap()
            .len(),
        1_500
    );
    let cases = [
        ("/api/v1/metrics/red?step=90s".to_owned(), "step must be a whole number of minutes, like 1m or 5m".to_owned()),
        ("/api/v1/metrics/red?step=30s".to_owned(), "step must be a whole number of minutes, like 1m or 5m".to_owned()),
        ("/api/v1/metrics/red?step=0".to_owned(), "step must be a whole number of minutes, like 1m or 5m".to_owned()),
        (
            "/api/v1/metrics/red?step=soon".to_owned(),
            "`step` must be a duration like 250ms, 1.5s or 1m30s, not \"soon\"".to_owned(),
        ),
        (
            format!("/api/v1/metrics/red?{too_many}&step=1m"),
            "1501 points of 1 min exceed the 1500 a series may have; choose a longer step".to_owned(),
        ),
        ("/api/v1/metrics/red?groupBy=operation,host.name".to_owned(), not_a_dimension("host.name")),
        ("/api/v1/metrics/red?attr=host.name=node-1".to_owned(), not_a_dimension("host.name")),
        (
            "/api/v1/metrics/red?kind=sideways".to_owned(),
            "span kind must be one of unspecified, internal, server, client, producer, consumer; not \"sideways\""
                .to_owned(),
        ),
        (
            "/api/v1/service-map?attr=host.name=node-1".to_owned(),
            "`host.name` is not a rollup dimension; the service map can filter by deployment.environment.name, \
             deployment.environment (set rollups.call_dimensions to change)"
                .to_owned(),
        ),
        (
            "/api/v1/service-map?attr=production".to_owned(),
            "filter must be name=value, like deployment.environment=prod; not \"production\"".to_owned(),
        ),
        (
            "/api/v1/exemplars?family=call&name=cart".to_owned(),
            "`service` is required: the service of the spans or the calling service".to_owned(),
        ),
        (
            "/api/v1/exemplars?service=cart&family=calls".to_owned(),
            "family must be one of span, call, messaging, database, external; not \"calls\"".to_owned(),
        ),
        (
            "/api/v1/exemplars?service=cart&error=yes".to_owned(),
            "`error` must be true or false, not \"yes\"".to_owned(),
        ),
    ];
    for (uri, message) in cases {
        assert_eq!(bad_request(&router, &uri).await, message, "{uri}");
    }
    // A longer step makes the same range fit.
    let two = ok(&router, &format!("/api/v1/metrics/red?{too_many}&step=2m")).await;
    assert_eq!(two["series"][0]["points"].as_array().unwrap().len(), 751);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn percentiles_cover_flushed_and_unflushed_spans() {
    // Frontend serves four requests in one minute: 10 and 20 ms, flushed to a segment, then 30
    // and 40 ms, still in memory.
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = common::app().await;
    for (t, millis) in [10, 20, 30, 40].into_iter().enumerate() {
        let root = span(at(
            [0x30 + t as u8; 16],
            1,
            None,
            "GET /",
            SpanKind::Server,
            minute + (5 + t as u64) * SECOND,
            millis,
        ));
        write(
            &engine,
            ExportTraceServiceRequest { resource_spans: vec![resource_spans("frontend", Vec::new(), vec![root])] },
        )
        .await;
        if t == 1 {
            engine.flush().await.unwrap();
            assert_eq!(engine.stats().segment_spans, 2);
        }
    }
    let all = [10, 20, 30, 40].as_slice();
    let map = ok(&router, &format!("/api/v1/service-map?{}", one_minute(minute))).await;
    assert_map(&map, &[(json!(["frontend", "service"]), 0.0, all)], &[]);
    let range = format!("start={}&end={}&step=1m", (minute - MINUTE) / SECOND, (minute + 2 * MINUTE) / SECOND - 1);
    let red = ok(&router, &format!("/api/v1/metrics/red?service=frontend&{range}")).await;
    assert_series(&red, &[(json!({"operation": "GET /"}), 0.0, all)]);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn call_exemplars_filter_by_the_calls_duration() {
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = topology_app(minute).await;
    let id = |t: usize| hex(trace_id(t));
    // The map measures frontend's calls to cart by its client spans: 10, 20, 30 and 40 ms (cart's
    // server spans take 8, 18, 28 and 38). The calls of at least 30 ms are those of traces 2
    // and 3, those of at most 19 ms that of trace 0.
    let slow = "family=call&service=frontend&name=cart&minDuration=30ms";
    assert_eq!(exemplars(&router, minute, slow).await, [id(3), id(2)]);
    let fast = "family=call&service=frontend&name=cart&maxDuration=19ms";
    assert_eq!(exemplars(&router, minute, fast).await, [id(0)]);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn call_exemplars_find_calls_whose_client_failed() {
    // In trace B of the split requests, frontend's client span failed and cart's server span
    // did not: the map counts one failed call, which its exemplars should show.
    let minute = recent_minute();
    let App { router, engine, _dir, .. } = open(tempfile::tempdir().unwrap(), BuilderOptions::default().window).await;
    for request in split_requests(minute) {
        write(&engine, request).await;
    }
    let map = ok(&router, &format!("/api/v1/service-map?{}", one_minute(minute))).await;
    assert_eq!((&map["edges"][0]["target"], map["edges"][0]["errors"].as_f64()), (&json!("cart"), Some(1.0)), "{map}");
    let failed = "family=call&service=frontend&name=cart&error=true";
    assert_eq!(exemplars(&router, minute, failed).await, [hex([0xb2; 16])]);
    engine.close().await.unwrap();
}
