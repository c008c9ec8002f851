//! Grafana Tempo's query API under `/tempo`, driven with `oneshot` over the real embedded engine.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value::Value, KeyValue};
use clew_model::otlp::trace::v1::{span::SpanKind, Span, Status, TracesData};
use clew_storage::Storage;
use common::{get_request, hex, kv, on_node_1, send, spec, text, App, Reply, SpanSpec, MILLI as MS};
use prost::Message;
use serde_json::json;

/// The checkout trace: `frontend` calls `backend`, which calls its database; the root fails.
const CHECKOUT: [u8; 16] = [0xa1; 16];
/// A short `backend` health check.
const HEALTH: [u8; 16] = [0xb2; 16];
/// A trace whose ID has leading zero bytes, fetchable by the short ID `cde`.
const SHORT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0xde];
/// A trace whose root span never arrived.
const ORPHAN: [u8; 16] = [0xd4; 16];

#[allow(clippy::too_many_arguments)]
fn span(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: SpanKind,
    start: u64,
    duration: u64,
    status: i32,
    attributes: Vec<KeyValue>,
) -> Span {
    common::span(SpanSpec {
        parent,
        kind,
        attributes,
        status: Some(Status { message: String::new(), code: status }),
        ..spec(trace, id, name, start, duration)
    })
}

/// The router over the test traces, and the start of the checkout trace, Unix nanoseconds.
async fn app() -> (App, u64) {
    let start = clew_query::now_nanos() - 120_000 * MS;
    let method = |m: &str| kv("http.method", text(m));
    let code = |c: i64| kv("http.status_code", Value::IntValue(c));
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            on_node_1(
                "frontend",
                vec![
                    span(
                        CHECKOUT,
                        1,
                        None,
                        "GET /checkout",
                        SpanKind::Server,
                        start,
                        300 * MS,
                        2,
                        vec![method("GET"), code(500)],
                    ),
                    span(
                        SHORT,
                        1,
                        None,
                        "GET /short",
                        SpanKind::Server,
                        start + 1000 * MS,
                        20 * MS,
                        0,
                        vec![method("GET")],
                    ),
                ],
            ),
            on_node_1(
                "backend",
                vec![
                    span(
                        CHECKOUT,
                        2,
                        Some(1),
                        "charge",
                        SpanKind::Internal,
                        start + 10 * MS,
                        200 * MS,
                        0,
                        vec![kv("payment.provider", text("stripe"))],
                    ),
                    span(CHECKOUT, 3, Some(2), "SELECT orders", SpanKind::Client, start + 20 * MS, 50 * MS, 0, vec![]),
                    span(
                        HEALTH,
                        1,
                        None,
                        "healthcheck",
                        SpanKind::Server,
                        start + 2000 * MS,
                        5 * MS,
                        1,
                        vec![method("GET"), code(200)],
                    ),
                    span(ORPHAN, 2, Some(7), "orphan", SpanKind::Internal, start + 3000 * MS, 8 * MS, 0, vec![]),
                ],
            ),
        ],
    };
    (common::app_with([request]).await, start)
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        assert!(self.content_type.starts_with("application/json"), "{}", self.content_type);
        serde_json::from_slice(&self.body).unwrap()
    }

    /// A Tempo error: the status and a plain-text body.
    fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(self.content_type.starts_with("text/plain"), "{}", self.content_type);
        self.text()
    }
}

async fn get(router: &axum::Router, uri: &str) -> Reply {
    send(router, get_request(uri)).await
}

async fn get_protobuf(router: &axum::Router, uri: &str) -> Reply {
    let reply =
        send(router, Request::get(uri).header(header::ACCEPT, "application/protobuf").body(Body::empty()).unwrap())
            .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.content_type, "application/protobuf");
    reply
}

/// `/tempo/api/search` with these query parameters, URL-encoded.
async fn search(router: &axum::Router, params: &[(&str, &str)]) -> Reply {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    get(router, &format!("/tempo/api/search?{query}")).await
}

fn trace_ids(body: &serde_json::Value) -> Vec<String> {
    body["traces"].as_array().unwrap().iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect()
}

fn span_count(traces: &TracesData) -> usize {
    traces.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

/// Tempo's `TraceByIDResponse`, as a client decodes it.
#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
    #[prost(int32, tag = "3")]
    status: i32,
}

