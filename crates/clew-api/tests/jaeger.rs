#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

//! Jaeger's query API (`/jaeger/api`) driven with `oneshot` over the real embedded engine, with
//! the JSON shapes Jaeger UI and Grafana read.

mod common;

use axum::http::StatusCode;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::any_value;
use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::otlp::trace::v1::status::StatusCode as OtlpStatus;
use clew_model::otlp::trace::v1::Status;
use clew_storage::Storage;
use common::{hex as id, kv, on_node_1, span, text, timed as spec, App, SpanSpec, MILLI};
use serde_json::{json, Value};

const CHECKOUT: [u8; 16] = [0xa1; 16];
const HEALTH: [u8; 16] = [0xb2; 16];
const CART: [u8; 16] = [0xc3; 16];

/// Three traces, newest last:
/// - checkout: frontend `GET /checkout` (server, 50 ms, `http.status_code`=500 as an int,
///   `http.route`) → frontend `call cart` (client) → cart `AddItem` (server, status error);
/// - health: frontend `GET /health` (server, 1 ms, `http.status_code`=200);
/// - cart: frontend `GET /cart` (server, 20 ms) → `call cart` (client) → cart `GetCart` (server).
fn requests(base: u64) -> Vec<ExportTraceServiceRequest> {
    let checkout = ExportTraceServiceRequest {
        resource_spans: vec![
            on_node_1(
                "frontend",
                vec![
                    span(SpanSpec {
                        attributes: vec![
                            kv("http.status_code", any_value::Value::IntValue(500)),
                            kv("http.route", text("/checkout")),
                        ],
                        ..spec(CHECKOUT, 1, None, "GET /checkout", SpanKind::Server, base, 50)
                    }),
                    span(spec(CHECKOUT, 2, Some(1), "call cart", SpanKind::Client, base + 5 * MILLI, 30)),
                ],
            ),
            on_node_1(
                "cart",
                vec![span(SpanSpec {
                    status: Some(Status { code: OtlpStatus::Error as i32, message: "out of stock".into() }),
                    ..spec(CHECKOUT, 3, Some(2), "AddItem", SpanKind::Server, base + 10 * MILLI, 20)
                })],
            ),
        ],
    };
    let health = ExportTraceServiceRequest {
        resource_spans: vec![on_node_1(
            "frontend",
            vec![span(SpanSpec {
                attributes: vec![kv("http.status_code", any_value::Value::IntValue(200))],
                ..spec(HEALTH, 1, None, "GET /health", SpanKind::Server, base + 1_000 * MILLI, 1)
            })],
        )],
    };
    let cart_start = base + 2_000 * MILLI;
    let cart = ExportTraceServiceRequest {
        resource_spans: vec![
            on_node_1(
                "frontend",
                vec![
                    span(spec(CART, 1, None, "GET /cart", SpanKind::Server, cart_start, 20)),
                    span(spec(CART, 2, Some(1), "call cart", SpanKind::Client, cart_start + MILLI, 10)),
                ],
            ),
            on_node_1(
                "cart",
                vec![span(spec(CART, 3, Some(2), "GetCart", SpanKind::Server, cart_start + 2 * MILLI, 5))],
            ),
        ],
    };
    vec![checkout, health, cart]
}

/// The router over `requests`, and the start of the checkout trace, Unix nanoseconds (ten minutes
/// ago).
async fn app() -> (App, u64) {
    let base = clew_query::now_nanos() - 600 * 1_000 * MILLI;
    (common::app_with(requests(base)).await, base)
}

/// `GET uri`, with the answer parsed as JSON.
async fn get(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (status, body) = common::get(router, uri).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}"));
    (status, json)
}

/// The data of a successful answer, after checking the rest of the envelope.
async fn data(router: &axum::Router, uri: &str) -> Value {
    let (status, json) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {json}");
    let items = json["data"].as_array().map_or(0, Vec::len);
    assert_eq!(json["total"], items, "{uri}: {json}");
    assert_eq!((&json["limit"], &json["offset"], &json["errors"]), (&json!(0), &json!(0), &Value::Null), "{uri}");
    json["data"].clone()
}

