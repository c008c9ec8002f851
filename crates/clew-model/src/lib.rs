//! The span data model every other Clew crate speaks.
//!
//! Owns the identifier newtypes ([`TraceId`], [`SpanId`], [`TenantId`]), re-exports the OTLP
//! protobuf types ([`otlp`]), and defines [`SpanBatch`]: an export request as received, checked
//! and indexed so that every stage of ingest reads its spans in place ([`wire`] reads
//! attributes without decoding them into owned values), and [`SpanRow`]: one span flattened for
//! storage, with its resource and scope kept as encoded protobuf so that nothing OTLP can
//! express is lost. [`Code`] is the closed set of failures every API and receiver answers
//! with, mapped once to HTTP and to gRPC.
//!
//! This crate does no I/O and depends on no other Clew crate.

mod batch;
mod code;
mod ids;
pub mod otlp_json;
mod row;
mod tenant;
pub mod wire;

pub use batch::{EventView, LinkView, ResourceView, ScopeView, SpanAttribute, SpanAttributes, SpanBatch, SpanView};
pub use code::{Code, Coded};
pub use ids::{IdError, SpanId, TraceId};
pub use row::{assemble, rows_from_batch, rows_from_request, DecodeError, Events, KeyValues, Links, SpanRow};
pub use tenant::{TenantError, TenantId};

/// The generated OTLP protobuf types (with their OTLP/JSON serde mapping).
pub use opentelemetry_proto::tonic as otlp;

/// Resource attribute that names the service that emitted a span.
pub const SERVICE_NAME: &str = "service.name";

/// Span attribute recording how many spans a kept span stands for after sampling (a positive
/// number; 1 when absent). Counts and rates are re-weighted with it.
pub const SAMPLING_WEIGHT: &str = "clew.sampling.weight";

/// Span attribute naming why the tail sampler kept a span's trace (`error`, `slow`,
/// `rule:{name}`, `probabilistic`).
pub const SAMPLING_REASON: &str = "clew.sampling.reason";

/// Nanoseconds in one day; storage partitions spans by UTC day of their start time.
pub const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Lowercase hex of raw bytes, as OTLP/JSON writes IDs.
pub fn otlp_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The UTC day (days since 1970-01-01) a timestamp in Unix nanoseconds falls on.
pub fn day_of(unix_nano: u64) -> u32 {
    // u64 nanoseconds cover ~584 years, so the day always fits in u32.
    (unix_nano / NANOS_PER_DAY) as u32
}

/// A UTC day (days since 1970-01-01) as `YYYY-MM-DD`.
pub fn day_name(day: u32) -> String {
    let date = time::Date::from_julian_day(2_440_588 + day as i32).unwrap_or(time::Date::MIN);
    format!("{:04}-{:02}-{:02}", date.year(), date.month() as u8, date.day())
}
