//! `clew bench ingest`: runs the real server, drives it with `loadgen`, and measures sustained
//! durable ingest, memory, bytes per span on disk after compaction, and trace-by-ID latency.
//! `clew bench search`: times searches on a store `bench ingest` left behind.
//! `clew bench metrics`: times the service map and RED metrics over a day of "std" spans.
//! `clew bench backends`: the same in-process workload against the embedded engine and
//! ClickHouse, side by side: write rate, bytes per span, trace by ID, search.
//! `clew bench stages`: nanoseconds per span of each ingest stage (see `stages`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clew_config::{Config, StorageBackend};
use clew_storage::{SpanWriter, Storage, TraceReader};
use clew_store_local::{EngineOptions, LocalEngine};
use clew_workload::{ClewProcess, Profile};

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
    /// The embedded engine and ClickHouse side by side, in process: spans/s written, bytes per
    /// span stored, trace-by-ID and search latency.
    Backends(BackendsArgs),
    /// What each stage of the ingest path costs, in nanoseconds per span.
    Stages(crate::stages::StagesArgs),
}

#[derive(clap::Args)]
struct BackendsArgs {
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// ClickHouse's HTTP interface; its database `clew_bench` is dropped and filled again.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Times each lookup and search runs (after one warm-up run).
    #[arg(long, default_value_t = 50)]
    runs: usize,
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
    /// TOML configuration file for the server (`clew serve --config`), e.g. to turn on tail
    /// sampling; with sampling on, only the spans the sampler kept must be stored.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        What::Ingest(args) => ingest(args).await,
        What::Search(args) => search(args).await,
        What::Metrics(args) => metrics(args).await,
        What::Backends(args) => backends(args).await,
        What::Stages(args) => crate::stages::run(args).await,
    }
}

async fn backends(args: BackendsArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut local = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    local.storage.flush_interval = Duration::from_secs(3600);
    let mut registry = prometheus_client::registry::Registry::default();
    bench_backend("local", &clew_server::open_span_store(&local, &mut registry).await?, &args).await?;
    let database = "clew_bench";
    let admin = reqwest::Client::new();
    admin
        .post(&args.clickhouse_url)
        .body(format!("DROP DATABASE IF EXISTS {database}"))
        .send()
        .await?
        .error_for_status()?;
    let mut clickhouse = Config::default();
    clickhouse.storage.backend = StorageBackend::Clickhouse;
    clickhouse.clickhouse.url = args.clickhouse_url.clone();
    clickhouse.clickhouse.database = database.into();
    bench_backend("clickhouse", &clew_server::open_span_store(&clickhouse, &mut registry).await?, &args).await
}

