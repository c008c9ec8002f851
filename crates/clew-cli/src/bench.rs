//! `clew bench ingest`: runs the real server, drives it with `loadgen`, and measures sustained
//! durable ingest, memory, bytes per span on disk after compaction, and trace-by-ID latency.
//! `clew bench search`: times searches on a store `bench ingest` left behind.
//! `clew bench metrics`: times the service map and RED metrics over a day of "std" spans.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clew_storage::{SpanWriter, Storage, TraceReader};
use clew_store_local::{EngineOptions, LocalEngine};
use clew_testkit::{Profile, TestServer};

use crate::loadgen::{self, percentile, LoadgenArgs, Protocol, Rate};

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Sustained durable ingest, peak RSS, bytes per span after compaction, trace-by-ID latency.
    Ingest(IngestArgs),
    /// Search latency over a store of "std" spans (from `bench ingest --data-dir`).
    Search(SearchArgs),
    /// Service map and RED metrics latency over a day of "std" spans, and what rollups cost.
    Metrics(MetricsArgs),
}

#[derive(clap::Args)]
struct MetricsArgs {
    /// The store: filled with `--spans` spans spread over the last `--lookback` when empty,
    /// used as it is otherwise.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 10_000_000)]
    spans: u64,
    /// How far back the spans go and the queries look.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    lookback: Duration,
    /// Times each query runs (after one warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

#[derive(clap::Args)]
struct SearchArgs {
    /// The store to search, as `clew bench ingest --data-dir` left it.
    #[arg(long)]
    data_dir: PathBuf,
    /// Times each query runs (after one warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// How far back the searches look.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    lookback: Duration,
}

#[derive(clap::Args)]
struct IngestArgs {
    /// Spans to ingest.
    #[arg(long, default_value_t = 10_000_000)]
    spans: u64,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value = "std", value_parser = <Profile as std::str::FromStr>::from_str)]
    profile: Profile,
    /// Keep the store here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Trace-by-ID lookups to time after ingest.
    #[arg(long, default_value_t = 2000)]
    lookups: usize,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        What::Ingest(args) => ingest(args).await,
        What::Search(args) => search(args).await,
        What::Metrics(args) => metrics(args).await,
    }
}

/// Times `run` `runs` times after a warm-up; p50 and p99 in milliseconds.
async fn time<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    runs: usize,
    mut run: impl FnMut() -> F,
) -> anyhow::Result<(f64, f64, T)> {
    let mut last = run().await?;
    let mut latencies = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        last = run().await?;
        latencies.push(started.elapsed().as_micros() as u32);
    }
    latencies.sort_unstable();
    let ms = |q| f64::from(percentile(&latencies, q)) / 1000.0;
    Ok((ms(0.5), ms(0.99), last))
}

async fn metrics(args: MetricsArgs) -> anyhow::Result<()> {
    let mut registry = prometheus_client::registry::Registry::default();
    let options = EngineOptions { flush_interval: Duration::from_secs(3600), ..EngineOptions::new(&args.data_dir) };
    let engine = LocalEngine::open(options, &mut registry).await?;
    let tenant = clew_model::TenantId::default_tenant();
    let end = clew_query::now_nanos();
    let lookback = args.lookback.as_nanos() as u64;
    if engine.stats().segment_spans == 0 {
        // Whole traces ending at evenly spread times over the lookback, oldest first.
        let mut workload = clew_testkit::Workload::new(Profile::Std, 7);
        let requests = args.spans.div_ceil(Profile::Std.spans_per_request() as u64);
        let started = Instant::now();
        for i in 0..requests {
            let at = end - lookback + lookback / requests * i;
            let (request, _) = workload.request(at);
            engine.write(&tenant, request).await?;
        }
        engine.flush().await?;
        let written = started.elapsed();
        engine.compact().await?;
        println!(
            "wrote              {} spans over {} in {:.1} s ({:.0} spans/s in process, rollups included)",
            requests * Profile::Std.spans_per_request() as u64,
            humantime::format_duration(args.lookback),
            written.as_secs_f64(),
            (requests * Profile::Std.spans_per_request() as u64) as f64 / written.as_secs_f64()
        );
    }
    let stats = engine.stats();
    let rollup_bytes = dir_bytes(&args.data_dir.join("segments"), Some("rollup"));
    println!(
        "store              {} spans in {} segments, {:.1} MiB ({:.1} bytes/span), of which rollups {:.1} MiB ({:.2} bytes/span)",
        stats.segment_spans,
        stats.segments,
        stats.segment_bytes as f64 / 1048576.0,
        stats.segment_bytes as f64 / stats.segment_spans.max(1) as f64,
        rollup_bytes as f64 / 1048576.0,
        rollup_bytes as f64 / stats.segment_spans.max(1) as f64
    );
    let range = clew_query::TimeRange { start: end - lookback, end };
    let (p50, p99, map) =
        time(args.runs, || async { Ok(clew_query::service_map(&engine, &tenant, range, &[]).await?) }).await?;
    println!(
        "{:<48} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  ({} nodes, {} edges)",
        "service map",
        map.nodes.len(),
        map.edges.len()
    );
    let environment = vec![("deployment.environment.name".to_owned(), "production".to_owned())];
    let cases = [
        (
            "RED per service (120 points)",
            clew_query::RedRequest { group_by: vec!["service".into()], ..Default::default() },
        ),
        (
            "RED of one service per operation (120 points)",
            clew_query::RedRequest {
                service: Some("checkout".into()),
                group_by: vec!["operation".into()],
                ..Default::default()
            },
        ),
        (
            "RED of one service per route, server spans, env filter",
            clew_query::RedRequest {
                service: Some("checkout".into()),
                kinds: vec![2],
                filters: environment,
                group_by: vec!["http.route".into()],
                ..Default::default()
            },
        ),
        (
            "RED per status code, 1 min step (1440 points)",
            clew_query::RedRequest {
                step_nanos: Some(60_000_000_000),
                group_by: vec!["http.response.status_code".into()],
                ..Default::default()
            },
        ),
    ];
    for (label, request) in cases {
        let request = clew_query::RedRequest { range, ..request };
        let (p50, p99, result) =
            time(args.runs, || async { Ok(clew_query::red(&engine, &tenant, &request).await?) }).await?;
        let requests: f64 = result.series.iter().map(|s| s.total.requests).sum();
        println!(
            "{label:<48} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  ({} series, {requests:.0} spans)",
            result.series.len()
        );
    }
    engine.close().await?;
    Ok(())
}

