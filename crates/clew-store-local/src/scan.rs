//! Search over segments and the head: storage [`Condition`]s evaluated a column at a time on
//! segments (reading only the columns a query names) and a row at a time on the head; the
//! catalog (services, operations, attribute names) and attribute values for autocomplete.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    Array, BinaryArray, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use clew_model::otlp::common::v1::KeyValue;
use clew_model::otlp::trace::v1::ResourceSpans;
use clew_model::{KeyValues, SpanRow, TraceId};
use clew_storage::{Catalog, Condition, FindRequest, Operation, Target, TimeRange, TraceHit, Value, ValueRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::statistics::Statistics;
use prost::Message;

use crate::attributes::{Kind, PREFIX};
use crate::segment::Segment;

/// Rows decoded per batch while scanning.
const SCAN_BATCH_ROWS: usize = 64 * 1024;

/// What one segment contributes to a search: per trace-index entry, which conditions some span
/// of the trace satisfied (bit `i` for condition `i`).
pub(crate) struct SegmentMatches {
    pub(crate) masks: Vec<u64>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A decoded resource: its attributes.
fn resource_attributes(encoded: &[u8]) -> io::Result<Vec<KeyValue>> {
    let resource = ResourceSpans::decode(encoded).map_err(|e| invalid(format!("resource does not decode: {e}")))?;
    Ok(resource.resource.map(|r| r.attributes).unwrap_or_default())
}

fn span_attributes(encoded: &[u8]) -> io::Result<Vec<KeyValue>> {
    if encoded.is_empty() {
        return Ok(Vec::new());
    }
    KeyValues::decode(encoded).map(|kv| kv.values).map_err(|e| invalid(format!("span attributes do not decode: {e}")))
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<ValueRef<'a>> {
    attributes.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_ref().map_or(ValueRef::Other, ValueRef::from_any))
}

/// The conditions a request asks, capped at 64 (one bit each); conditions past the cap are
/// dropped, which only widens the result.
fn conditions(request: &FindRequest) -> &[Condition] {
    &request.conditions[..request.conditions.len().min(64)]
}

fn all_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Whether a trace that collected `mask` satisfies every condition of `request`.
pub(crate) fn complete(request: &FindRequest, mask: u64) -> bool {
    mask == all_bits(conditions(request).len())
}

// ---------------------------------------------------------------------------------------------
// Segments

/// The columns a target reads in a segment: the span attribute blob only when the key occurs
/// there.
fn columns_for(target: &Target, segment: &Segment) -> io::Result<Vec<String>> {
    let attr = |key: &str| -> io::Result<Vec<String>> {
        let mut cols = Vec::new();
        if segment.residual_keys()?.contains(key) {
            cols.push("attributes".to_owned());
        }
        if segment.columns.iter().any(|c| c.key == key) {
            cols.push(format!("{PREFIX}{key}"));
        }
        Ok(cols)
    };
    Ok(match target {
        Target::Name => vec!["name".into()],
        Target::Service => vec!["service_name".into()],
        Target::Kind => vec!["kind".into()],
        Target::Status => vec!["status_code".into()],
        Target::StatusMessage => vec!["status_message".into()],
        Target::Duration => vec!["duration_nanos".into()],
        Target::SpanAttribute(key) => attr(key)?,
        Target::ResourceAttribute(_) => vec!["resource".into()],
        Target::AnyAttribute(key) => {
            let mut cols = attr(key)?;
            cols.push("resource".into());
            cols
        }
    })
}

/// Whether every start time of the segment falls in `range`, whether none does, from the
/// row groups' statistics.
fn coverage(segment: &Segment, range: TimeRange) -> (bool, bool) {
    let metadata = segment.parquet.metadata();
    let Ok(start_column) = segment.parquet.schema().index_of("start_time") else {
        return (false, false);
    };
    let (mut all, mut none) = (true, true);
    for g in 0..metadata.num_row_groups() {
        match metadata.row_group(g).column(start_column).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(&min), Some(&max)) => {
                    let (min, max) = (min as u64, max as u64);
                    all &= range.contains(min) && range.contains(max);
                    none &= max < range.start || min >= range.end;
                }
                _ => (all, none) = (false, false),
            },
            _ => (all, none) = (false, false),
        }
    }
    (all, none)
}

