//! Recovery at startup: the segments on disk (rollup files rebuilt where missing), the WAL
//! replayed into the head after the checkpoint, torn tails cut.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use clew_model::{day_of, rows_from_batch, SpanBatch, TenantId};
use clew_rollup::{Builder, Observations, MINUTE_NANOS};
use clew_storage::{Result, StorageError};
use prost::Message;

use crate::head::Head;
use crate::metrics::EngineMetrics;
use crate::segment::Segment;
use crate::{io_err, rollup_file, segment, wal, Builders, EngineOptions};

pub(crate) struct Recovered {
    pub(crate) head: Head,
    pub(crate) builders: Builders,
    pub(crate) segments: Vec<Segment>,
    pub(crate) next_segment_id: u64,
    pub(crate) next_wal_seq: u64,
}

pub(crate) fn recover(options: &EngineOptions, metrics: &EngineMetrics) -> Result<Recovered> {
    let wal_dir = options.data_dir.join("wal");
    let segments_dir = options.data_dir.join("segments");
    for dir in [&wal_dir, &segments_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::internal(format!("create directory {}", dir.display()), e))?;
    }
    let mut segments = Vec::new();
    for path in segment::find_segment_files(&segments_dir).map_err(io_err("list segments"))? {
        match Segment::open(&path) {
            Ok(segment) => segments.push(segment),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Keep serving everything else; the file stays for inspection.
                tracing::error!(segment = %path.display(), error = %e, "segment is unreadable; setting it aside");
                let aside = path.with_extension("parquet.corrupt");
                std::fs::rename(&path, &aside).map_err(io_err("set aside a corrupt segment"))?;
            }
            Err(e) => return Err(StorageError::internal(format!("open segment {}", path.display()), e)),
        }
    }
    let next_segment_id = segments.iter().map(|s| s.meta.id).max().unwrap_or(0) + 1;

    // A compaction that finished writing replaces its inputs, even if it crashed before
    // deleting them.
    let replaced: Vec<u64> = segments.iter().flat_map(|s| s.meta.replaces.iter().copied()).collect();
    let (gone, kept): (Vec<_>, Vec<_>) = segments.into_iter().partition(|s| replaced.contains(&s.meta.id));
    for segment in gone {
        Segment::remove_files(&segment.path).map_err(io_err("remove compacted segment"))?;
    }

    // A flush whose segments are all present is complete even if the checkpoint was not yet
    // written; an incomplete one is undone, and its spans come back from the WAL.
    let mut checkpoint = wal::read_checkpoint(&wal_dir).map_err(io_err("read the WAL checkpoint"))?;
    let mut flushes: HashMap<u64, (u32, u32)> = HashMap::new();
    for tag in kept.iter().filter_map(|s| s.meta.flush).filter(|t| t.wal_upto > checkpoint) {
        let entry = flushes.entry(tag.wal_upto).or_insert((tag.segments, 0));
        entry.1 += 1;
    }
    let complete = |wal_upto: u64| flushes.get(&wal_upto).is_some_and(|(want, have)| want == have);
    let mut segments = Vec::new();
    for segment in kept {
        match segment.meta.flush {
            Some(tag) if tag.wal_upto > checkpoint && !complete(tag.wal_upto) => {
                tracing::warn!(segment = %segment.path.display(), "removing segment of an interrupted flush; the WAL has its spans");
                Segment::remove_files(&segment.path).map_err(io_err("remove segment of an interrupted flush"))?;
            }
            _ => segments.push(segment),
        }
    }
    if let Some(done) = flushes.keys().copied().filter(|&w| complete(w)).max() {
        checkpoint = checkpoint.max(done);
        wal::checkpoint(&wal_dir, checkpoint).map_err(io_err("write the WAL checkpoint"))?;
    }
    for segment in &mut segments {
        if rebuild_rollup(options, segment).map_err(io_err("rebuild a segment's rollup"))? {
            segment.rollup_bytes =
                segment::file_len(&rollup_file::path_of(&segment.path)).map_err(io_err("measure a rebuilt rollup"))?;
        }
    }

    let mut head = Head::default();
    let mut builders = Builders::new(&options.rollups);
    let mut bad_records = 0u64;
    let report = wal::replay(&wal_dir, |_, payload| {
        let Ok(record) = wal::WalRecord::decode(payload) else { return false };
        let decoded = record.tenant.parse::<TenantId>().ok().zip(SpanBatch::decode(record.request).ok());
        match decoded {
            Some((tenant, batch)) => {
                builders.add(&tenant, Observations::of_batch(&options.rollups, &batch));
                let rows = rows_from_batch(&batch);
                head.insert(&tenant, rows);
            }
            None => bad_records += 1,
        }
        true
    })
    .map_err(io_err("replay the WAL"))?;
    if bad_records > 0 {
        tracing::error!(records = bad_records, "wal records with a valid checksum did not decode; skipped");
    }
    metrics.recovered(report.records as u64, report.cut_bytes);
    tracing::info!(
        segments = segments.len(),
        wal_files = report.files,
        wal_records = report.records,
        head_spans = head.spans,
        cut_bytes = report.cut_bytes,
        "storage recovered"
    );
    Ok(Recovered { head, builders, segments, next_segment_id, next_wal_seq: report.last_seq.max(checkpoint) + 1 })
}

/// Writes the rollup of a segment stored before rollups existed (or whose rollup file was
/// deleted), from its rows alone; whether it had to.
fn rebuild_rollup(options: &EngineOptions, segment: &Segment) -> io::Result<bool> {
    let path = rollup_file::path_of(&segment.path);
    if path.exists() {
        return Ok(false);
    }
    tracing::info!(segment = %segment.path.display(), "computing the rollup of a segment written without one");
    let mut rows = Vec::new();
    for batch in segment.scan()? {
        rows.extend(batch?);
    }
    rollup_file::write(&path, &Builder::once(Arc::new(options.rollups.clone()), &rows))?;
    Ok(true)
}

/// The UTC day a rollup minute falls on.
pub(crate) fn day_of_minute(minute: u32) -> u32 {
    day_of(u64::from(minute) * MINUTE_NANOS)
}
