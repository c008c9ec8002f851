//! The trace model queries are evaluated against: plain data, independent of how a backend
//! stores spans.

use crate::ast::{KindValue, StatusValue};

/// All spans of one trace, in any order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    pub trace_id: [u8; 16],
    pub spans: Vec<Span>,
}

/// One span with its resource flattened in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Span {
    pub span_id: [u8; 8],
    /// `None` (or all zeros) for a root span. A parent that is not in the trace leaves the span
    /// without a parent for structural operators, but does not make it a root.
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: KindValue,
    pub status: StatusValue,
    pub status_message: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// The resource's `service.name`. `resource.service.name` reads it when
    /// `resource_attributes` has no `service.name` entry, so it need not be stored twice.
    pub service_name: String,
    pub span_attributes: Vec<(String, Value)>,
    pub resource_attributes: Vec<(String, Value)>,
}

/// An attribute value. On a duplicate key the first entry wins.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Arrays, maps and bytes: TraceQL can only test whether they exist (`!= nil`).
    Other,
}
