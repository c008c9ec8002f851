//! Segments: immutable Parquet files of one tenant and one UTC day, sorted by trace ID, each
//! with a trace-ID index (`.tidx`) that is kept in memory.
//!
//! See the crate README for the file format.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, FixedSizeBinaryBuilder, Int32Builder, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, DictionaryArray, FixedSizeBinaryArray, Int32Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use clew_model::{SpanId, SpanRow, TenantId, TraceId};

use crate::attributes::{self, AttrColumn, Join, Split};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// The segment format this build writes. Every earlier version stays readable:
/// 1. the columns of [`schema`] without `attribute_order` and `attr.*`;
/// 2. dedicated attribute columns (see [`attributes`]) and parents by index ([`ParentRefs`]);
/// 3. the same Parquet, with a rollup file beside it (`<id>.rollup`, see `rollup_file`);
///    earlier segments get theirs computed when the store opens.
pub(crate) const FORMAT_VERSION: u32 = 3;
const KEY_VERSION: &str = "clew.segment.format_version";
const KEY_TENANT: &str = "clew.segment.tenant";
const KEY_DAY: &str = "clew.segment.day";
const KEY_REPLACES: &str = "clew.segment.replaces";
const KEY_FLUSH: &str = "clew.segment.flush";

const INDEX_MAGIC: &[u8; 8] = b"CLEWTIDX";
/// Trace index versions: 1 stores (trace ID, first row, row count) per trace; 2 drops the
/// count, which the next entry's first row (or the segment's row count) gives.
const INDEX_VERSION: u32 = 2;

fn index_entry_len(version: u32) -> Option<usize> {
    match version {
        1 => Some(24),
        2 => Some(20),
        _ => None,
    }
}
/// zstd level of segments that will be rewritten (a flush's, an intermediate merge's): fast.
pub(crate) const ZSTD_FAST: i32 = 3;
/// zstd level of segments that will stay: slower, about 5% smaller.
pub(crate) const ZSTD_FINAL: i32 = 9;
/// Rows the writer puts in one Arrow batch, and so the unit of memory while writing.
pub(crate) const BATCH_ROWS: usize = 8192;
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Where in a segment one trace's rows are (they are contiguous: segments are sorted by trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) trace_id: TraceId,
    pub(crate) first_row: u32,
    pub(crate) rows: u32,
}

/// Adds row `row` (rows come in segment order) to the index.
fn index_row(index: &mut Vec<IndexEntry>, trace_id: TraceId, row: u32) {
    match index.last_mut() {
        Some(last) if last.trace_id == trace_id => last.rows += 1,
        _ => index.push(IndexEntry { trace_id, first_row: row, rows: 1 }),
    }
}

/// Identity and placement of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub(crate) id: u64,
    pub(crate) tenant: TenantId,
    pub(crate) day: u32,
    /// Segments this one was compacted from; they are deleted once this one is durable.
    pub(crate) replaces: Vec<u64>,
    /// For a segment written by a head flush: the flush it belongs to.
    pub(crate) flush: Option<FlushTag>,
}

/// The segments of one head flush, recognisable as a set: a flush covers WAL files up to
/// `wal_upto` and wrote `segments` files. A crash can leave the set incomplete; startup then
/// deletes it and replays the WAL instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlushTag {
    pub(crate) wal_upto: u64,
    pub(crate) segments: u32,
}

/// An open segment: its Parquet metadata and trace index, in memory.
pub(crate) struct Segment {
    pub(crate) meta: SegmentMeta,
    pub(crate) path: PathBuf,
    pub(crate) spans: u64,
    /// Bytes on disk, Parquet file and index together.
    pub(crate) bytes: u64,
    /// Bytes of its rollup file on disk (0 while it has none).
    pub(crate) rollup_bytes: u64,
    /// Its dedicated attribute columns.
    pub(crate) columns: Vec<AttrColumn>,
    pub(crate) parquet: ArrowReaderMetadata,
    pub(crate) index: Vec<IndexEntry>,
    /// Operations and attribute names, computed on first use.
    pub(crate) catalog: std::sync::OnceLock<clew_storage::Catalog>,
    /// Keys found in the `attributes` column (those without a dedicated column, or of another
    /// type), computed on first use: a search for any other key skips that column.
    pub(crate) residual_keys: std::sync::OnceLock<std::collections::HashSet<String>>,
    /// Per trace-index entry, the earliest start and latest end of the trace's rows here: known
    /// when the segment is written, read from the data on first use otherwise.
    pub(crate) extents: std::sync::OnceLock<Vec<(u64, u64)>>,
}

