//! `clew loadgen`: synthetic OTLP traffic against any OTLP endpoint (Clew or another backend),
//! reporting accepted spans per second, refused and failed requests, and export latency.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes};
use clew_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
use clew_model::otlp::trace::v1::TracesData;
use clew_model::TraceId;
use clew_workload::{Profile, Workload};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
}

/// Spans per second, or as fast as the endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    Max,
    PerSecond(f64),
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Self::Max);
        }
        match s.replace('_', "").parse::<f64>() {
            Ok(rate) if rate > 0.0 => Ok(Self::PerSecond(rate)),
            _ => Err(format!("{s:?} is not a rate: give spans per second (e.g. 50000) or max")),
        }
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct LoadgenArgs {
    /// OTLP endpoint: for grpc `http://host:4317`; for http the base URL (`/v1/traces` is added
    /// when the URL has no path).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub(crate) endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    pub(crate) protocol: Protocol,
    /// Spans per second across all connections, or `max`.
    #[arg(long, default_value = "max")]
    pub(crate) rate: Rate,
    /// How long to send, e.g. 30s or 5m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Stop after this many spans, whichever comes first.
    #[arg(long)]
    pub(crate) spans: Option<u64>,
    /// Workload shape: std (DESIGN.md's standard), small or wide.
    #[arg(long, default_value = "std", value_parser = Profile::from_str)]
    pub(crate) profile: Profile,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Compress requests with gzip.
    #[arg(long)]
    pub(crate) gzip: bool,
    /// Make every request before starting the clock (needs --spans; holds ~500 bytes per span
    /// in memory), so the run measures the endpoint rather than the generator.
    #[arg(long)]
    pub(crate) pregenerate: bool,
    /// Extra request header or gRPC metadata, `name=value` (repeatable), e.g. for tokens.
    #[arg(long = "header", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .ok_or_else(|| format!("{s:?} is not name=value"))
}

/// What a run achieved.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) elapsed: Duration,
    pub(crate) accepted_spans: u64,
    pub(crate) rejected_spans: u64,
    pub(crate) ok_requests: u64,
    pub(crate) refused_requests: u64,
    pub(crate) failed_requests: u64,
    pub(crate) first_error: Option<String>,
    /// Export call latencies in microseconds, sorted.
    latencies: Vec<u32>,
    /// A few trace IDs per request that were accepted, for lookups afterwards.
    pub(crate) sample_ids: Vec<TraceId>,
}

impl Report {
    pub(crate) fn spans_per_second(&self) -> f64 {
        self.accepted_spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn latency_ms(&self, quantile: f64) -> f64 {
        percentile(&self.latencies, quantile) as f64 / 1000.0
    }

    fn merge(&mut self, other: Report) {
        self.accepted_spans += other.accepted_spans;
        self.rejected_spans += other.rejected_spans;
        self.ok_requests += other.ok_requests;
        self.refused_requests += other.refused_requests;
        self.failed_requests += other.failed_requests;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latencies.extend(other.latencies);
        self.sample_ids.extend(other.sample_ids);
    }
}

pub(crate) fn percentile(sorted: &[u32], quantile: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "elapsed            {:.1}s", self.elapsed.as_secs_f64())?;
        writeln!(f, "accepted spans/s   {:.0}", self.spans_per_second())?;
        writeln!(
            f,
            "accepted spans     {} (rejected by partial success: {})",
            self.accepted_spans, self.rejected_spans
        )?;
        writeln!(
            f,
            "requests           ok {}, refused and sent again (429/503/RESOURCE_EXHAUSTED/UNAVAILABLE) {}, failed {}",
            self.ok_requests, self.refused_requests, self.failed_requests
        )?;
        write!(
            f,
            "export latency     p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.latency_ms(0.5),
            self.latency_ms(0.9),
            self.latency_ms(0.99),
            self.latency_ms(1.0)
        )?;
        if let Some(error) = &self.first_error {
            write!(f, "\nfirst error        {error}")?;
        }
        Ok(())
    }
}

enum Outcome {
    Accepted { rejected: u64 },
    Refused(String),
    Failed(String),
}

/// One export request, encoded (and for HTTP gzipped when asked) before it is timed, with
/// the trace IDs it carries.
pub(crate) struct Prepared {
    body: Bytes,
    spans: u64,
    ids: Vec<TraceId>,
}

