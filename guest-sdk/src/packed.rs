//! The packed batch of the `process-packed` export, through `cairn_codec::batch`. Not part of
//! the stable API; [`crate::export!`] uses it.

use cairn_codec::batch::{self, EventRef};

use crate::Event;

/// Decode the host's batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let events = batch::decode(bytes).map_err(|e| format!("malformed packed batch from the host: {e}"))?;
    Ok(events
        .into_iter()
        .map(|e| Event {
            key: e.key.to_string(),
            ts: e.ts,
            value: e.value.to_vec(),
        })
        .collect())
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