fn schema(columns: &[AttrColumn]) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::Binary, false),
        Field::new("parent_index", DataType::UInt32, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("name", dict.clone(), false),
        Field::new("kind", DataType::Int32, false),
        Field::new("start_time", ts, false),
        Field::new("duration_nanos", DataType::UInt64, false),
        Field::new("status_code", DataType::Int32, false),
        Field::new("status_message", DataType::Utf8, false),
        Field::new("service_name", dict, false),
        Field::new("resource", DataType::Binary, false),
        Field::new("scope", DataType::Binary, false),
        Field::new("attributes", DataType::Binary, false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("events", DataType::Binary, false),
        Field::new("dropped_events_count", DataType::UInt32, false),
        Field::new("links", DataType::Binary, false),
        Field::new("dropped_links_count", DataType::UInt32, false),
        Field::new(attributes::ORDER_COLUMN, DataType::Binary, false),
    ];
    fields.extend(columns.iter().map(AttrColumn::field));
    Arc::new(Schema::new(fields))
}

/// Parent references within a trace. Most parents are earlier rows of the same trace, so a
/// segment stores "the parent is the trace's n-th span" (`parent_index` = n + 1) instead of 8
/// random bytes; `parent_span_id` holds the ID only for roots (empty) and parents outside
/// the segment. Rows must be seen in segment order, from the first row of a trace on.
#[derive(Default)]
pub(crate) struct ParentRefs {
    trace: Option<TraceId>,
    spans: Vec<SpanId>,
}

impl ParentRefs {
    fn see(&mut self, trace_id: TraceId, span_id: SpanId) {
        if self.trace != Some(trace_id) {
            self.trace = Some(trace_id);
            self.spans.clear();
        }
        self.spans.push(span_id);
    }

    /// The (`parent_span_id`, `parent_index`) to store for `row`.
    fn encode<'r>(&mut self, row: &'r SpanRow) -> (&'r [u8], u32) {
        if self.trace != Some(row.trace_id) {
            self.spans.clear();
        }
        let found = SpanId::from_slice(&row.parent_span_id)
            .ok()
            .and_then(|parent| self.spans.iter().position(|s| *s == parent))
            .and_then(|i| u32::try_from(i + 1).ok());
        self.see(row.trace_id, row.span_id);
        match found {
            Some(index) => (&[], index),
            None => (&row.parent_span_id, 0),
        }
    }

    fn decode(&mut self, trace_id: TraceId, span_id: SpanId, stored: &[u8], index: u32) -> io::Result<Bytes> {
        if self.trace != Some(trace_id) {
            self.spans.clear();
        }
        let parent = match index {
            0 => Bytes::copy_from_slice(stored),
            i => {
                let parent = self.spans.get(i as usize - 1).ok_or_else(|| corrupt("parent index"))?;
                Bytes::copy_from_slice(parent.as_bytes())
            }
        };
        self.see(trace_id, span_id);
        Ok(parent)
    }
}

/// The order of rows in a segment: by trace, then start time, then span.
pub(crate) fn sort_key(row: &SpanRow) -> (TraceId, u64, SpanId) {
    (row.trace_id, row.start_unix_nano, row.span_id)
}

