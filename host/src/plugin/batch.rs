//! [`Batch`]: events in Cairn's packed encoding (`cairn_codec::batch`, documented in
//! `wit/README.md`), the payload of the optional `process-packed` export.
//!
//! A batch is one buffer: it crosses into a plugin as one list of bytes (one allocation and one
//! copy in the guest) and comes back the same way, and the host builds, passes on and writes
//! out batches without an allocation per event. What a plugin returns is untrusted: it is
//! checked once (every length, every key's UTF-8) before it becomes a `Batch`.

use thiserror::Error;

use super::Event;

/// A batch of events in one buffer (Cairn's packed encoding).
///
/// ```
/// use cairn::Batch;
///
/// let mut batch = Batch::new();
/// batch.push("sensor-1", 1_700_000_000_000, br#"{"temp":21.5}"#)?;
/// batch.push("sensor-2", 1_700_000_000_005, b"null")?;
/// let keys: Vec<&str> = batch.iter().map(|e| e.key).collect();
/// assert_eq!(keys, ["sensor-1", "sensor-2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    /// Always a valid encoding: the count, then `count` events.
    buf: Vec<u8>,
    count: u32,
}

/// One event of a [`Batch`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Partitioning key.
    pub key: &'a str,
    /// Event time, ms.
    pub ts: i64,
    /// Payload bytes.
    pub value: &'a [u8],
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_event(&self) -> Event {
        Event {
            key: self.key.to_owned(),
            ts: self.ts,
            value: self.value.to_vec(),
        }
    }
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(e: &'a Event) -> Self {
        EventRef {
            key: &e.key,
            ts: e.ts,
            value: &e.value,
        }
    }
}

/// An event too large for the packed encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("an event's key or value of {0} bytes is larger than the 4 GiB a batch can carry")]
pub struct TooLarge(pub usize);

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), TooLarge> {
    let len = u32::try_from(bytes.len()).map_err(|_| TooLarge(bytes.len()))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            buf: vec![0; 4],
            count: 0,
        }
    }

    /// An empty batch with room for `bytes` bytes of events.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(4 + bytes);
        buf.extend_from_slice(&[0; 4]);
        Self { buf, count: 0 }
    }

    /// Append an event.
    pub fn push(&mut self, key: &str, ts: i64, value: &[u8]) -> Result<(), TooLarge> {
        if self.count == u32::MAX {
            return Err(TooLarge(self.buf.len()));
        }
        let at = self.buf.len();
        let r = put(&mut self.buf, key.as_bytes()).and_then(|()| {
            self.buf.extend_from_slice(&ts.to_le_bytes());
            put(&mut self.buf, value)
        });
        if r.is_err() {
            self.buf.truncate(at);
            return r;
        }
        self.count += 1;
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        Ok(())
    }

    /// Append every event of `other`.
    pub fn append(&mut self, other: &Batch) {
        self.buf.extend_from_slice(&other.buf[4..]);
        self.count += other.count;
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
    }

    /// A batch of copies of `events`.
    pub fn from_events(events: &[Event]) -> Result<Self, TooLarge> {
        let mut b = Self::with_capacity(events.iter().map(|e| 16 + e.key.len() + e.value.len()).sum());
        for e in events {
            b.push(&e.key, e.ts, &e.value)?;
        }
        Ok(b)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Remove every event (the buffer is kept for reuse).
    pub fn clear(&mut self) {
        self.buf.truncate(4);
        self.buf[..4].copy_from_slice(&[0; 4]);
        self.count = 0;
    }

    /// The events, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            rest: &self.buf[4..],
            left: self.count,
        }
    }

    /// Owned copies of the events.
    pub fn to_events(&self) -> Vec<Event> {
        self.iter().map(|e| e.to_event()).collect()
    }

    /// Where the next event pushed will start (for [`Batch::event_at`]).
    pub(crate) fn end(&self) -> usize {
        self.buf.len()
    }

    /// The event that starts at `at`, an [`Batch::end`] taken before it was pushed.
    pub(crate) fn event_at(&self, at: usize) -> Option<EventRef<'_>> {
        if at < 4 || at >= self.buf.len() {
            return None;
        }
        Iter {
            rest: self.buf.get(at..)?,
            left: 1,
        }
        .next()
    }

    /// Take back the last event, which starts at `at` (its [`Batch::end`] before the push).
    pub(crate) fn pop_last(&mut self, at: usize) {
        if at >= 4 && at < self.buf.len() && self.count > 0 {
            self.buf.truncate(at);
            self.count -= 1;
            self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        }
    }

    /// The encoding, as passed to `process-packed`.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Check bytes a plugin returned and take them as a batch; the error says what is
    /// malformed and where.
    pub(crate) fn from_guest(bytes: Vec<u8>) -> Result<Self, String> {
        let count = cairn_codec::batch::validate(&bytes).map_err(|e| e.to_string())?;
        Ok(Self { buf: bytes, count })
    }
}

