//! The packed batch of the `process-packed` export, through `cairn_codec::batch`. Not part of
//! the stable API; [`crate::export!`] uses it.

use cairn_codec::batch::{self, EventRef};

use crate::Event;

/// Decode the host's batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let malformed = |e: cairn_codec::Malformed| format!("malformed packed batch from the host: {e}");
    let mut r = cairn_codec::Reader::new(bytes);
    let count = r.count(batch::MIN_EVENT, "the event count").map_err(malformed)?;
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let e = batch::read_event(&mut r).map_err(malformed)?;
        events.push(Event {
            key: e.key.to_string(),
            ts: e.ts,
            value: e.value.to_vec(),
        });
    }
    r.finish("the last event").map_err(malformed)?;
    Ok(events)
}

/// Encode emitted events for the host.
pub fn encode(events: &[Event]) -> Vec<u8> {
    batch::encode(events.iter().map(|e| EventRef {
        key: &e.key,
        ts: e.ts,
        value: &e.value,
    }))
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