/// A reader over the columns `names` of every row, or none when no start time of the segment
/// falls in `range`; the resource column is read as a dictionary so that each distinct
/// resource is decoded once per batch.
fn reader(
    segment: &Segment,
    names: &[String],
    range: Option<TimeRange>,
) -> io::Result<Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>> {
    let schema = segment.parquet.schema();
    let mut roots: Vec<usize> = names.iter().filter_map(|n| schema.index_of(n).ok()).collect();
    roots.sort_unstable();
    roots.dedup();
    if range.is_some_and(|range| coverage(segment, range).1) {
        return Ok(None);
    }
    let hinted: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "resource" {
                Field::new(
                    "resource",
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary)),
                    false,
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(hinted)));
    let metadata = ArrowReaderMetadata::try_new(segment.parquet.metadata().clone(), options)
        .or_else(|_| ArrowReaderMetadata::try_new(segment.parquet.metadata().clone(), ArrowReaderOptions::new()))
        .map_err(io::Error::other)?;
    let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(File::open(&segment.path)?, metadata)
        .with_projection(mask)
        .with_batch_size(SCAN_BATCH_ROWS)
        .build()
        .map_err(io::Error::other)?;
    Ok(Some(reader))
}

/// Typed access to the columns of one scanned batch.
struct Batch<'b> {
    batch: &'b RecordBatch,
    /// Distinct resources of the batch, decoded (index = dictionary key), when read as a
    /// dictionary; else one per row.
    resources: Vec<Vec<KeyValue>>,
    resource_keys: Option<&'b DictionaryArray<Int32Type>>,
    residual: Option<&'b BinaryArray>,
}

enum Dedicated<'b> {
    Str(&'b StringArray),
    Int(&'b Int64Array),
    Double(&'b Float64Array),
    Bool(&'b BooleanArray),
}

impl<'b> Dedicated<'b> {
    fn of(batch: &'b RecordBatch, key: &str) -> Option<Self> {
        let column = batch.column_by_name(&format!("{PREFIX}{key}"))?;
        let any = column.as_any();
        match Kind::from_data_type(column.data_type())? {
            Kind::Str => any.downcast_ref().map(Self::Str),
            Kind::Int => any.downcast_ref().map(Self::Int),
            Kind::Double => any.downcast_ref().map(Self::Double),
            Kind::Bool => any.downcast_ref().map(Self::Bool),
        }
    }

    fn value(&self, row: usize) -> Option<ValueRef<'b>> {
        match self {
            Self::Str(a) => a.is_valid(row).then(|| ValueRef::Str(a.value(row))),
            Self::Int(a) => a.is_valid(row).then(|| ValueRef::Int(a.value(row))),
            Self::Double(a) => a.is_valid(row).then(|| ValueRef::Float(a.value(row))),
            Self::Bool(a) => a.is_valid(row).then(|| ValueRef::Bool(a.value(row))),
        }
    }
}

fn column<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> io::Result<&'b T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| invalid(format!("segment column {name} is missing or mistyped")))
}

fn string_dictionary<'b>(batch: &'b RecordBatch, name: &str) -> io::Result<(&'b [i32], &'b StringArray)> {
    let dict = column::<DictionaryArray<Int32Type>>(batch, name)?;
    let values = dict
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| invalid(format!("segment column {name} is not a string dictionary")))?;
    Ok((dict.keys().values(), values))
}

