//! ClickHouse's `RowBinary` format, the part Clew writes and reads: little-endian integers and
//! floats, strings as a LEB128 length and bytes, arrays as a LEB128 count and elements, `Date`
//! as days since the epoch in a `UInt16`, `FixedString(N)` as N bytes.

use std::fmt;

/// Appends values to an insert body.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn leb128(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.leb128(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn fixed(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// An array: its length, then each element written by `each`.
    pub(crate) fn array<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.leb128(items.len() as u64);
        for item in items {
            each(self, item);
        }
    }
}

/// What ClickHouse sent did not have the shape the query asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncated(pub(crate) &'static str);

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowBinary result ends inside a {} value", self.0)
    }
}

impl std::error::Error for Truncated {}

pub(crate) type Read<T> = Result<T, Truncated>;

/// Reads a query result row by row.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Read<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array_of<const N: usize>(&mut self, what: &'static str) -> Read<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Read<u8> {
        Ok(self.take(1, "UInt8")?[0])
    }

    pub(crate) fn u16(&mut self) -> Read<u16> {
        self.array_of("UInt16").map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Read<u32> {
        self.array_of("UInt32").map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Read<u64> {
        self.array_of("UInt64").map(u64::from_le_bytes)
    }

    pub(crate) fn i32(&mut self) -> Read<i32> {
        self.array_of("Int32").map(i32::from_le_bytes)
    }

    pub(crate) fn i64(&mut self) -> Read<i64> {
        self.array_of("Int64").map(i64::from_le_bytes)
    }

    pub(crate) fn f64(&mut self) -> Read<f64> {
        self.array_of("Float64").map(f64::from_le_bytes)
    }

    fn leb128(&mut self) -> Read<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Truncated("length"))
    }

    pub(crate) fn bytes(&mut self) -> Read<&'a [u8]> {
        let len = usize::try_from(self.leb128()?).map_err(|_| Truncated("String"))?;
        self.take(len, "String")
    }

    pub(crate) fn string(&mut self) -> Read<String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    pub(crate) fn fixed<const N: usize>(&mut self) -> Read<[u8; N]> {
        self.array_of("FixedString")
    }

    pub(crate) fn array<T>(&mut self, mut each: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        let len = self.leb128()?;
        // Never trust a length for an allocation: each element takes at least one byte.
        let mut out = Vec::with_capacity((len as usize).min(self.buf.len()));
        for _ in 0..len {
            out.push(each(self)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn what_is_written_reads_back(
            a in any::<u64>(),
            b in any::<i64>(),
            s in proptest::collection::vec(any::<u8>(), 0..300),
            list in proptest::collection::vec(".{0,20}", 0..5),
        ) {
            let mut w = Writer::default();
            w.u64(a);
            w.i64(b);
            w.bytes(&s);
            w.array(&list, |w, item| w.bytes(item.as_bytes()));
            let mut r = Reader::new(&w.buf);
            prop_assert_eq!(r.u64().unwrap(), a);
            prop_assert_eq!(r.i64().unwrap(), b);
            prop_assert_eq!(r.bytes().unwrap(), &s[..]);
            prop_assert_eq!(r.array(|r| r.string()).unwrap(), list);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.array(|r| r.bytes().map(<[u8]>::len));
            let _ = r.string();
        }
    }
}