/// The IDs of the traces a search returns, in order.
async fn found(router: &axum::Router, query: &str) -> Vec<String> {
    let traces = data(router, &format!("/jaeger/api/traces?{query}")).await;
    traces.as_array().unwrap().iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect()
}

fn encoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asserts Jaeger's error envelope with `status` as both the HTTP status and the code.
async fn assert_error(router: &axum::Router, uri: &str, status: StatusCode, message: &str) {
    let (actual, json) = get(router, uri).await;
    assert_eq!(actual, status, "{uri}: {json}");
    assert_eq!(
        (&json["data"], &json["total"], &json["limit"], &json["offset"]),
        (&Value::Null, &json!(0), &json!(0), &json!(0)),
        "{uri}: {json}"
    );
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{uri}: {json}");
    assert_eq!(errors[0]["code"], status.as_u16(), "{uri}: {json}");
    let msg = errors[0]["msg"].as_str().unwrap();
    assert!(msg.contains(message), "{uri}: {msg:?} does not contain {message:?}");
}

#[tokio::test]
async fn services_and_operations_are_listed() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    assert_eq!(data(&router, "/jaeger/api/services").await, json!(["cart", "frontend"]));
    assert_eq!(
        data(&router, "/jaeger/api/services/frontend/operations").await,
        json!(["GET /cart", "GET /checkout", "GET /health", "call cart"])
    );
    assert_eq!(data(&router, "/jaeger/api/services/nobody/operations").await, json!([]));
    assert_eq!(
        data(&router, "/jaeger/api/operations?service=frontend").await,
        json!([
            {"name": "GET /cart", "spanKind": "server"},
            {"name": "GET /checkout", "spanKind": "server"},
            {"name": "GET /health", "spanKind": "server"},
            {"name": "call cart", "spanKind": "client"},
        ])
    );
    assert_eq!(
        data(&router, "/jaeger/api/operations?service=frontend&spanKind=client").await,
        json!([{"name": "call cart", "spanKind": "client"}])
    );
    assert_eq!(data(&router, "/jaeger/api/operations?service=cart&spanKind=").await.as_array().unwrap().len(), 2);
    assert_error(&router, "/jaeger/api/operations", StatusCode::BAD_REQUEST, "parameter 'service' is required").await;
    assert_error(&router, "/jaeger/api/operations?service=cart&spanKind=sideways", StatusCode::BAD_REQUEST, "spanKind")
        .await;
    engine.close().await.unwrap();
}

