//! The packed state calls of `cairn:operator/packed-state@0.2.0`. Keys are scoped keys (see
//! [`crate::scoped`]).
//!
//! * `get-many-packed` request: a u32 count, then per key a u32 length and the scoped key.
//!   Answer: per key, in order, a u32 length and the value, or the u32 [`ABSENT`].
//! * `write-many-packed`: a u32 count, then per entry a u32 length and the scoped key, then a
//!   u32 length and the value, or [`ABSENT`] (no bytes follow) to remove the key.

use crate::{ABSENT, Malformed, Reader, put};

/// A buffer that starts with a u32 count of the items appended after it.
#[derive(Debug, Clone)]
struct Counted {
    buf: Vec<u8>,
    count: u32,
}

impl Counted {
    fn new() -> Self {
        Self {
            buf: vec![0; 4],
            count: 0,
        }
    }

    /// One more item was appended: count it.
    fn bump(&mut self) {
        self.count += 1;
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
    }
}

/// A `get-many-packed` request being built.
#[derive(Debug, Clone)]
pub struct KeyList(Counted);

impl Default for KeyList {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyList {
    /// An empty request.
    pub fn new() -> Self {
        Self(Counted::new())
    }

    /// Ask for one more key.
    pub fn push(&mut self, scoped_key: &str) {
        put(&mut self.0.buf, scoped_key.as_bytes());
        self.0.bump();
    }

    /// How many keys are asked for.
    pub fn len(&self) -> usize {
        self.0.count as usize
    }

    /// Whether no key is asked for.
    pub fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// The encoded request.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.buf
    }
}

/// Read a `get-many-packed` request, calling `f` with each scoped key (checked UTF-8; the
/// caller checks the scoped form).
pub fn read_keys<'a, E>(
    bytes: &'a [u8],
    mut f: impl FnMut(&'a str) -> Result<(), E>,
) -> Result<Result<(), E>, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(4, "the key count")?;
    for _ in 0..count {
        let key = r.str("a key")?;
        if let Err(e) = f(key) {
            return Ok(Err(e));
        }
    }
    r.finish("the last key")?;
    Ok(Ok(()))
}

/// Append one answer of a `get-many-packed` call.
pub fn put_answer(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => put(out, v),
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

/// The answers of a `get-many-packed` call, in the order of the keys asked for.
#[derive(Debug, Clone)]
pub struct Answers<'a> {
    r: Reader<'a>,
}

impl<'a> Answers<'a> {
    /// Read answers from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            r: Reader::new(bytes),
        }
    }

    /// The next answer: `Ok(None)` for an absent key, `Err` on malformed input (or when there
    /// is no answer left).
    pub fn next_answer(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        self.r.opt_bytes("an answer")
    }
}

/// A `write-many-packed` call being built.
#[derive(Debug, Clone)]
pub struct Writes(Counted);

impl Default for Writes {
    fn default() -> Self {
        Self::new()
    }
}

impl Writes {
    /// No writes yet.
    pub fn new() -> Self {
        Self(Counted::new())
    }

    /// Set `scoped_key` to `value`.
    pub fn set(&mut self, scoped_key: &[u8], value: &[u8]) {
        put(&mut self.0.buf, scoped_key);
        put(&mut self.0.buf, value);
        self.0.bump();
    }

    /// Remove `scoped_key`.
    pub fn remove(&mut self, scoped_key: &[u8]) {
        put(&mut self.0.buf, scoped_key);
        self.0.buf.extend_from_slice(&ABSENT.to_le_bytes());
        self.0.bump();
    }

    /// How many writes.
    pub fn len(&self) -> usize {
        self.0.count as usize
    }

    /// Whether there is no write.
    pub fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// The encoded call.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.buf
    }
}

/// One entry of a `write-many-packed` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Store the value under the scoped key.
    Set(&'a str, &'a [u8]),
    /// Remove the scoped key.
    Remove(&'a str),
}

/// Check a whole `write-many-packed` call and return its entries, so that nothing is applied
/// from a call that turns out malformed half-way.
pub fn read_writes(bytes: &[u8]) -> Result<Vec<Write<'_>>, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(8, "the write count")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.str("a key")?;
        out.push(match r.opt_bytes("a value")? {
            Some(v) => Write::Set(key, v),
            None => Write::Remove(key),
        });
    }
    r.finish("the last write")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn writes_round_trip(ws in proptest::collection::vec((".{0,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12))), 0..12)) {
            let mut w = Writes::new();
            for (k, v) in &ws {
                match v {
                    Some(v) => w.set(k.as_bytes(), v),
                    None => w.remove(k.as_bytes()),
                }
            }
            let back: Vec<(String, Option<Vec<u8>>)> = read_writes(w.as_bytes()).unwrap().into_iter().map(|e| match e {
                Write::Set(k, v) => (k.to_string(), Some(v.to_vec())),
                Write::Remove(k) => (k.to_string(), None),
            }).collect();
            prop_assert_eq!(back, ws);
        }

        #[test]
        fn keys_and_answers_round_trip(ks in proptest::collection::vec((".{0,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12))), 0..12)) {
            let mut req = KeyList::new();
            let mut answer = Vec::new();
            for (k, v) in &ks {
                req.push(k);
                put_answer(&mut answer, v.as_deref());
            }
            let mut seen = Vec::new();
            read_keys::<()>(req.as_bytes(), |k| { seen.push(k.to_string()); Ok(()) }).unwrap().unwrap();
            prop_assert_eq!(seen, ks.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
            let mut a = Answers::new(&answer);
            for (_, v) in &ks {
                prop_assert_eq!(a.next_answer().unwrap().map(<[u8]>::to_vec), v.clone());
            }
            prop_assert!(a.next_answer().is_err());
        }

        #[test]
        fn noise_is_an_error_not_a_panic(noise in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_writes(&noise);
            let _ = read_keys::<()>(&noise, |_| Ok(()));
        }
    }
}
