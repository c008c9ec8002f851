//! Dedicated attribute columns. Span attributes that are frequent in a segment and always of
//! one scalar type get a typed, nullable Parquet column of their own, named `attr.{key}`; the
//! rest stay, encoded, in the `attributes` column. Columns compress far better than the
//! encoded blob (one value type and one key per column), and later query work can filter on
//! them without decoding anything.
//!
//! Nothing is lost: `attribute_order` records, per span, where each attribute came from when
//! that differs from the canonical order (dedicated columns in schema order, then the rest),
//! so reading rebuilds the exact list, duplicates and type oddities included.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use clew_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use clew_model::{KeyValues, SpanRow};
use prost::Message;

pub(crate) const PREFIX: &str = "attr.";
pub(crate) const ORDER_COLUMN: &str = "attribute_order";
/// The most dedicated columns one segment gets.
const MAX_COLUMNS: usize = 64;
/// A key gets a column when at least this share of the sampled spans carry it.
const MIN_SHARE: f64 = 0.05;
/// Spans sampled to choose columns.
const SAMPLE: usize = 4096;
/// In `attribute_order`: "the next attribute from the `attributes` column".
const RESIDUAL: u8 = 0xFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Str,
    Int,
    Double,
    Bool,
}

impl Kind {
    fn of(value: &Value) -> Option<Self> {
        match value {
            Value::StringValue(_) => Some(Self::Str),
            Value::IntValue(_) => Some(Self::Int),
            Value::DoubleValue(_) => Some(Self::Double),
            Value::BoolValue(_) => Some(Self::Bool),
            _ => None,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Str => DataType::Utf8,
            Self::Int => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Bool => DataType::Boolean,
        }
    }

    pub(crate) fn from_data_type(data_type: &DataType) -> Option<Self> {
        [Self::Str, Self::Int, Self::Double, Self::Bool].into_iter().find(|k| k.data_type() == *data_type)
    }
}

/// One dedicated column: an attribute key and the one type its values have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttrColumn {
    pub(crate) key: String,
    pub(crate) kind: Kind,
}

impl AttrColumn {
    pub(crate) fn field(&self) -> Field {
        Field::new(format!("{PREFIX}{}", self.key), self.kind.data_type(), true)
    }
}

fn decode(attributes: &[u8]) -> io::Result<Vec<KeyValue>> {
    KeyValues::decode(attributes)
        .map(|kvs| kvs.values)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("span attributes do not decode: {e}")))
}

/// Chooses the dedicated columns for a segment from a sample of its rows: keys carried by at
/// least 5% of them, typed by their most common scalar type, in order of first appearance.
pub(crate) fn choose(rows: &[&SpanRow]) -> io::Result<Vec<AttrColumn>> {
    let step = (rows.len() / SAMPLE).max(1);
    let mut seen: HashMap<(String, Kind), (usize, usize)> = HashMap::new();
    let mut sampled = 0;
    for row in rows.iter().step_by(step) {
        sampled += 1;
        for kv in decode(&row.attributes)? {
            if let Some(kind) = kv.value.as_ref().and_then(|v| v.value.as_ref()).and_then(Kind::of) {
                let first = seen.len();
                seen.entry((kv.key, kind)).or_insert((first, 0)).1 += 1;
            }
        }
    }
    let mut best: HashMap<String, (Kind, usize, usize)> = HashMap::new();
    for ((key, kind), (first, count)) in seen {
        let entry = best.entry(key).or_insert((kind, first, 0));
        if count > entry.2 || (count == entry.2 && first < entry.1) {
            *entry = (kind, first.min(entry.1), count);
        }
    }
    let min = (sampled as f64 * MIN_SHARE).ceil() as usize;
    let mut chosen: Vec<(usize, AttrColumn)> = best
        .into_iter()
        .filter(|(_, (_, _, count))| *count >= min.max(1))
        .map(|(key, (kind, first, _))| (first, AttrColumn { key, kind }))
        .collect();
    chosen.sort_by_key(|(first, _)| *first);
    Ok(chosen.into_iter().take(MAX_COLUMNS).map(|(_, c)| c).collect())
}

/// The dedicated columns of a segment, from its schema (none for format version 1).
pub(crate) fn columns_of(schema: &Schema) -> Vec<AttrColumn> {
    schema
        .fields()
        .iter()
        .filter_map(|f| {
            let key = f.name().strip_prefix(PREFIX)?;
            Some(AttrColumn { key: key.to_owned(), kind: Kind::from_data_type(f.data_type())? })
        })
        .collect()
}

/// Merges the columns of several segments (for compaction): first come, first served.
pub(crate) fn union<'a>(sets: impl IntoIterator<Item = &'a [AttrColumn]>) -> Vec<AttrColumn> {
    let mut out: Vec<AttrColumn> = Vec::new();
    for column in sets.into_iter().flatten() {
        if out.len() < MAX_COLUMNS && !out.iter().any(|c| c.key == column.key) {
            out.push(column.clone());
        }
    }
    out
}

enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
}

/// Splits rows' attributes into dedicated columns, the residual blob and the order column.
pub(crate) struct Split<'c> {
    index: HashMap<&'c [u8], usize>,
    columns: &'c [AttrColumn],
    builders: Vec<Builder>,
    residual: BinaryBuilder,
    order: BinaryBuilder,
}

/// Wire-compatible with OTLP's `KeyValue`, decoded from a `Bytes` without copying: splitting a
/// span's attributes touches only the values that go to a column.
#[derive(Clone, PartialEq, Message)]
struct RawKeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", optional, tag = "2")]
    value: Option<Bytes>,
    #[prost(int32, tag = "3")]
    key_strindex: i32,
}

/// Wire-compatible with [`KeyValues`].
#[derive(Clone, PartialEq, Message)]
struct RawKeyValues {
    #[prost(message, repeated, tag = "1")]
    values: Vec<RawKeyValue>,
}

/// Wire-compatible with OTLP's `AnyValue`, each member of its oneof as an optional field.
#[derive(Clone, PartialEq, Message)]
struct RawAnyValue {
    #[prost(bytes = "bytes", optional, tag = "1")]
    string_value: Option<Bytes>,
    #[prost(bool, optional, tag = "2")]
    bool_value: Option<bool>,
    #[prost(int64, optional, tag = "3")]
    int_value: Option<i64>,
    #[prost(double, optional, tag = "4")]
    double_value: Option<f64>,
    #[prost(bytes = "bytes", optional, tag = "5")]
    array_value: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "6")]
    kvlist_value: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "7")]
    bytes_value: Option<Bytes>,
    #[prost(int32, optional, tag = "8")]
    string_value_strindex: Option<i32>,
}

/// A value a dedicated column can hold.
enum Scalar {
    Str(Bytes),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Scalar {
    /// The one scalar an encoded `AnyValue` holds, if that is all it holds.
    fn decode(value: &Bytes) -> Option<Self> {
        let v = RawAnyValue::decode(value.clone()).ok()?;
        let others = v.array_value.is_some()
            || v.kvlist_value.is_some()
            || v.bytes_value.is_some()
            || v.string_value_strindex.is_some();
        let scalar = match (v.string_value, v.bool_value, v.int_value, v.double_value) {
            (Some(s), None, None, None) if std::str::from_utf8(&s).is_ok() => Self::Str(s),
            (None, Some(b), None, None) => Self::Bool(b),
            (None, None, Some(i), None) => Self::Int(i),
            (None, None, None, Some(d)) => Self::Double(d),
            _ => return None,
        };
        (!others).then_some(scalar)
    }

    fn kind(&self) -> Kind {
        match self {
            Self::Str(_) => Kind::Str,
            Self::Int(_) => Kind::Int,
            Self::Double(_) => Kind::Double,
            Self::Bool(_) => Kind::Bool,
        }
    }
}

impl<'c> Split<'c> {
    pub(crate) fn new(columns: &'c [AttrColumn], capacity: usize) -> Self {
        let builders = columns
            .iter()
            .map(|c| match c.kind {
                Kind::Str => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
                Kind::Int => Builder::Int(Int64Builder::with_capacity(capacity)),
                Kind::Double => Builder::Double(Float64Builder::with_capacity(capacity)),
                Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            })
            .collect();
        let index = columns.iter().enumerate().map(|(i, c)| (c.key.as_bytes(), i)).collect();
        Self { index, columns, builders, residual: BinaryBuilder::new(), order: BinaryBuilder::new() }
    }

    pub(crate) fn push(&mut self, attributes: &Bytes) -> io::Result<()> {
        if self.columns.is_empty() {
            self.residual.append_value(attributes);
            self.order.append_value([]);
            return Ok(());
        }
        let decoded = RawKeyValues::decode(attributes.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("span attributes do not decode: {e}")))?;
        let mut values: Vec<Option<Scalar>> = Vec::new();
        values.resize_with(self.columns.len(), || None);
        let mut residual = Vec::new();
        let mut order = Vec::new();
        for kv in decoded.values {
            let slot =
                self.index.get(kv.key.as_ref()).copied().filter(|&i| values[i].is_none() && kv.key_strindex == 0);
            let scalar = slot
                .zip(kv.value.as_ref())
                .and_then(|(i, value)| Some((i, Scalar::decode(value)?)))
                .filter(|(i, scalar)| scalar.kind() == self.columns[*i].kind);
            match scalar {
                Some((i, scalar)) => {
                    values[i] = Some(scalar);
                    order.push(i as u8);
                }
                None => {
                    residual.push(kv);
                    order.push(RESIDUAL);
                }
            }
        }
        let canonical = order.windows(2).all(|w| w[0] < w[1] || w[1] == RESIDUAL);
        self.order.append_value(if canonical { &[][..] } else { &order[..] });
        if residual.is_empty() {
            self.residual.append_value([]);
        } else {
            self.residual.append_value(RawKeyValues { values: residual }.encode_to_vec());
        }
        for (builder, value) in self.builders.iter_mut().zip(values) {
            match (builder, value) {
                (Builder::Str(b), Some(Scalar::Str(s))) => {
                    b.append_value(std::str::from_utf8(&s).map_err(|_| invalid("non-UTF-8 string attribute".into()))?)
                }
                (Builder::Int(b), Some(Scalar::Int(v))) => b.append_value(v),
                (Builder::Double(b), Some(Scalar::Double(v))) => b.append_value(v),
                (Builder::Bool(b), Some(Scalar::Bool(v))) => b.append_value(v),
                (Builder::Str(b), _) => b.append_null(),
                (Builder::Int(b), _) => b.append_null(),
                (Builder::Double(b), _) => b.append_null(),
                (Builder::Bool(b), _) => b.append_null(),
            }
        }
        Ok(())
    }

