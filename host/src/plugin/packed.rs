//! Cairn's packed batch encoding, the payload of the optional `process-packed` export (see
//! `wit/operator.wit`): a u32 event count, then per event a u32 key length, the key, the s64
//! ts, a u32 value length and the value, all little-endian. A batch then crosses into the
//! guest as one list of bytes (one allocation and one copy) instead of one allocation per key
//! and per value, and comes back the same way.
//!
//! The host encodes its input and decodes the plugin's output; output comes from an untrusted
//! guest, so decoding checks every length and every key's UTF-8 and never panics.

use super::bindings::Event;

fn put(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| format!("a key or value of {} bytes is larger than 4 GiB", bytes.len()))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// Encode `events` into `buf` (cleared first; its capacity is reused).
pub(crate) fn encode_into(buf: &mut Vec<u8>, events: &[Event]) -> Result<(), String> {
    buf.clear();
    buf.reserve(
        4 + events
            .iter()
            .map(|e| 16 + e.key.len() + e.value.len())
            .sum::<usize>(),
    );
    let count = u32::try_from(events.len()).map_err(|_| "more than 2^32 events in one batch".to_string())?;
    buf.extend_from_slice(&count.to_le_bytes());
    for e in events {
        put(buf, e.key.as_bytes())?;
        buf.extend_from_slice(&e.ts.to_le_bytes());
        put(buf, &e.value)?;
    }
    Ok(())
}

/// Reads a packed buffer, checking every length.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Whether everything was read.
    pub(crate) fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(format!(
                "{what} needs {n} bytes at offset {} but only {} remain",
                self.at,
                rest.len()
            ));
        }
        self.at += n;
        Ok(&rest[..n])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        let b = self.take(8, what)?;
        Ok(i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self, what: &str) -> Result<&'a str, String> {
        let at = self.at;
        std::str::from_utf8(self.bytes(what)?).map_err(|e| format!("{what} at offset {at} is not UTF-8: {e}"))
    }
}

/// Decode a packed batch; the error says what is malformed and where.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut r = Reader::new(bytes);
    let count = r.u32("the event count")? as usize;
    // Every event takes at least 16 bytes: a bogus count cannot make us reserve much.
    let mut events = Vec::with_capacity(count.min(bytes.len() / 16));
    for i in 0..count {
        let key = r.bytes("a key")?;
        let key = std::str::from_utf8(key)
            .map_err(|e| format!("the key of event {i} is not UTF-8: {e}"))?
            .to_owned();
        let ts = r.i64("a ts")?;
        let value = r.bytes("a value")?.to_vec();
        events.push(Event { key, ts, value });
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} bytes follow the {count} events the batch announces",
            bytes.len() - r.at
        ));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event() -> impl Strategy<Value = Event> {
        (
            ".{0,16}",
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(key, ts, value)| Event { key, ts, value })
    }

    proptest! {
        #[test]
        fn round_trips(events in proptest::collection::vec(event(), 0..20)) {
            let mut buf = vec![1, 2, 3];
            encode_into(&mut buf, &events).unwrap();
            let fields = |v: Vec<Event>| -> Vec<(String, i64, Vec<u8>)> {
                v.into_iter().map(|e| (e.key, e.ts, e.value)).collect()
            };
            prop_assert_eq!(fields(decode(&buf).unwrap()), fields(events));
        }

        /// Whatever a guest returns, decoding answers (events or an error) without panicking;
        /// a truncated batch is always an error.
        #[test]
        fn never_panics_and_catches_truncation(
            events in proptest::collection::vec(event(), 1..10),
            cut in any::<prop::sample::Index>(),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = Vec::new();
            encode_into(&mut buf, &events).unwrap();
            let cut = cut.index(buf.len());
            prop_assert!(decode(&buf[..cut]).is_err());
            let _ = decode(&noise);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let mut buf = Vec::new();
        encode_into(
            &mut buf,
            &[Event {
                key: "k".into(),
                ts: 1,
                value: b"v".to_vec(),
            }],
        )
        .unwrap();
        buf[8] = 0xff; // the key byte
        assert!(decode(&buf).unwrap_err().contains("key of event 0 is not UTF-8"));
        buf[8] = b'k';
        buf.push(0);
        assert!(decode(&buf).unwrap_err().contains("1 bytes follow the 1 events"));
        assert!(
            decode(&[5, 0, 0, 0])
                .unwrap_err()
                .contains("a key needs 4 bytes at offset 4")
        );
    }
}
