//! Rollup files: the per-minute aggregates of one segment's spans (`<id>.rollup`, Parquet),
//! written with the segment and deleted with it. See the crate README for the columns.
//!
//! Each file also holds the same aggregates summed over 15 and 60 minutes, so that a query over
//! days reads an hour's aggregates once instead of sixty times: a query uses, for every minute,
//! the coarsest block holding it that lies within its range and within one of its steps.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Float64Builder, Int32Builder, StringBuilder, UInt32Builder, UInt8Builder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Float64Array, Int32Array, RecordBatch, StringArray, UInt32Array, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use clew_rollup::{Family, Key, Latency, Rollup, RollupQuery, Stats};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;

const FORMAT_VERSION: u32 = 1;
/// The resolutions aggregates are kept at, in minutes; each divides the next.
const RESOLUTIONS: [u32; 3] = [1, 15, 60];
const ROW_GROUP_ROWS: usize = 65_536;
const KEY_VERSION: &str = "clew.rollup.format_version";
/// Dimension columns are named after their attribute with this prefix.
const DIM_PREFIX: &str = "dim:";

/// Where the rollup of segment file `segment` lives.
pub(crate) fn path_of(segment: &Path) -> PathBuf {
    segment.with_extension("rollup")
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rollup {}: {why}", path.display()))
}