fn to_batch(
    schema: &SchemaRef,
    columns: &[AttrColumn],
    parents: &mut ParentRefs,
    rows: &[&SpanRow],
) -> io::Result<RecordBatch> {
    let n = rows.len();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut parent = BinaryBuilder::with_capacity(n, n);
    let mut parent_index = UInt32Builder::with_capacity(n);
    let mut trace_state = StringBuilder::new();
    let mut flags = UInt32Builder::with_capacity(n);
    let mut name = StringDictionaryBuilder::<Int32Type>::new();
    let mut kind = Int32Builder::with_capacity(n);
    let mut start = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut duration = UInt64Builder::with_capacity(n);
    let mut status_code = Int32Builder::with_capacity(n);
    let mut status_message = StringBuilder::new();
    let mut service = StringDictionaryBuilder::<Int32Type>::new();
    let mut resource = BinaryBuilder::new();
    let mut scope = BinaryBuilder::new();
    let mut attributes = Split::new(columns, n);
    let mut dropped_attributes = UInt32Builder::with_capacity(n);
    let mut events = BinaryBuilder::new();
    let mut dropped_events = UInt32Builder::with_capacity(n);
    let mut links = BinaryBuilder::new();
    let mut dropped_links = UInt32Builder::with_capacity(n);
    for row in rows {
        trace_id.append_value(row.trace_id.as_bytes()).map_err(io::Error::other)?;
        span_id.append_value(row.span_id.as_bytes()).map_err(io::Error::other)?;
        let (stored, index) = parents.encode(row);
        parent.append_value(stored);
        parent_index.append_value(index);
        trace_state.append_value(&row.trace_state);
        flags.append_value(row.flags);
        name.append_value(&row.name);
        kind.append_value(row.kind);
        // Ingest rejects start times past i64::MAX (year 2262).
        start.append_value(row.start_unix_nano as i64);
        duration.append_value(row.duration_nanos());
        status_code.append_value(row.status_code);
        status_message.append_value(&row.status_message);
        service.append_value(&*row.service_name);
        resource.append_value(&row.resource);
        scope.append_value(&row.scope);
        attributes.push(&row.attributes)?;
        dropped_attributes.append_value(row.dropped_attributes_count);
        events.append_value(&row.events);
        dropped_events.append_value(row.dropped_events_count);
        links.append_value(&row.links);
        dropped_links.append_value(row.dropped_links_count);
    }
    let (residual, order, dedicated) = attributes.finish();
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(parent_index.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(duration.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        Arc::new(service.finish()),
        Arc::new(resource.finish()),
        Arc::new(scope.finish()),
        residual,
        Arc::new(dropped_attributes.finish()),
        Arc::new(events.finish()),
        Arc::new(dropped_events.finish()),
        Arc::new(links.finish()),
        Arc::new(dropped_links.finish()),
        order,
    ];
    arrays.extend(dedicated);
    RecordBatch::try_new(schema.clone(), arrays).map_err(io::Error::other)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> io::Result<&'a T> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("segment column {name} is missing or mistyped"))
    })
}

fn dict_values(batch: &RecordBatch, name: &str) -> io::Result<Vec<Arc<str>>> {
    let dict = column::<DictionaryArray<Int32Type>>(batch, name)?;
    let values = dict.values().as_any().downcast_ref::<StringArray>().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("segment column {name} is not a string dictionary"))
    })?;
    let interned: Vec<Arc<str>> = values.iter().map(|v| Arc::from(v.unwrap_or(""))).collect();
    dict.keys()
        .iter()
        .map(|k| {
            k.and_then(|k| interned.get(k as usize).cloned())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad dictionary key in {name}")))
        })
        .collect()
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("segment holds an invalid {what}"))
}

