//! `dedup`: drops an event whose id (a field of its value) was seen for the same key within
//! `within_ms` of event time; forgets ids once they are older than that.
//!
//! Config: `{"id_field": "id", "within_ms": 60000}`.
//!
//! * An event is a duplicate if an earlier kept event of the same key had the same id and
//!   their timestamps differ by at most `within_ms`; duplicates are dropped (counted under
//!   `dropped`), others pass through unchanged and remember their id and ts.
//! * Ids leave state once their ts is more than `within_ms` below the highest event time seen,
//!   so results depend only on event order. Events without the id field pass through.

use cairn_sdk::stats::value_at;
use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, key, state};
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
        let value: serde_json::Value = event.value_json()?;
        let ts = event.ts;
        let max = ValueState::<i64>::operator("max_ts").update(|m| m.map_or(ts, |m| m.max(ts)))?;
        if let Some(id) = value_at(&value, &self.field) {
            let id = key::escape(&id.to_string());
            // In the event key's scope; the expiry index is operator-wide (until timers).
            let seen = ValueState::<i64>::new(format!("seen/{id}"));
            let tail = format!("{}/{id}", key::escape(&event.key));
            match seen.get()? {
                Some(t) if (ts - t).abs() <= self.within => {
                    ValueState::<u64>::operator("dropped").update(|n| n.unwrap_or(0) + 1)?;
                }
                previous => {
                    state::with_operator(|| {
                        if let Some(t) = previous {
                            state::remove(&format!("exp/{}/{tail}", key::ordered_i64(t)));
                        }
                        state::set(&format!("exp/{}/{tail}", key::ordered_i64(ts)), b"0")
                    })?;
                    seen.set(&ts)?;
                    out.emit(event);
                }
            }
        } else {
            out.emit(event);
        }
        // Forget ids older than the bound.
        let horizon = max.saturating_sub(self.within);
        state::with_operator(|| {
            state::expire_before("exp/", horizon, |tail| {
                if let Some((k, id)) = tail.split_once('/') {
                    let k = key::unescape(k).unwrap_or_default();
                    state::with_key(&k, || state::remove(&format!("seen/{id}")));
                }
            })
        })?;
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
            h.send("k", i * 5, json!({"id": i})).unwrap();
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