impl Prepared {
    fn new(workload: &mut Workload, protocol: Protocol, gzip: bool) -> Self {
        let (request, ids) = workload.request(clew_query::now_nanos());
        let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len() as u64).sum();
        let mut body = match protocol {
            Protocol::HttpJson => {
                let mut traces = TracesData { resource_spans: request.resource_spans };
                clew_model::otlp_json::encode_traces(&mut traces).unwrap_or_default()
            }
            Protocol::Grpc | Protocol::Http => request.encode_to_vec(),
        };
        // gRPC compresses in the transport; OTLP/HTTP sends the gzip body as it is.
        if gzip && protocol != Protocol::Grpc {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = encoder.write_all(&body);
            body = encoder.finish().unwrap_or_default();
        }
        Self { body: Bytes::from(body), spans, ids }
    }
}

/// Sends request bodies that are already protobuf-encoded over gRPC.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;

struct ResponseDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        ExportTraceServiceResponse::decode(src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// How long a worker waits before sending a refused request again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type Metadata =
    Vec<(tonic::metadata::MetadataKey<tonic::metadata::Ascii>, tonic::metadata::MetadataValue<tonic::metadata::Ascii>)>;

enum Client {
    Grpc(tonic::client::Grpc<Channel>, Metadata),
    Http { client: reqwest::Client, url: String, headers: Vec<(String, String)>, gzip: bool, json: bool },
}

impl Client {
    async fn connect(args: &LoadgenArgs) -> anyhow::Result<Self> {
        match args.protocol {
            Protocol::Grpc => {
                let channel = Channel::from_shared(args.endpoint.clone())
                    .with_context(|| format!("invalid gRPC endpoint {:?}", args.endpoint))?
                    .connect()
                    .await
                    .with_context(|| format!("connect to {}", args.endpoint))?;
                let mut client = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
                if args.gzip {
                    client =
                        client.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip);
                }
                let mut metadata = Vec::new();
                for (k, v) in &args.headers {
                    metadata.push((
                        k.parse().with_context(|| format!("metadata name {k:?}"))?,
                        v.parse().with_context(|| format!("metadata value for {k}"))?,
                    ));
                }
                Ok(Self::Grpc(client, metadata))
            }
            Protocol::Http | Protocol::HttpJson => {
                let mut url =
                    reqwest::Url::parse(&args.endpoint).with_context(|| format!("invalid URL {:?}", args.endpoint))?;
                if url.path() == "/" {
                    url.set_path("/v1/traces");
                }
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
                let json = args.protocol == Protocol::HttpJson;
                Ok(Self::Http { client, url: url.to_string(), headers: args.headers.clone(), gzip: args.gzip, json })
            }
        }
    }

    async fn export(&mut self, body: Bytes) -> Outcome {
        match self {
            Self::Grpc(client, metadata) => {
                let mut request = tonic::Request::new(body);
                for (k, v) in metadata.iter() {
                    request.metadata_mut().insert(k.clone(), v.clone());
                }
                let sent = match client.ready().await {
                    Ok(()) => client.unary(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec).await,
                    Err(e) => return Outcome::Failed(format!("connection not ready: {e}")),
                };
                match sent {
                    Ok(response) => accepted(response.into_inner()),
                    Err(status) => match status.code() {
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => {
                            Outcome::Refused(format!("{:?}: {}", status.code(), status.message()))
                        }
                        code => Outcome::Failed(format!("{code:?}: {}", status.message())),
                    },
                }
            }
            Self::Http { client, url, headers, gzip, json } => {
                let content_type = if *json { "application/json" } else { "application/x-protobuf" };
                let mut builder = client.post(url.as_str()).header("content-type", content_type);
                if *gzip {
                    builder = builder.header("content-encoding", "gzip");
                }
                for (k, v) in headers.iter() {
                    builder = builder.header(k.as_str(), v.as_str());
                }
                let response = match builder.body(body).send().await {
                    Ok(response) => response,
                    Err(e) => return Outcome::Failed(format!("{e}")),
                };
                let status = response.status();
                let bytes = response.bytes().await.unwrap_or_default();
                if status.is_success() {
                    let response = if *json {
                        serde_json::from_slice(&bytes).unwrap_or_default()
                    } else {
                        ExportTraceServiceResponse::decode(bytes).unwrap_or_default()
                    };
                    accepted(response)
                } else if status.as_u16() == 429 || status.as_u16() == 503 {
                    Outcome::Refused(format!("HTTP {status}"))
                } else {
                    Outcome::Failed(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)))
                }
            }
        }
    }
}

fn accepted(response: ExportTraceServiceResponse) -> Outcome {
    Outcome::Accepted { rejected: response.partial_success.map_or(0, |p| p.rejected_spans.max(0) as u64) }
}

