//! OTLP protobuf read where it lies: fields walked with prost's wire primitives, nested
//! messages checked as strictly as prost's decoder checks them, and attributes read as
//! borrowed keys and values instead of being decoded into owned ones.

use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};

/// Why bytes are not the OTLP message they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub(crate) String);

impl WireError {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

impl From<prost::DecodeError> for WireError {
    fn from(e: prost::DecodeError) -> Self {
        Self(e.to_string())
    }
}

/// The nesting prost's decoder allows; deeper input is refused, as prost refuses it.
const RECURSION_LIMIT: u32 = 100;

/// A field's value as the wire holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    /// A group (deprecated wire type), skipped.
    Group,
}

/// One field: its number, value, and the bytes of the whole field (key included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub(crate) tag: u32,
    pub(crate) value: Wire<'a>,
    pub(crate) whole: &'a [u8],
    /// Whether the key is the single byte an encoder writes for this tag and wire type.
    pub(crate) short_key: bool,
}

/// The fields of one message, in wire order.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline]
    fn read(&mut self) -> Result<Field<'a>, WireError> {
        let start = self.buf;
        let mut buf = self.buf;
        let (tag, wire_type) = decode_key(&mut buf)?;
        let key_len = start.len() - buf.len();
        let value = match wire_type {
            WireType::Varint => Wire::Varint(decode_varint(&mut buf)?),
            WireType::SixtyFourBit => {
                let (bytes, rest) = buf.split_first_chunk::<8>().ok_or_else(|| WireError::new("buffer underflow"))?;
                buf = rest;
                Wire::Fixed64(u64::from_le_bytes(*bytes))
            }
            WireType::ThirtyTwoBit => {
                let (bytes, rest) = buf.split_first_chunk::<4>().ok_or_else(|| WireError::new("buffer underflow"))?;
                buf = rest;
                Wire::Fixed32(u32::from_le_bytes(*bytes))
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf)?;
                let len = usize::try_from(len).ok().filter(|&l| l <= buf.len());
                let len = len.ok_or_else(|| WireError::new("buffer underflow"))?;
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Wire::Bytes(bytes)
            }
            WireType::StartGroup | WireType::EndGroup => {
                skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
                Wire::Group
            }
        };
        let whole = &start[..start.len() - buf.len()];
        self.buf = buf;
        Ok(Field { tag, value, whole, short_key: key_len == 1 })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.read();
        if field.is_err() {
            self.buf = &[];
        }
        Some(field)
    }
}

/// The messages of the OTLP schema below a span, checked field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    Resource,
    EntityRef,
    Scope,
    Event,
    Link,
    Status,
}

/// What a known field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bytes,
    Varint,
    Fixed64,
    Fixed32,
    Msg(Msg),
}

impl Msg {
    /// The kind of field `tag`, or `None` for a field this schema does not know (skipped, as
    /// prost skips it).
    pub(crate) fn field(self, tag: u32) -> Option<Kind> {
        Some(match (self, tag) {
            (Self::KeyValue, 1) => Kind::Str,
            (Self::KeyValue, 2) => Kind::Msg(Self::AnyValue),
            (Self::KeyValue, 3) => Kind::Varint,
            (Self::AnyValue, 1) => Kind::Str,
            (Self::AnyValue, 2 | 3 | 8) => Kind::Varint,
            (Self::AnyValue, 4) => Kind::Fixed64,
            (Self::AnyValue, 5) => Kind::Msg(Self::ArrayValue),
            (Self::AnyValue, 6) => Kind::Msg(Self::KeyValueList),
            (Self::AnyValue, 7) => Kind::Bytes,
            (Self::ArrayValue, 1) => Kind::Msg(Self::AnyValue),
            (Self::KeyValueList, 1) => Kind::Msg(Self::KeyValue),
            (Self::Resource, 1) => Kind::Msg(Self::KeyValue),
            (Self::Resource, 2) => Kind::Varint,
            (Self::Resource, 3) => Kind::Msg(Self::EntityRef),
            (Self::EntityRef, 1..=4) => Kind::Str,
            (Self::Scope, 1 | 2) => Kind::Str,
            (Self::Scope, 3) => Kind::Msg(Self::KeyValue),
            (Self::Scope, 4) => Kind::Varint,
            (Self::Event, 1) => Kind::Fixed64,
            (Self::Event, 2) => Kind::Str,
            (Self::Event, 3) => Kind::Msg(Self::KeyValue),
            (Self::Event, 4) => Kind::Varint,
            (Self::Link, 1 | 2) => Kind::Bytes,
            (Self::Link, 3) => Kind::Str,
            (Self::Link, 4) => Kind::Msg(Self::KeyValue),
            (Self::Link, 5) => Kind::Varint,
            (Self::Link, 6) => Kind::Fixed32,
            (Self::Status, 2) => Kind::Str,
            (Self::Status, 3) => Kind::Varint,
            _ => return None,
        })
    }
}

