//! `counter`: for each event, increments a per-key count in state and emits
//! `{"key": <key>, "ts": <ts>, "value": {"count": n}}` where `n` counts the events with that
//! key so far, this one included.

use cairn_sdk::{Config, Error, Event, Operator, Output, state};
use serde::Serialize;

/// The operator; it keeps nothing in memory, the counts live in each key's state scope.
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
        // State is scoped to the event's key: "count" is this key's count.
        let count = state::get_as::<u64>("count")?.unwrap_or(0) + 1;
        state::set_as("count", &count)?;
        out.emit_json(event.key, event.ts, &Count { count })
    }

    fn before_batch(&mut self, batch: &[Event]) -> Result<(), Error> {
        // The batch reads its keys' counts: fetch them in one call.
        state::prefetch(batch.iter().map(|e| e.key.as_str()), &["count"]);
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
        let batch = [("a", 1), ("b", 2), ("a", 3)].map(|(k, ts)| Event::new(k, ts, b"null".to_vec()));
        op.on_batch(batch.to_vec(), &mut out).unwrap();
        assert_eq!(state::with_key("a", || state::get("count")), Some(b"2".to_vec()));
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