/// Turns a batch read from a segment back into rows. Resource and scope buffers are shared
/// between consecutive rows that carry the same bytes.
pub(crate) fn from_batch(batch: &RecordBatch, parents: &mut ParentRefs, out: &mut Vec<SpanRow>) -> io::Result<()> {
    let trace_id = column::<FixedSizeBinaryArray>(batch, "trace_id")?;
    let span_id = column::<FixedSizeBinaryArray>(batch, "span_id")?;
    let parent = column::<BinaryArray>(batch, "parent_span_id")?;
    // Format version 1 has no parent_index: every parent is stored.
    let parent_index = batch.column_by_name("parent_index").and_then(|c| c.as_any().downcast_ref::<UInt32Array>());
    let trace_state = column::<StringArray>(batch, "trace_state")?;
    let flags = column::<UInt32Array>(batch, "flags")?;
    let names = dict_values(batch, "name")?;
    let kind = column::<Int32Array>(batch, "kind")?;
    let start = column::<TimestampNanosecondArray>(batch, "start_time")?;
    let duration = column::<UInt64Array>(batch, "duration_nanos")?;
    let status_code = column::<Int32Array>(batch, "status_code")?;
    let status_message = column::<StringArray>(batch, "status_message")?;
    let services = dict_values(batch, "service_name")?;
    let resource = column::<BinaryArray>(batch, "resource")?;
    let scope = column::<BinaryArray>(batch, "scope")?;
    let attributes = Join::new(batch, column::<BinaryArray>(batch, "attributes")?)?;
    let dropped_attributes = column::<UInt32Array>(batch, "dropped_attributes_count")?;
    let events = column::<BinaryArray>(batch, "events")?;
    let dropped_events = column::<UInt32Array>(batch, "dropped_events_count")?;
    let links = column::<BinaryArray>(batch, "links")?;
    let dropped_links = column::<UInt32Array>(batch, "dropped_links_count")?;
    let shared = |cache: &mut Bytes, value: &[u8]| {
        if cache.as_ref() != value {
            *cache = Bytes::copy_from_slice(value);
        }
        cache.clone()
    };
    let (mut last_resource, mut last_scope) = (Bytes::new(), Bytes::new());
    out.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        let start_nanos = start.value(i) as u64;
        let row_trace = TraceId::from_slice(trace_id.value(i)).map_err(|_| corrupt("trace ID"))?;
        let row_span = SpanId::from_slice(span_id.value(i)).map_err(|_| corrupt("span ID"))?;
        let index = parent_index.map_or(0, |p| p.value(i));
        out.push(SpanRow {
            trace_id: row_trace,
            span_id: row_span,
            parent_span_id: parents.decode(row_trace, row_span, parent.value(i), index)?,
            trace_state: trace_state.value(i).to_owned(),
            flags: flags.value(i),
            name: names[i].to_string(),
            kind: kind.value(i),
            start_unix_nano: start_nanos,
            end_unix_nano: start_nanos.saturating_add(duration.value(i)),
            status_code: status_code.value(i),
            status_message: status_message.value(i).to_owned(),
            service_name: services[i].clone(),
            resource: shared(&mut last_resource, resource.value(i)),
            scope: shared(&mut last_scope, scope.value(i)),
            attributes: attributes.attributes(i)?,
            dropped_attributes_count: dropped_attributes.value(i),
            events: Bytes::copy_from_slice(events.value(i)),
            dropped_events_count: dropped_events.value(i),
            links: Bytes::copy_from_slice(links.value(i)),
            dropped_links_count: dropped_links.value(i),
        });
    }
    Ok(())
}

/// `segments/{tenant}/{YYYY-MM-DD}`.
pub(crate) fn day_dir(root: &Path, tenant: &TenantId, day: u32) -> PathBuf {
    root.join(tenant.as_str()).join(day_name(day))
}

pub(crate) use clew_model::day_name;

fn parse_day_name(name: &str) -> Option<u32> {
    let mut parts = name.splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    u32::try_from(date.to_julian_day() - 2_440_588).ok()
}

fn segment_paths(dir: &Path, id: u64) -> (PathBuf, PathBuf) {
    (dir.join(format!("{id:020}.parquet")), dir.join(format!("{id:020}.tidx")))
}

fn writer_properties(meta: &SegmentMeta, zstd_level: i32) -> WriterProperties {
    let mut kv = vec![
        KeyValue::new(KEY_VERSION.into(), FORMAT_VERSION.to_string()),
        KeyValue::new(KEY_TENANT.into(), meta.tenant.to_string()),
        KeyValue::new(KEY_DAY.into(), day_name(meta.day)),
    ];
    if !meta.replaces.is_empty() {
        let ids: Vec<String> = meta.replaces.iter().map(u64::to_string).collect();
        kv.push(KeyValue::new(KEY_REPLACES.into(), ids.join(",")));
    }
    if let Some(flush) = meta.flush {
        kv.push(KeyValue::new(KEY_FLUSH.into(), format!("{}/{}", flush.wal_upto, flush.segments)));
    }
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(BATCH_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_key_value_metadata(Some(kv));
    // Dictionaries only pay for repeated values; IDs and times are nearly unique.
    for unique in ["span_id", "start_time", "duration_nanos"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(unique), false);
    }
    for (column, encoding) in
        [("start_time", Encoding::BYTE_STREAM_SPLIT), ("duration_nanos", Encoding::BYTE_STREAM_SPLIT)]
    {
        builder = builder.set_column_encoding(ColumnPath::from(column), encoding);
    }
    builder.build()
}

/// Writes one segment from rows already in segment order, fed in batches. Files appear under
/// their final names only when complete and synced.
pub(crate) struct SegmentWriter {
    meta: SegmentMeta,
    dir: PathBuf,
    tmp_parquet: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    columns: Vec<AttrColumn>,
    parents: ParentRefs,
    index: Vec<IndexEntry>,
    extents: Vec<(u64, u64)>,
    rows: u32,
}

