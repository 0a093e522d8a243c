//! Test fixture: loops forever on an event whose value is `"loop"`, after writing state.
//! Other events are counted like `counter` does.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};

struct Looper;

impl Operator for Looper {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Looper)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let n = state::get_as::<u64>(&event.key)?.unwrap_or(0) + 1;
        state::set_as(&event.key, &n)?;
        if event.value == br#""loop""# {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        out.emit_json(event.key, event.ts, &n)
    }
}

cairn_sdk::export!(Looper);
