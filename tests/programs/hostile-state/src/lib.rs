//! Test fixture: a state bomb. On `"keys"` it adds keys until the host refuses; on `"huge"`
//! it stores one enormous value. Either way the refusal (a quota error) fails the batch.
//! Other events are counted.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};

struct Bomb;

impl Operator for Bomb {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Bomb)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let n = state::get_as::<u64>(&event.key)?.unwrap_or(0) + 1;
        state::set_as(&event.key, &n)?;
        if event.value == br#""keys""# {
            for i in 0u64.. {
                state::set(&format!("bomb/{i}"), b"x")?;
            }
        }
        if event.value == br#""huge""# {
            state::set("bomb/huge", &vec![0u8; 64 << 20])?;
        }
        out.emit_json(event.key, event.ts, &n)
    }
}

cairn_sdk::export!(Bomb);