impl SegmentWriter {
    /// Starts segment `meta` with dedicated attribute `columns`, compressed at `zstd_level`.
    pub(crate) fn create(
        root: &Path,
        meta: SegmentMeta,
        columns: Vec<AttrColumn>,
        zstd_level: i32,
    ) -> io::Result<Self> {
        let dir = day_dir(root, &meta.tenant, meta.day);
        fs::create_dir_all(&dir)?;
        let tmp_parquet = dir.join(format!("{:020}.parquet.tmp", meta.id));
        let schema = schema(&columns);
        let writer = ArrowWriter::try_new(
            File::create(&tmp_parquet)?,
            schema.clone(),
            Some(writer_properties(&meta, zstd_level)),
        )
        .map_err(io::Error::other)?;
        Ok(Self {
            meta,
            dir,
            tmp_parquet,
            writer,
            schema,
            columns,
            parents: ParentRefs::default(),
            index: Vec::new(),
            extents: Vec::new(),
            rows: 0,
        })
    }

    /// Appends rows that sort after everything written so far.
    pub(crate) fn write(&mut self, rows: &[&SpanRow]) -> io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            index_row(&mut self.index, row.trace_id, self.rows);
            if self.extents.len() < self.index.len() {
                self.extents.push((u64::MAX, 0));
            }
            if let Some(extent) = self.extents.last_mut() {
                extent.0 = extent.0.min(row.start_unix_nano);
                extent.1 = extent.1.max(row.start_unix_nano.saturating_add(row.duration_nanos()));
            }
            self.rows += 1;
        }
        let batch = to_batch(&self.schema, &self.columns, &mut self.parents, rows)?;
        self.writer.write(&batch).map_err(io::Error::other)
    }

    /// Completes the files, with `rollup` as the segment's aggregates, and opens the result.
    pub(crate) fn finish(self, rollup: &clew_rollup::Rollup) -> io::Result<Segment> {
        let file = self.writer.into_inner().map_err(io::Error::other)?;
        file.sync_all()?;
        let (parquet_path, index_path) = segment_paths(&self.dir, self.meta.id);
        write_index(&index_path, &self.index)?;
        // The segment's files appear before the segment does: a segment without its rollup
        // file is one written before rollups existed (see `recover`).
        crate::rollup_file::write(&crate::rollup_file::path_of(&parquet_path), rollup)?;
        fs::rename(&self.tmp_parquet, &parquet_path)?;
        File::open(&self.dir)?.sync_all()?;
        let segment = Segment::open(&parquet_path)?;
        let _ = segment.extents.set(self.extents);
        Ok(segment)
    }
}

fn write_index(path: &Path, index: &[IndexEntry]) -> io::Result<()> {
    let tmp = path.with_extension("tidx.tmp");
    let mut body = Vec::with_capacity(20 + index.len() * 20);
    body.extend_from_slice(INDEX_MAGIC);
    body.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    body.extend_from_slice(&(index.len() as u64).to_le_bytes());
    for entry in index {
        body.extend_from_slice(entry.trace_id.as_bytes());
        body.extend_from_slice(&entry.first_row.to_le_bytes());
    }
    let crc = crc32fast::hash(&body);
    let mut file = BufWriter::new(File::create(&tmp)?);
    file.write_all(&body)?;
    file.write_all(&crc.to_le_bytes())?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&tmp, path)
}

/// Reads a trace index of a segment holding `total_rows` rows.
fn read_index(path: &Path, total_rows: u32) -> io::Result<Vec<IndexEntry>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("trace index {}: {why}", path.display()));
    if bytes.len() < 24 || &bytes[..8] != INDEX_MAGIC {
        return Err(bad("not a clew trace index"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(bad("checksum mismatch"));
    }
    let version = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
    let entry_len = index_entry_len(version).ok_or_else(|| bad("unknown version"))?;
    let count = u64::from_le_bytes(body[12..20].try_into().map_err(|_| bad("short header"))?) as usize;
    let entries = &body[20..];
    if entries.len() != count * entry_len {
        return Err(bad("entry count does not match length"));
    }
    let first_row = |e: &[u8]| u32::from_le_bytes([e[16], e[17], e[18], e[19]]);
    let chunks: Vec<&[u8]> = entries.chunks_exact(entry_len).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let rows = match version {
                1 => u32::from_le_bytes([e[20], e[21], e[22], e[23]]),
                _ => chunks.get(i + 1).map_or(total_rows, |next| first_row(next)).saturating_sub(first_row(e)),
            };
            Ok(IndexEntry {
                trace_id: TraceId::from_slice(&e[..16]).map_err(|_| bad("zero trace ID"))?,
                first_row: first_row(e),
                rows,
            })
        })
        .collect()
}

