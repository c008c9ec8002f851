use std::fmt;
use std::str::FromStr;

/// Why a byte string or hex string is not a valid trace or span ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {expected} bytes ({} hex characters), got {actual} bytes", expected * 2)]
    Length { what: &'static str, expected: usize, actual: usize },
    #[error("{what} must not be all zeros")]
    Zero { what: &'static str },
    #[error("{what} is not hexadecimal: {reason}")]
    Hex { what: &'static str, reason: String },
}

macro_rules! id_type {
    ($name:ident, $len:literal, $what:literal) => {
        #[doc = concat!("A non-zero ", $what, " of ", stringify!($len), " bytes, shown as lowercase hex.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            /// Validates raw bytes as they arrive in OTLP: exact length, not all zeros.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    what: $what,
                    expected: $len,
                    actual: bytes.len(),
                })?;
                Self::from_bytes(array)
            }

            pub fn from_bytes(bytes: [u8; $len]) -> Result<Self, IdError> {
                if bytes == [0; $len] {
                    return Err(IdError::Zero { what: $what });
                }
                Ok(Self(bytes))
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                if s.len() != $len * 2 {
                    return Err(IdError::Length { what: $what, expected: $len, actual: s.len() / 2 });
                }
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(s, &mut bytes).map_err(|e| IdError::Hex { what: $what, reason: e.to_string() })?;
                Self::from_bytes(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        /// Lowercase hex, as OTLP/JSON writes IDs.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

id_type!(TraceId, 16, "trace ID");
id_type!(SpanId, 8, "span ID");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_wrong_length_zero_and_non_hex() {
        assert!(matches!(TraceId::from_slice(&[1; 15]), Err(IdError::Length { actual: 15, .. })));
        assert_eq!(TraceId::from_slice(&[0; 16]), Err(IdError::Zero { what: "trace ID" }));
        assert!(matches!("zz".repeat(16).parse::<TraceId>(), Err(IdError::Hex { .. })));
        assert!(matches!("abc".parse::<SpanId>(), Err(IdError::Length { .. })));
        let message = "0102".parse::<SpanId>().unwrap_err().to_string();
        assert_eq!(message, "span ID must be 8 bytes (16 hex characters), got 2 bytes");
    }

    #[test]
    fn accepts_uppercase_hex_and_prints_lowercase() {
        let id: SpanId = "00F067AA0BA902B7".parse().unwrap();
        assert_eq!(id.to_string(), "00f067aa0ba902b7");
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in any::<[u8; 16]>().prop_filter("non-zero", |b| *b != [0; 16])) {
            let id = TraceId::from_bytes(bytes).unwrap();
            prop_assert_eq!(id.to_hex().parse::<TraceId>().unwrap(), id);
            prop_assert_eq!(TraceId::from_slice(id.as_bytes()).unwrap(), id);
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = s.parse::<TraceId>();
            let _ = s.parse::<SpanId>();
        }
    }
}
