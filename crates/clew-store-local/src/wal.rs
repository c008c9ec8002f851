//! What the engine's write-ahead log (`wal/`, written by `clew-wal`) holds: one record per
//! acknowledged request, a protobuf [`WalRecord`].

use prost::Message;

pub(crate) use clew_wal::{checkpoint, read_checkpoint, replay, Wal, WalObserver};

/// One acknowledged request, as the WAL stores it.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct WalRecord {
    #[prost(string, tag = "1")]
    pub(crate) tenant: String,
    /// An encoded `ExportTraceServiceRequest` holding only validated spans.
    #[prost(bytes = "bytes", tag = "2")]
    pub(crate) request: bytes::Bytes,
}

/// The framed WAL record of the encoded `request` for `tenant`, in one buffer: the request's
/// bytes are copied once, as they are.
pub(crate) fn record(tenant: &str, request: &[u8]) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
    // proto3 leaves default (empty) strings out.
    let tenant_len =
        if tenant.is_empty() { 0 } else { key_len(1) + encoded_len_varint(tenant.len() as u64) + tenant.len() };
    let payload = tenant_len + key_len(2) + encoded_len_varint(request.len() as u64) + request.len();
    let framed = clew_wal::frame_with(payload, |out| -> Result<(), std::convert::Infallible> {
        if !tenant.is_empty() {
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(tenant.len() as u64, out);
            out.extend_from_slice(tenant.as_bytes());
        }
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(request.len() as u64, out);
        out.extend_from_slice(request);
        Ok(())
    });
    let Ok(framed) = framed;
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_wal_records() {
        let request = vec![7; 300];
        for tenant in ["", "team-a"] {
            let want =
                clew_wal::frame(&WalRecord { tenant: tenant.into(), request: request.clone().into() }.encode_to_vec());
            assert_eq!(record(tenant, &request), want);
        }
    }
}