/// Where a worker's requests come from.
#[derive(Clone)]
enum Source {
    /// Made as they are sent, until the span budget (shared by all workers) is spent.
    Live(Arc<AtomicI64>),
    /// Made before the clock started; workers take the next one until none is left.
    Pool(Arc<Vec<Prepared>>, Arc<AtomicUsize>),
}

async fn worker(args: LoadgenArgs, index: usize, deadline: Instant, source: Source) -> anyhow::Result<Report> {
    let mut client = Client::connect(&args).await?;
    let mut workload = Workload::new(args.profile, 0x5eed + index as u64 * 7919 + clew_query::now_nanos());
    let per_request = args.profile.spans_per_request() as f64;
    let interval = match args.rate {
        Rate::Max => None,
        Rate::PerSecond(rate) => Some(Duration::from_secs_f64(per_request * args.connections as f64 / rate)),
    };
    let mut report = Report::default();
    let mut next = Instant::now();
    while Instant::now() < deadline {
        let live;
        let prepared = match &source {
            Source::Live(budget) => {
                if budget.fetch_sub(per_request as i64, Ordering::Relaxed) <= 0 {
                    break;
                }
                live = Prepared::new(&mut workload, args.protocol, args.gzip);
                &live
            }
            Source::Pool(pool, taken) => match pool.get(taken.fetch_add(1, Ordering::Relaxed)) {
                Some(prepared) => prepared,
                None => break,
            },
        };
        if let Some(interval) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
        }
        // A refused request is sent again after a pause, as OTLP exporters do, until the run
        // ends; each refusal is counted.
        loop {
            let sent = Instant::now();
            let outcome = client.export(prepared.body.clone()).await;
            report.latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
            match outcome {
                Outcome::Accepted { rejected } => {
                    report.ok_requests += 1;
                    report.rejected_spans += rejected;
                    report.accepted_spans += prepared.spans.saturating_sub(rejected);
                    report.sample_ids.extend(prepared.ids.iter().take(2));
                }
                Outcome::Refused(e) => {
                    report.refused_requests += 1;
                    report.first_error.get_or_insert(e);
                    tokio::time::sleep(RETRY_PAUSE).await;
                    if Instant::now() < deadline {
                        continue;
                    }
                }
                Outcome::Failed(e) => {
                    report.failed_requests += 1;
                    report.first_error.get_or_insert(e);
                }
            }
            break;
        }
    }
    Ok(report)
}

/// Makes every request of a run up front, on every core, so that sending measures the
/// endpoint and not the generator.
fn pregenerate(args: &LoadgenArgs, spans: u64) -> Vec<Prepared> {
    let per_request = args.profile.spans_per_request() as u64;
    let requests = spans.div_ceil(per_request) as usize;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let pool: Vec<Prepared> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = requests / threads + usize::from(t < requests % threads);
                scope.spawn(move || {
                    let mut workload =
                        Workload::new(args.profile, 0xbe7c4 + t as u64 * 104_729 + clew_query::now_nanos());
                    (0..count).map(|_| Prepared::new(&mut workload, args.protocol, args.gzip)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    let bytes: usize = pool.iter().map(|p| p.body.len()).sum();
    eprintln!(
        "loadgen: made {} requests ({} MiB) in {:.1}s before starting the clock",
        pool.len(),
        bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    pool
}

pub(crate) async fn run(args: LoadgenArgs) -> anyhow::Result<Report> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let source = match (args.pregenerate, args.spans) {
        (true, Some(spans)) => {
            let job = args.clone();
            let pool = tokio::task::spawn_blocking(move || pregenerate(&job, spans)).await?;
            Source::Pool(Arc::new(pool), Arc::new(AtomicUsize::new(0)))
        }
        (true, None) => bail!("--pregenerate needs --spans: how many to make"),
        (false, spans) => {
            Source::Live(Arc::new(AtomicI64::new(spans.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX)))))
        }
    };
    let started = Instant::now();
    let deadline = started + args.duration;
    let workers: Vec<_> =
        (0..args.connections).map(|i| tokio::spawn(worker(args.clone(), i, deadline, source.clone()))).collect();
    let mut report = Report::default();
    for worker in workers {
        report.merge(worker.await.context("loadgen worker panicked")??);
    }
    report.elapsed = started.elapsed();
    report.latencies.sort_unstable();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("50_000".parse::<Rate>().unwrap(), Rate::PerSecond(50_000.0));
        assert!("-1".parse::<Rate>().is_err());
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!((percentile(&sorted, 0.5), percentile(&sorted, 0.99), percentile(&sorted, 1.0)), (50, 99, 100));
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
