//! Fixture `counter-v2`: `counter-v1` at state version 2, keeping each count as `{"n": count}`
//! JSON; it migrates version 1's 4-byte counts and emits the same lines.
//!
//! Its configuration steers the migration for the tests of a failed one: `{"fail_on": K}`
//! fails on the count of stream key K; `{"spin": N}` spins N iterations per entry (a slow
//! migration, to be killed or to run out of time).

use cairn_sdk::migration::{Entry, Rewrite};
use cairn_sdk::serde_json::json;
use cairn_sdk::{Config, Error, Event, Operator, Output, state};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    fail_on: Option<String>,
    spin: Option<u64>,
}

pub struct CounterV2 {
    settings: Settings,
}

#[derive(serde::Serialize, Deserialize)]
struct Count {
    n: u32,
}

impl Operator for CounterV2 {
    fn init(config: &Config) -> Result<Self, Error> {
        Ok(CounterV2 {
            settings: config.parse()?,
        })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let n = state::get_as::<Count>("count")?.map_or(0, |c| c.n) + 1;
        state::set_as("count", &Count { n })?;
        out.emit_json(event.key, event.ts, &json!({ "count": n }))
    }

    fn migrate(&mut self, from_version: u32, entry: &Entry) -> Result<Rewrite, Error> {
        if let Some(n) = self.settings.spin {
            let mut x = 0u64;
            for i in 0..n {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        if let Some(k) = &self.settings.fail_on
            && entry.scope.as_ref() == Some(k)
        {
            return Err(Error::msg("told to fail here"));
        }
        match (from_version, entry.key.as_str()) {
            (1, "count") => Rewrite::set_json(&json!({ "n": u32::from_le_bytes(four_bytes(&entry.value)?) })),
            (1, _) => Ok(Rewrite::Keep),
            _ => Err(Error::msg(format_args!(
                "no migration from state version {from_version}"
            ))),
        }
    }
}

/// Version 1's count: 4 little-endian bytes.
fn four_bytes(value: &[u8]) -> Result<[u8; 4], Error> {
    value
        .try_into()
        .map_err(|_| Error::msg("a version 1 count is 4 bytes"))
}

cairn_sdk::export!(CounterV2, name = "counter", state_version = 2);
