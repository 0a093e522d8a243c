//! # cairn-codec
//!
//! The byte layouts that cross between the Cairn host and cairn-sdk plugins on the speed paths
//! of `cairn:operator@0.2` (`process-packed`, `get-many-packed`, `write-many-packed`, …), the
//! scoped-key form in which keyed state is stored, the key-group hash, the state quota rule,
//! and the current contract version ([`CONTRACT_VERSION`]). One crate, used by both sides, so
//! that they cannot drift apart. `wit/README.md`
//! documents the same layouts for SDKs in other languages; [`golden`] holds byte vectors they
//! can test against.
//!
//! Everything is little-endian. Decoding is bounds-checked: malformed input is a
//! [`Malformed`] error naming what was wrong and where, never a panic.

#![deny(missing_docs)]

pub mod batch;
pub mod declared;
pub mod expiry;
pub mod golden;
pub mod pickle;
pub mod quota;
pub mod scoped;
pub mod state;
pub mod timers;

use std::fmt;

/// The current version of the `cairn:operator` WIT package, as a literal (for `concat!`):
/// the one place it is written. The host serves it (and every older supported version),
/// cairn-sdk and `cairn build` build against it, and tests check every other mention of a
/// "current" version against it. `wit/README.md` lists every version.
#[macro_export]
macro_rules! contract_version {
    () => {
        "0.2.5"
    };
}

/// The current version of the `cairn:operator` WIT package ([`contract_version!`]).
pub const CONTRACT_VERSION: &str = contract_version!();

/// Input that does not follow a layout: what was being read, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// What was being read, e.g. "a key" or "the event count".
    pub what: String,
    /// Byte offset in the input.
    pub at: usize,
    /// Why it failed.
    pub problem: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.what, self.at, self.problem)
    }
}

impl std::error::Error for Malformed {}

/// `bytes` as a `str` if it is UTF-8, as `std::str::from_utf8` decides, with a fast path for
/// ASCII: keys, scopes and ids nearly always are, and checking ASCII goes a word at a time
/// where `from_utf8` goes byte by byte on input this short.
pub fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// The length that marks "nothing here" where a length is expected: an absent value in a
/// `get-many-packed` answer, a removal in `write-many-packed`.
pub const ABSENT: u32 = u32::MAX;

/// ASCII bytes as a `str`.
pub(crate) fn ascii(b: &[u8]) -> &str {
    debug_assert!(b.is_ascii());
    // SAFETY: only called on ASCII (digits, `:`, hex digits); ASCII is UTF-8.
    unsafe { std::str::from_utf8_unchecked(b) }
}

/// Append `bytes` with its u32 length, the layouts' unit for keys and values. Panics if
/// `bytes` is 4 GiB or more (no key or value may be: the host's limits are far below).
pub fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a key or value of 4 GiB or more");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// A bounds-checked cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// The current byte offset.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// Fail unless every byte was read.
    pub fn finish(&self, what: &str) -> Result<(), Malformed> {
        if self.done() {
            Ok(())
        } else {
            Err(self.error(what, "bytes left over after it"))
        }
    }

    /// An error at the current position.
    pub fn error(&self, what: &str, problem: &'static str) -> Malformed {
        Malformed {
            what: what.to_string(),
            at: self.at,
            problem,
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(self.error(what, "runs past the end of the input")),
        }
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian i64.
    pub fn i64(&mut self, what: &str) -> Result<i64, Malformed> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    /// A count of items that each take at least `min_item` bytes: refused when the rest of the
    /// input cannot hold that many, so that a lying count cannot make a reader reserve memory.
    pub fn count(&mut self, min_item: usize, what: &str) -> Result<usize, Malformed> {
        let start = self.at;
        let n = self.u32(what)? as usize;
        let rest = self.bytes.len() - self.at;
        if n.saturating_mul(min_item.max(1)) > rest {
            self.at = start;
            return Err(self.error(what, "is larger than the input can hold"));
        }
        Ok(n)
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// Length-prefixed bytes, or `None` for the [`ABSENT`] length.
    pub fn opt_bytes(&mut self, what: &str) -> Result<Option<&'a [u8]>, Malformed> {
        let n = self.u32(what)?;
        if n == ABSENT {
            return Ok(None);
        }
        self.take(n as usize, what).map(Some)
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, what: &str) -> Result<&'a str, Malformed> {
        let start = self.at;
        let b = self.bytes(what)?;
        utf8(b).map_err(|_| Malformed {
            what: what.to_string(),
            at: start,
            problem: "is not UTF-8",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_what_is_not_there() {
        let mut r = Reader::new(&[5, 0, 0, 0, b'a']);
        let e = r.bytes("a key").unwrap_err();
        assert_eq!(e.to_string(), "a key at byte 4: runs past the end of the input");
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            r.count(8, "the count").unwrap_err().problem,
            "is larger than the input can hold"
        );
        let mut r = Reader::new(&[1, 0, 0, 0, 0xff]);
        assert_eq!(r.str("a key").unwrap_err().problem, "is not UTF-8");
        let mut r = Reader::new(&[1, 2]);
        assert!(r.u32("x").is_err());
        assert_eq!(r.position(), 0);
    }

    proptest::proptest! {
        /// `utf8` decides as `from_utf8` does, on ASCII, on UTF-8 and on any bytes (mostly
        /// ASCII with a few high bytes, where the fast path must hand over).
        #[test]
        fn utf8_is_from_utf8(
            text in ".{0,40}",
            bytes in proptest::collection::vec(proptest::prop_oneof![8 => 0u8..0x80, 1 => 0x80u8..=0xff], 0..40),
        ) {
            proptest::prop_assert_eq!(utf8(text.as_bytes()), Ok(text.as_str()));
            proptest::prop_assert_eq!(utf8(&bytes), std::str::from_utf8(&bytes));
        }
    }
}
