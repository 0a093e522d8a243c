//! `counter`: for each event, increments a per-key count in state and emits
//! `{"key": <key>, "ts": <ts>, "value": {"count": n}}` where `n` counts the events with that
//! key so far, this one included.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};
use serde::Serialize;

/// The operator; it keeps nothing in memory, the counts live in state under the event key.
pub struct Counter;

#[derive(Serialize)]
struct Count {
    count: u64,
}

impl Operator for Counter {
    fn init(_config: &Config) -> Result<Self, Error> {
        Ok(Counter)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let count = state::get_as::<u64>(&event.key)?.unwrap_or(0) + 1;
        state::set_as(&event.key, &count)?;
        out.emit_json(event.key, event.ts, &Count { count })
    }

    fn on_batch(&mut self, batch: Vec<Event>, out: &mut Output) -> Result<(), Error> {
        // The batch reads its events' keys: fetch them in one call.
        state::prefetch(batch.iter().map(|e| e.key.as_str()));
        for event in batch {
            self.on_event(event, out)?;
        }
        Ok(())
    }
}

cairn_sdk::export!(Counter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key() {
        state::native::reset(Default::default());
        let mut op = Counter::init(&Config::new("{}")).unwrap();
        let mut out = Output::new();
        for (k, ts) in [("a", 1), ("b", 2), ("a", 3)] {
            op.on_event(Event::new(k, ts, b"null".to_vec()), &mut out)
                .unwrap();
        }
        let values: Vec<(String, String)> = out
            .take()
            .into_iter()
            .map(|e| (e.key, String::from_utf8(e.value).unwrap()))
            .collect();
        assert_eq!(
            values,
            vec![
                ("a".into(), r#"{"count":1}"#.into()),
                ("b".into(), r#"{"count":1}"#.into()),
                ("a".into(), r#"{"count":2}"#.into()),
            ]
        );
    }
}
