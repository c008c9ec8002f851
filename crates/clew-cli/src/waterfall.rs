//! `clew trace <id>`: fetches a trace from the HTTP API and prints it as an indented waterfall.

use std::collections::HashMap;
use std::fmt::Write;

use anyhow::Context;
use clew_model::otlp::common::v1::any_value::Value;
use clew_model::otlp::trace::v1::{Span, TracesData};
use clew_model::{TraceId, SERVICE_NAME};

#[derive(clap::Args)]
pub(crate) struct TraceArgs {
    /// The trace ID: 32 hex characters.
    trace_id: String,
    #[command(flatten)]
    server: crate::api::Server,
    /// Print the OTLP JSON instead of the waterfall.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: TraceArgs) -> anyhow::Result<()> {
    let id: TraceId = args.trace_id.parse().with_context(|| format!("invalid trace ID {:?}", args.trace_id))?;
    let body = args.server.get(&format!("/api/v1/traces/{id}"), &[]).await?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let trace: TracesData = serde_json::from_str(&body).context("decode the trace")?;
    print!("{}", render(&trace, 40));
    Ok(())
}

struct Line<'a> {
    service: &'a str,
    span: &'a Span,
}

pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(crate) fn fmt_duration(nanos: u64) -> String {
    match nanos {
        n if n >= 1_000_000_000 => format!("{:.2}s", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n => format!("{:.1}µs", n as f64 / 1e3),
    }
}

/// The waterfall as text: one line per span, children under parents, with a time bar.
pub(crate) fn render(trace: &TracesData, width: usize) -> String {
    let mut lines = Vec::new();
    for resource_spans in &trace.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == SERVICE_NAME)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or("unknown_service");
        for scope_spans in &resource_spans.scope_spans {
            lines.extend(scope_spans.spans.iter().map(|span| Line { service, span }));
        }
    }
    let Some(start) = lines.iter().map(|l| l.span.start_time_unix_nano).min() else {
        return "empty trace\n".into();
    };
    let end = lines.iter().map(|l| l.span.end_time_unix_nano).max().unwrap_or(start);
    let total = (end - start).max(1);
    let ids: HashMap<&[u8], usize> = lines.iter().enumerate().map(|(i, l)| (l.span.span_id.as_slice(), i)).collect();
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        // Spans whose parent is not in the trace are shown as roots.
        children.entry(ids.get(line.span.parent_span_id.as_slice()).copied()).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| lines[i].span.start_time_unix_nano);
    }
    let services: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.service).collect();
    let trace_id = lines[0].span.trace_id.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let mut out = format!(
        "trace {trace_id}  {}, {}, {}\n",
        count(lines.len(), "span"),
        count(services.len(), "service"),
        fmt_duration(total)
    );
    let mut stack: Vec<(usize, usize)> = children.get(&None).into_iter().flatten().rev().map(|&i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let span = lines[i].span;
        let from = ((span.start_time_unix_nano - start) as u128 * width as u128 / total as u128) as usize;
        let len = ((span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano)) as u128 * width as u128
            / total as u128)
            .max(1) as usize;
        let from = from.min(width - 1);
        let bar: String = (0..width).map(|c| if c >= from && c < from + len { '█' } else { '·' }).collect();
        let error = match &span.status {
            Some(status) if status.code == 2 => format!("  ERROR {}", status.message),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:>10} {:>10} {bar} {}{} {}{error}",
            fmt_duration(span.start_time_unix_nano - start),
            fmt_duration(span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano)),
            "  ".repeat(depth),
            lines[i].service,
            span.name,
        );
        for &child in children.get(&Some(i)).into_iter().flatten().rev() {
            stack.push((child, depth + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_storage::conformance::every_field_request;

    #[test]
    fn children_are_indented_under_their_parents() {
        let request = every_field_request([7; 16], 1_000_000_000);
        let text = render(&TracesData { resource_spans: request.resource_spans }, 10);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(&format!("trace {}  3 spans, 1 service,", "07".repeat(16))), "{text}");
        assert!(lines[1].contains(" checkout GET /orders/1  ERROR upstream unavailable"), "{text}");
        assert!(lines[2].contains("   checkout GET /orders/2"), "{text}");
        assert!(lines[3].contains("     checkout GET /orders/3"), "{text}");
    }
}
