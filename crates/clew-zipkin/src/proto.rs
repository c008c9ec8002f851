//! The `zipkin.proto3` messages (zipkin-api `zipkin.proto`), written out for prost.
//!
//! In proto3 an absent field and its zero value are the same thing; Zipkin documents zero
//! timestamps, durations and ports, false flags and empty strings as absent.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::span::{self, Annotation as ZipkinAnnotation, Endpoint as ZipkinEndpoint, ZipkinSpan};

/// A list of spans with possibly different trace IDs, in no particular order: the body of
/// `POST /api/v2/spans` with `Content-Type: application/x-protobuf`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 8 or 16 bytes, big-endian.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// Empty on a root span, else 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    #[prost(enumeration = "Kind", tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    /// Microseconds since the Unix epoch.
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    /// Microseconds.
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<Endpoint>,
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<Endpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<Annotation>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub tags: BTreeMap<String, String>,
    #[prost(bool, tag = "12")]
    pub debug: bool,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    Unspecified = 0,
    Client = 1,
    Server = 2,
    Producer = 3,
    Consumer = 4,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Endpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    /// Empty or 4 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    /// Empty or 16 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Annotation {
    /// Microseconds since the Unix epoch.
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Span {
    /// The span in the JSON model, with the byte lengths checked; the rest is validated with
    /// the OTLP translation, as for JSON.
    pub(crate) fn into_zipkin(self) -> Result<ZipkinSpan, String> {
        let trace_id = match self.trace_id.len() {
            8 | 16 => hex::encode(&self.trace_id),
            n => return Err(format!("traceId must be 8 or 16 bytes, got {n}")),
        };
        let id = match self.id.len() {
            8 => hex::encode(&self.id),
            n => return Err(format!("id must be 8 bytes, got {n}")),
        };
        let parent_id = match self.parent_id.len() {
            0 => None,
            8 => Some(hex::encode(&self.parent_id)),
            n => return Err(format!("parentId must be empty or 8 bytes, got {n}")),
        };
        let kind = match Kind::try_from(self.kind) {
            Ok(Kind::Unspecified) => None,
            Ok(Kind::Client) => Some(span::Kind::Client),
            Ok(Kind::Server) => Some(span::Kind::Server),
            Ok(Kind::Producer) => Some(span::Kind::Producer),
            Ok(Kind::Consumer) => Some(span::Kind::Consumer),
            Err(_) => {
                return Err(format!(
                    "kind must be 0 (absent), 1 (CLIENT), 2 (SERVER), 3 (PRODUCER) or 4 (CONSUMER), got {}",
                    self.kind
                ))
            }
        };
        Ok(ZipkinSpan {
            trace_id,
            parent_id,
            id,
            kind,
            name: (!self.name.is_empty()).then_some(self.name),
            timestamp: (self.timestamp != 0).then_some(self.timestamp),
            duration: (self.duration != 0).then_some(self.duration),
            local_endpoint: self.local_endpoint.map(|e| e.into_zipkin("localEndpoint")).transpose()?.flatten(),
            remote_endpoint: self.remote_endpoint.map(|e| e.into_zipkin("remoteEndpoint")).transpose()?.flatten(),
            annotations: self
                .annotations
                .into_iter()
                .map(|a| ZipkinAnnotation { timestamp: a.timestamp, value: a.value })
                .collect(),
            tags: self.tags,
            debug: self.debug.then_some(true),
            shared: self.shared.then_some(true),
        })
    }
}

impl Endpoint {
    fn into_zipkin(self, field: &str) -> Result<Option<ZipkinEndpoint>, String> {
        let ipv4 = match <[u8; 4]>::try_from(self.ipv4.as_slice()) {
            Ok(octets) => Some(Ipv4Addr::from(octets).to_string()),
            Err(_) if self.ipv4.is_empty() => None,
            Err(_) => return Err(format!("{field}.ipv4 must be empty or 4 bytes, got {}", self.ipv4.len())),
        };
        let ipv6 = match <[u8; 16]>::try_from(self.ipv6.as_slice()) {
            Ok(octets) => Some(Ipv6Addr::from(octets).to_string()),
            Err(_) if self.ipv6.is_empty() => None,
            Err(_) => return Err(format!("{field}.ipv6 must be empty or 16 bytes, got {}", self.ipv6.len())),
        };
        let port =
            u16::try_from(self.port).map_err(|_| format!("{field}.port must be from 0 to 65535, got {}", self.port))?;
        let endpoint = ZipkinEndpoint {
            service_name: (!self.service_name.is_empty()).then_some(self.service_name),
            ipv4,
            ipv6,
            port: (port != 0).then_some(port),
        };
        Ok((!endpoint.is_empty()).then_some(endpoint))
    }
}
