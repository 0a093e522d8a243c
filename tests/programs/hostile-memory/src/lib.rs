//! Test fixture: on an event whose value is `"grow"`, allocates memory without bound (after
//! writing state). Other events are counted.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};

struct Hog;

impl Operator for Hog {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Hog)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let n = state::get_as::<u64>(&event.key)?.unwrap_or(0) + 1;
        state::set_as(&event.key, &n)?;
        if event.value == br#""grow""# {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![7u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        out.emit_json(event.key, event.ts, &n)
    }
}

cairn_sdk::export!(Hog);