impl<'b> Batch<'b> {
    fn new(batch: &'b RecordBatch) -> io::Result<Self> {
        let mut resources = Vec::new();
        let mut resource_keys = None;
        if let Some(column) = batch.column_by_name("resource") {
            if let Some(dict) = column.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
                let values = dict
                    .values()
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .ok_or_else(|| invalid("segment column resource is not a binary dictionary".into()))?;
                resources =
                    values.iter().map(|v| resource_attributes(v.unwrap_or_default())).collect::<io::Result<_>>()?;
                resource_keys = Some(dict);
            } else if let Some(plain) = column.as_any().downcast_ref::<BinaryArray>() {
                resources =
                    plain.iter().map(|v| resource_attributes(v.unwrap_or_default())).collect::<io::Result<_>>()?;
            }
        }
        let residual = batch.column_by_name("attributes").and_then(|c| c.as_any().downcast_ref::<BinaryArray>());
        Ok(Self { batch, resources, resource_keys, residual })
    }

    fn resource_index(&self, row: usize) -> usize {
        match self.resource_keys {
            Some(keys) => keys.keys().value(row) as usize,
            None => row,
        }
    }

    fn resource(&self, row: usize) -> &[KeyValue] {
        self.resources.get(self.resource_index(row)).map_or(&[], Vec::as_slice)
    }

    /// Evaluates `condition` on every row.
    fn eval(&self, condition: &Condition) -> io::Result<Vec<bool>> {
        let rows = self.batch.num_rows();
        Ok(match condition {
            Condition::True => vec![true; rows],
            Condition::All(all) => {
                let mut out = vec![true; rows];
                for c in all {
                    let v = self.eval(c)?;
                    out.iter_mut().zip(v).for_each(|(o, v)| *o &= v);
                }
                out
            }
            Condition::Any(any) => {
                let mut out = vec![false; rows];
                for c in any {
                    let v = self.eval(c)?;
                    out.iter_mut().zip(v).for_each(|(o, v)| *o |= v);
                }
                out
            }
            // Dictionary-encoded fields are tested once per distinct value.
            Condition::Test { target: target @ (Target::Name | Target::Service), test } => {
                let (keys, values) =
                    string_dictionary(self.batch, if *target == Target::Name { "name" } else { "service_name" })?;
                let passes: Vec<bool> =
                    (0..values.len()).map(|i| test.passes(Some(ValueRef::Str(values.value(i))))).collect();
                keys.iter().map(|&k| passes.get(k as usize).copied().unwrap_or(false)).collect()
            }
            Condition::Test { target: Target::ResourceAttribute(key), test } => {
                let passes: Vec<bool> = self.resources.iter().map(|r| test.passes(find(r, key))).collect();
                (0..rows).map(|row| passes.get(self.resource_index(row)).copied().unwrap_or(false)).collect()
            }
            Condition::Test { target, test } => {
                let mut out = Vec::with_capacity(rows);
                self.values(target, &mut |v| out.push(test.passes(v)))?;
                out
            }
        })
    }

    /// Calls `each` with the value of `target` on every row, in order.
    fn values(&self, target: &Target, each: &mut dyn FnMut(Option<ValueRef<'_>>)) -> io::Result<()> {
        let batch = self.batch;
        let rows = batch.num_rows();
        match target {
            Target::Name | Target::Service => {
                let (keys, values) =
                    string_dictionary(batch, if *target == Target::Name { "name" } else { "service_name" })?;
                keys.iter().for_each(|&k| each(Some(ValueRef::Str(values.value(k as usize)))));
            }
            Target::Kind | Target::Status => {
                let ints = column::<Int32Array>(batch, if *target == Target::Kind { "kind" } else { "status_code" })?;
                ints.values().iter().for_each(|&v| each(Some(ValueRef::Int(v.into()))));
            }
            Target::StatusMessage => {
                let messages = column::<StringArray>(batch, "status_message")?;
                (0..rows).for_each(|i| each(Some(ValueRef::Str(messages.value(i)))));
            }
            Target::Duration => {
                let durations = column::<UInt64Array>(batch, "duration_nanos")?;
                durations.values().iter().for_each(|&d| each(Some(ValueRef::Int(d.min(i64::MAX as u64) as i64))));
            }
            Target::SpanAttribute(key) | Target::AnyAttribute(key) => {
                let dedicated = Dedicated::of(batch, key);
                let any = matches!(target, Target::AnyAttribute(_));
                for row in 0..rows {
                    if let Some(v) = dedicated.as_ref().and_then(|d| d.value(row)) {
                        each(Some(v));
                        continue;
                    }
                    let blob = self.residual.map(|r| r.value(row)).unwrap_or_default();
                    let decoded = span_attributes(blob)?;
                    match find(&decoded, key) {
                        Some(v) => each(Some(v)),
                        None if any => each(find(self.resource(row), key)),
                        None => each(None),
                    }
                }
            }
            Target::ResourceAttribute(key) => (0..rows).for_each(|row| each(find(self.resource(row), key))),
        }
        Ok(())
    }
}