/// Checks that a field's value is what `kind` needs, and its content when it is a string or a
/// message; returns the length-delimited bytes, if any.
#[inline]
pub(crate) fn check_field<'a>(kind: Kind, field: &Field<'a>, depth: u32) -> Result<Option<&'a [u8]>, WireError> {
    let wrong =
        |expected: &str| Err(WireError::new(format!("field {}: invalid wire type (expected {expected})", field.tag)));
    match (kind, field.value) {
        (Kind::Varint, Wire::Varint(_)) | (Kind::Fixed64, Wire::Fixed64(_)) | (Kind::Fixed32, Wire::Fixed32(_)) => {
            Ok(None)
        }
        (Kind::Bytes, Wire::Bytes(b)) => Ok(Some(b)),
        (Kind::Str, Wire::Bytes(b)) => {
            std::str::from_utf8(b).map_err(|_| {
                WireError::new(format!("field {}: invalid string value: data is not UTF-8 encoded", field.tag))
            })?;
            Ok(Some(b))
        }
        (Kind::Msg(msg), Wire::Bytes(b)) => {
            check(msg, b, depth + 1)?;
            Ok(Some(b))
        }
        (Kind::Varint, _) => wrong("varint"),
        (Kind::Fixed64, _) => wrong("64-bit"),
        (Kind::Fixed32, _) => wrong("32-bit"),
        (Kind::Str | Kind::Bytes | Kind::Msg(_), _) => wrong("length-delimited"),
    }
}

/// Checks `bytes` as an encoded `msg`, nested messages included.
pub(crate) fn check(msg: Msg, bytes: &[u8], depth: u32) -> Result<(), WireError> {
    if depth > RECURSION_LIMIT {
        return Err(WireError::new("recursion limit reached"));
    }
    for field in Fields::new(bytes) {
        let field = field?;
        if let Some(kind) = msg.field(field.tag) {
            check_field(kind, &field, depth)?;
        }
    }
    Ok(())
}

/// The last length-delimited field numbered `tag` of an encoded message (a nested message,
/// string or bytes), as prost's decoder would keep it; `None` when there is none.
pub fn field(message: &[u8], tag: u32) -> Option<&[u8]> {
    Fields::new(message).map_while(Result::ok).filter(|f| f.tag == tag).fold(None, |last, f| match f.value {
        Wire::Bytes(b) => Some(b),
        _ => last,
    })
}

/// A borrowed attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueRef<'a> {
    /// No value (an empty `AnyValue`, or none at all).
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(ValuesRef<'a>),
    Map(AttributesRef<'a>),
}

impl<'a> ValueRef<'a> {
    /// Reads an encoded `AnyValue` (the last value field wins, as in prost's decoder).
    pub fn read(any_value: &'a [u8]) -> Self {
        let mut value = ValueRef::Empty;
        for field in Fields::new(any_value).map_while(Result::ok) {
            value = match (field.tag, field.value) {
                (1, Wire::Bytes(b)) => std::str::from_utf8(b).map_or(ValueRef::Empty, ValueRef::Str),
                (2, Wire::Varint(v)) => ValueRef::Bool(v != 0),
                (3, Wire::Varint(v)) => ValueRef::Int(v as i64),
                (4, Wire::Fixed64(v)) => ValueRef::Double(f64::from_bits(v)),
                (5, Wire::Bytes(b)) => ValueRef::Array(ValuesRef(b)),
                (6, Wire::Bytes(b)) => ValueRef::Map(AttributesRef::of(b, 1)),
                (7, Wire::Bytes(b)) => ValueRef::Bytes(b),
                _ => continue,
            };
        }
        value
    }

    /// The value as text, for strings (not empty), integers, doubles and booleans.
    pub fn text(&self) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        match self {
            ValueRef::Str(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
            ValueRef::Int(i) => Some(Cow::Owned(i.to_string())),
            ValueRef::Double(d) => Some(Cow::Owned(d.to_string())),
            ValueRef::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }
}

/// The values of an encoded `ArrayValue`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValuesRef<'a>(&'a [u8]);

impl<'a> ValuesRef<'a> {
    pub(crate) fn of(array_value: &'a [u8]) -> Self {
        Self(array_value)
    }

    pub fn iter(&self) -> impl Iterator<Item = ValueRef<'a>> + 'a {
        Fields::new(self.0).map_while(Result::ok).filter_map(|field| match (field.tag, field.value) {
            (1, Wire::Bytes(b)) => Some(ValueRef::read(b)),
            _ => None,
        })
    }
}

/// One borrowed attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeRef<'a> {
    pub key: &'a str,
    pub value: ValueRef<'a>,
}

/// The attributes (`KeyValue` fields numbered `tag`) of an encoded message, read lazily.
/// Malformed bytes end the list; what arrives at ingest was checked before it was stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttributesRef<'a> {
    fields: &'a [u8],
    tag: u32,
}