    /// The residual `attributes` array, the `attribute_order` array, and the dedicated columns.
    pub(crate) fn finish(mut self) -> (ArrayRef, ArrayRef, Vec<ArrayRef>) {
        let columns = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Str(b) => Arc::new(b.finish()),
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Double(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        (Arc::new(self.residual.finish()), Arc::new(self.order.finish()), columns)
    }
}

enum Column<'a> {
    Str(&'a StringArray),
    Int(&'a Int64Array),
    Double(&'a Float64Array),
    Bool(&'a BooleanArray),
}

impl Column<'_> {
    fn value(&self, row: usize) -> Option<Value> {
        let present = match self {
            Self::Str(a) => a.is_valid(row),
            Self::Int(a) => a.is_valid(row),
            Self::Double(a) => a.is_valid(row),
            Self::Bool(a) => a.is_valid(row),
        };
        present.then(|| match self {
            Self::Str(a) => Value::StringValue(a.value(row).to_owned()),
            Self::Int(a) => Value::IntValue(a.value(row)),
            Self::Double(a) => Value::DoubleValue(a.value(row)),
            Self::Bool(a) => Value::BoolValue(a.value(row)),
        })
    }
}

/// Rebuilds rows' attribute lists from a batch read back.
pub(crate) struct Join<'a> {
    residual: &'a BinaryArray,
    order: Option<&'a BinaryArray>,
    columns: Vec<(&'a str, Column<'a>)>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl<'a> Join<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, residual: &'a BinaryArray) -> io::Result<Self> {
        let order = batch.column_by_name(ORDER_COLUMN).and_then(|c| c.as_any().downcast_ref::<BinaryArray>());
        let mut columns = Vec::new();
        for (field, array) in batch.schema_ref().fields().iter().zip(batch.columns()) {
            let Some(key) = field.name().strip_prefix(PREFIX) else { continue };
            let any = array.as_any();
            let column = match Kind::from_data_type(field.data_type()) {
                Some(Kind::Str) => any.downcast_ref().map(Column::Str),
                Some(Kind::Int) => any.downcast_ref().map(Column::Int),
                Some(Kind::Double) => any.downcast_ref().map(Column::Double),
                Some(Kind::Bool) => any.downcast_ref().map(Column::Bool),
                None => None,
            }
            .ok_or_else(|| invalid(format!("attribute column {} has an unexpected type", field.name())))?;
            // Field names borrow from the batch's schema, which the batch keeps alive.
            columns.push((key, column));
        }
        Ok(Self { residual, order, columns })
    }

    /// The encoded `KeyValues` of row `row`, exactly as it was written.
    pub(crate) fn attributes(&self, row: usize) -> io::Result<Bytes> {
        let residual = self.residual.value(row);
        if self.columns.is_empty() {
            return Ok(Bytes::copy_from_slice(residual));
        }
        let mut dedicated: Vec<Option<KeyValue>> = self
            .columns
            .iter()
            .map(|(key, column)| {
                column.value(row).map(|v| KeyValue {
                    key: (*key).to_owned(),
                    value: Some(AnyValue { value: Some(v) }),
                    ..Default::default()
                })
            })
            .collect();
        let mut rest = decode(residual)?.into_iter();
        let order = self.order.map(|o| o.value(row)).unwrap_or_default();
        let mut values = Vec::with_capacity(dedicated.len() + rest.len());
        if order.is_empty() {
            values.extend(dedicated.into_iter().flatten());
            values.extend(rest);
        } else {
            for &slot in order {
                let next = if slot == RESIDUAL {
                    rest.next()
                } else {
                    dedicated.get_mut(slot as usize).and_then(Option::take)
                };
                values.push(
                    next.ok_or_else(|| invalid(format!("attribute order of row {row} does not match its values")))?,
                );
            }
        }
        if values.is_empty() {
            return Ok(Bytes::new());
        }
        Ok(Bytes::from(KeyValues { values }.encode_to_vec()))
    }
}