/// Iterator over a [`Batch`].
pub struct Iter<'a> {
    rest: &'a [u8],
    left: u32,
}

/// Split a length-prefixed field off the front of `b` (a valid batch: it is there).
fn field(b: &[u8]) -> (&[u8], &[u8]) {
    let (len, rest) = b.split_at(4);
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    rest.split_at(len)
}

impl<'a> Iterator for Iter<'a> {
    type Item = EventRef<'a>;

    fn next(&mut self) -> Option<EventRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // A batch is valid by construction (built by `push` or checked by `from_guest`): the
        // fields are there, and a key is UTF-8. Reading it needs no second check.
        let (key, rest) = field(self.rest);
        let (ts, rest) = rest.split_at(8);
        let (value, rest) = field(rest);
        self.rest = rest;
        // SAFETY: every key in `buf` was pushed as a `&str` or checked as UTF-8 by
        // `from_guest`, and `buf` is private to `Batch`.
        let key = unsafe { std::str::from_utf8_unchecked(key) };
        Some(EventRef {
            key,
            ts: i64::from_le_bytes(ts.try_into().expect("8 bytes")),
            value,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Batch {
    type Item = EventRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
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

    fn fields(v: Vec<Event>) -> Vec<(String, i64, Vec<u8>)> {
        v.into_iter().map(|e| (e.key, e.ts, e.value)).collect()
    }

    proptest! {
        #[test]
        fn round_trips(events in proptest::collection::vec(event(), 0..20), split in any::<prop::sample::Index>()) {
            let b = Batch::from_events(&events).unwrap();
            prop_assert_eq!(b.len(), events.len());
            prop_assert_eq!(fields(b.to_events()), fields(events.clone()));
            let checked = Batch::from_guest(b.as_bytes().to_vec()).unwrap();
            prop_assert_eq!(&checked, &b);
            // Appending two halves gives the whole.
            let at = split.index(events.len() + 1);
            let mut first = Batch::from_events(&events[..at]).unwrap();
            first.append(&Batch::from_events(&events[at..]).unwrap());
            prop_assert_eq!(first, b);
        }

        /// Whatever a guest returns, checking it answers (a batch or an error) without
        /// panicking; a truncated batch is always an error.
        #[test]
        fn never_panics_and_catches_truncation(
            events in proptest::collection::vec(event(), 1..10),
            cut in any::<prop::sample::Index>(),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let b = Batch::from_events(&events).unwrap();
            let bytes = b.as_bytes();
            let cut = cut.index(bytes.len());
            prop_assert!(Batch::from_guest(bytes[..cut].to_vec()).is_err());
            if let Ok(b) = Batch::from_guest(noise) {
                let _ = b.to_events();
            }
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let mut bytes = Batch::from_events(&[Event {
            key: "k".into(),
            ts: 1,
            value: b"v".to_vec(),
        }])
        .unwrap()
        .as_bytes()
        .to_vec();
        bytes[8] = 0xff; // the key byte
        assert!(
            Batch::from_guest(bytes.clone())
                .unwrap_err()
                .contains("an event key at byte 4: is not UTF-8")
        );
        bytes[8] = b'k';
        bytes.push(0);
        assert!(
            Batch::from_guest(bytes)
                .unwrap_err()
                .contains("the last event at byte 22: bytes left over after it")
        );
        assert!(
            Batch::from_guest(vec![5, 0, 0, 0])
                .unwrap_err()
                .contains("the event count at byte 0: is larger than the input can hold")
        );
    }

    #[test]
    fn push_and_clear() {
        let mut b = Batch::new();
        b.push("a", 1, b"x").unwrap();
        b.push("b", 2, b"").unwrap();
        let got: Vec<EventRef<'_>> = b.iter().collect();
        assert_eq!(
            got,
            vec![
                EventRef {
                    key: "a",
                    ts: 1,
                    value: b"x"
                },
                EventRef {
                    key: "b",
                    ts: 2,
                    value: b""
                }
            ]
        );
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b, Batch::new());
    }
}
