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
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) request: Vec<u8>,
}

/// The framed WAL record of `request` for `tenant`, encoded in one buffer: the same bytes as
/// framing an encoded [`WalRecord`], without encoding the request twice.
pub(crate) fn record(tenant: &str, request: &impl Message) -> Result<Vec<u8>, prost::EncodeError> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, string, WireType};
    let inner = request.encoded_len();
    let tenant = tenant.to_owned();
    // proto3 leaves default (empty) strings out.
    let tenant_len = if tenant.is_empty() { 0 } else { string::encoded_len(1, &tenant) };
    let payload = tenant_len + key_len(2) + encoded_len_varint(inner as u64) + inner;
    clew_wal::frame_with(payload, |out| {
        if !tenant.is_empty() {
            string::encode(1, &tenant, out);
        }
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(inner as u64, out);
        request.encode(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_wal_records() {
        let request = WalRecord { tenant: "x".into(), request: vec![7; 300] };
        for tenant in ["", "team-a"] {
            let want =
                clew_wal::frame(&WalRecord { tenant: tenant.into(), request: request.encode_to_vec() }.encode_to_vec());
            assert_eq!(record(tenant, &request).unwrap(), want);
        }
    }
}
