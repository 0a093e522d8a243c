//! The packed batch of `process-packed`: a u32 event count, then per event a u32 key length,
//! the key (UTF-8), the s64 ts, a u32 value length and the value.

use crate::{Malformed, Reader, put};

/// Bytes of an event with an empty key and value: the smallest an event can be.
pub const MIN_EVENT: usize = 4 + 8 + 4;

/// An event read from a batch, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Partitioning key.
    pub key: &'a str,
    /// Event time, ms.
    pub ts: i64,
    /// Payload.
    pub value: &'a [u8],
}

/// An empty batch buffer, ready for [`push`].
pub fn empty() -> Vec<u8> {
    vec![0; 4]
}

/// Append one event to `buf` (a batch started by [`empty`]) and count it.
pub fn push(buf: &mut Vec<u8>, key: &str, ts: i64, value: &[u8]) {
    put(buf, key.as_bytes());
    buf.extend_from_slice(&ts.to_le_bytes());
    put(buf, value);
    let n = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) + 1;
    buf[..4].copy_from_slice(&n.to_le_bytes());
}

/// Encode events into one batch.
pub fn encode<'a>(events: impl IntoIterator<Item = EventRef<'a>> + Clone) -> Vec<u8> {
    // One allocation: the size is known in advance.
    let size: usize = events
        .clone()
        .into_iter()
        .map(|e| MIN_EVENT + e.key.len() + e.value.len())
        .sum();
    let mut buf = Vec::with_capacity(4 + size);
    buf.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for e in events {
        put(&mut buf, e.key.as_bytes());
        buf.extend_from_slice(&e.ts.to_le_bytes());
        put(&mut buf, e.value);
        count += 1;
    }
    buf[..4].copy_from_slice(&count.to_le_bytes());
    buf
}

/// Read one event.
pub fn read_event<'a>(r: &mut Reader<'a>) -> Result<EventRef<'a>, Malformed> {
    let key = r.str("an event key")?;
    let ts = r.i64("an event ts")?;
    let value = r.bytes("an event value")?;
    Ok(EventRef { key, ts, value })
}

/// Check a whole batch (every length, every key's UTF-8, nothing left over); returns its
/// event count.
pub fn validate(bytes: &[u8]) -> Result<u32, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(MIN_EVENT, "the event count")?;
    for _ in 0..count {
        read_event(&mut r)?;
    }
    r.finish("the last event")?;
    Ok(count as u32)
}

/// The events of a batch, checked as they are read.
pub fn decode(bytes: &[u8]) -> Result<Vec<EventRef<'_>>, Malformed> {
    let mut r = Reader::new(bytes);
    let count = r.count(MIN_EVENT, "the event count")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(read_event(&mut r)?);
    }
    r.finish("the last event")?;
    Ok(out)
}

/// The events of a batch already checked by [`validate`] (the host's own batches).
pub fn iter_valid(bytes: &[u8]) -> impl Iterator<Item = EventRef<'_>> + '_ {
    let mut r = Reader::new(bytes);
    let count = r.u32("the event count").unwrap_or(0);
    (0..count).map_while(move |_| read_event(&mut r).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events() -> impl Strategy<Value = Vec<(String, i64, Vec<u8>)>> {
        proptest::collection::vec(
            (
                ".{0,12}",
                any::<i64>(),
                proptest::collection::vec(any::<u8>(), 0..24),
            ),
            0..16,
        )
    }

    proptest! {
        #[test]
        fn round_trips(evs in events()) {
            let bytes = encode(evs.iter().map(|(k, t, v)| EventRef { key: k, ts: *t, value: v }));
            prop_assert_eq!(validate(&bytes).unwrap() as usize, evs.len());
            let back: Vec<_> = decode(&bytes).unwrap().into_iter().map(|e| (e.key.to_string(), e.ts, e.value.to_vec())).collect();
            prop_assert_eq!(&back, &evs);
            let again: Vec<_> = iter_valid(&bytes).map(|e| (e.key.to_string(), e.ts, e.value.to_vec())).collect();
            prop_assert_eq!(again, evs);
        }

        #[test]
        fn truncation_and_noise_are_errors_not_panics(evs in events(), cut in any::<prop::sample::Index>(), noise in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = encode(evs.iter().map(|(k, t, v)| EventRef { key: k, ts: *t, value: v }));
            let n = cut.index(bytes.len());
            if n < bytes.len() {
                prop_assert!(validate(&bytes[..n]).is_err());
            }
            let _ = validate(&noise);
            let _ = decode(&noise);
        }
    }
}
