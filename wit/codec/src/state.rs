//! The packed state calls of `cairn:operator/packed-state@0.2.0`. An entry is named by its
//! scope and key as the guest names them; the host composes the scoped key it stores
//! ([`crate::scoped`]), so a packed call can name no malformed scoped key.
//!
//! * a *name*: the scope as `bytes`, or [`ABSENT`] for the operator-wide scope, then the key
//!   as `bytes` (`bytes`: a u32 length and that many bytes; both UTF-8).
//! * `get-many-packed` request: a u32 count, then per entry its name.
//!   Answer: per entry, in order, a u32 length and the value, or the u32 [`ABSENT`].
//! * `write-many-packed`: a u32 count, then per entry its name, then a u32 length and the
//!   value, or [`ABSENT`] (no bytes follow) to remove the entry.
//!
//! * `packed-timers.register-packed` (0.2.4): a u32 count, then per timer its stream key as `bytes`
//!   (UTF-8) and its time as an i64.
//!
//! 0.1.1's `get-many-packed` request is a count and plain keys ([`read_plain_keys`]).

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

/// Append an entry's name: its scope (`None`: operator-wide) and key.
fn put_name(buf: &mut Vec<u8>, scope: Option<&[u8]>, key: &[u8]) {
    match scope {
        Some(s) => put(buf, s),
        None => buf.extend_from_slice(&ABSENT.to_le_bytes()),
    }
    put(buf, key);
}

/// The smallest encoded name: an absent scope and an empty key.
const MIN_NAME: usize = 8;

/// Read an entry's name.
fn read_name<'a>(r: &mut Reader<'a>) -> Result<(Option<&'a str>, &'a str), Malformed> {
    let at = r.position();
    let scope = match r.opt_bytes("a scope")? {
        Some(b) => Some(crate::utf8(b).map_err(|_| Malformed {
            what: "a scope".to_string(),
            at,
            problem: "is not UTF-8",
        })?),
        None => None,
    };
    Ok((scope, r.str("a key")?))
}

/// `new`, `Default`, `len`, `is_empty` and `as_bytes` of a call built in a [`Counted`]
/// buffer; `$items` names what it counts.
macro_rules! counted_call {
    ($t:ident, $items:literal) => {
        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $t {
            #[doc = concat!("No ", $items, " yet.")]
            pub fn new() -> Self {
                Self(Counted::new())
            }

            #[doc = concat!("How many ", $items, ".")]
            pub fn len(&self) -> usize {
                self.0.count as usize
            }

            #[doc = concat!("Whether there are no ", $items, ".")]
            pub fn is_empty(&self) -> bool {
                self.0.count == 0
            }

            /// The encoded call.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0.buf
            }
        }
    };
}

/// A `get-many-packed` request being built.
#[derive(Debug, Clone)]
pub struct KeyList(Counted);

counted_call!(KeyList, "entries asked for");

impl KeyList {
    /// Ask for `key` of `scope` (`None`: operator-wide; both UTF-8).
    pub fn push(&mut self, scope: Option<&[u8]>, key: &[u8]) {
        put_name(&mut self.0.buf, scope, key);
        self.0.bump();
    }
}

/// Read a `get-many-packed` request, calling `f` with each entry's scope and key (checked
/// UTF-8).
pub fn read_keys<'a, E>(
    bytes: &'a [u8],
    mut f: impl FnMut(Option<&'a str>, &'a str) -> Result<(), E>,
) -> Result<Result<(), E>, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(MIN_NAME, "the key count")?;
    for _ in 0..count {
        let (scope, key) = read_name(&mut r)?;
        if let Err(e) = f(scope, key) {
            return Ok(Err(e));
        }
    }
    r.finish("the last key")?;
    Ok(Ok(()))
}

/// Read a 0.1.1 `get-many-packed` request (a count, then plain keys), calling `f` with each
/// key (checked UTF-8).
pub fn read_plain_keys<'a, E>(
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

counted_call!(Writes, "writes");

impl Writes {
    /// Set `key` of `scope` (`None`: operator-wide; both UTF-8) to `value`.
    pub fn set(&mut self, scope: Option<&[u8]>, key: &[u8], value: &[u8]) {
        put_name(&mut self.0.buf, scope, key);
        put(&mut self.0.buf, value);
        self.0.bump();
    }

    /// Remove `key` of `scope`.
    pub fn remove(&mut self, scope: Option<&[u8]>, key: &[u8]) {
        put_name(&mut self.0.buf, scope, key);
        self.0.buf.extend_from_slice(&ABSENT.to_le_bytes());
        self.0.bump();
    }
}

/// A `packed-timers.register-packed` call being built (0.2.4).
#[derive(Debug, Clone)]
pub struct TimerList(Counted);

counted_call!(TimerList, "timers");

impl TimerList {
    /// Register the timer of stream key `key` (UTF-8) at `ts`.
    pub fn push(&mut self, key: &[u8], ts: i64) {
        put(&mut self.0.buf, key);
        self.0.buf.extend_from_slice(&ts.to_le_bytes());
        self.0.bump();
    }

