//! The pickled layouts of `pickled-operator` and `pickled-state` (WIT 0.2.2): Python's pickle
//! format, restricted to what a CPython guest and the host exchange — a list whose items are
//! `None`, `int` (i64), `str`, `bytes`, or tuples of those — so that a CPython guest converts
//! a whole batch with one C call (`pickle.loads`, `Pickler.dump`) instead of thousands of
//! instructions per value.
//!
//! [`Writer`] writes protocol 4 without frames or memo (both optional). [`Decoder`] reads
//! what CPython's C pickler writes for such a list at protocol 2–5 in fast mode
//! (`Pickler.fast = True`: no memo): frames are skipped; any other opcode — memo, globals,
//! object construction — is refused as malformed, so a guest can make the host build nothing
//! but these values. `wit/README.md` lists the opcodes.

use crate::{Malformed, Reader};

const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const STOP: u8 = b'.';
const EMPTY_LIST: u8 = b']';
const MARK: u8 = b'(';
const APPEND: u8 = b'a';
const APPENDS: u8 = b'e';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const BINUNICODE8: u8 = 0x8d;
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';
const BINBYTES8: u8 = 0x8e;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;

/// Writes one pickled list: [`Writer::new`], then each item's values followed by
/// [`Writer::tuple`] when the item is a tuple, then [`Writer::finish`].
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A list, with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 8);
        buf.extend_from_slice(&[PROTO, 4, EMPTY_LIST, MARK]);
        Self { buf }
    }

    /// `None`.
    pub fn none(&mut self) {
        self.buf.push(NONE);
    }

    /// An `int`, in the shortest form CPython writes it.
    pub fn int(&mut self, v: i64) {
        if (0..=0xff).contains(&v) {
            self.buf.extend_from_slice(&[BININT1, v as u8]);
        } else if (0..=0xffff).contains(&v) {
            self.buf.push(BININT2);
            self.buf.extend_from_slice(&(v as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.buf.push(BININT);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            // Two's complement, little-endian, without the bytes that only repeat the sign.
            let bytes = v.to_le_bytes();
            let mut n = 8;
            while n > 1 {
                let (top, next) = (bytes[n - 1], bytes[n - 2]);
                if (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0) {
                    n -= 1;
                } else {
                    break;
                }
            }
            self.buf.extend_from_slice(&[LONG1, n as u8]);
            self.buf.extend_from_slice(&bytes[..n]);
        }
    }

    /// A `str`.
    pub fn str(&mut self, s: &str) {
        self.sized(SHORT_BINUNICODE, BINUNICODE, s.as_bytes());
    }

    /// A `bytes`.
    pub fn bytes(&mut self, b: &[u8]) {
        self.sized(SHORT_BINBYTES, BINBYTES, b);
    }

    /// `bytes`, or `None`.
    pub fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bytes(b),
            None => self.none(),
        }
    }

    fn sized(&mut self, short: u8, long: u8, b: &[u8]) {
        match u8::try_from(b.len()) {
            Ok(n) => self.buf.extend_from_slice(&[short, n]),
            Err(_) => {
                let n = u32::try_from(b.len()).expect("a key or value of 4 GiB or more");
                self.buf.push(long);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
        }
        self.buf.extend_from_slice(b);
    }

    /// Make the last `n` (1 to 3) values one tuple.
    pub fn tuple(&mut self, n: usize) {
        self.buf.push([TUPLE1, TUPLE2, TUPLE3][n - 1]);
    }

    /// The pickle.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[APPENDS, STOP]);
        self.buf
    }
}