impl Segment {
    /// Evaluates `request` on this segment.
    pub(crate) fn find(&self, request: &FindRequest) -> io::Result<Option<SegmentMatches>> {
        let conditions = conditions(request);
        // Start times are read only when the range cuts through the segment.
        let (within, _) = coverage(self, request.range);
        let mut names: Vec<String> = if within { Vec::new() } else { vec!["start_time".into()] };
        for target in conditions.iter().flat_map(Condition::targets) {
            names.extend(columns_for(target, self)?);
        }
        let Some(reader) = reader(self, &names, Some(request.range))? else {
            return Ok(None);
        };
        let mut masks = vec![0u64; self.index.len()];
        let mut row = 0usize;
        let mut entry = 0usize;
        for batch in reader {
            let batch = batch.map_err(io::Error::other)?;
            let scanned = Batch::new(&batch)?;
            let start =
                if within { None } else { Some(column::<TimestampNanosecondArray>(&batch, "start_time")?.values()) };
            let passes: Vec<Vec<bool>> = conditions.iter().map(|c| scanned.eval(c)).collect::<io::Result<_>>()?;
            for i in 0..batch.num_rows() {
                let r = row + i;
                while entry + 1 < self.index.len() && self.index[entry + 1].first_row as usize <= r {
                    entry += 1;
                }
                if start.is_some_and(|start| !request.range.contains(start[i] as u64)) {
                    continue;
                }
                for (bit, pass) in passes.iter().enumerate() {
                    if pass[i] {
                        masks[entry] |= 1 << bit;
                    }
                }
            }
            row += batch.num_rows();
        }
        Ok(Some(SegmentMatches { masks }))
    }

    /// Per trace-index entry, the trace's earliest start and latest end in this segment.
    pub(crate) fn extents(&self) -> io::Result<&[(u64, u64)]> {
        if let Some(extents) = self.extents.get() {
            return Ok(extents);
        }
        let mut extents = vec![(u64::MAX, 0u64); self.index.len()];
        let names = ["start_time".to_owned(), "duration_nanos".to_owned()];
        let (mut row, mut entry) = (0usize, 0usize);
        if let Some(reader) = reader(self, &names, None)? {
            for batch in reader {
                let batch = batch.map_err(io::Error::other)?;
                let start = column::<TimestampNanosecondArray>(&batch, "start_time")?.values();
                let duration = column::<UInt64Array>(&batch, "duration_nanos")?.values();
                for i in 0..batch.num_rows() {
                    while entry + 1 < self.index.len() && self.index[entry + 1].first_row as usize <= row + i {
                        entry += 1;
                    }
                    if let Some(extent) = extents.get_mut(entry) {
                        let begin = start[i] as u64;
                        extent.0 = extent.0.min(begin);
                        extent.1 = extent.1.max(begin.saturating_add(duration[i]));
                    }
                }
                row += batch.num_rows();
            }
        }
        Ok(self.extents.get_or_init(|| extents))
    }

    /// Keys that occur in the `attributes` column.
    fn residual_keys(&self) -> io::Result<&std::collections::HashSet<String>> {
        if let Some(keys) = self.residual_keys.get() {
            return Ok(keys);
        }
        let mut keys = std::collections::HashSet::new();
        if let Some(reader) = reader(self, &["attributes".to_owned()], None)? {
            for batch in reader {
                let batch = batch.map_err(io::Error::other)?;
                let residual = column::<BinaryArray>(&batch, "attributes")?;
                for blob in residual.iter().flatten().filter(|b| !b.is_empty()) {
                    for kv in span_attributes(blob)? {
                        if !keys.contains(&kv.key) {
                            keys.insert(kv.key);
                        }
                    }
                }
            }
        }
        Ok(self.residual_keys.get_or_init(|| keys))
    }

    /// What this segment holds: operations and attribute names.
    pub(crate) fn catalog(&self) -> io::Result<&Catalog> {
        if let Some(catalog) = self.catalog.get() {
            return Ok(catalog);
        }
        let names: Vec<String> =
            ["service_name", "name", "kind", "resource", "attributes"].iter().map(|s| (*s).to_owned()).collect();
        let mut builder = CatalogBuilder::default();
        builder.span_attributes.extend(self.columns.iter().map(|c| c.key.clone()));
        if let Some(reader) = reader(self, &names, None)? {
            for batch in reader {
                let batch = batch.map_err(io::Error::other)?;
                let scanned = Batch::new(&batch)?;
                let (services, service_names) = string_dictionary(&batch, "service_name")?;
                let (names, name_values) = string_dictionary(&batch, "name")?;
                let kinds = column::<Int32Array>(&batch, "kind")?.values();
                for i in 0..batch.num_rows() {
                    builder.operation(
                        service_names.value(services[i] as usize),
                        name_values.value(names[i] as usize),
                        kinds[i],
                    );
                }
                scanned.resources.iter().for_each(|r| builder.resource(r));
                if let Some(residual) = scanned.residual {
                    for blob in residual.iter().flatten().filter(|b| !b.is_empty()) {
                        builder.span(&span_attributes(blob)?);
                    }
                }
            }
        }
        Ok(self.catalog.get_or_init(|| builder.finish()))
    }

