//! [`Event`]: Cairn's own event type, the `event` record of every supported WIT version (its
//! shape never changed), lifted and lowered directly so that no generated binding is public.

use wasmtime::component::{ComponentType, Lift, Lower};

/// One event of a stream: a key, an event time and a payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, ComponentType, Lift, Lower)]
#[component(record)]
pub struct Event {
    /// Partitioning key, e.g. "sensor-1".
    pub key: String,
    /// Event time in milliseconds.
    pub ts: i64,
    /// Payload; on the CLI the UTF-8 text of a JSON value.
    pub value: Vec<u8>,
}

impl Event {
    /// An event from its parts.
    pub fn new(key: impl Into<String>, ts: i64, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            ts,
            value: value.into(),
        }
    }
}
