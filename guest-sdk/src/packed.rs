//! The packed batch encoding of the `process-packed` export (see `wit/operator.wit`): a u32
//! event count, then per event a u32 key length, the key, the s64 ts, a u32 value length and
//! the value, little-endian. Not part of the stable API; [`crate::export!`] uses it.

use crate::Event;

/// Decode the host's batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let malformed = |at: usize| format!("malformed packed batch from the host at byte {at}");
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = bytes.get(at..at + n).ok_or_else(|| malformed(at))?;
        at += n;
        Ok(s)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let count = u32_at(take(4)?);
    let mut events = Vec::with_capacity(count.min(bytes.len() / 16));
    for _ in 0..count {
        let n = u32_at(take(4)?);
        let key = String::from_utf8(take(n)?.to_vec()).map_err(|e| format!("event key is not UTF-8: {e}"))?;
        let ts = i64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let n = u32_at(take(4)?);
        let value = take(n)?.to_vec();
        events.push(Event { key, ts, value });
    }
    Ok(events)
}

/// Append `bytes` with its u32 length, the encoding's unit for keys and values.
pub(crate) fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Encode emitted events for the host.
pub fn encode(events: &[Event]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        4 + events
            .iter()
            .map(|e| 16 + e.key.len() + e.value.len())
            .sum::<usize>(),
    );
    buf.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        put(&mut buf, e.key.as_bytes());
        buf.extend_from_slice(&e.ts.to_le_bytes());
        put(&mut buf, &e.value);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let events = vec![
            Event::new("a", -5, b"{}".to_vec()),
            Event::new("", i64::MAX, Vec::new()),
        ];
        assert_eq!(decode(&encode(&events)).unwrap(), events);
        assert!(decode(&encode(&events)[..10]).is_err());
    }
}
