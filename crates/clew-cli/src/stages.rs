//! `clew bench stages`: what each stage of the ingest path costs per span, in process, on the
//! "std" workload: the nanoseconds-per-span budget of `BENCHMARKS.md`.
//!
//! Stages that are plain functions (decode, validation and pipeline, flattening to rows,
//! rollups) are timed on one thread. The embedded engine's own work (the WAL record and its
//! write, the head insert, with the flattening and rollups it does), its flush to Parquet and
//! compaction are measured as the process's CPU time (user + system, every thread) while each
//! runs, since they use threads of their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clew_model::{rows_from_batch, SpanBatch, TenantId};
use clew_pipeline::PipelineSettings;
use clew_rollup::{Builder, BuilderOptions, Observations, Rollup};
use clew_storage::{SpanWriter, Storage};
use clew_store_local::{EngineOptions, LocalEngine};
use clew_workload::{Profile, Workload};
use prost::Message;

#[derive(clap::Args)]
pub(crate) struct StagesArgs {
    /// Spans to push through every stage ("std" workload, 1,000 per request).
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Head flushes the spans are written in: the segments compaction then merges.
    #[arg(long, default_value_t = 4)]
    flushes: usize,
}

/// One line of the budget.
struct Line {
    stage: &'static str,
    nanos_per_span: f64,
    note: String,
}

pub(crate) async fn run(args: StagesArgs) -> anyhow::Result<()> {
    let per_request = Profile::Std.spans_per_request() as u64;
    let requests = args.spans.div_ceil(per_request).max(args.flushes as u64);
    let mut workload = Workload::new(Profile::Std, 11);
    let now = clew_query::now_nanos();
    let encoded: Vec<Bytes> = (0..requests).map(|_| Bytes::from(workload.request(now).0.encode_to_vec())).collect();
    let spans = requests * per_request;
    let wire: usize = encoded.iter().map(Bytes::len).sum();
    let mut lines = Vec::new();
    let per_span = |elapsed: Duration| elapsed.as_nanos() as f64 / spans as f64;

    // Each request is decoded, passed through a stage and dropped, as the server does: a stage
    // is timed alone, on memory the allocator reuses.
    let decode = |bytes: &Bytes| SpanBatch::decode(bytes.clone());
    let timed = |stage: &mut dyn FnMut(&SpanBatch)| -> anyhow::Result<f64> {
        let mut spent = Duration::ZERO;
        for bytes in &encoded {
            let batch = decode(bytes)?;
            let started = Instant::now();
            stage(&batch);
            spent += started.elapsed();
        }
        Ok(spent.as_nanos() as f64 / spans as f64)
    };
    let started = Instant::now();
    for bytes in &encoded {
        std::hint::black_box(decode(bytes)?);
    }
    let decoding = per_span(started.elapsed());
    let note =
        format!("{:.0} bytes per span as OTLP protobuf; checked and indexed in place", wire as f64 / spans as f64);
    lines.push(Line { stage: "decode (OTLP protobuf)", nanos_per_span: decoding, note });

    let tenant = TenantId::default_tenant();
    for (stage, settings, note) in [
        ("validate + pipeline, nothing configured", nothing_configured(), "no rule, no limit can change a span"),
        (
            "validate + pipeline, default rules",
            PipelineSettings::default(),
            "health-check drop rule, national-ID redaction, limits, per-trace count; nothing matches",
        ),
    ] {
        let pipeline = settings.build()?;
        let mut changed = 0;
        let nanos_per_span = timed(&mut |batch| {
            let rejections = clew_ingest::validate(batch);
            let applied = pipeline.apply(tenant.as_str(), batch.clone(), rejections.indices());
            changed += usize::from(applied.map_or(true, |(out, _)| out.bytes() != batch.bytes()));
        })?;
        anyhow::ensure!(changed == 0, "the pipeline changed {changed} std requests");
        lines.push(Line { stage, nanos_per_span, note: note.into() });
    }

    let nanos_per_span = timed(&mut |batch| drop(std::hint::black_box(rows_from_batch(batch))))?;
    let note = "rows for the head: attributes, events and links copied once per request".into();
    lines.push(Line { stage: "flatten to head rows", nanos_per_span, note });

    let options = Arc::new(BuilderOptions::default());
    let mut builder = Builder::new(options.clone());
    let mut rollup = Rollup::new(options.dimensions.clone());
    let nanos_per_span =
        timed(&mut |batch| builder.add_observed(Observations::of_batch(&options, batch), Instant::now(), &mut rollup))?;
    let note = format!("{} aggregates; calls paired across requests", rollup.entries.len());
    lines.push(Line { stage: "rollups (service map, RED)", nanos_per_span, note });

    lines.extend(engine_stages(&encoded, spans, decoding, args.flushes).await?);

    println!("## clew bench stages: {spans} \"std\" spans, {requests} requests, in process\n");
    println!("| stage | ns per span | |");
    println!("|---|---:|---|");
    for line in lines {
        println!("| {} | {:.0} | {} |", line.stage, line.nanos_per_span, line.note);
    }
    Ok(())
}

