//! Test fixture: counts events like `counter`, but panics on an event whose value is
//! `"boom"` — after having written state earlier in the same batch.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};

struct Panicker;

impl Operator for Panicker {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Panicker)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let n = state::get_as::<u64>(&event.key)?.unwrap_or(0) + 1;
        state::set_as(&event.key, &n)?;
        if event.value == br#""boom""# {
            panic!("boom at ts {}", event.ts);
        }
        if event.value == br#""fail""# {
            return Err(Error::msg(format!("refusing event at ts {}", event.ts)));
        }
        out.emit_json(event.key, event.ts, &serde_json::json!({ "count": n }))
    }
}

cairn_sdk::export!(Panicker);