#[tokio::test]
async fn echo_answers() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let reply = get(&router, "/tempo/api/echo").await;
    assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "echo"));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn trace_by_id_in_both_versions_and_formats() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let id = hex(CHECKOUT);

    let v1 = get(&router, &format!("/tempo/api/traces/{id}?start=1&end=2")).await.json();
    let batches = v1["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "{v1}");
    let spans: usize = batches.iter().map(|b| b["scopeSpans"][0]["spans"].as_array().unwrap().len()).sum();
    assert_eq!(spans, 3);
    assert_eq!(batches[0]["scopeSpans"][0]["spans"][0]["traceId"], id);
    assert!(v1.get("resourceSpans").is_none());

    let v2 = get(&router, &format!("/tempo/api/v2/traces/{id}")).await.json();
    assert_eq!(v2["status"], "COMPLETE");
    assert_eq!(v2["trace"]["resourceSpans"].as_array().unwrap().len(), 2, "{v2}");

    let v1 = TracesData::decode(&*get_protobuf(&router, &format!("/tempo/api/traces/{id}")).await.body).unwrap();
    assert_eq!(span_count(&v1), 3);
    let v2 =
        TraceByIdResponse::decode(&*get_protobuf(&router, &format!("/tempo/api/v2/traces/{id}")).await.body).unwrap();
    assert_eq!(v2.status, 0, "COMPLETE");
    assert_eq!(v2.trace.as_ref().map(span_count), Some(3));
    assert_eq!(v2.trace, Some(v1));

    // Tempo left-pads short IDs.
    let short = get(&router, "/tempo/api/traces/cde").await.json();
    assert_eq!(short["batches"][0]["scopeSpans"][0]["spans"][0]["name"], "GET /short");
    assert_eq!(get(&router, "/tempo/api/v2/traces/00cde").await.status, StatusCode::OK);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn unknown_and_malformed_trace_ids_are_plain_text_errors() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    for version in ["", "v2/"] {
        let missing = get(&router, &format!("/tempo/api/{version}traces/{}", "cd".repeat(16))).await;
        assert!(missing.error(StatusCode::NOT_FOUND).contains(&"cd".repeat(16)));
        let bad = get(&router, &format!("/tempo/api/{version}traces/xyz")).await;
        assert!(bad.error(StatusCode::BAD_REQUEST).contains("invalid character 'x' at position 1"), "{}", bad.text());
        let long = get(&router, &format!("/tempo/api/{version}traces/{}", "1".repeat(33))).await;
        assert!(long.error(StatusCode::BAD_REQUEST).contains("larger than 128 bits"));
    }
    engine.close().await.unwrap();
}

#[tokio::test]
async fn traceql_search_returns_tempo_metadata() {
    let (App { router, engine, _dir, .. }, start) = app().await;
    let q = r#"{ resource.service.name = "frontend" && span.http.status_code >= 500 }"#;
    let body = search(&router, &[("q", q), ("limit", "10"), ("spss", "5")]).await.json();
    assert_eq!(trace_ids(&body), [hex(CHECKOUT)], "{body}");
    let trace = &body["traces"][0];
    assert_eq!(trace["rootServiceName"], "frontend");
    assert_eq!(trace["rootTraceName"], "GET /checkout");
    assert_eq!(trace["startTimeUnixNano"], start.to_string());
    assert_eq!(trace["durationMs"], 300);
    assert_eq!(
        trace["serviceStats"],
        json!({
            "backend": { "spanCount": 2, "errorCount": 0 },
            "frontend": { "spanCount": 1, "errorCount": 1 },
        })
    );
    let span_set = &trace["spanSets"][0];
    assert_eq!(span_set, &trace["spanSet"]);
    assert_eq!(span_set["matched"], 1);
    let span = &span_set["spans"][0];
    assert_eq!(span["spanID"], "0101010101010101");
    assert_eq!(span["name"], "GET /checkout");
    assert_eq!(span["startTimeUnixNano"], start.to_string());
    assert_eq!(span["durationNanos"], (300 * MS).to_string());
    assert_eq!(span["attributes"][0], json!({ "key": "service.name", "value": { "stringValue": "frontend" } }));
    assert!(body["metrics"]["inspectedTraces"].as_u64().unwrap() >= 1);
    assert_eq!(body["metrics"]["completedJobs"], 1);

    // spss bounds the spans listed, not the matched count.
    let body = search(&router, &[("q", "{ resource.service.name = \"backend\" }"), ("spss", "1")]).await.json();
    let checkout = body["traces"].as_array().unwrap().iter().find(|t| t["traceID"] == hex(CHECKOUT)).unwrap();
    assert_eq!(checkout["spanSets"][0]["matched"], 2);
    assert_eq!(checkout["spanSets"][0]["spans"].as_array().unwrap().len(), 1);

    // Newest first; `{}` finds everything in the default last hour.
    let body = search(&router, &[("q", "{}")]).await.json();
    assert_eq!(trace_ids(&body), [hex(ORPHAN), hex(HEALTH), hex(SHORT), hex(CHECKOUT)]);
    let orphan = &body["traces"][0];
    assert_eq!(orphan["rootServiceName"], "<root span not yet received>");
    assert!(orphan.get("rootTraceName").is_none(), "{orphan}");

    // An explicit window in Unix seconds that ends before the traces started finds nothing.
    let before = (start / 1_000_000_000 - 600).to_string();
    let earlier = (start / 1_000_000_000 - 1200).to_string();
    let body = search(&router, &[("q", "{}"), ("start", &earlier), ("end", &before)]).await.json();
    assert_eq!(body["traces"], json!([]));
    engine.close().await.unwrap();
}