/// An emitted event's value as [`Decoder::event_value`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventValue<'a> {
    /// The value's bytes.
    Raw(&'a [u8]),
    /// A Python value in `marshal` format version 2, to be written as JSON.
    Marshalled(&'a [u8]),
}

/// Reads one pickled list: [`Decoder::new`], then while [`Decoder::next_item`] is true, the
/// item's values in order and [`Decoder::end_tuple`] when it is a tuple.
#[derive(Debug)]
pub struct Decoder<'a> {
    r: Reader<'a>,
    what: &'static str,
    /// Inside `MARK ... APPENDS`.
    in_marks: bool,
    /// An item was read outside `MARK ... APPENDS`: `APPEND` follows it.
    single: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder of the pickled list `bytes`; `what` names it in errors ("the emitted events").
    pub fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, Malformed> {
        let mut d = Self {
            r: Reader::new(bytes),
            what,
            in_marks: false,
            single: false,
        };
        if bytes.first() == Some(&PROTO) {
            let v = d.take(2)?[1];
            if !(2..=5).contains(&v) {
                return Err(d.error(2, "uses a pickle protocol other than 2 to 5"));
            }
        }
        if d.op()? != EMPTY_LIST {
            return Err(d.error(1, "is not a pickled list"));
        }
        Ok(d)
    }

    fn error(&self, back: usize, problem: &'static str) -> Malformed {
        Malformed {
            what: self.what.to_string(),
            at: self.r.position().saturating_sub(back),
            problem,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        self.r.take(n, self.what)
    }

    fn le(&mut self, n: usize) -> Result<u64, Malformed> {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(self.take(n)?);
        Ok(u64::from_le_bytes(a))
    }

    /// The next opcode, frames skipped.
    fn op(&mut self) -> Result<u8, Malformed> {
        loop {
            let op = self.take(1)?[0];
            if op != FRAME {
                return Ok(op);
            }
            self.take(8)?;
        }
    }

    fn peek(&mut self) -> Result<u8, Malformed> {
        let at = self.r.clone();
        let op = self.op()?;
        self.r = at;
        Ok(op)
    }

    /// Whether another item follows (then read its values); at the end, checks that nothing
    /// follows the pickle.
    pub fn next_item(&mut self) -> Result<bool, Malformed> {
        if self.single {
            self.single = false;
            if self.op()? != APPEND {
                return Err(self.error(1, "has an item that is not one value or tuple"));
            }
        }
        loop {
            match (self.peek()?, self.in_marks) {
                (MARK, false) => {
                    self.op()?;
                    self.in_marks = true;
                }
                (APPENDS, true) => {
                    self.op()?;
                    self.in_marks = false;
                }
                (STOP, false) => {
                    self.op()?;
                    if !self.r.done() {
                        return Err(self.error(0, "has bytes after the pickle's end"));
                    }
                    return Ok(false);
                }
                (_, in_marks) => {
                    self.single = !in_marks;
                    return Ok(true);
                }
            }
        }
    }

    /// Whether the next value is `None` (then read past it).
    fn none(&mut self) -> Result<bool, Malformed> {
        if self.peek()? == NONE {
            self.op()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// An `int` that fits an i64 (`True` and `False` read as 1 and 0, as Python's ints).
    pub fn int(&mut self) -> Result<i64, Malformed> {
        Ok(match self.op()? {
            BININT1 => self.le(1)? as i64,
            BININT2 => self.le(2)? as i64,
            BININT => self.le(4)? as u32 as i32 as i64,
            NEWTRUE => 1,
            NEWFALSE => 0,
            LONG1 => {
                let n = self.take(1)?[0] as usize;
                if n > 8 {
                    return Err(self.error(2, "has an int out of the 64-bit range"));
                }
                if n == 0 {
                    return Ok(0);
                }
                let raw = self.le(n)?;
                let shift = 64 - 8 * n as u32;
                ((raw << shift) as i64) >> shift
            }
            _ => return Err(self.error(1, "has a value that is not an int where one is expected")),
        })
    }

    fn sized(&mut self, ops: [u8; 3], kind: &'static str) -> Result<&'a [u8], Malformed> {
        let op = self.op()?;
        let n = if op == ops[0] {
            self.le(1)?
        } else if op == ops[1] {
            self.le(4)?
        } else if op == ops[2] {
            self.le(8)?
        } else {
            return Err(self.error(1, kind));
        };
        let n = usize::try_from(n).map_err(|_| self.error(0, "runs past the end of the pickle"))?;
        self.take(n)
    }

    /// A `str`.
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let start = self.r.position();
        let b = self.sized(
            [SHORT_BINUNICODE, BINUNICODE, BINUNICODE8],
            "has a value that is not a str where one is expected",
        )?;
        crate::utf8(b).map_err(|_| Malformed {
            what: self.what.to_string(),
            at: start,
            problem: "has a str that is not UTF-8 (a lone surrogate?)",
        })
    }

    /// `str`, or `None`.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, Malformed> {
        if self.none()? {
            Ok(None)
        } else {
            self.str().map(Some)
        }
    }

    /// A `bytes`.
    pub fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        self.sized(
            [SHORT_BINBYTES, BINBYTES, BINBYTES8],
            "has a value that is not bytes where bytes are expected",
        )
    }

    /// An emitted event's value: `bytes` as they are, or a 1-tuple holding bytes, which are
    /// a Python value in `marshal` format version 2 for the host to write as JSON
    /// (`out.emit_json`).
    pub fn event_value(&mut self) -> Result<EventValue<'a>, Malformed> {
        let b = self.bytes()?;
        if self.peek()? == TUPLE1 {
            self.op()?;
            return Ok(EventValue::Marshalled(b));
        }
        Ok(EventValue::Raw(b))
    }

    /// `bytes`, or `None`.
    pub fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        if self.none()? {
            Ok(None)
        } else {
            self.bytes().map(Some)
        }
    }

    /// The end of a tuple of `n` (1 to 3) values.
    pub fn end_tuple(&mut self, n: usize) -> Result<(), Malformed> {
        if self.op()? != [TUPLE1, TUPLE2, TUPLE3][n - 1] {
            return Err(self.error(1, "has an item that is not a tuple of the expected size"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Ev = (String, i64, Vec<u8>);

    fn write(events: &[Ev]) -> Vec<u8> {
        let mut w = Writer::new(0);
        for (k, ts, v) in events {
            w.str(k);
            w.int(*ts);
            w.bytes(v);
            w.tuple(3);
        }
        w.finish()
    }

    fn read(bytes: &[u8]) -> Result<Vec<Ev>, Malformed> {
        let mut d = Decoder::new(bytes, "the events")?;
        let mut out = Vec::new();
        while d.next_item()? {
            let e = (d.str()?.to_string(), d.int()?, d.bytes()?.to_vec());
            d.end_tuple(3)?;
            out.push(e);
        }
        Ok(out)
    }

    proptest! {
        #[test]
        fn events_round_trip(events in proptest::collection::vec(
            (".{0,300}", any::<i64>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20)) {
            prop_assert_eq!(read(&write(&events)).unwrap(), events);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read(&bytes);
            let mut with_header = vec![PROTO, 4, EMPTY_LIST, MARK];
            with_header.extend_from_slice(&bytes);
            let _ = read(&with_header);
        }
    }

    #[test]
    fn ints_take_cpythons_shortest_forms() {
        for (v, want) in [
            (0i64, vec![BININT1, 0]),
            (255, vec![BININT1, 255]),
            (256, vec![BININT2, 0, 1]),
            (-1, vec![BININT, 0xff, 0xff, 0xff, 0xff]),
            (1 << 31, vec![LONG1, 5, 0, 0, 0, 0x80, 0]),
            (-(1 << 31) - 1, vec![LONG1, 5, 0xff, 0xff, 0xff, 0x7f, 0xff]),
            (i64::MIN, vec![LONG1, 8, 0, 0, 0, 0, 0, 0, 0, 0x80]),
        ] {
            let mut w = Writer::new(0);
            w.int(v);
            let bytes = w.finish();
            assert_eq!(&bytes[4..bytes.len() - 2], &want[..], "{v}");
            let mut d = Decoder::new(&bytes, "ints").unwrap();
            assert!(d.next_item().unwrap());
            assert_eq!(d.int().unwrap(), v);
        }
    }

    #[test]
    fn what_cpython_writes_is_read() {
        // pickle.dumps([("a", 1700000000000, b"{}"), (None, "k", None)], 4), then with
        // Pickler.fast: a frame, MARK/APPENDS, LONG1; no memo.
        let bytes = crate::golden::PICKLED_FROM_CPYTHON;
        let mut d = Decoder::new(bytes, "golden").unwrap();
        assert!(d.next_item().unwrap());
        assert_eq!(
            (d.str().unwrap(), d.int().unwrap(), d.bytes().unwrap()),
            ("a", 1_700_000_000_000, &b"{}"[..])
        );
        d.end_tuple(3).unwrap();
        assert!(d.next_item().unwrap());
        assert_eq!(
            (d.opt_str().unwrap(), d.str().unwrap(), d.opt_bytes().unwrap()),
            (None, "k", None)
        );
        d.end_tuple(3).unwrap();
        assert!(!d.next_item().unwrap());
    }

    #[test]
    fn an_event_value_is_raw_bytes_or_marshalled_in_a_1_tuple() {
        let mut w = Writer::new(0);
        for wrapped in [false, true] {
            w.str("k");
            w.int(1);
            w.bytes(b"v");
            if wrapped {
                w.tuple(1);
            }
            w.tuple(3);
        }
        let bytes = w.finish();
        let mut d = Decoder::new(&bytes, "events").unwrap();
        let mut got = Vec::new();
        while d.next_item().unwrap() {
            d.str().unwrap();
            d.int().unwrap();
            got.push(d.event_value().unwrap());
            d.end_tuple(3).unwrap();
        }
        assert_eq!(got, [EventValue::Raw(b"v"), EventValue::Marshalled(b"v")]);
    }

    #[test]
    fn anything_but_plain_values_is_refused() {
        // A memo put (what CPython writes without fast mode), a global, trailing bytes.
        for (bytes, problem) in [
            (
                &[PROTO, 4, EMPTY_LIST, 0x94, MARK, APPENDS, STOP][..],
                "not a str",
            ),
            (&[PROTO, 4, b'c', b'o', b's', b'\n'][..], "is not a pickled list"),
            (
                &[PROTO, 4, EMPTY_LIST, MARK, APPENDS, STOP, 0][..],
                "after the pickle's end",
            ),
            (&[PROTO, 9, EMPTY_LIST][..], "protocol"),
            (
                &[PROTO, 4, EMPTY_LIST, MARK, SHORT_BINUNICODE, 1, b'a', LONG1, 9][..],
                "64-bit",
            ),
        ] {
            let e = read(bytes).unwrap_err();
            assert!(e.problem.contains(problem), "{problem}: {e}");
        }
    }
}
