//! Rollup files: the per-minute aggregates of one segment's spans (`<id>.rollup`, Parquet),
//! written with the segment and deleted with it. See the crate README for the columns.

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

const FORMAT_VERSION: u32 = 1;
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
    let mut entries: Vec<(&Key, &Stats)> = rollup.entries.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));

    let mut minute = UInt32Builder::new();
    let mut family = UInt8Builder::new();
    let (mut service, mut name) = (StringBuilder::new(), StringBuilder::new());
    let mut kind = Int32Builder::new();
    let mut dims: Vec<StringBuilder> = rollup.dimensions.iter().map(|_| StringBuilder::new()).collect();
    let (mut count, mut errors, mut sum) = (Float64Builder::new(), Float64Builder::new(), Float64Builder::new());
    let mut latency = BinaryBuilder::new();
    for (key, stats) in entries {
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
        .build();
    let tmp = path.with_extension("rollup.tmp");
    let mut writer = ArrowWriter::try_new(File::create(&tmp)?, schema, Some(properties)).map_err(io::Error::other)?;
    writer.write(&batch).map_err(io::Error::other)?;
    writer.into_inner().map_err(io::Error::other)?.sync_all()?;
    fs::rename(&tmp, path)
}

/// Every aggregate in `path`.
pub(crate) fn read(path: &Path) -> io::Result<Rollup> {
    let mut all = Rollup::default();
    read_into(path, |rollup| all = rollup)?;
    Ok(all)
}

/// Adds to `out` what `query` selects from the aggregates in `path`.
pub(crate) fn select(path: &Path, query: &RollupQuery, out: &mut Rollup) -> io::Result<()> {
    read_into(path, |rollup| rollup.select_into(query, out))
}

/// Reads `path` a batch at a time, handing each batch over as a rollup.
fn read_into(path: &Path, mut take: impl FnMut(Rollup)) -> io::Result<()> {
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
    for batch in builder.build().map_err(|e| invalid(path, e))? {
        let batch = batch.map_err(|e| invalid(path, e))?;
        take(from_batch(path, &batch, &dimensions)?);
    }
    Ok(())
}

fn from_batch(path: &Path, batch: &RecordBatch, dimensions: &[String]) -> io::Result<Rollup> {
    fn column<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &str) -> io::Result<&'a T> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| invalid(path, format!("column {name} is missing or of the wrong type")))
    }
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
        write(&path, &rollup).unwrap();
        let back = read(&path).unwrap();
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
}