#[tokio::test]
async fn logfmt_tags_and_durations_filter_the_search() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let found = |params: &'static [(&'static str, &'static str)]| {
        let router = router.clone();
        async move { trace_ids(&search(&router, params).await.json()) }
    };
    assert_eq!(found(&[("tags", r#"service.name="backend" name="healthcheck""#)]).await, [hex(HEALTH)]);
    assert_eq!(found(&[("tags", "http.status_code=500")]).await, [hex(CHECKOUT)]);
    assert_eq!(found(&[("tags", "status=error")]).await, [hex(CHECKOUT)]);
    assert_eq!(found(&[("tags", r#"name="SELECT orders" kind=client"#)]).await, [hex(CHECKOUT)]);
    assert_eq!(found(&[("tags", "payment.provider=stripe")]).await, [hex(CHECKOUT)]);
    assert_eq!(found(&[("tags", "service.name=frontend"), ("q", "{ name = \"GET /short\" }")]).await, [hex(SHORT)]);
    // Durations bound the whole trace, as in Tempo.
    assert_eq!(found(&[("minDuration", "250ms")]).await, [hex(CHECKOUT)]);
    assert_eq!(
        found(&[("minDuration", "10ms"), ("maxDuration", "100ms"), ("tags", "service.name=frontend")]).await,
        [hex(SHORT)]
    );
    assert_eq!(found(&[("maxDuration", "6ms")]).await, [hex(HEALTH)]);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn bad_searches_are_plain_text_400s() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let error = |params: &'static [(&'static str, &'static str)]| {
        let router = router.clone();
        async move { search(&router, params).await.error(StatusCode::BAD_REQUEST) }
    };
    let message = error(&[("q", "{ .a = }")]).await;
    assert!(message.starts_with("invalid TraceQL query: line 1, column 8: "), "{message}");
    let message = error(&[("tags", r#"service.name="open"#)]).await;
    assert!(message.starts_with("invalid tags: unterminated quoted value"), "{message}");
    let message = error(&[("tags", "a=b=c")]).await;
    assert_eq!(message, "invalid tags: unexpected '=' at position 4");
    let message = error(&[("tags", "a=1 a=2")]).await;
    assert_eq!(message, "invalid tags: tag a has been set twice");
    let message = error(&[("start", "yesterday")]).await;
    assert!(message.starts_with("invalid start: "), "{message}");
    let message = error(&[("start", "200"), ("end", "100")]).await;
    assert!(message.contains("start must be before end"), "{message}");
    let message = error(&[("minDuration", "fast")]).await;
    assert!(message.starts_with("invalid minDuration: "), "{message}");
    let message = error(&[("minDuration", "2s"), ("maxDuration", "1s")]).await;
    assert!(message.contains("must be greater than minDuration"), "{message}");
    let message = error(&[("limit", "0")]).await;
    assert!(message.starts_with("invalid limit"), "{message}");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn tag_names_by_scope() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let names = |body: serde_json::Value| -> Vec<String> {
        body["tagNames"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
    };
    let all = names(get(&router, "/tempo/api/search/tags").await.json());
    for name in ["http.method", "http.status_code", "payment.provider", "service.name", "host.name"] {
        assert!(all.contains(&name.to_owned()), "{name} in {all:?}");
    }
    assert!(!all.contains(&"status".to_owned()), "v1 lists intrinsics only when asked: {all:?}");
    let span = names(get(&router, "/tempo/api/search/tags?scope=span").await.json());
    assert!(span.contains(&"http.method".to_owned()) && !span.contains(&"host.name".to_owned()), "{span:?}");
    let intrinsic = names(get(&router, "/tempo/api/search/tags?scope=intrinsic").await.json());
    assert!(intrinsic.contains(&"status".to_owned()) && intrinsic.contains(&"span:name".to_owned()), "{intrinsic:?}");

    let v2 = get(&router, "/tempo/api/v2/search/tags").await.json();
    let scopes: Vec<_> = v2["scopes"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["span", "resource", "intrinsic"]);
    assert!(v2["scopes"][0]["tags"].as_array().unwrap().contains(&json!("payment.provider")));
    assert!(v2["scopes"][1]["tags"].as_array().unwrap().contains(&json!("service.name")));
    assert!(v2["scopes"][2]["tags"].as_array().unwrap().contains(&json!("kind")));
    let resource = get(&router, "/tempo/api/v2/search/tags?scope=resource").await.json();
    assert_eq!(resource["scopes"].as_array().unwrap().len(), 1);
    assert_eq!(resource["scopes"][0]["name"], "resource");
    let message = get(&router, "/tempo/api/v2/search/tags?scope=galaxy").await.error(StatusCode::BAD_REQUEST);
    assert_eq!(message, "invalid scope: galaxy");
    engine.close().await.unwrap();
}

#[tokio::test]
async fn tag_values_v1_and_v2() {
    let (App { router, engine, _dir, .. }, _) = app().await;
    let sorted = |values: &serde_json::Value| {
        let mut values = values.as_array().unwrap().clone();
        values.sort_by_key(|v| v.to_string());
        serde_json::Value::Array(values)
    };
    let v1 = get(&router, "/tempo/api/search/tag/service.name/values").await.json();
    assert_eq!(sorted(&v1["tagValues"]), json!(["backend", "frontend"]));
    let v1 = get(&router, "/tempo/api/search/tag/http.status_code/values").await.json();
    assert_eq!(sorted(&v1["tagValues"]), json!(["200", "500"]));
    let v1 = get(&router, "/tempo/api/search/tag/status/values").await.json();
    assert_eq!(sorted(&v1["tagValues"]), json!(["error", "ok", "unset"]));

    let v2 = get(&router, "/tempo/api/v2/search/tag/resource.service.name/values").await.json();
    assert_eq!(
        sorted(&v2["tagValues"]),
        json!([{ "type": "string", "value": "backend" }, { "type": "string", "value": "frontend" }])
    );
    let v2 = get(&router, "/tempo/api/v2/search/tag/span.http.status_code/values?q=%7B%7D").await.json();
    assert_eq!(sorted(&v2["tagValues"]), json!([{ "type": "int", "value": "200" }, { "type": "int", "value": "500" }]));
    let v2 = get(&router, "/tempo/api/v2/search/tag/status/values").await.json();
    assert_eq!(
        sorted(&v2["tagValues"]),
        json!([
            { "type": "keyword", "value": "error" },
            { "type": "keyword", "value": "ok" },
            { "type": "keyword", "value": "unset" },
        ])
    );
    let v2 = get(&router, "/tempo/api/v2/search/tag/kind/values").await.json();
    assert!(v2["tagValues"].as_array().unwrap().contains(&json!({ "type": "keyword", "value": "client" })), "{v2}");
    let v2 = get(&router, "/tempo/api/v2/search/tag/duration/values").await.json();
    assert_eq!(v2["tagValues"], json!([]));
    let message = get(&router, "/tempo/api/v2/search/tag/span./values").await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("attribute name missing"), "{message}");
    engine.close().await.unwrap();
}
