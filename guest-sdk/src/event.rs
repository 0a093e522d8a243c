use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// One event of the stream: a key, an event time in milliseconds and a payload.
///
/// On the `cairn` command line, `value` holds the UTF-8 text of the event's JSON value;
/// [`Event::value_json`] decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Partitioning key.
    pub key: String,
    /// Event time, ms.
    pub ts: i64,
    /// Payload bytes.
    pub value: Vec<u8>,
}

impl Event {
    /// An event with raw payload bytes.
    pub fn new(key: impl Into<String>, ts: i64, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            ts,
            value: value.into(),
        }
    }

    /// An event whose payload is `value` serialized as JSON.
    pub fn json<T: Serialize + ?Sized>(key: impl Into<String>, ts: i64, value: &T) -> Result<Self, Error> {
        Ok(Self::new(key, ts, serde_json::to_vec(value)?))
    }

    /// Decode the payload as JSON into `T`.
    pub fn value_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.value).map_err(|e| {
            Error::msg(format_args!(
                "event with key {:?} at ts {}: value is not the expected JSON: {e}",
                self.key, self.ts
            ))
        })
    }
}

/// The operator's configuration: the JSON text given to `cairn run --config` (`{}` when none).
#[derive(Debug, Clone)]
pub struct Config {
    raw: String,
}

impl Config {
    /// A configuration from its JSON text.
    pub fn new(raw: impl Into<String>) -> Self {
        Self { raw: raw.into() }
    }

    /// The JSON text as given.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Decode the configuration into the operator's own settings type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.raw).map_err(|e| Error::msg(format_args!("invalid configuration: {e}")))
    }
}

/// Where an operator puts the events it emits during one call.
#[derive(Debug, Default)]
pub struct Output {
    events: Vec<Event>,
}

impl Output {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Emit an event.
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Emit an event whose payload is `value` as JSON.
    pub fn emit_json<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        ts: i64,
        value: &T,
    ) -> Result<(), Error> {
        self.events.push(Event::json(key, ts, value)?);
        Ok(())
    }

    /// The events emitted so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Take the emitted events, leaving the output empty.
    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}