impl Segment {
    /// Opens a segment: reads the Parquet footer (with page index) and the trace index,
    /// rebuilding the index from the data when its file is missing or damaged.
    pub(crate) fn open(parquet_path: &Path) -> io::Result<Self> {
        let file = File::open(parquet_path)?;
        let parquet = ArrowReaderMetadata::load(
            &file,
            ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", parquet_path.display())))?;
        let meta = read_meta(parquet_path, &parquet)?;
        let index_path = parquet_path.with_extension("tidx");
        let total_rows = u32::try_from(parquet.metadata().file_metadata().num_rows()).unwrap_or(u32::MAX);
        let index = match read_index(&index_path, total_rows) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(segment = %parquet_path.display(), error = %e, "rebuilding trace index");
                let index = rebuild_index(parquet_path, &parquet)?;
                write_index(&index_path, &index)?;
                index
            }
        };
        let spans = parquet.metadata().file_metadata().num_rows() as u64;
        let bytes = fs::metadata(parquet_path)?.len() + fs::metadata(&index_path)?.len();
        let rollup_bytes = file_len(&crate::rollup_file::path_of(parquet_path))?;
        let columns = attributes::columns_of(parquet.schema());
        Ok(Self {
            meta,
            path: parquet_path.to_owned(),
            spans,
            bytes,
            rollup_bytes,
            columns,
            parquet,
            index,
            catalog: Default::default(),
            residual_keys: Default::default(),
            extents: Default::default(),
        })
    }

    /// The rows of one trace; reads only the pages that hold them.
    pub(crate) fn trace(&self, trace_id: TraceId) -> io::Result<Vec<SpanRow>> {
        let Ok(i) = self.index.binary_search_by(|e| e.trace_id.cmp(&trace_id)) else {
            return Ok(Vec::new());
        };
        let entry = self.index[i];
        self.read_rows(entry.first_row as usize, entry.rows as usize)
    }

    /// Everything it keeps on disk: Parquet file, trace index and rollup file.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.bytes + self.rollup_bytes
    }

    pub(crate) fn contains(&self, trace_id: &TraceId) -> bool {
        self.index.binary_search_by(|e| e.trace_id.cmp(trace_id)).is_ok()
    }

    fn read_rows(&self, first: usize, count: usize) -> io::Result<Vec<SpanRow>> {
        // Pick the row groups that overlap [first, first + count) and select inside them.
        let mut groups = Vec::new();
        let mut selectors = Vec::new();
        let mut group_start = 0usize;
        for (i, group) in self.parquet.metadata().row_groups().iter().enumerate() {
            let len = group.num_rows() as usize;
            let group_end = group_start + len;
            if group_end > first && group_start < first + count {
                let from = first.max(group_start) - group_start;
                let to = (first + count).min(group_end) - group_start;
                groups.push(i);
                selectors.extend([
                    RowSelector::skip(from),
                    RowSelector::select(to - from),
                    RowSelector::skip(len - to),
                ]);
            }
            group_start = group_end;
        }
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(&self.path)?, self.parquet.clone())
            .with_row_groups(groups)
            .with_row_selection(RowSelection::from(selectors))
            .build()
            .map_err(io::Error::other)?;
        let mut rows = Vec::with_capacity(count);
        let mut parents = ParentRefs::default();
        for batch in reader {
            from_batch(&batch.map_err(io::Error::other)?, &mut parents, &mut rows)?;
        }
        Ok(rows)
    }

    /// Every row, in segment order, a batch at a time (for compaction).
    pub(crate) fn scan(&self) -> io::Result<impl Iterator<Item = io::Result<Vec<SpanRow>>>> {
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(&self.path)?, self.parquet.clone())
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(io::Error::other)?;
        let mut parents = ParentRefs::default();
        Ok(reader.map(move |batch| {
            let mut rows = Vec::new();
            from_batch(&batch.map_err(io::Error::other)?, &mut parents, &mut rows)?;
            Ok(rows)
        }))
    }

    /// Deletes the segment's files.
    pub(crate) fn remove_files(path: &Path) -> io::Result<()> {
        for p in [path.to_owned(), path.with_extension("tidx"), crate::rollup_file::path_of(path)] {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The length of the file at `path`, 0 when there is none.
pub(crate) fn file_len(path: &Path) -> io::Result<u64> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(metadata.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn read_meta(path: &Path, parquet: &ArrowReaderMetadata) -> io::Result<SegmentMeta> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, format!("segment {}: {why}", path.display()));
    let kv = parquet.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    let get = |key: &str| kv.iter().find(|e| e.key == key).and_then(|e| e.value.clone());
    let version: u32 = get(KEY_VERSION)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("not a clew segment (no format version)".into()))?;
    if version > FORMAT_VERSION {
        return Err(bad(format!("format version {version} is newer than this build reads ({FORMAT_VERSION})")));
    }
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("file name is not a segment id".into()))?;
    let tenant = get(KEY_TENANT).and_then(|t| t.parse().ok()).ok_or_else(|| bad("missing or invalid tenant".into()))?;
    let day = get(KEY_DAY).and_then(|d| parse_day_name(&d)).ok_or_else(|| bad("missing or invalid day".into()))?;
    let replaces =
        get(KEY_REPLACES).map(|r| r.split(',').filter_map(|id| id.parse().ok()).collect()).unwrap_or_default();
    let flush = get(KEY_FLUSH).and_then(|f| {
        let (wal_upto, segments) = f.split_once('/')?;
        Some(FlushTag { wal_upto: wal_upto.parse().ok()?, segments: segments.parse().ok()? })
    });
    Ok(SegmentMeta { id, tenant, day, replaces, flush })
}