    /// Forget the timers, keeping the buffer.
    pub fn clear(&mut self) {
        self.0.buf.truncate(4);
        self.0.buf[..4].fill(0);
        self.0.count = 0;
    }
}

/// Read a whole `packed-timers.register-packed` call: its timers (stream key, time), in order, so
/// that nothing is applied from a call that turns out malformed half-way.
pub fn read_timers(bytes: &[u8]) -> Result<Vec<(&str, i64)>, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(4 + 8, "the timer count")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.str("a timer's key")?;
        out.push((key, r.i64("a timer's time")?));
    }
    r.finish("the last timer")?;
    Ok(out)
}

/// One entry of a `write-many-packed` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write<'a> {
    /// The entry's scope (`None`: operator-wide).
    pub scope: Option<&'a str>,
    /// The entry's key in its scope.
    pub key: &'a str,
    /// The value to store, or `None` to remove the entry.
    pub value: Option<&'a [u8]>,
}

/// Check a whole `write-many-packed` call and return its entries, so that nothing is applied
/// from a call that turns out malformed half-way.
pub fn read_writes(bytes: &[u8]) -> Result<Vec<Write<'_>>, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(MIN_NAME + 4, "the write count")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (scope, key) = read_name(&mut r)?;
        let value = r.opt_bytes("a value")?;
        out.push(Write { scope, key, value });
    }
    r.finish("the last write")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Name = (Option<String>, String);

    fn name() -> impl Strategy<Value = Name> {
        (proptest::option::of(".{0,8}"), ".{0,8}")
    }

    proptest! {
        #[test]
        fn timers_round_trip(ts in proptest::collection::vec((".{0,12}", any::<i64>()), 0..12), cut in any::<prop::sample::Index>()) {
            let mut l = TimerList::new();
            l.push(b"stale", 1);
            l.clear();
            for (k, t) in &ts {
                l.push(k.as_bytes(), *t);
            }
            prop_assert_eq!(l.len(), ts.len());
            let got = read_timers(l.as_bytes()).unwrap();
            let want: Vec<(&str, i64)> = ts.iter().map(|(k, t)| (k.as_str(), *t)).collect();
            prop_assert_eq!(got, want);
            // Cut short anywhere: an error, never a panic.
            let bytes = l.as_bytes();
            let n = cut.index(bytes.len());
            if n < bytes.len() && !ts.is_empty() {
                prop_assert!(read_timers(&bytes[..n]).is_err());
            }
        }

        #[test]
        fn writes_round_trip(ws in proptest::collection::vec((name(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12))), 0..12)) {
            let mut w = Writes::new();
            for ((s, k), v) in &ws {
                let s = s.as_deref().map(str::as_bytes);
                match v {
                    Some(v) => w.set(s, k.as_bytes(), v),
                    None => w.remove(s, k.as_bytes()),
                }
            }
            prop_assert_eq!(w.len(), ws.len());
            let back: Vec<(Name, Option<Vec<u8>>)> = read_writes(w.as_bytes()).unwrap().into_iter()
                .map(|e| ((e.scope.map(str::to_string), e.key.to_string()), e.value.map(<[u8]>::to_vec)))
                .collect();
            prop_assert_eq!(back, ws);
        }

        #[test]
        fn keys_and_answers_round_trip(ks in proptest::collection::vec((name(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12))), 0..12)) {
            let mut req = KeyList::new();
            let mut answer = Vec::new();
            for ((s, k), v) in &ks {
                req.push(s.as_deref().map(str::as_bytes), k.as_bytes());
                put_answer(&mut answer, v.as_deref());
            }
            let mut seen = Vec::new();
            read_keys::<()>(req.as_bytes(), |s, k| { seen.push((s.map(str::to_string), k.to_string())); Ok(()) }).unwrap().unwrap();
            prop_assert_eq!(seen, ks.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
            let mut a = Answers::new(&answer);
            for (_, v) in &ks {
                prop_assert_eq!(a.next_answer().unwrap().map(<[u8]>::to_vec), v.clone());
            }
            prop_assert!(a.next_answer().is_err());
        }

        #[test]
        fn noise_is_an_error_not_a_panic(noise in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_writes(&noise);
            let _ = read_keys::<()>(&noise, |_, _| Ok(()));
            let _ = read_plain_keys::<()>(&noise, |_| Ok(()));
            let mut a = Answers::new(&noise);
            while a.next_answer().is_ok() {}
        }
    }

    #[test]
    fn malformed_names_say_what_and_where() {
        // One entry whose scope is not UTF-8.
        let bad = [1, 0, 0, 0, 1, 0, 0, 0, 0xff, 1, 0, 0, 0, b'k'];
        let e = read_keys::<()>(&bad, |_, _| Ok(())).unwrap_err();
        assert_eq!(e.to_string(), "a scope at byte 4: is not UTF-8");
        // A write that breaks off after its name.
        let cut = [1, 0, 0, 0, 255, 255, 255, 255, 1, 0, 0, 0, b'k'];
        assert!(read_writes(&cut).is_err());
    }
}