/// Writes `rollup` to `path`, complete and synced before it appears under that name.
pub(crate) fn write(path: &Path, rollup: &Rollup) -> io::Result<()> {
    let mut fields = vec![
        Field::new("minutes", DataType::UInt32, false),
        Field::new("minute", DataType::UInt32, false),
        Field::new("family", DataType::UInt8, false),
        Field::new("service", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Int32, false),
    ];
    fields.extend(rollup.dimensions.iter().map(|d| Field::new(format!("{DIM_PREFIX}{d}"), DataType::Utf8, true)));
    fields.extend([
        Field::new("count", DataType::Float64, false),
        Field::new("errors", DataType::Float64, false),
        Field::new("duration_sum", DataType::Float64, false),
        Field::new("latency", DataType::Binary, false),
    ]);
    let schema = Arc::new(Schema::new(fields));
    let mut coarse: Vec<(u32, Rollup)> = Vec::new();
    for &resolution in &RESOLUTIONS[1..] {
        let mut blocks = Rollup::new(rollup.dimensions.clone());
        for (key, stats) in &rollup.entries {
            blocks.merge_entry(Key { minute: key.minute - key.minute % resolution, ..key.clone() }, stats);
        }
        coarse.push((resolution, blocks));
    }
    let mut entries: Vec<(u32, &Key, &Stats)> = rollup.entries.iter().map(|(k, s)| (1, k, s)).collect();
    for (resolution, blocks) in &coarse {
        entries.extend(blocks.entries.iter().map(|(k, s)| (*resolution, k, s)));
    }
    entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    let mut minutes = UInt32Builder::new();
    let mut minute = UInt32Builder::new();
    let mut family = UInt8Builder::new();
    let (mut service, mut name) = (StringBuilder::new(), StringBuilder::new());
    let mut kind = Int32Builder::new();
    let mut dims: Vec<StringBuilder> = rollup.dimensions.iter().map(|_| StringBuilder::new()).collect();
    let (mut count, mut errors, mut sum) = (Float64Builder::new(), Float64Builder::new(), Float64Builder::new());
    let mut latency = BinaryBuilder::new();
    for (resolution, key, stats) in entries {
        minutes.append_value(resolution);
        minute.append_value(key.minute);
        family.append_value(key.family.code());
        service.append_value(&key.service);
        name.append_value(&key.name);
        kind.append_value(key.kind);
        for (column, value) in dims.iter_mut().zip(&key.dims) {
            column.append_option(value.as_deref());
        }
        count.append_value(stats.count);
        errors.append_value(stats.errors);
        sum.append_value(stats.duration_sum);
        latency.append_value(stats.latency.encode());
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(minutes.finish()),
        Arc::new(minute.finish()),
        Arc::new(family.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
    ];
    columns.extend(dims.iter_mut().map(|d| Arc::new(d.finish()) as ArrayRef));
    columns.extend([
        Arc::new(count.finish()) as ArrayRef,
        Arc::new(errors.finish()),
        Arc::new(sum.finish()),
        Arc::new(latency.finish()),
    ]);
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(io::Error::other)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_key_value_metadata(Some(vec![KeyValue::new(KEY_VERSION.into(), FORMAT_VERSION.to_string())]))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let tmp = path.with_extension("rollup.tmp");
    let mut writer = ArrowWriter::try_new(File::create(&tmp)?, schema, Some(properties)).map_err(io::Error::other)?;
    writer.write(&batch).map_err(io::Error::other)?;
    writer.into_inner().map_err(io::Error::other)?.sync_all()?;
    fs::rename(&tmp, path)
}

/// Every aggregate in `path`, per minute.
pub(crate) fn read(path: &Path) -> io::Result<Rollup> {
    let mut all: Option<Rollup> = None;
    read_into(
        path,
        |resolutions, _| resolutions.0 == 1,
        |resolution, _, _, _| resolution == 1,
        |batch| match &mut all {
            Some(all) => all.merge(batch),
            None => all = Some(batch),
        },
    )?;
    Ok(all.unwrap_or_default())
}

/// Whether the block of `resolution` minutes from `minute` lies within `query`'s range and
/// within one of its steps.
fn fits(query: &RollupQuery, resolution: u32, minute: u32) -> bool {
    let step = query.step_minutes.max(1);
    let last = minute + resolution - 1;
    minute >= query.start_minute
        && last < query.end_minute
        && (minute - query.start_minute) / step == (last - query.start_minute) / step
}

/// Whether `query` reads the aggregates of the block of `resolution` minutes from `minute`:
/// it fits, and no coarser block holding it does.
fn used(query: &RollupQuery, resolution: u32, minute: u32) -> bool {
    fits(query, resolution, minute)
        && RESOLUTIONS.iter().filter(|&&r| r > resolution).all(|&r| !fits(query, r, minute - minute % r))
}

/// Adds to `out` what `query` selects from the aggregates in `path`, of the blocks whose first
/// minute `keep` accepts (blocks never straddle a day, so `keep` may judge by day).
pub(crate) fn select(path: &Path, query: &RollupQuery, keep: impl Fn(u32) -> bool, out: &mut Rollup) -> io::Result<()> {
    let group = |resolutions: (u32, u32), minutes: (u32, u32)| {
        // A row group of one resolution is read if any of its blocks is used.
        resolutions.0 != resolutions.1
            || (minutes.0 - minutes.0 % resolutions.0..=minutes.1)
                .step_by(resolutions.0 as usize)
                .any(|m| used(query, resolutions.0, m))
    };
    let row = |resolution: u32, minute: u32, family: Family, service: &str| {
        used(query, resolution, minute)
            && keep(minute)
            && (query.families.is_empty() || query.families.contains(&family))
            && query.service.as_deref().is_none_or(|s| s == service)
    };
    read_into(path, group, row, |rollup| rollup.select_into(query, out))
}

/// Reads `path` a batch at a time: the row groups `group` accepts by their (resolution, minute)
/// ranges, the rows `row` accepts by resolution, minute, family and service, handed over as a
/// rollup per batch.
fn read_into(
    path: &Path,
    group: impl Fn((u32, u32), (u32, u32)) -> bool,
    row: impl Fn(u32, u32, Family, &str) -> bool,
    mut take: impl FnMut(Rollup),
) -> io::Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?).map_err(|e| invalid(path, e))?;
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == KEY_VERSION))
        .and_then(|e| e.value.as_deref()?.parse::<u32>().ok())
        .ok_or_else(|| invalid(path, "not a clew rollup (no format version)"))?;
    if version > FORMAT_VERSION {
        return Err(invalid(
            path,
            format!("format version {version} is newer than this build reads ({FORMAT_VERSION})"),
        ));
    }
    let dimensions: Vec<String> =
        builder.schema().fields().iter().filter_map(|f| f.name().strip_prefix(DIM_PREFIX).map(String::from)).collect();
    let range =
        |group: &parquet::file::metadata::RowGroupMetaData, column: usize| match group.column(column).statistics() {
            Some(Statistics::Int32(s)) => Some((*s.min_opt()? as u32, *s.max_opt()? as u32)),
            _ => None,
        };
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, g)| match (range(g, 0), range(g, 1)) {
            (Some(resolutions), Some(minutes)) => group(resolutions, minutes),
            _ => true,
        })
        .map(|(i, _)| i)
        .collect();
    for batch in builder.with_row_groups(groups).build().map_err(|e| invalid(path, e))? {
        let batch = batch.map_err(|e| invalid(path, e))?;
        take(from_batch(path, &batch, &dimensions, &row)?);
    }
    Ok(())
}