fn rebuild_index(path: &Path, parquet: &ArrowReaderMetadata) -> io::Result<Vec<IndexEntry>> {
    let mask = parquet::arrow::ProjectionMask::columns(parquet.parquet_schema(), ["trace_id"]);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(path)?, parquet.clone())
        .with_projection(mask)
        .build()
        .map_err(io::Error::other)?;
    let mut index: Vec<IndexEntry> = Vec::new();
    let mut row = 0u32;
    for batch in reader {
        let batch = batch.map_err(io::Error::other)?;
        let ids = column::<FixedSizeBinaryArray>(&batch, "trace_id")?;
        for i in 0..ids.len() {
            let trace_id = TraceId::from_slice(ids.value(i)).map_err(|_| corrupt("trace ID"))?;
            index_row(&mut index, trace_id, row);
            row += 1;
        }
    }
    Ok(index)
}

/// What a day directory is renamed to when the day is dropped, before its files are deleted:
/// `segments/{tenant}/{YYYY-MM-DD}.dropped`. Whatever is under that name is gone for good.
pub(crate) fn dropped_dir(root: &Path, tenant: &TenantId, day: u32) -> PathBuf {
    root.join(tenant.as_str()).join(format!("{}{DROPPED_SUFFIX}", day_name(day)))
}

const DROPPED_SUFFIX: &str = ".dropped";

