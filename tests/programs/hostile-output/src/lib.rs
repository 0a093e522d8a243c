//! Test fixture: on an event whose value is `"flood"`, emits 1 MiB events without end.

use cairn_sdk::{Config, Error, Event, Operator, Output};

struct Flood;

impl Operator for Flood {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Flood)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        if event.value == br#""flood""# {
            loop {
                out.emit(Event::new(event.key.clone(), event.ts, vec![b'x'; 1 << 20]));
            }
        }
        out.emit(event);
        Ok(())
    }
}

cairn_sdk::export!(Flood);