#[tokio::test]
async fn search_filters_by_service_operation_tags_duration_and_time() {
    let (App { router, engine, _dir, .. }, base) = app().await;
    let (checkout, health, cart) = (id(CHECKOUT), id(HEALTH), id(CART));
    let (checkout, health, cart) = (checkout.as_str(), health.as_str(), cart.as_str());

    // Newest first.
    assert_eq!(found(&router, "service=frontend").await, [cart, health, checkout]);
    assert_eq!(found(&router, "service=frontend&limit=1").await, [cart]);
    assert_eq!(found(&router, "service=frontend&limit=0").await.len(), 3, "0 is the default limit");
    assert_eq!(found(&router, "service=frontend&operation=GET%20%2Fcheckout").await, [checkout]);
    assert_eq!(found(&router, "service=cart&operation=GetCart").await, [cart]);
    assert_eq!(found(&router, "service=cart&operation=GET%20%2Fcheckout").await, Vec::<String>::new());

    // An int attribute found by a string tag, in both parameter forms.
    let tags = encoded(r#"{"http.status_code":"500"}"#);
    assert_eq!(found(&router, &format!("service=frontend&tags={tags}")).await, [checkout]);
    assert_eq!(found(&router, "service=frontend&tag=http.status_code:200").await, [health]);
    assert_eq!(found(&router, "service=frontend&tag=http.status_code:404").await, Vec::<String>::new());
    // A string attribute; every filter applies to the same span.
    assert_eq!(found(&router, "service=frontend&tag=http.route:%2Fcheckout").await, [checkout]);
    assert_eq!(found(&router, "service=cart&tag=http.route:%2Fcheckout").await, Vec::<String>::new());
    // `error=true` is a span whose status is an error, as the Jaeger conversion tags it.
    let error = encoded(r#"{"error":"true"}"#);
    assert_eq!(found(&router, &format!("service=cart&tags={error}")).await, [checkout]);
    assert_eq!(found(&router, &format!("service=frontend&tags={error}")).await, Vec::<String>::new());
    assert_eq!(found(&router, "service=cart&tag=otel.status_code:ERROR").await, [checkout]);
    assert_eq!(found(&router, "service=frontend&tag=span.kind:client").await, [cart, checkout]);

    // Span durations: checkout's root is 50 ms, cart's root 20 ms, health's 1 ms.
    assert_eq!(found(&router, "service=frontend&minDuration=40ms").await, [checkout]);
    assert_eq!(found(&router, "service=frontend&maxDuration=5ms").await, [health]);
    // Checkout's client span (30 ms) is outside the bounds, as is its root.
    assert_eq!(found(&router, "service=frontend&minDuration=15ms&maxDuration=0.025s").await, [cart]);

    // start/end in microseconds; an hour before the traces holds none of them.
    let micros = |nanos: u64| nanos / 1_000;
    let hour = 3_600 * 1_000 * MILLI;
    let window = |start: u64, end: u64| format!("service=frontend&start={}&end={}", micros(start), micros(end));
    assert_eq!(found(&router, &window(base - 2 * hour, base - hour)).await, Vec::<String>::new());
    assert_eq!(found(&router, &window(base, base + 1_500 * MILLI)).await, [health, checkout]);
    assert_eq!(found(&router, "service=frontend&lookback=1h").await.len(), 3);
    assert_eq!(found(&router, "service=frontend&lookback=2d").await.len(), 3);
    assert_eq!(found(&router, "service=frontend&lookback=1m").await, Vec::<String>::new());
    engine.close().await.unwrap();
}

#[tokio::test]
async fn search_by_trace_id_reports_missing_ones() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let missing = "cd".repeat(16);
    let uri = format!("/jaeger/api/traces?traceID={}&traceID={missing}", id(HEALTH));
    let (status, json) = get(&router, &uri).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["data"].as_array().unwrap().len(), 1);
    assert_eq!(json["data"][0]["traceID"], id(HEALTH));
    assert_eq!(json["errors"], json!([{"msg": "trace not found", "traceID": missing}]));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn trace_by_id_has_jaegers_shape() {
    let (App { router, engine, _dir, .. }, base) = app().await;
    let traces = data(&router, &format!("/jaeger/api/traces/{}", id(CHECKOUT))).await;
    let trace = &traces[0];
    assert_eq!(trace["traceID"], id(CHECKOUT));
    assert_eq!(trace["warnings"], Value::Null);
    assert_eq!(trace["processes"]["p1"]["serviceName"], "frontend");
    assert_eq!(trace["processes"]["p2"]["serviceName"], "cart");
    assert_eq!(trace["processes"]["p1"]["tags"], json!([{"key": "host.name", "type": "string", "value": "node-1"}]));

    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let root = &spans[0];
    assert_eq!(root["spanID"], "0101010101010101");
    assert_eq!(root["operationName"], "GET /checkout");
    assert_eq!(root["references"], json!([]));
    assert_eq!(root["startTime"], base / 1_000);
    assert_eq!(root["duration"], 50_000);
    assert_eq!(root["processID"], "p1");
    let tags = root["tags"].as_array().unwrap();
    assert!(tags.contains(&json!({"key": "http.status_code", "type": "int64", "value": 500})), "{tags:?}");
    assert!(tags.contains(&json!({"key": "http.route", "type": "string", "value": "/checkout"})), "{tags:?}");
    assert!(tags.contains(&json!({"key": "span.kind", "type": "string", "value": "server"})), "{tags:?}");

    let item = &spans[2];
    assert_eq!(item["operationName"], "AddItem");
    assert_eq!(item["processID"], "p2");
    assert_eq!(
        item["references"],
        json!([{"refType": "CHILD_OF", "traceID": id(CHECKOUT), "spanID": "0202020202020202"}])
    );
    let tags = item["tags"].as_array().unwrap();
    assert!(tags.contains(&json!({"key": "error", "type": "bool", "value": true})), "{tags:?}");
    assert!(tags.contains(&json!({"key": "otel.status_code", "type": "string", "value": "ERROR"})), "{tags:?}");

    // Jaeger writes IDs whose upper half is zero with 16 digits; those read back too.
    assert_error(&router, &format!("/jaeger/api/traces/{}", "cd".repeat(16)), StatusCode::NOT_FOUND, "trace not found")
        .await;
    let (_, json) = get(&router, "/jaeger/api/traces/0000000000000abc").await;
    assert_eq!(json["errors"], json!([{"code": 404, "msg": "trace not found"}]));
    assert_error(&router, "/jaeger/api/traces/xyz", StatusCode::BAD_REQUEST, "parse trace ID").await;
    assert_error(&router, &format!("/jaeger/api/traces/{}", "0".repeat(32)), StatusCode::BAD_REQUEST, "zero").await;
    engine.close().await.unwrap();
}

#[tokio::test]
async fn dependencies_count_calls_between_services() {
    let (App { router, engine, _dir, .. }, base) = app().await;
    let expected = json!([{"parent": "frontend", "child": "cart", "callCount": 2}]);
    assert_eq!(data(&router, "/jaeger/api/dependencies").await, expected);
    let millis = |nanos: u64| nanos / MILLI;
    let now = millis(clew_query::now_nanos());
    assert_eq!(data(&router, &format!("/jaeger/api/dependencies?endTs={now}&lookback=3600000")).await, expected);
    assert_eq!(data(&router, "/jaeger/api/dependencies?service=cart").await, expected);
    assert_eq!(data(&router, "/jaeger/api/dependencies?service=db").await, json!([]));
    // Dependencies come from per-minute rollups: a window that ends a minute before the traces
    // holds none of them.
    let window = format!("endTs={}&lookback=60000", millis(base) - 60_000);
    assert_eq!(data(&router, &format!("/jaeger/api/dependencies?{window}")).await, json!([]));
    assert_error(&router, "/jaeger/api/dependencies?endTs=soon", StatusCode::BAD_REQUEST, "'endTs'").await;
    assert_error(&router, "/jaeger/api/dependencies?lookback=1h", StatusCode::BAD_REQUEST, "'lookback'").await;
    engine.close().await.unwrap();
}

#[tokio::test]
async fn bad_search_parameters_answer_in_jaegers_error_envelope() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let search = |query: &str| format!("/jaeger/api/traces?service=frontend&{query}");
    let (status, json) = get(&router, &search(&format!("tags={}", encoded("{\"a\":")))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["data"], Value::Null);
    assert_eq!(json["errors"][0]["code"], 400);
    assert!(json["errors"][0]["msg"].as_str().unwrap().starts_with("malformed 'tags' parameter"), "{json}");

    for (query, message) in [
        ("tag=nocolon", "malformed 'tag' parameter"),
        ("start=yesterday", "unable to parse param 'start'"),
        ("end=-1", "unable to parse param 'end'"),
        ("start=2000&end=1000", "after it ends"),
        ("limit=-1", "`limit` must be a whole number from 0 to"),
        ("limit=5000", "at most 1000 traces"),
        ("minDuration=fast", "`minDuration` must be a duration"),
        ("minDuration=2s&maxDuration=1s", "'maxDuration' should be greater than 'minDuration'"),
        ("lookback=forever", "`lookback` must be a duration"),
        ("traceID=xyz", "parse trace ID"),
    ] {
        assert_error(&router, &search(query), StatusCode::BAD_REQUEST, message).await;
    }
    engine.close().await.unwrap();
}
