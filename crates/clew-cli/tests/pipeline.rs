//! End-to-end: the ingest pipeline of the real `clew` binary. Health checks are dropped and
//! their children re-parented; personal data is masked before anything is written, so it is
//! in no API response, no file of the data directory (WAL, segments) and no log line; and
//! `/metrics` says what each rule did.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use clew_testkit::{now_nanos, TestServer};
use prost::Message;

const BIN: &str = env!("CARGO_BIN_EXE_clew");
const FNR: &str = "24057812345";
const EMAIL: &str = "kari.nordmann@example.no";
const TRACE: [u8; 16] = [0x42; 16];

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..KeyValue::default()
    }
}

fn span(id: u8, parent: Option<u8>, name: &str, attributes: Vec<KeyValue>) -> Span {
    let start = now_nanos() - 1_000_000_000 + u64::from(id) * 1_000_000;
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 500_000,
        attributes,
        events: vec![span::Event {
            name: "note".into(),
            time_unix_nano: start,
            attributes: vec![kv("message", &format!("contact {EMAIL}"))],
            ..span::Event::default()
        }],
        ..Span::default()
    }
}

/// root (1) <- actuator health check (2) <- its database call (3); root <- query with a
/// national identity number (4).
fn request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", "people")], ..Resource::default() }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(1, None, "GET /people", vec![kv("url.path", "/people")]),
                    span(2, Some(1), "GET /actuator/health", vec![kv("url.path", "/actuator/health")]),
                    span(3, Some(2), "SELECT 1", vec![kv("db.system", "postgresql")]),
                    span(
                        4,
                        Some(1),
                        &format!("lookup {EMAIL}"),
                        vec![
                            kv("db.statement", &format!("SELECT * FROM person WHERE fnr = '{FNR}'")),
                            kv("enduser.id", EMAIL),
                        ],
                    ),
                ],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// Posts an encoded export request over OTLP/HTTP.