/// Settings under which no stage can change a span: what a stage that is off costs.
fn nothing_configured() -> PipelineSettings {
    let mut settings =
        PipelineSettings { drop_health_checks: false, redact_builtins: Vec::new(), ..Default::default() };
    settings.limits.max_spans_per_trace = usize::MAX;
    settings.limits.max_attributes = usize::MAX;
    settings.limits.max_attribute_value_bytes = usize::MAX;
    settings.limits.max_events = usize::MAX;
    settings.limits.max_links = usize::MAX;
    settings
}

/// The embedded engine's write, flush and compaction, by CPU time of the process; the write
/// less `decoding` (ns per span), since its requests are decoded on the way in.
async fn engine_stages(encoded: &[Bytes], spans: u64, decoding: f64, flushes: usize) -> anyhow::Result<Vec<Line>> {
    let dir = tempfile::tempdir()?;
    let mut registry = prometheus_client::registry::Registry::default();
    // Nothing in the background: no timed flush, no flush or refusal for size, no compaction
    // until it is asked for.
    let quiet = |min_segments| EngineOptions {
        flush_interval: Duration::from_secs(3600),
        head_flush_bytes: u64::MAX,
        head_max_bytes: u64::MAX,
        wal_max_pending_bytes: u64::MAX,
        compaction_min_segments: min_segments,
        ..EngineOptions::new(dir.path())
    };
    let engine = Arc::new(LocalEngine::open(quiet(usize::MAX), &mut registry).await?);
    let tenant = TenantId::default_tenant();
    let cpu = || crate::bench::cpu_seconds(std::process::id());
    let per_span = |seconds: f64| seconds * 1e9 / spans as f64;
    let (mut write, mut flush) = (0.0, 0.0);
    let chunk = encoded.len().div_ceil(flushes);
    for part in encoded.chunks(chunk) {
        let before = cpu();
        // As many writers as the bench's connections: requests share the WAL's fsyncs.
        let mut writers = tokio::task::JoinSet::new();
        for share in part.chunks(part.len().div_ceil(4)).map(<[Bytes]>::to_vec) {
            let (engine, tenant) = (engine.clone(), tenant.clone());
            writers.spawn(async move {
                for bytes in share {
                    engine.write(&tenant, SpanBatch::decode(bytes)?).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = writers.join_next().await {
            done??;
        }
        write += cpu() - before;
        let before = cpu();
        engine.flush().await?;
        flush += cpu() - before;
    }
    let flushed = engine.stats().segments;
    engine.close().await?;
    drop(engine);
    // Opening starts compaction in the background; `compact` waits for it and finishes.
    let before = cpu();
    let engine = LocalEngine::open(quiet(2), &mut prometheus_client::registry::Registry::default()).await?;
    engine.compact().await?;
    let compaction = cpu() - before;
    let stats = engine.stats();
    engine.close().await?;
    anyhow::ensure!(stats.segment_spans == spans, "the store holds {} of {spans} spans", stats.segment_spans);
    Ok(vec![
        Line {
            stage: "engine write: WAL + head insert (flatten and rollups included)",
            nanos_per_span: per_span(write) - decoding,
            note: "CPU of the process; WAL record from the bytes received, group commit with fdatasync".into(),
        },
        Line {
            stage: "flush the head to Parquet",
            nanos_per_span: per_span(flush),
            note: format!("{flushes} flushes; segments, trace indexes and rollup files"),
        },
        Line {
            stage: "compaction",
            nanos_per_span: per_span(compaction),
            note: format!(
                "{flushed} segments merged into {}; paid again each time a span's segment is merged",
                stats.segments
            ),
        },
    ])
}