/// Writes `args.spans` "std" spans with `args.writers` writers, then measures what is stored
/// and how fast it reads.
async fn bench_backend(name: &str, store: &std::sync::Arc<dyn Storage>, args: &BackendsArgs) -> anyhow::Result<()> {
    let tenant = clew_model::TenantId::default_tenant();
    let per_writer = args.spans.div_ceil(Profile::Std.spans_per_request() as u64 * args.writers as u64);
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for seed in 0..args.writers as u64 {
        let (store, tenant) = (store.clone(), tenant.clone());
        writers.spawn(async move {
            let mut workload = clew_workload::Workload::new(Profile::Std, seed);
            let mut ids = Vec::new();
            for _ in 0..per_writer {
                let (request, traces) = workload.request(clew_query::now_nanos());
                store.write(&tenant, request.into()).await?;
                ids.extend(traces.into_iter().take(1));
            }
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(written) = writers.join_next().await {
        ids.extend(written??);
    }
    let elapsed = started.elapsed();
    let spans = per_writer * args.writers as u64 * Profile::Std.spans_per_request() as u64;
    store.flush().await?;
    let stored = store.days(&tenant).await?;
    let bytes: u64 = stored.iter().map(|d| d.bytes).sum();
    let stored_spans: u64 = stored.iter().map(|d| d.spans).sum();
    println!(
        "{name:<11} write      {} spans in {:.1} s: {:.0} spans/s ({} writers, acknowledged = durable)",
        thousands(spans),
        elapsed.as_secs_f64(),
        spans as f64 / elapsed.as_secs_f64(),
        args.writers
    );
    println!(
        "{name:<11} stored     {} spans, {:.1} MiB: {:.1} bytes/span",
        thousands(stored_spans),
        bytes as f64 / 1048576.0,
        bytes as f64 / stored_spans.max(1) as f64
    );
    let mut next = 0;
    let (p50, p99, _) = time(args.runs, || {
        next = (next + 7919) % ids.len().max(1);
        let (store, tenant, id) = (store.clone(), tenant.clone(), ids[next]);
        async move {
            let rows = store.trace(&tenant, id).await?;
            anyhow::ensure!(!rows.is_empty(), "trace {id} not found");
            Ok(())
        }
    })
    .await?;
    println!("{name:<11} {:<40} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms", "trace by ID");
    let end = clew_query::now_nanos();
    let range = clew_query::TimeRange { start: end - 3_600_000_000_000, end };
    for (label, traceql) in SEARCHES {
        let search = benchmark_search(traceql, range)?;
        let (p50, p99, found) = time(args.runs, || async {
            Ok(clew_query::search(&**store, &tenant, &search, &clew_query::Limits::default()).await?.traces.len())
        })
        .await?;
        println!("{name:<11} search: {label:<32} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  ({found} traces)");
    }
    store.close().await?;
    Ok(())
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
        let mut workload = clew_workload::Workload::new(Profile::Std, 7);
        let requests = args.spans.div_ceil(Profile::Std.spans_per_request() as u64);
        let started = Instant::now();
        for i in 0..requests {
            let at = end - lookback + lookback / requests * i;
            let (request, _) = workload.request(at);
            engine.write(&tenant, request.into()).await?;
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

/// One of [`SEARCHES`] as the search API runs it: newest first, 20 traces.
fn benchmark_search(traceql: &str, range: clew_query::TimeRange) -> anyhow::Result<clew_query::Search> {
    Ok(clew_query::Search {
        query: clew_traceql::parse(traceql)?,
        range,
        order: clew_query::Order::Newest,
        limit: 20,
        spans_per_trace: 3,
        cursor: None,
    })
}

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
        let search = benchmark_search(traceql, range)?;
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
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
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

/// How long the tail sampler may take, after loading, to decide and store what it holds back.
const SAMPLER_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
const SAMPLER_POLL: Duration = Duration::from_millis(500);
/// The `reason` labels of `clew_sampler_traces_total`, by decision.
const KEPT_REASONS: [&str; 4] = ["error", "slow", "rule", "probabilistic"];
const DROPPED_REASONS: [&str; 2] = ["unsampled", "capped"];

/// What the tail sampler decided, from the server's `/metrics` once it held nothing back.
struct Sampled {
    /// Spans kept (stored) and dropped, late ones included.
    kept_spans: u64,
    dropped_spans: u64,
    /// Traces by reason, in the order of [`KEPT_REASONS`] and [`DROPPED_REASONS`].
    kept_traces: [u64; KEPT_REASONS.len()],
    dropped_traces: [u64; DROPPED_REASONS.len()],
    /// From the end of loading until the sampler held nothing back.
    drained_in: Duration,
}

/// The value of the sample `name{labels}` in Prometheus text, `labels` exactly as the server
/// writes them between the braces (empty for a series without labels); `None` when absent.
fn prometheus_sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
}

/// A counter or gauge sample as a whole number, 0 when the series never got a value.
fn prometheus_count(text: &str, name: &str, labels: &str) -> u64 {
    prometheus_sample(text, name, labels).map_or(0, |v| v.max(0.0) as u64)
}

async fn scrape_metrics(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = client.get(url).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("read {url}"))?;
    if !status.is_success() {
        bail!("GET {url} answered {status}: {text}");
    }
    Ok(text)
}

/// When the server's tail sampler took part (it decided spans or holds some back), waits until
/// it has decided and stored every trace and returns what it decided; `None` without sampling.
async fn drain_sampler(client: &reqwest::Client, server: &ClewProcess) -> anyhow::Result<Option<Sampled>> {
    let url = format!("{}/metrics", server.http_url());
    let started = Instant::now();
    let mut text = scrape_metrics(client, &url).await?;
    let decided = |text: &str| {
        ["kept", "dropped"]
            .iter()
            .any(|d| prometheus_sample(text, "clew_sampler_spans_total", &format!("decision=\"{d}\"")).is_some())
    };
    let buffered = |text: &str| prometheus_count(text, "clew_sampler_buffered_traces", "");
    if !decided(&text) && buffered(&text) == 0 {
        return Ok(None);
    }
    while buffered(&text) > 0 {
        if started.elapsed() > SAMPLER_DRAIN_TIMEOUT {
            bail!(
                "the sampler still holds {} traces ({} bytes) {} after loading; server log:\n{}",
                buffered(&text),
                prometheus_count(&text, "clew_sampler_buffered_bytes", ""),
                humantime::format_duration(SAMPLER_DRAIN_TIMEOUT),
                server.log()
            );
        }
        tokio::time::sleep(SAMPLER_POLL).await;
        text = scrape_metrics(client, &url).await?;
    }
    let spans = |decision: &str| {
        let labels = format!("decision=\"{decision}\"");
        prometheus_count(&text, "clew_sampler_spans_total", &labels)
            + prometheus_count(&text, "clew_sampler_late_spans_total", &labels)
    };
    let traces = |decision: &str, reason: &str| {
        prometheus_count(&text, "clew_sampler_traces_total", &format!("decision=\"{decision}\",reason=\"{reason}\""))
    };
    Ok(Some(Sampled {
        kept_spans: spans("kept"),
        dropped_spans: spans("dropped"),
        kept_traces: KEPT_REASONS.map(|r| traces("kept", r)),
        dropped_traces: DROPPED_REASONS.map(|r| traces("dropped", r)),
        drained_in: started.elapsed(),
    }))
}

impl std::fmt::Display for Sampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.kept_spans + self.dropped_spans;
        let by_reason = |reasons: &[&str], counts: &[u64]| {
            reasons.iter().zip(counts).map(|(r, n)| format!("{r} {}", thousands(*n))).collect::<Vec<_>>().join(", ")
        };
        write!(
            f,
            "kept {} of {} spans ({:.1}%); traces kept: {}; dropped: {}; all decided {:.1}s after loading",
            thousands(self.kept_spans),
            thousands(total),
            self.kept_spans as f64 * 100.0 / total.max(1) as f64,
            by_reason(&KEPT_REASONS, &self.kept_traces),
            by_reason(&DROPPED_REASONS, &self.dropped_traces),
            self.drained_in.as_secs_f64()
        )
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The arguments `clew serve` gets besides the data directory and ports.
fn server_args(config: Option<&Path>) -> anyhow::Result<Vec<&str>> {
    match config {
        Some(path) => Ok(vec!["--config", path.to_str().context("the config path is not UTF-8")?]),
        None => Ok(Vec::new()),
    }
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("find the clew binary")?;
    let temp = tempfile::tempdir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
    std::fs::create_dir_all(&data_dir)?;
    let server_args = server_args(args.config.as_deref())?;
    let mut server = ClewProcess::start_in(&exe, &data_dir, &server_args).map_err(anyhow::Error::msg)?;
    let pid = server.pid().context("server pid")?;
    eprintln!("bench: server pid {pid}, data in {}", data_dir.display());

    let cpu_before = cpu_seconds(pid);
    let endpoint = match args.protocol {
        Protocol::Grpc => format!("http://{}", server.otlp_grpc),
        Protocol::Http | Protocol::HttpJson => format!("http://{}", server.otlp_http),
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
    let server_cpu = cpu_seconds(pid) - cpu_before;
    let client = reqwest::Client::new();
    // With sampling on, spans are stored only once their trace is decided: wait for that, so
    // SIGTERM finds nothing held back and the peak RSS includes the sampler's buffer.
    let sampled = drain_sampler(&client, &server).await?;
    let peak_rss_mib = proc_status_kib(pid, "VmHWM:").unwrap_or(0) / 1024;

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
    // Every acknowledged span must be stored, once; refused requests must leave nothing. With
    // sampling, every acknowledged span must have been decided, and every kept one stored, once.
    let stored = stats.segment_spans + stats.head_spans as u64;
    match &sampled {
        None if stored != report.accepted_spans => {
            bail!("the store holds {stored} spans but {} were acknowledged", report.accepted_spans);
        }
        Some(s) if s.kept_spans + s.dropped_spans != report.accepted_spans => bail!(
            "the sampler decided {} spans ({} kept, {} dropped) but {} were acknowledged",
            s.kept_spans + s.dropped_spans,
            s.kept_spans,
            s.dropped_spans,
            report.accepted_spans
        ),
        Some(s) if stored != s.kept_spans => bail!(
            "the store holds {stored} spans but the sampler kept {} ({} acknowledged, {} dropped)",
            s.kept_spans,
            report.accepted_spans,
            s.dropped_spans
        ),
        _ => {}
    }
    let on_disk = dir_bytes(&data_dir, None);

    let starting = Instant::now();
    let server = ClewProcess::start_in(&exe, &data_dir, &server_args).map_err(anyhow::Error::msg)?;
    let startup = starting.elapsed();
    let mut latencies = Vec::with_capacity(args.lookups);
    let mut lookups = 0;
    let step = (report.sample_ids.len() / args.lookups.max(1)).max(1);
    for id in report.sample_ids.iter().step_by(step).take(args.lookups) {
        let url = format!("{}/api/v1/traces/{id}", server.http_url());
        lookups += 1;
        let started = Instant::now();
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        let found = status.is_success() && body.len() >= 100;
        // Most sampled-out traces are gone: a miss is expected then, and not timed.
        let missing = status == reqwest::StatusCode::NOT_FOUND || (status.is_success() && !found);
        if sampled.is_some() && missing {
            continue;
        }
        if !found {
            bail!("lookup of {id} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        latencies.push(elapsed.as_micros() as u32);
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
    if let Some(sampled) = &sampled {
        println!("sampling           {sampled}");
    }
    println!("peak server RSS    {peak_rss_mib} MiB");
    println!("shutdown (flush)   {:.1}s", shutdown.as_secs_f64());
    println!(
        "compaction         {merges} merges in {:.1}s -> {} segments, {} spans (every {} span, once)",
        compaction.as_secs_f64(),
        stats.segments,
        stats.segment_spans,
        if sampled.is_some() { "kept" } else { "acknowledged" }
    );
    println!(
        "bytes per span     {:.1} (segments + trace indexes), {:.1} (whole data directory)",
        stats.segment_bytes as f64 / stats.segment_spans.max(1) as f64,
        on_disk as f64 / stats.segment_spans.max(1) as f64
    );
    println!("restart            {:.2}s to ready", startup.as_secs_f64());
    let found = if sampled.is_some() {
        format!("{lookups} lookups over HTTP, {} found (the rest sampled out)", latencies.len())
    } else {
        format!("{} lookups over HTTP", latencies.len())
    };
    println!("trace by ID        {found}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms(0.5), ms(0.99), ms(1.0));
    Ok(())
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(|| "unknown memory".into(), |kib| format!("{} GiB", kib / 1024 / 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# HELP clew_sampler_spans Held-back spans by decision (kept, dropped).
# TYPE clew_sampler_spans counter
clew_sampler_spans_total{decision=\"kept\"} 12345
clew_sampler_spans_total{decision=\"dropped\"} 99
clew_sampler_traces_total{decision=\"kept\",reason=\"error\"} 7
clew_sampler_buffered_traces 3
clew_sampler_buffered_traces_extra 5
# EOF
";

    #[test]
    fn prometheus_samples_by_name_and_labels() {
        assert_eq!(prometheus_sample(METRICS, "clew_sampler_spans_total", r#"decision="kept""#), Some(12345.0));
        assert_eq!(prometheus_count(METRICS, "clew_sampler_spans_total", r#"decision="dropped""#), 99);
        assert_eq!(prometheus_count(METRICS, "clew_sampler_traces_total", r#"decision="kept",reason="error""#), 7);
        assert_eq!(prometheus_sample(METRICS, "clew_sampler_traces_total", r#"decision="kept""#), None);
        assert_eq!(prometheus_count(METRICS, "clew_sampler_late_spans_total", r#"decision="kept""#), 0);
        assert_eq!(prometheus_count(METRICS, "clew_sampler_buffered_traces", ""), 3);
        assert_eq!(prometheus_sample(METRICS, "clew_sampler_spans", ""), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
