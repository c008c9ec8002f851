//! Golden query files: a fixed, generated dataset and query cases with their expected results,
//! run unchanged against every storage backend (feature `golden`).
//!
//! A case file holds blocks:
//! ```text
//! === name
//! q: { span.http.status_code >= 500 }    TraceQL (optional)
//! filter: service=frontend               simple filters, repeatable: service, name, kind,
//!                                        status, minDuration, maxDuration, attr
//! order: longest                         newest (default) or longest
//! limit: 5                               default 20
//! pages: 2                               follow the cursor for this many pages (default 1)
//! range: 0s 20m                          offsets from the dataset's start (default all of it)
//! ---
//! <one line per trace, or `error: <message>`>
//! ```
//! Set `CLEW_REGENERATE_GOLDEN=1` to rewrite the expected sections from what the backend
//! returns (then review the diff).

use std::fmt::Write as _;
use std::path::Path;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status};
use clew_model::TenantId;
use clew_storage::{DynStorage, TimeRange};

use crate::{Filters, Limits, Order, Search};

/// 2024-06-01T00:00:00Z: the dataset's first trace starts here.
pub const BASE: u64 = 1_717_200_000_000_000_000;
/// Traces in the dataset, one every 10 s.
pub const TRACES: u64 = 120;
const SECOND: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn resource(service: &str, i: u64) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("host.name", s(&format!("node-{}", i % 3))),
            kv("deployment.environment", s(if i.is_multiple_of(4) { "staging" } else { "prod" })),
        ],
        ..Default::default()
    }
}

/// Trace `i` of the dataset: frontend → checkout → payments (every 4th) and → db, with
/// errors, missing roots and attribute types spread by `i`.
fn trace(i: u64) -> Vec<ResourceSpans> {
    let trace_id = (i as u128 + 1).to_be_bytes().to_vec();
    let id = |n: u64| ((i << 8) + n).to_be_bytes().to_vec();
    let start = BASE + i * 10 * SECOND;
    let root_duration = (i % 13 + 1) * 10 * MS;
    let status = |error: bool| {
        Some(if error {
            Status { code: StatusCode::Error as i32, message: "failed".into() }
        } else {
            Status::default()
        })
    };
    let span = |n: u64, parent: Option<u64>, name: &str, kind: SpanKind, offset: u64, duration: u64| Span {
        trace_id: trace_id.clone(),
        span_id: id(n),
        parent_span_id: parent.map(id).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start + offset,
        end_time_unix_nano: start + offset + duration,
        ..Default::default()
    };
    let mut root = span(
        1,
        None,
        if i.is_multiple_of(3) { "GET /checkout" } else { "GET /cart" },
        SpanKind::Server,
        0,
        root_duration,
    );
    let failed = i.is_multiple_of(7);
    root.attributes = vec![
        kv("http.method", s(if i.is_multiple_of(2) { "GET" } else { "POST" })),
        kv("http.status_code", Value::IntValue(if failed { 500 } else { 200 })),
        kv("user.id", s(&format!("user-{}", i % 10))),
    ];
    root.status = status(failed);
    let mut checkout = span(2, Some(1), "checkout.process", SpanKind::Server, MS, root_duration / 2);
    checkout.attributes = vec![kv("items", Value::IntValue((i % 5) as i64))];
    let mut db = span(3, Some(2), "SELECT orders", SpanKind::Client, 2 * MS, root_duration / 4);
    db.attributes = vec![
        kv("db.system", s("postgresql")),
        kv("retry", Value::BoolValue(i.is_multiple_of(5))),
        kv("ratio", Value::DoubleValue(i as f64 / 100.0)),
    ];
    let mut groups = vec![
        ("frontend", if i.is_multiple_of(11) { vec![] } else { vec![root] }),
        ("checkout", vec![checkout]),
        ("db", vec![db]),
    ];
    if i.is_multiple_of(4) {
        let mut charge = span(4, Some(2), "charge", SpanKind::Client, 3 * MS, root_duration / 3);
        charge.status = status(i.is_multiple_of(8));
        groups.push(("payments", vec![charge]));
    }
    groups
        .into_iter()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(service, spans)| ResourceSpans {
            resource: Some(resource(service, i)),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        })
        .collect()
}

/// The dataset, one request per trace.
pub fn dataset() -> Vec<ExportTraceServiceRequest> {
    (0..TRACES).map(|i| ExportTraceServiceRequest { resource_spans: trace(i) }).collect()
}

/// The tenant the dataset is written for.
pub fn tenant() -> TenantId {
    "golden".parse().expect("valid tenant")
}

/// Writes the dataset: the first half flushed to long-term storage, the rest as written, so
/// that both paths of a backend answer.
pub async fn load(store: &DynStorage) {
    let requests = dataset();
    let half = requests.len() / 2;
    for (n, request) in requests.into_iter().enumerate() {
        if n == half {
            store.flush().await.expect("flush");
        }
        store.write(&tenant(), request.into()).await.expect("write dataset");
    }
}

struct Case {
    name: String,
    lines: Vec<String>,
    expected: String,
}