/// The searches of the benchmark, over the "std" workload's services, operations and attributes.
const SEARCHES: [(&str, &str); 4] = [
    (
        "service + operation + duration",
        r#"{ resource.service.name = "checkout" && name = "GET /api/checkout/0/{id}" && duration > 100ms }"#,
    ),
    ("service + error status", r#"{ resource.service.name = "payment" && status = error }"#),
    ("rare attribute value", r#"{ span.enduser.id = "user-4242" }"#),
    ("structural", r#"{ resource.service.name = "frontend" } >> { span.http.response.status_code = 503 }"#),
];

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let mut registry = prometheus_client::registry::Registry::default();
    let options = EngineOptions { flush_interval: Duration::from_secs(3600), ..EngineOptions::new(&args.data_dir) };
    let engine = LocalEngine::open(options, &mut registry).await?;
    let stats = engine.stats();
    println!(
        "store              {} spans in {} segments (+{} in the head), {}",
        stats.segment_spans,
        stats.segments,
        stats.head_spans,
        args.data_dir.display()
    );
    let tenant = clew_model::TenantId::default_tenant();
    let end = clew_query::now_nanos();
    let range = clew_query::TimeRange { start: end.saturating_sub(args.lookback.as_nanos() as u64), end };
    for (label, traceql) in SEARCHES {
        let search = clew_query::Search {
            query: clew_traceql::parse(traceql)?,
            range,
            order: clew_query::Order::Newest,
            limit: 20,
            spans_per_trace: 3,
            cursor: None,
        };
        let mut latencies = Vec::with_capacity(args.runs);
        let mut found = (0, 0);
        for run in 0..=args.runs {
            let started = Instant::now();
            let result = clew_query::search(&engine, &tenant, &search, &clew_query::Limits::default()).await?;
            if run > 0 {
                latencies.push(started.elapsed().as_micros() as u32);
            }
            found = (result.traces.len(), result.candidates);
        }
        // The candidate scan alone, without loading and evaluating traces.
        let find = clew_query::plan(&search.query, range);
        let mut scans = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let started = Instant::now();
            engine.find(&tenant, &find).await?;
            scans.push(started.elapsed().as_micros() as u32);
        }
        latencies.sort_unstable();
        scans.sort_unstable();
        let ms = |sorted: &[u32], q| f64::from(percentile(sorted, q)) / 1000.0;
        println!(
            "{label:<32} p50 {:>8.2} ms  p99 {:>8.2} ms  (candidate scan p50 {:.2} ms; {} traces of {} candidates)  {traceql}",
            ms(&latencies, 0.5),
            ms(&latencies, 0.99),
            ms(&scans, 0.5),
            found.0,
            found.1
        );
    }
    engine.close().await?;
    Ok(())
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a process so far, in seconds (Linux clock ticks are 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Bytes of the files under `dir`, only those with `extension` if given.
fn dir_bytes(dir: &Path, extension: Option<&str>) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_bytes(&path, extension)
            } else if extension.is_none_or(|x| path.extension().is_some_and(|e| e == x)) {
                e.metadata().map_or(0, |m| m.len())
            } else {
                0
            }
        })
        .sum()
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("find the clew binary")?;
    let temp = tempfile::tempdir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
    std::fs::create_dir_all(&data_dir)?;
    let mut server = TestServer::start_in(&exe, &data_dir, &[]).map_err(anyhow::Error::msg)?;
    let pid = server.pid().context("server pid")?;
    eprintln!("bench: server pid {pid}, data in {}", data_dir.display());

    let cpu_before = cpu_seconds(pid);
    let endpoint = match args.protocol {
        Protocol::Grpc => format!("http://{}", server.otlp_grpc),
        Protocol::Http => format!("http://{}", server.otlp_http),
    };
    let report = loadgen::run(LoadgenArgs {
        endpoint,
        protocol: args.protocol,
        rate: Rate::Max,
        duration: Duration::from_secs(24 * 3600),
        spans: Some(args.spans),
        profile: args.profile,
        connections: args.connections,
        gzip: false,
        pregenerate: true,
        headers: Vec::new(),
    })
    .await?;
    if report.accepted_spans == 0 {
        bail!("nothing was accepted: {}\nserver log:\n{}", report, server.log());
    }
    let peak_rss_mib = proc_status_kib(pid, "VmHWM:").unwrap_or(0) / 1024;
    let server_cpu = cpu_seconds(pid) - cpu_before;

    let stopping = Instant::now();
    let exit = server.terminate();
    let shutdown = stopping.elapsed();
    if !exit.is_some_and(|s| s.success()) {
        bail!("server did not exit cleanly on SIGTERM ({exit:?}); log:\n{}", server.log());
    }

    let compacting = Instant::now();
    let mut registry = prometheus_client::registry::Registry::default();
    // Merge every day down as far as compaction goes, whatever the server left.
    let options = EngineOptions { compaction_min_segments: 2, ..EngineOptions::new(&data_dir) };
    let engine = LocalEngine::open(options, &mut registry).await?;
    let merges = engine.compact().await?;
    let stats = engine.stats();
    engine.close().await?;
    let compaction = compacting.elapsed();
    // Every acknowledged span must be stored, once; refused requests must leave nothing.
    if stats.segment_spans + stats.head_spans as u64 != report.accepted_spans {
        bail!(
            "the store holds {} spans but {} were acknowledged",
            stats.segment_spans + stats.head_spans as u64,
            report.accepted_spans
        );
    }
    let on_disk = dir_bytes(&data_dir, None);

    let starting = Instant::now();
    let server = TestServer::start_in(&exe, &data_dir, &[]).map_err(anyhow::Error::msg)?;
    let startup = starting.elapsed();
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(args.lookups);
    let step = (report.sample_ids.len() / args.lookups.max(1)).max(1);
    for id in report.sample_ids.iter().step_by(step).take(args.lookups) {
        let url = format!("{}/api/v1/traces/{id}", server.http_url());
        let started = Instant::now();
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        latencies.push(started.elapsed().as_micros() as u32);
        if !status.is_success() || body.len() < 100 {
            bail!("lookup of {id} answered {status}: {}", String::from_utf8_lossy(&body));
        }
    }
    latencies.sort_unstable();
    let ms = |q| f64::from(percentile(&latencies, q)) / 1000.0;

    println!("## clew bench ingest");
    println!("machine            {} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), memory());
    println!(
        "workload           {:?}, {} spans, {:?} with {} connections",
        args.profile, args.spans, args.protocol, args.connections
    );
    println!("{report}");
    println!(
        "server CPU         {server_cpu:.1} core-seconds while loading: {:.0} spans per core-second ({:.2} of {} cores busy)",
        report.accepted_spans as f64 / server_cpu.max(1e-9),
        server_cpu / report.elapsed.as_secs_f64().max(1e-9),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("peak server RSS    {peak_rss_mib} MiB");
    println!("shutdown (flush)   {:.1}s", shutdown.as_secs_f64());
    println!(
        "compaction         {merges} merges in {:.1}s -> {} segments, {} spans (every acknowledged span, once)",
        compaction.as_secs_f64(),
        stats.segments,
        stats.segment_spans
    );
    println!(
        "bytes per span     {:.1} (segments + trace indexes), {:.1} (whole data directory)",
        stats.segment_bytes as f64 / stats.segment_spans.max(1) as f64,
        on_disk as f64 / stats.segment_spans.max(1) as f64
    );
    println!("restart            {:.2}s to ready", startup.as_secs_f64());
    println!(
        "trace by ID        {} lookups over HTTP: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
    Ok(())
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(|| "unknown memory".into(), |kib| format!("{} GiB", kib / 1024 / 1024))
}