    /// Counts the values `target` takes on spans that start within `range`.
    pub(crate) fn count_values(&self, range: TimeRange, target: &Target, counts: &mut ValueCounts) -> io::Result<()> {
        let mut names = columns_for(target, self)?;
        names.push("start_time".into());
        let Some(reader) = reader(self, &names, Some(range))? else {
            return Ok(());
        };
        for batch in reader {
            let batch = batch.map_err(io::Error::other)?;
            let start = column::<TimestampNanosecondArray>(&batch, "start_time")?.values().to_vec();
            let scanned = Batch::new(&batch)?;
            let mut row = 0;
            scanned.values(target, &mut |v| {
                if let Some(v) = v.filter(|_| range.contains(start[row] as u64)) {
                    counts.add(v);
                }
                row += 1;
            })?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The head, a row at a time

/// The value of `target` on a head row; attributes are decoded on first use.
struct RowFields<'r> {
    row: &'r SpanRow,
    attributes: Option<Vec<KeyValue>>,
    resource: &'r [KeyValue],
}

impl<'r> RowFields<'r> {
    fn get(&mut self, target: &Target) -> Option<ValueRef<'_>> {
        let row = self.row;
        match target {
            Target::Name => Some(ValueRef::Str(&row.name)),
            Target::Service => Some(ValueRef::Str(&row.service_name)),
            Target::Kind => Some(ValueRef::Int(row.kind.into())),
            Target::Status => Some(ValueRef::Int(row.status_code.into())),
            Target::StatusMessage => Some(ValueRef::Str(&row.status_message)),
            Target::Duration => Some(ValueRef::Int(row.duration_nanos().min(i64::MAX as u64) as i64)),
            Target::SpanAttribute(key) => find(self.span_attributes(), key),
            Target::ResourceAttribute(key) => find(self.resource, key),
            Target::AnyAttribute(key) => {
                let resource = self.resource;
                find(self.span_attributes(), key).or_else(|| find(resource, key))
            }
        }
    }

    fn span_attributes(&mut self) -> &[KeyValue] {
        let row = self.row;
        // Head rows were encoded by this process from decoded protobuf: they decode.
        self.attributes.get_or_insert_with(|| span_attributes(&row.attributes).unwrap_or_default())
    }
}

/// Decoded resources of head rows, shared by rows that share the resource buffer.
#[derive(Default)]
pub(crate) struct Resources {
    decoded: HashMap<usize, (Bytes, Vec<KeyValue>)>,
}

impl Resources {
    fn of(&mut self, row: &SpanRow) -> &[KeyValue] {
        let key = row.resource.as_ptr() as usize;
        let entry = self
            .decoded
            .entry(key)
            .or_insert_with(|| (row.resource.clone(), resource_attributes(&row.resource).unwrap_or_default()));
        &entry.1
    }
}

/// The condition bits a head row satisfies (0 when it starts outside the range).
pub(crate) fn row_mask(request: &FindRequest, row: &SpanRow, resources: &mut Resources) -> u64 {
    if !request.range.contains(row.start_unix_nano) {
        return 0;
    }
    let resource = resources.of(row);
    let mut fields = RowFields { row, attributes: None, resource };
    let mut mask = 0;
    for (bit, condition) in conditions(request).iter().enumerate() {
        if holds(condition, &mut fields) {
            mask |= 1 << bit;
        }
    }
    mask
}

fn holds(condition: &Condition, fields: &mut RowFields<'_>) -> bool {
    match condition {
        Condition::True => true,
        Condition::All(all) => all.iter().all(|c| holds(c, fields)),
        Condition::Any(any) => any.iter().any(|c| holds(c, fields)),
        Condition::Test { target, test } => test.passes(fields.get(target)),
    }
}

/// The value of `target` on a head row.
pub(crate) fn row_value(row: &SpanRow, target: &Target, resources: &mut Resources, counts: &mut ValueCounts) {
    let resource = resources.of(row);
    let mut fields = RowFields { row, attributes: None, resource };
    if let Some(v) = fields.get(target) {
        counts.add(v);
    }
}

/// Adds a head row to a catalog.
pub(crate) fn row_catalog(row: &SpanRow, resources: &mut Resources, builder: &mut CatalogBuilder) {
    builder.operation(&row.service_name, &row.name, row.kind);
    builder.resource(resources.of(row));
    if let Ok(attributes) = span_attributes(&row.attributes) {
        builder.span(&attributes);
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog and values

#[derive(Default)]
pub(crate) struct CatalogBuilder {
    operations: BTreeSet<(String, String, i32)>,
    span_attributes: BTreeSet<String>,
    resource_attributes: BTreeSet<String>,
}

impl CatalogBuilder {
    fn operation(&mut self, service: &str, name: &str, kind: i32) {
        // Look up before allocating: most rows repeat a known operation.
        if !self.operations.iter().any(|(s, n, k)| s == service && n == name && *k == kind) {
            self.operations.insert((service.to_owned(), name.to_owned(), kind));
        }
    }

    fn resource(&mut self, attributes: &[KeyValue]) {
        for kv in attributes {
            if !self.resource_attributes.contains(&kv.key) {
                self.resource_attributes.insert(kv.key.clone());
            }
        }
    }

    fn span(&mut self, attributes: &[KeyValue]) {
        for kv in attributes {
            if !self.span_attributes.contains(&kv.key) {
                self.span_attributes.insert(kv.key.clone());
            }
        }
    }

    pub(crate) fn finish(self) -> Catalog {
        Catalog {
            operations: self
                .operations
                .into_iter()
                .map(|(service, name, kind)| Operation { service, name, kind })
                .collect(),
            span_attributes: self.span_attributes.into_iter().collect(),
            resource_attributes: self.resource_attributes.into_iter().collect(),
        }
    }
}

/// Distinct values with how often they occur. Values are keyed by type and text, so `1` and
/// `"1"` stay apart.
#[derive(Default)]
pub(crate) struct ValueCounts {
    counts: HashMap<(u8, String), (Value, u64)>,
}

impl ValueCounts {
    fn add(&mut self, value: ValueRef<'_>) {
        let tag = match value {
            ValueRef::Str(_) => 0,
            ValueRef::Int(_) => 1,
            ValueRef::Float(_) => 2,
            ValueRef::Bool(_) => 3,
            ValueRef::Other => return,
        };
        let text = match value {
            ValueRef::Str(s) => s.to_owned(),
            other => other.to_owned().to_string(),
        };
        self.counts.entry((tag, text)).or_insert_with(|| (value.to_owned(), 0)).1 += 1;
    }

    fn merge(&mut self, other: ValueCounts) {
        for (key, (value, count)) in other.counts {
            self.counts.entry(key).or_insert((value, 0)).1 += count;
        }
    }

    /// The `limit` most frequent values, ties broken by text.
    pub(crate) fn top(self, limit: usize) -> Vec<Value> {
        let mut all: Vec<_> = self.counts.into_iter().collect();
        all.sort_by(|((_, a), (_, ca)), ((_, b), (_, cb))| cb.cmp(ca).then_with(|| a.cmp(b)));
        all.into_iter().take(limit).map(|(_, (v, _))| v).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Whole searches over a snapshot of the head and the segments

/// The head's rows (in chunks) and the segments a read works on, taken under the engine lock
/// and read without it.
pub(crate) struct Snapshot {
    pub(crate) head: Vec<Arc<Vec<SpanRow>>>,
    pub(crate) segments: Vec<Arc<Segment>>,
}

impl Snapshot {
    fn head_rows(&self) -> impl Iterator<Item = &SpanRow> {
        self.head.iter().flat_map(|chunk| chunk.iter())
    }

    /// Runs `f` on every segment, spread over the machine's cores.
    fn each_segment<T: Send>(&self, f: impl Fn(&Segment) -> io::Result<T> + Sync) -> io::Result<Vec<T>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(self.segments.len()).max(1);
        if threads == 1 {
            return self.segments.iter().map(|s| f(s)).collect();
        }
        let per_thread = self.segments.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .segments
                .chunks(per_thread)
                .map(|part| scope.spawn(|| part.iter().map(|s| f(s)).collect::<io::Result<Vec<T>>>()))
                .collect();
            let mut out = Vec::with_capacity(self.segments.len());
            for worker in workers {
                out.extend(worker.join().map_err(|_| io::Error::other("a segment reader panicked"))??);
            }
            Ok(out)
        })
    }

    pub(crate) fn find(&self, request: &FindRequest) -> io::Result<Vec<TraceHit>> {
        /// (conditions satisfied, earliest start, latest end)
        type Acc = (u64, u64, u64);
        fn merge(acc: &mut Acc, mask: u64, (start, end): (u64, u64)) {
            acc.0 |= mask;
            acc.1 = acc.1.min(start);
            acc.2 = acc.2.max(end);
        }
        const EMPTY: Acc = (0, u64::MAX, 0);
        let matches = self.each_segment(|s| s.find(request))?;
        let mut found: HashMap<TraceId, Acc> = HashMap::new();
        for (segment, m) in self.segments.iter().zip(&matches) {
            let Some(m) = m else { continue };
            for (i, &mask) in m.masks.iter().enumerate().filter(|(_, m)| **m != 0) {
                found.entry(segment.index[i].trace_id).or_insert(EMPTY).0 |= mask;
            }
        }
        let mut head: HashMap<TraceId, Acc> = HashMap::new();
        let mut resources = Resources::default();
        for row in self.head_rows() {
            let mask = row_mask(request, row, &mut resources);
            merge(head.entry(row.trace_id).or_insert(EMPTY), mask, (row.start_unix_nano, row.end_unix_nano));
        }
        for (trace_id, acc) in head.iter().filter(|(_, acc)| acc.0 != 0) {
            merge(found.entry(*trace_id).or_insert(EMPTY), acc.0, (acc.1, acc.2));
        }
        let mut hits: Vec<(TraceId, Acc)> = found.into_iter().filter(|(_, acc)| complete(request, acc.0)).collect();
        // A trace's spans may lie in several segments and the head: its extent covers them all.
        // Candidates and each segment's index are both sorted by trace ID, so one merge pass
        // per segment finds them (binary searches would miss the cache once per probe).
        hits.sort_unstable_by_key(|(trace_id, _)| *trace_id);
        for segment in &self.segments {
            let extents = segment.extents()?;
            let mut entries = segment.index.iter().zip(extents).peekable();
            for (trace_id, acc) in &mut hits {
                while entries.next_if(|(e, _)| e.trace_id < *trace_id).is_some() {}
                if let Some((_, extent)) = entries.next_if(|(e, _)| e.trace_id == *trace_id) {
                    merge(acc, 0, *extent);
                }
            }
        }
        Ok(hits
            .into_iter()
            .map(|(trace_id, mut acc)| {
                if let Some(&(_, start, end)) = head.get(&trace_id) {
                    merge(&mut acc, 0, (start, end));
                }
                TraceHit { trace_id, start_unix_nano: acc.1, end_unix_nano: acc.2 }
            })
            .collect())
    }

    pub(crate) fn catalog(&self, range: TimeRange) -> io::Result<Catalog> {
        let mut catalog = Catalog::default();
        for part in self.each_segment(|s| s.catalog().cloned())? {
            catalog.merge(part);
        }
        let mut builder = CatalogBuilder::default();
        let mut resources = Resources::default();
        for row in self.head_rows().filter(|r| range.contains(r.start_unix_nano)) {
            row_catalog(row, &mut resources, &mut builder);
        }
        catalog.merge(builder.finish());
        Ok(catalog)
    }

    pub(crate) fn values(&self, range: TimeRange, target: &Target, limit: usize) -> io::Result<Vec<Value>> {
        let mut counts = ValueCounts::default();
        for part in self.each_segment(|s| {
            let mut counts = ValueCounts::default();
            s.count_values(range, target, &mut counts)?;
            Ok(counts)
        })? {
            counts.merge(part);
        }
        let mut resources = Resources::default();
        for row in self.head_rows().filter(|r| range.contains(r.start_unix_nano)) {
            row_value(row, target, &mut resources, &mut counts);
        }
        Ok(counts.top(limit))
    }
}