impl<'a> AttributesRef<'a> {
    /// The `KeyValue` fields numbered `tag` in `message`.
    pub fn of(message: &'a [u8], tag: u32) -> Self {
        Self { fields: message, tag }
    }

    /// Stored attributes: an encoded [`crate::KeyValues`].
    pub fn stored(key_values: &'a [u8]) -> Self {
        Self::of(key_values, 1)
    }

    pub fn iter(&self) -> impl Iterator<Item = AttributeRef<'a>> + 'a {
        let tag = self.tag;
        Fields::new(self.fields).map_while(Result::ok).filter_map(move |field| match field.value {
            Wire::Bytes(b) if field.tag == tag => Some(key_value(b)),
            _ => None,
        })
    }

    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        self.iter().find(|a| a.key == key).map(|a| a.value)
    }
}

/// Reads an encoded `KeyValue` (the last key and value fields win).
fn key_value(bytes: &[u8]) -> AttributeRef<'_> {
    let mut key = "";
    let mut value = ValueRef::Empty;
    for field in Fields::new(bytes).map_while(Result::ok) {
        match (field.tag, field.value) {
            (1, Wire::Bytes(b)) => key = std::str::from_utf8(b).unwrap_or(""),
            (2, Wire::Bytes(b)) => value = ValueRef::read(b),
            _ => {}
        }
    }
    AttributeRef { key, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::v1::{self as common, any_value, AnyValue, KeyValue, KeyValueList};
    use crate::KeyValues;
    use prost::Message;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    #[test]
    fn attributes_read_in_place_match_decoded_ones() {
        use any_value::Value::*;
        let list = KeyValues {
            values: vec![
                kv("s", StringValue("text".into())),
                kv("b", BoolValue(true)),
                kv("i", IntValue(-7)),
                kv("d", DoubleValue(1.5)),
                kv("x", BytesValue(vec![1, 2])),
                kv("a", ArrayValue(common::ArrayValue { values: vec![AnyValue { value: Some(IntValue(3)) }] })),
                kv("m", KvlistValue(KeyValueList { values: vec![kv("inner", StringValue("v".into()))] })),
                KeyValue { key: "none".into(), ..Default::default() },
            ],
        };
        let bytes = list.encode_to_vec();
        let read = AttributesRef::stored(&bytes);
        let keys: Vec<&str> = read.iter().map(|a| a.key).collect();
        assert_eq!(keys, ["s", "b", "i", "d", "x", "a", "m", "none"]);
        assert_eq!(read.get("s"), Some(ValueRef::Str("text")));
        assert_eq!(read.get("b"), Some(ValueRef::Bool(true)));
        assert_eq!(read.get("i"), Some(ValueRef::Int(-7)));
        assert_eq!(read.get("d"), Some(ValueRef::Double(1.5)));
        assert_eq!(read.get("x"), Some(ValueRef::Bytes(&[1, 2])));
        let Some(ValueRef::Array(array)) = read.get("a") else { panic!("array") };
        assert_eq!(array.iter().collect::<Vec<_>>(), [ValueRef::Int(3)]);
        let Some(ValueRef::Map(map)) = read.get("m") else { panic!("map") };
        assert_eq!(map.get("inner"), Some(ValueRef::Str("v")));
        assert_eq!(read.get("none"), Some(ValueRef::Empty));
        assert_eq!(read.get("missing"), None);
        assert_eq!(read.get("i").and_then(|v| v.text()).as_deref(), Some("-7"));
        let first = list.values[0].encode_to_vec();
        assert_eq!(field(&first, 1), Some(b"s".as_slice()), "the key");
        assert_eq!(field(&first, 7), None);
    }

    #[test]
    fn checks_refuse_what_prost_refuses() {
        let good = kv("k", any_value::Value::StringValue("v".into())).encode_to_vec();
        assert!(check(Msg::KeyValue, &good, 0).is_ok());
        let mut bad_utf8 = good.clone();
        *bad_utf8.last_mut().unwrap() = 0xff;
        assert!(KeyValue::decode(bad_utf8.as_slice()).is_err());
        assert!(check(Msg::KeyValue, &bad_utf8, 0).unwrap_err().0.contains("UTF-8"));
        let truncated = &good[..good.len() - 1];
        assert!(check(Msg::KeyValue, truncated, 0).is_err());
        // Field 1 (the key) as a varint.
        assert!(check(Msg::KeyValue, &[0x08, 0x01], 0).unwrap_err().0.contains("wire type"));
        // Unknown fields are skipped.
        assert!(check(Msg::KeyValue, &[0x78, 0x01], 0).is_ok());
    }
}