fn from_batch(
    path: &Path,
    batch: &RecordBatch,
    dimensions: &[String],
    row: impl Fn(u32, u32, Family, &str) -> bool,
) -> io::Result<Rollup> {
    fn column<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &str) -> io::Result<&'a T> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| invalid(path, format!("column {name} is missing or of the wrong type")))
    }
    let minutes = column::<UInt32Array>(path, batch, "minutes")?;
    let minute = column::<UInt32Array>(path, batch, "minute")?;
    let family = column::<UInt8Array>(path, batch, "family")?;
    let service = column::<StringArray>(path, batch, "service")?;
    let name = column::<StringArray>(path, batch, "name")?;
    let kind = column::<Int32Array>(path, batch, "kind")?;
    let dims = dimensions
        .iter()
        .map(|d| column::<StringArray>(path, batch, &format!("{DIM_PREFIX}{d}")))
        .collect::<io::Result<Vec<_>>>()?;
    let count = column::<Float64Array>(path, batch, "count")?;
    let errors = column::<Float64Array>(path, batch, "errors")?;
    let sum = column::<Float64Array>(path, batch, "duration_sum")?;
    let latency = column::<BinaryArray>(path, batch, "latency")?;
    // Service and operation names repeat on many rows: share one allocation each.
    fn intern<'a>(names: &mut HashMap<&'a str, Arc<str>>, s: &'a str) -> Arc<str> {
        names.entry(s).or_insert_with(|| Arc::from(s)).clone()
    }
    let mut names = HashMap::new();
    let mut rollup = Rollup::new(dimensions.to_vec());
    for i in 0..batch.num_rows() {
        let family = Family::from_code(family.value(i)).ok_or_else(|| invalid(path, "unknown family"))?;
        if !row(minutes.value(i), minute.value(i), family, service.value(i)) {
            continue;
        }
        let key = Key {
            minute: minute.value(i),
            family,
            service: intern(&mut names, service.value(i)),
            name: intern(&mut names, name.value(i)),
            kind: kind.value(i),
            dims: dims.iter().map(|d| (!d.is_null(i)).then(|| intern(&mut names, d.value(i)))).collect(),
        };
        let stats = Stats {
            count: count.value(i),
            errors: errors.value(i),
            duration_sum: sum.value(i),
            latency: Latency::decode(latency.value(i)).map_err(|e| invalid(path, e))?,
        };
        rollup.merge_entry(key, &stats);
    }
    Ok(rollup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollups_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.rollup");
        let mut rollup = Rollup::new(vec!["env".into()]);
        for (minute, family, env, nanos) in [
            (7, Family::Span, Some("prod"), 5_000),
            (7, Family::Call, None, 9_000),
            (8, Family::Database, Some("dev"), 1),
        ] {
            let key =
                Key { minute, family, service: "a".into(), name: "b".into(), kind: 2, dims: vec![env.map(Arc::from)] };
            rollup.add(key, nanos, 2.0, family == Family::Call);
        }
        // More rows than one batch holds.
        for minute in 100..3_000 {
            let key =
                Key { minute, family: Family::Span, service: "s".into(), name: "n".into(), kind: 1, dims: vec![None] };
            rollup.add(key, 1_000, 1.0, false);
        }
        write(&path, &rollup).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.entries.len(), rollup.entries.len());
        assert_eq!(back.dimensions, rollup.dimensions);
        let summary = |r: Rollup| -> Vec<(Key, f64, f64, f64, Option<u64>)> {
            r.into_sorted()
                .into_iter()
                .map(|(k, s)| (k, s.count, s.errors, s.duration_sum, s.latency.quantile(0.5)))
                .collect()
        };
        assert_eq!(summary(back), summary(rollup));
        fs::write(&path, b"not parquet").unwrap();
        assert_eq!(read(&path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn queries_read_coarse_blocks_and_agree_with_the_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2.rollup");
        let mut rollup = Rollup::new(vec!["env".into()]);
        for minute in 6_000..6_200u32 {
            for (service, env) in [("a", "prod"), ("b", "dev")] {
                let key = Key {
                    minute,
                    family: if minute % 7 == 0 { Family::Call } else { Family::Span },
                    service: service.into(),
                    name: "op".into(),
                    kind: 2,
                    dims: vec![Some(env.into())],
                };
                rollup.add(key, u64::from(minute) * 1_000, 1.0 + f64::from(minute % 3), minute % 5 == 0);
            }
        }
        write(&path, &rollup).unwrap();
        let totals = |r: Rollup| -> Vec<(Key, f64, f64, u64)> {
            r.into_sorted().into_iter().map(|(k, s)| (k, s.count, s.errors, s.latency.count())).collect()
        };
        for (start, end, step) in
            [(6_000, 6_200, 200), (6_013, 6_187, 174), (6_000, 6_200, 15), (6_030, 6_150, 60), (6_001, 6_100, 7)]
        {
            for service in [None, Some("a".to_owned())] {
                let query = RollupQuery {
                    start_minute: start,
                    end_minute: end,
                    step_minutes: step,
                    families: vec![Family::Span],
                    service,
                    filters: vec![("env".into(), "prod".into())],
                    group_by: vec![],
                };
                let mut from_file = query.output();
                select(&path, &query, |_| true, &mut from_file).unwrap();
                let mut from_minutes = query.output();
                rollup.select_into(&query, &mut from_minutes);
                assert_eq!(totals(from_file), totals(from_minutes), "{start}..{end} by {step}");
            }
        }
    }
}
