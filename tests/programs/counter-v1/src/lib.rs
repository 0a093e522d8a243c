//! Fixture `counter-v1`: the counter of `plugins/counter`, declaring itself operator `counter`
//! at state version 1 and keeping each key's count as 4 little-endian bytes. Emits
//! `{"count": n}` as the example does. `counter-v2` migrates its state.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};

pub struct CounterV1;

impl Operator for CounterV1 {
    fn init(_config: &Config) -> Result<Self, Error> {
        Ok(CounterV1)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let n = match state::get("count") {
            Some(b) => u32::from_le_bytes(b.as_slice().try_into().map_err(|_| "count: not 4 bytes")?),
            None => 0,
        } + 1;
        state::set("count", &n.to_le_bytes())?;
        out.emit_json(event.key, event.ts, &cairn_sdk::serde_json::json!({ "count": n }))
    }
}

cairn_sdk::export!(CounterV1, name = "counter", state_version = 1);
