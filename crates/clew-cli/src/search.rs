//! `clew search '<traceql>'`: runs a search through the HTTP API and prints the trace summaries
//! as a table.

use std::fmt::Write;

use anyhow::Context;
use serde::Deserialize;

use crate::waterfall::{count, fmt_duration};

#[derive(clap::Args)]
pub(crate) struct SearchArgs {
    /// A TraceQL query, e.g. '{ resource.service.name = "api" && status = error }'; all traces
    /// when absent.
    query: Option<String>,
    /// How far back to look (e.g. 15m, 1h, 24h).
    #[arg(long, default_value = "1h")]
    since: String,
    /// `newest` or `longest` first.
    #[arg(long, default_value = "newest")]
    order: String,
    /// Most traces to print.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    server: crate::api::Server,
    /// Print the API's JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    traces: Vec<Summary>,
    next_cursor: Option<String>,
    truncated: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    trace_id: String,
    root_service: String,
    root_name: String,
    root_missing: bool,
    start_unix_nano: String,
    duration_nanos: String,
    span_count: usize,
    error_count: usize,
    services: Vec<serde_json::Value>,
}

pub(crate) async fn run(args: SearchArgs) -> anyhow::Result<()> {
    let query = [
        ("q", args.query.clone().unwrap_or_default()),
        ("since", args.since.clone()),
        ("order", args.order.clone()),
        ("limit", args.limit.to_string()),
    ];
    let body = args.server.get("/api/v1/search", &query).await?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let page: Page = serde_json::from_str(&body).context("decode the search results")?;
    print!("{}", render(&page));
    Ok(())
}

fn render(page: &Page) -> String {
    let mut out = String::new();
    if page.traces.is_empty() {
        out.push_str("no traces found\n");
    } else {
        let _ = writeln!(
            out,
            "{:<32}  {:<24}  {:>10}  {:>6}  {:>6}  ROOT",
            "TRACE ID", "START (UTC)", "DURATION", "SPANS", "ERRORS"
        );
    }
    for t in &page.traces {
        let start = t.start_unix_nano.parse::<u64>().unwrap_or_default();
        let start = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(start));
        let root = if t.root_missing {
            format!("{}: {} (root span missing)", t.root_service, t.root_name)
        } else {
            format!("{}: {}", t.root_service, t.root_name)
        };
        let _ = writeln!(
            out,
            "{:<32}  {:<24}  {:>10}  {:>6}  {:>6}  {root}  [{}]",
            t.trace_id,
            start.to_string(),
            fmt_duration(t.duration_nanos.parse().unwrap_or_default()),
            t.span_count,
            t.error_count,
            count(t.services.len(), "service"),
        );
    }
    if let Some(why) = &page.truncated {
        let _ = writeln!(out, "(partial: {why})");
    } else if page.next_cursor.is_some() {
        let _ = writeln!(out, "(more traces match; raise --limit or narrow the query)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_print_one_row_each_with_the_root() {
        let page: Page = serde_json::from_value(serde_json::json!({
            "traces": [{
                "traceId": "0af7651916cd43dd8448eb211c80319c", "rootService": "api", "rootName": "GET /",
                "rootMissing": false, "startUnixNano": "1717200000000000000", "durationNanos": "1500000",
                "spanCount": 3, "errorCount": 1, "services": [{"name": "api"}, {"name": "db"}]
            }],
            "nextCursor": "n1.0af7651916cd43dd8448eb211c80319c"
        }))
        .unwrap();
        let text = render(&page);
        assert!(text.starts_with("TRACE ID"), "{text}");
        assert!(text.contains("0af7651916cd43dd8448eb211c80319c  2024-06-01T00:00:00.000Z"), "{text}");
        assert!(text.contains("1.50ms") && text.contains("api: GET /  [2 services]"), "{text}");
        assert!(text.contains("more traces match"), "{text}");
    }
}