/// Every `*.parquet` under `segments/`, with leftovers of interrupted writes and drops removed:
/// `*.tmp` files, days whose drop a crash interrupted (`*.dropped` directories), and trace
/// indexes and rollup files whose segment is gone (a write that crashed before its Parquet
/// file appeared, or a day deleted by hand).
pub(crate) fn find_segment_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    for tenant in fs::read_dir(root)? {
        let tenant = tenant?.path();
        if !tenant.is_dir() {
            continue;
        }
        for day in fs::read_dir(&tenant)? {
            let day = day?.path();
            if !day.is_dir() {
                continue;
            }
            if day.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(DROPPED_SUFFIX)) {
                tracing::info!(dir = %day.display(), "removing the rest of a dropped day");
                fs::remove_dir_all(&day)?;
                continue;
            }
            let mut derived = Vec::new();
            for file in fs::read_dir(&day)? {
                let path = file?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name.ends_with(".tmp") {
                    fs::remove_file(&path)?;
                } else if name.ends_with(".parquet") {
                    found.push(path);
                } else if name.ends_with(".tidx") || name.ends_with(".rollup") {
                    derived.push(path);
                }
            }
            for path in derived {
                // A segment set aside as corrupt keeps its files for inspection.
                if !path.with_extension("parquet").exists() && !path.with_extension("parquet.corrupt").exists() {
                    tracing::info!(file = %path.display(), "removing the index or rollup of a segment that is gone");
                    match fs::remove_file(&path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
    use clew_model::KeyValues;
    use prost::Message;

    fn row(attributes: Vec<(&str, Value)>) -> SpanRow {
        let values: Vec<KeyValue> = attributes
            .into_iter()
            .map(|(k, v)| KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() })
            .collect();
        let encoded = if values.is_empty() { Bytes::new() } else { Bytes::from(KeyValues { values }.encode_to_vec()) };
        SpanRow {
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([1; 8]).unwrap(),
            parent_span_id: Bytes::new(),
            trace_state: String::new(),
            flags: 0,
            name: "op".into(),
            kind: 1,
            start_unix_nano: 1,
            end_unix_nano: 2,
            status_code: 0,
            status_message: String::new(),
            service_name: Arc::from("svc"),
            resource: Bytes::new(),
            scope: Bytes::new(),
            attributes: encoded,
            dropped_attributes_count: 0,
            events: Bytes::new(),
            dropped_events_count: 0,
            links: Bytes::new(),
            dropped_links_count: 0,
        }
    }

    #[test]
    fn attributes_round_trip_through_dedicated_columns_in_any_order() {
        let s = |v: &str| Value::StringValue(v.into());
        let rows = [
            row(vec![("http.method", s("GET")), ("status", Value::IntValue(200))]),
            row(vec![("status", Value::IntValue(500)), ("http.method", s("POST"))]),
            // A type the column does not have, a duplicate key, and values only a blob holds.
            row(vec![("status", s("five hundred")), ("http.method", s("PUT")), ("http.method", s("again"))]),
            row(vec![("bytes", Value::BytesValue(vec![1, 2])), ("ratio", Value::DoubleValue(f64::NAN))]),
            row(vec![]),
            row(vec![("flag", Value::BoolValue(false)), ("http.method", s(""))]),
        ];
        let refs: Vec<&SpanRow> = rows.iter().collect();
        let columns = attributes::choose(&refs).unwrap();
        let keys: Vec<&str> = columns.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["http.method", "status", "ratio", "flag"]);
        let batch = to_batch(&schema(&columns), &columns, &mut ParentRefs::default(), &refs).unwrap();
        let mut back = Vec::new();
        from_batch(&batch, &mut ParentRefs::default(), &mut back).unwrap();
        for (want, got) in rows.iter().zip(&back) {
            // NaN != NaN, so compare the encoded bytes.
            assert_eq!(want.attributes, got.attributes);
        }
        let order = batch.column_by_name(attributes::ORDER_COLUMN).unwrap();
        assert_eq!(
            order.as_any().downcast_ref::<BinaryArray>().unwrap().value(0),
            b"",
            "canonical order is not stored"
        );
    }

    #[test]
    fn parents_are_stored_by_index_within_their_trace() {
        let span = |trace: u8, id: u8, parent: &[u8]| {
            let mut r = row(vec![]);
            r.trace_id = TraceId::from_bytes([trace; 16]).unwrap();
            r.span_id = SpanId::from_bytes([id; 8]).unwrap();
            r.parent_span_id = Bytes::copy_from_slice(parent);
            r
        };
        let rows = vec![
            span(1, 1, &[]),
            span(1, 2, &[1; 8]),
            span(1, 3, &[9; 8]), // parent not in the segment
            span(1, 4, &[2; 8]),
            span(2, 5, &[1; 8]), // a span ID of another trace is not this trace's parent
            span(2, 6, &[5; 8]),
        ];
        let refs: Vec<&SpanRow> = rows.iter().collect();
        let schema = schema(&[]);
        let mut writing = ParentRefs::default();
        // Two batches that split trace 1, as the writer's chunks may.
        let batches = [
            to_batch(&schema, &[], &mut writing, &refs[..2]).unwrap(),
            to_batch(&schema, &[], &mut writing, &refs[2..]).unwrap(),
        ];
        let stored: Vec<u32> = batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("parent_index")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<UInt32Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(stored, [0, 1, 0, 2, 0, 1]);
        let mut reading = ParentRefs::default();
        let mut back = Vec::new();
        for batch in &batches {
            from_batch(batch, &mut reading, &mut back).unwrap();
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn day_names_round_trip() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_000), "2024-10-04");
        for day in [0, 365, 20_000, 100_000] {
            assert_eq!(parse_day_name(&day_name(day)), Some(day));
        }
        assert_eq!(parse_day_name("2024-13-01"), None);
    }
}
