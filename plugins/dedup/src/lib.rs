//! `dedup`: drops an event whose id (a field of its value) was seen for the same key within
//! `within_ms` of event time; forgets ids once they are older than that.
//!
//! Config: `{"id_field": "id", "within_ms": 60000}`.
//!
//! * An event is a duplicate if an earlier kept event of the same key had the same id and
//!   their timestamps differ by at most `within_ms`; duplicates are dropped (counted under
//!   `dropped`), others pass through unchanged and remember their id and ts.
//! * An id leaves state once the host's watermark passes its ts by more than `within_ms`: a
//!   timer of its key fires then. Events without the id field pass through.
//!
//! All of a key's state is in its scope: `seen/<id>` holds the id's ts, and `ids/<ts>` the ids
//! kept at that ts, which the key's timer at `ts + within_ms + 1` forgets.

use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, key, timers};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    id_field: String,
    within_ms: i64,
}

/// The operator.
pub struct Dedup {
    field: String,
    within: i64,
}

fn seen(id: &str) -> ValueState<i64> {
    ValueState::new(format!("seen/{id}"))
}

/// The ids kept at `ts`, in the current key's scope.
fn ids_at(ts: i64) -> ValueState<Vec<String>> {
    let mut k = String::with_capacity(20);
    k.push_str("ids/");
    key::push_ordered_i64(&mut k, ts);
    ValueState::new(k)
}

impl Dedup {
    fn forget_at(&self, ts: i64) -> i64 {
        ts.saturating_add(self.within).saturating_add(1)
    }
}

impl Operator for Dedup {
    fn init(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        if s.within_ms < 0 {
            return Err(Error::msg("within_ms must not be negative"));
        }
        Ok(Self {
            field: s.id_field,
            within: s.within_ms,
        })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let ts = event.ts;
        let Some(id) = event.value_at_json(&self.field)? else {
            out.emit(event);
            return Ok(());
        };
        let id = key::escape(&id.to_string());
        let seen = seen(&id);
        match seen.get()? {
            Some(t) if (ts - t).abs() <= self.within => {
                ValueState::<u64>::operator("dropped").update(|n| n.unwrap_or(0) + 1)?;
            }
            _ => {
                seen.set(&ts)?;
                ids_at(ts).update(|ids| {
                    let mut ids = ids.unwrap_or_default();
                    ids.push(id.clone());
                    ids
                })?;
                timers::register(&event.key, self.forget_at(ts))?;
                out.emit(event);
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, _key: &str, ts: i64, _out: &mut Output) -> Result<(), Error> {
        let kept_at = ts.saturating_sub(self.within).saturating_sub(1);
        let at = ids_at(kept_at);
        for id in at.get()?.unwrap_or_default() {
            // Forget the id unless it was kept again since, at another time.
            let seen = seen(&id);
            if seen.get()? == Some(kept_at) {
                seen.clear();
            }
        }
        at.clear();
        Ok(())
    }
}

cairn_sdk::export!(Dedup);

#[cfg(test)]
mod tests {
    use cairn_sdk::testing::Harness;
    use serde_json::json;

    use super::*;

    #[test]
    fn duplicates_within_the_bound_are_dropped() {
        let mut h = Harness::<Dedup>::new(r#"{"id_field": "id", "within_ms": 10}"#).unwrap();
        assert_eq!(h.send("k", 1, json!({"id": 7})).unwrap().len(), 1);
        assert_eq!(h.send("k", 5, json!({"id": 7})).unwrap().len(), 0, "duplicate");
        assert_eq!(h.send("j", 5, json!({"id": 7})).unwrap().len(), 1, "another key");
        assert_eq!(
            h.send("k", 6, json!({"id": "7"})).unwrap().len(),
            1,
            "the string \"7\" is another id"
        );
        assert_eq!(
            h.send("k", 12, json!({"id": 7})).unwrap().len(),
            1,
            "11 ms later: not a duplicate"
        );
        assert_eq!(h.send("k", 13, json!({"no_id": 1})).unwrap().len(), 1);
        assert_eq!(h.state_json("dropped"), Some(json!(1)));
    }

    #[test]
    fn expired_ids_leave_state() {
        let mut h = Harness::<Dedup>::new(r#"{"id_field": "id", "within_ms": 10}"#).unwrap();
        for i in 0..100 {
            h.feed(vec![Event::json("k", i * 5, &json!({"id": i})).unwrap()])
                .unwrap();
        }
        let seen = h.state().keys().filter(|k| k.contains("/seen/")).count();
        assert!(
            seen <= 3,
            "only ids within 10 ms of the newest remain, got {seen}"
        );
        let mut h = h.restart().unwrap();
        assert_eq!(
            h.send("k", 496, json!({"id": 99})).unwrap().len(),
            0,
            "still remembered after restart"
        );
    }
}