fn parse_cases(text: &str) -> (String, Vec<Case>) {
    let mut preamble = String::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut in_expected = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            cases.push(Case { name: name.trim().into(), lines: Vec::new(), expected: String::new() });
            in_expected = false;
        } else if let Some(case) = cases.last_mut() {
            if line == "---" && !in_expected {
                in_expected = true;
            } else if in_expected {
                case.expected.push_str(line);
                case.expected.push('\n');
            } else if !line.trim().is_empty() {
                case.lines.push(line.to_owned());
            }
        } else {
            preamble.push_str(line);
            preamble.push('\n');
        }
    }
    for case in &mut cases {
        let trimmed = case.expected.trim_end_matches('\n').len();
        case.expected.truncate(trimmed);
        case.expected.push('\n');
    }
    (preamble, cases)
}

fn offset(text: &str) -> u64 {
    BASE + crate::duration("range", text).expect("range offset in a golden case")
}

async fn run_case(store: &DynStorage, case: &Case) -> String {
    let mut traceql = None;
    let mut filters = Filters::default();
    let mut order = Order::Newest;
    let mut limit = 20;
    let mut pages = 1;
    let mut range = TimeRange { start: BASE, end: BASE + TRACES * 10 * SECOND + 60 * SECOND };
    let mut out = String::new();
    let fail = |e: crate::QueryError| format!("error: {e}\n");
    for line in &case.lines {
        let (key, value) = line.split_once(':').expect("`key: value` lines in a golden case");
        let value = value.trim();
        let applied: crate::Result<()> = (|| {
            match key.trim() {
                "q" => traceql = Some(clew_traceql::parse(value)?),
                "order" => order = value.parse()?,
                "limit" => limit = value.parse().expect("limit"),
                "pages" => pages = value.parse().expect("pages"),
                "range" => {
                    let (from, to) = value.split_once(' ').expect("range: FROM TO");
                    range = TimeRange { start: offset(from), end: offset(to) };
                }
                "filter" => {
                    let (k, v) = value.split_once('=').expect("filter: key=value");
                    match k {
                        "service" => filters.service = Some(v.into()),
                        "name" => filters.name = Some(v.into()),
                        "kind" => filters.kind = Some(crate::kind(v)?),
                        "status" => filters.status = Some(crate::status(v)?),
                        "minDuration" => filters.min_duration = Some(crate::duration(k, v)?),
                        "maxDuration" => filters.max_duration = Some(crate::duration(k, v)?),
                        "attr" => filters.attributes.push(crate::attribute_filter(v)?),
                        other => panic!("unknown filter {other} in golden case {}", case.name),
                    }
                }
                other => panic!("unknown key {other} in golden case {}", case.name),
            }
            Ok(())
        })();
        if let Err(e) = applied {
            return fail(e);
        }
    }
    let mut search = Search { query: filters.to_query(traceql), range, order, limit, spans_per_trace: 3, cursor: None };
    for page in 0..pages {
        if page > 0 {
            let _ = writeln!(out, "-- page {}", page + 1);
        }
        let result = match crate::search(&**store, &tenant(), &search, &Limits::default()).await {
            Ok(result) => result,
            Err(e) => return fail(e),
        };
        for t in &result.traces {
            let _ = write!(
                out,
                "{} root={}:{}{} start=+{}s duration={}ms spans={} errors={} services={} matched={}",
                t.trace_id,
                t.root_service,
                t.root_name,
                if t.root_missing { " (missing root)" } else { "" },
                (t.start_unix_nano - BASE) / SECOND,
                t.duration_nanos / MS,
                t.span_count,
                t.error_count,
                t.services.iter().map(|s| format!("{}:{}/{}", s.name, s.spans, s.errors)).collect::<Vec<_>>().join(","),
                t.matched_count,
            );
            let selected: Vec<String> =
                t.matched.iter().flat_map(|m| m.attributes.iter().map(|(k, v)| format!("{k}={v}"))).collect();
            if !selected.is_empty() {
                let _ = write!(out, " selected={}", selected.join(","));
            }
            out.push('\n');
        }
        match result.next_cursor {
            Some(cursor) => search.cursor = Some(cursor.parse().expect("cursor the server made")),
            None => {
                if page + 1 < pages {
                    out.push_str("-- no more pages\n");
                }
                break;
            }
        }
    }
    if out.is_empty() {
        out.push_str("(no traces)\n");
    }
    out
}

/// Runs every case of the file at `path` against `store` (loaded with [`load`]); panics with
/// the differences. With `CLEW_REGENERATE_GOLDEN=1`, rewrites the file instead.
pub async fn run(store: &DynStorage, path: &Path) {
    let text = std::fs::read_to_string(path).expect("read golden file");
    let (preamble, cases) = parse_cases(&text);
    assert!(!cases.is_empty(), "no cases in {}", path.display());
    let regenerate = std::env::var_os("CLEW_REGENERATE_GOLDEN").is_some();
    let mut rewritten = preamble;
    let mut failures = Vec::new();
    for case in &cases {
        let got = run_case(store, case).await;
        if got != case.expected {
            failures.push(format!("=== {}\nexpected:\n{}got:\n{}", case.name, case.expected, got));
        }
        let _ = writeln!(rewritten, "=== {}", case.name);
        for line in &case.lines {
            let _ = writeln!(rewritten, "{line}");
        }
        let _ = writeln!(rewritten, "---\n{got}");
    }
    if regenerate {
        std::fs::write(path, rewritten.trim_end().to_owned() + "\n").expect("rewrite golden file");
        return;
    }
    assert!(failures.is_empty(), "{} golden case(s) differ:\n{}", failures.len(), failures.join("\n"));
}