async fn export(server: &TestServer, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/v1/traces", server.otlp_http))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn health_checks_are_dropped_and_personal_data_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clew.toml");
    std::fs::write(&config, "[pipeline]\nredact_builtins = [\"national_id\", \"email\"]\n").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = TestServer::start_in(BIN, &data, &["--config", config.to_str().unwrap()]).unwrap();

    let response = export(&server, request().encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty(), "dropped spans are not reported as rejected");

    let trace_id: String = TRACE.iter().map(|b| format!("{b:02x}")).collect();
    let read = |server: &TestServer| {
        let url = format!("{}/api/v1/traces/{trace_id}", server.http_url());
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let body = read(&server).await;
    let trace: serde_json::Value = serde_json::from_str(&body).unwrap();
    let spans: Vec<&serde_json::Value> =
        trace["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap().iter().collect();
    let by_name = |name: &str| spans.iter().find(|s| s["name"] == name).copied();
    assert_eq!(spans.len(), 3, "the health check is gone: {body}");
    assert!(by_name("GET /actuator/health").is_none());
    assert_eq!(by_name("SELECT 1").unwrap()["parentSpanId"], "0101010101010101", "re-parented to the root");
    let lookup = by_name("lookup [email]").expect("span names are masked by the email rule");
    assert!(body.contains("SELECT * FROM person WHERE fnr = '***********'"), "{body}");
    assert!(!body.contains(FNR) && !body.contains(EMAIL), "{body}");
    assert_eq!(lookup["parentSpanId"], "0101010101010101");

    // Nothing on disk ever held the values: the WAL and the server log (both in the data
    // directory) now, segments after a clean stop.
    assert_eq!(files_containing(&data, FNR), Vec::<String>::new());
    assert_eq!(files_containing(&data, EMAIL), Vec::<String>::new());
    let metrics = reqwest::get(format!("{}/metrics", server.http_url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clew_pipeline_spans_dropped_total{rule=\"health_checks\"} 1"), "{metrics}");
    assert!(metrics.contains("clew_pipeline_values_redacted_total{rule=\"national_id\"} 1"), "{metrics}");
    // Three kept spans' events, one attribute, one span name (the dropped span is not redacted).
    assert!(metrics.contains("clew_pipeline_values_redacted_total{rule=\"email\"} 5"), "{metrics}");
    server.terminate();
    server.restart().unwrap();
    assert!(read(&server).await.contains("***********"));
    assert!(std::fs::read_dir(data.join("segments")).is_ok(), "the head was written to segments");
    assert_eq!(files_containing(&data, FNR), Vec::<String>::new());
    assert_eq!(files_containing(&data, EMAIL), Vec::<String>::new());
}

#[tokio::test]
async fn a_bad_rule_stops_startup_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clew.toml");
    std::fs::write(&config, "[[pipeline.redact]]\nname = \"broken\"\npattern = \"(\"\n").unwrap();
    let output = std::process::Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken") && stderr.contains("regex"), "{stderr}");
}

#[tokio::test]
async fn spans_over_the_limits_are_cut_visibly_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clew.toml");
    std::fs::write(
        &config,
        "[pipeline.limits]\nmax_attribute_value_bytes = 100\nmax_attributes = 10\nmax_events = 3\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = TestServer::start_in(BIN, &data, &["--config", config.to_str().unwrap()]).unwrap();

    let mut big = span(1, None, "big", (0..50).map(|i| kv(&format!("k{i:02}"), &"x".repeat(1000))).collect());
    big.events = (0..20).map(|i| span::Event { name: format!("e{i}"), ..span::Event::default() }).collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![big], ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    };
    let response = export(&server, request.encode_to_vec()).await;
    assert_eq!(response.status(), 200);

    let trace_id: String = TRACE.iter().map(|b| format!("{b:02x}")).collect();
    let url = format!("{}/api/v1/traces/{trace_id}", server.http_url());
    let trace: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let span = &trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let attributes = span["attributes"].as_array().unwrap();
    assert_eq!(attributes.len(), 11, "ten kept and the marker: {span}");
    assert_eq!(attributes[0]["value"]["stringValue"].as_str().unwrap().len(), 100);
    assert_eq!(span["droppedAttributesCount"], 40);
    assert_eq!((span["events"].as_array().unwrap().len(), &span["droppedEventsCount"]), (3, &serde_json::json!(17)));
    let marker = attributes.iter().find(|kv| kv["key"] == "clew.truncated").unwrap();
    let what: Vec<&str> = marker["value"]["arrayValue"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["stringValue"].as_str().unwrap())
        .collect();
    assert_eq!(what, ["attribute_values", "attributes", "events"]);
    let search = format!("{}/api/v1/search?q=%7B%20span.clew.truncated%20!%3D%20nil%20%7D", server.http_url());
    let found: serde_json::Value = reqwest::get(search).await.unwrap().json().await.unwrap();
    assert_eq!(found["traces"].as_array().map(Vec::len), Some(1), "truncated spans can be found: {found}");
    let metrics = reqwest::get(format!("{}/metrics", server.http_url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clew_pipeline_truncated_total{what=\"attributes\"} 40"), "{metrics}");
}

/// The default project's ID, as the settings API lists it.
async fn default_project(server: &TestServer) -> i64 {
    let url = format!("{}/api/v1/namespaces/default/projects", server.http_url());
    let listed: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    listed["projects"][0]["project"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_project_adds_rules_and_its_own_limits_and_a_trace_keeps_its_first_spans() {
    let server = TestServer::start(BIN).unwrap();
    let client = reqwest::Client::new();
    let project = default_project(&server).await;
    let url = format!("{}/api/v1/projects/{project}/pipeline", server.http_url());
    let settings: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(settings["settings"], serde_json::Value::Null, "{settings}");
    assert_eq!(settings["effective"]["drop_health_checks"], true);

    let own = serde_json::json!({
        "drop": [{ "name": "debug", "span_names": ["debug *"] }],
        "limits": { "max_spans_per_trace": 2 },
    });
    let response = client.put(&url).json(&own).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let settings: serde_json::Value = response.json().await.unwrap();
    assert_eq!(settings["effective"]["drop"][0]["name"], "debug");
    assert_eq!(settings["effective"]["limits"]["max_spans_per_trace"], 2);
    assert_eq!(settings["effective"]["redact_builtins"], serde_json::json!(["national_id"]), "the server's rules stay");

    // Five spans in two requests: the debug span is dropped, the trace keeps its first two
    // and the first one past the limit, which says so; the last is cut.
    let send = |spans: Vec<Span>| {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
        };
        let response = export(&server, request.encode_to_vec());
        async move { assert_eq!(response.await.status(), 200) }
    };
    send(vec![span(1, None, "GET /a", vec![]), span(2, Some(1), "debug dump", vec![])]).await;
    send(vec![span(3, Some(1), "b", vec![]), span(4, Some(1), "c", vec![]), span(5, Some(1), "d", vec![])]).await;
    let trace_id: String = TRACE.iter().map(|b| format!("{b:02x}")).collect();
    let trace: serde_json::Value = client
        .get(format!("{}/api/v1/traces/{trace_id}", server.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spans = trace["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["GET /a", "b", "c"], "{trace}");
    let marker = spans[2]["attributes"].as_array().unwrap().iter().find(|kv| kv["key"] == "clew.truncated").unwrap();
    assert_eq!(marker["value"]["arrayValue"]["values"][0]["stringValue"], "trace_spans");
    let metrics = reqwest::get(format!("{}/metrics", server.http_url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clew_pipeline_spans_dropped_total{rule=\"debug\"} 1"), "{metrics}");
    assert!(metrics.contains("clew_pipeline_truncated_total{what=\"trace_spans\"} 1"), "{metrics}");

    // Bad settings are refused with what is wrong, and change nothing.
    for (bad, says) in [
        (serde_json::json!({ "drop": [{ "name": "broken", "span_names": ["a["] }] }), "broken"),
        (serde_json::json!({ "sampling": { "enabled": true, "probability": 2.0 } }), "probability"),
        (serde_json::json!({ "dorp": [] }), "dorp"),
    ] {
        let response = client.put(&url).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body = response.text().await.unwrap();
        assert!(body.contains(says), "{body}");
    }
    let response = client.delete(&url).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let settings: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(settings["settings"], serde_json::Value::Null);
    assert_eq!(settings["effective"]["limits"]["max_spans_per_trace"], 50_000);
}

/// The same spans sent twice: once with nothing for the pipeline to change (stored from the
/// bytes received, which the WAL keeps as they are), once with a national identity number in
/// a `db.statement` (masked: decoded, changed and encoded again). Read back, the two traces
/// are alike except for the masked value.
#[tokio::test]
async fn a_request_the_pipeline_changes_reads_back_like_one_it_leaves_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(BIN, dir.path(), &[]).unwrap();
    let start = now_nanos() - 5_000_000_000;
    let with_statement = |trace: [u8; 16], statement: &str| {
        let mut request = clew_storage::conformance::every_field_request(trace, start);
        for span in request.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
            span.attributes.push(kv("db.statement", statement));
        }
        request.encode_to_vec()
    };
    let (plain, masked) = ([0x51; 16], [0x52; 16]);
    let plain_bytes = with_statement(plain, "SELECT * FROM person WHERE id = 7");
    let masked_bytes = with_statement(masked, &format!("SELECT * FROM person WHERE fnr = '{FNR}'"));
    for body in [&plain_bytes, &masked_bytes] {
        assert_eq!(export(&server, body.clone()).await.status(), 200);
    }

    let hex = |trace: [u8; 16]| trace.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let read = |trace: [u8; 16]| {
        let url = format!("{}/api/v1/traces/{}", server.http_url(), hex(trace));
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let expected =
        read(plain).await.replace(&hex(plain), &hex(masked)).replace("WHERE id = 7", "WHERE fnr = '***********'");
    let stored: serde_json::Value = serde_json::from_str(&read(masked).await).unwrap();
    assert_eq!(stored["resourceSpans"].as_array().map(Vec::len), Some(1), "{stored}");
    assert_eq!(stored, serde_json::from_str::<serde_json::Value>(&expected).unwrap());

    let in_wal = |needle: &[u8]| {
        std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .any(|file| file.windows(needle.len()).any(|w| w == needle))
    };
    assert!(in_wal(&plain_bytes), "a request nothing changed is logged as received");
    assert!(!in_wal(&masked_bytes), "a masked request is logged as changed");
    server.terminate();
}
