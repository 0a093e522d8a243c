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
        serde_json::from_slice(&self.value).map_err(|e| self.not_json(e))
    }

    /// The JSON value at `path` in the payload (a field, a dotted path, `""` for all of it;
    /// see [`crate::json::value_in`]): what `stats::value_at(&event.value_json()?, path)`
    /// finds, failing alike, but in one pass that builds nothing else.
    pub fn value_at_json(&self, path: &str) -> Result<Option<serde_json::Value>, Error> {
        crate::json::value_in(&self.value, path).map_err(|e| self.not_json(e))
    }

    /// The JSON text of the value at `path` in the payload (see [`crate::json::text_in`]): for
    /// keying or comparing events by a field (an id) without building and printing the value.
    pub fn value_at_text(&self, path: &str) -> Result<Option<std::borrow::Cow<'_, str>>, Error> {
        crate::json::text_in(&self.value, path).map_err(|e| self.not_json(e))
    }

    fn not_json(&self, e: serde_json::Error) -> Error {
        Error::msg(format_args!(
            "event with key {:?} at ts {}: value is not the expected JSON: {e}",
            self.key, self.ts
        ))
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
///
/// The events are written straight into the packed encoding the host reads
/// (`cairn_codec::batch`): emitting one allocates nothing of its own once the buffer has grown,
/// and a JSON value is serialized in place.
#[derive(Debug)]
pub struct Output {
    /// The packed batch: a u32 count, then the events.
    buf: Vec<u8>,
    count: u32,
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

impl Output {
    /// An empty output.
    pub fn new() -> Self {
        Self {
            buf: vec![0; 4],
            count: 0,
        }
    }

    fn put_head(&mut self, key: &str, ts: i64) {
        cairn_codec::put(&mut self.buf, key.as_bytes());
        self.buf.extend_from_slice(&ts.to_le_bytes());
    }

    /// Emit an event.
    pub fn emit(&mut self, event: Event) {
        self.put_head(&event.key, event.ts);
        cairn_codec::put(&mut self.buf, &event.value);
        self.count += 1;
    }

    /// Emit an event with key `key`, time `ts` and payload `value`, written straight into the
    /// output (no [`Event`] is built).
    pub fn emit_bytes(&mut self, key: &str, ts: i64, value: &[u8]) {
        self.put_head(key, ts);
        cairn_codec::put(&mut self.buf, value);
        self.count += 1;
    }

    /// Emit an event whose payload is `value` as JSON.
    pub fn emit_json<T: Serialize + ?Sized>(
        &mut self,
        key: impl AsRef<str>,
        ts: i64,
        value: &T,
    ) -> Result<(), Error> {
        let start = self.buf.len();
        self.put_head(key.as_ref(), ts);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        if let Err(e) = serde_json::to_writer(&mut self.buf, value) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        let len = u32::try_from(self.buf.len() - at - 4)
            .map_err(|_| Error::msg("an emitted value of 4 GiB or more"))?;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        Ok(())
    }

    /// How many events were emitted.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Take the emitted events, leaving the output empty.
    pub fn take(&mut self) -> Vec<Event> {
        let events = crate::packed::decode(&self.packed()).expect("an output encodes its own events");
        *self = Self::new();
        events
    }

    /// The emitted events in the packed encoding (for the host), leaving the output empty.
    pub(crate) fn take_packed(&mut self) -> Vec<u8> {
        let bytes = self.packed();
        *self = Self::new();
        bytes
    }

    fn packed(&mut self) -> Vec<u8> {
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        std::mem::take(&mut self.buf)
    }
}
