//! Bench fixture: for each event, makes `n` state calls of one kind (`get-hit`, `get-miss`,
//! `set`, `none`; or all `n` in one `get-many` / `set-many` call); `echo` re-emits each event;
//! `get-prefetched` prefetches the keys, then reads them
//! (what moving events in and out costs), so the bench can derive the cost of one guest→host state call.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    op: String,
    n: u32,
}

const SCOPE: &str = "probe";

struct Probe {
    op: String,
    n: u32,
    keys: Vec<String>,
    entries: Vec<(String, Vec<u8>)>,
}

impl Operator for Probe {
    fn init(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        let keys: Vec<String> = (0..s.n).map(|i| format!("key-{i:08}")).collect();
        let entries = keys.iter().map(|k| (k.clone(), b"12345".to_vec())).collect();
        // Every operation works in one key's scope, whatever the events' keys.
        let _scope = state::enter_key(SCOPE);
        if s.op == "get-hit" || s.op == "get-many" || s.op == "get-prefetched" {
            for k in &keys {
                state::set(k, b"12345")?;
            }
        }
        Ok(Probe {
            op: s.op,
            n: s.n,
            keys,
            entries,
        })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let _scope = state::enter_key(SCOPE);
        let mut found = 0usize;
        match self.op.as_str() {
            "get-hit" | "get-miss" => {
                for k in &self.keys {
                    found += state::get(k).map_or(0, |v| v.len());
                }
            }
            "set" => {
                for k in &self.keys {
                    state::set(k, b"12345")?;
                }
            }
            "get-prefetched" => {
                let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
                state::prefetch([SCOPE], &keys);
                for k in &self.keys {
                    found += state::get(k).map_or(0, |v| v.len());
                }
            }
            "get-many" => {
                found = state::get_many(&self.keys).iter().flatten().map(Vec::len).sum();
            }
            "set-many" => {
                state::set_many(&self.entries)?;
            }
            "echo" => out.emit(event),
            _ => {}
        }
        std::hint::black_box((found, self.n));
        Ok(())
    }
}

cairn_sdk::export!(Probe);
