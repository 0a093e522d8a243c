//! `dedup`: drops an event whose id (a field of its value) was seen for the same key within
//! `within_ms` of event time; forgets ids once they are older than that.
//!
//! Config: `{"id_field": "id", "within_ms": 60000}`.
//!
//! * An event is a duplicate if an earlier kept event of the same key had the same id and
//!   their timestamps differ by at most `within_ms`; duplicates are dropped (counted in the
//!   key's `dropped`), others pass through unchanged and remember their id and ts. Events
//!   without the id field pass through.
//! * All of a key's state is in its scope: `seen/<id>` holds the time the id was kept, and
//!   `kept/<ts>` the ids kept at `ts` and not kept again since (an id kept again, at another
//!   time, moves to that time's list). The key's timer at `ts + within_ms + 1` (the host's
//!   watermark has then passed `ts` by more than `within_ms`) forgets the ids of its list.

use cairn_sdk::key::{self, TimeKey};
use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, state, timers};
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
    /// The state names of the batch's events (`seen/<id>`, `kept/<ts>`), found in
    /// `before_batch` and read in `on_event`, in order.
    names: Vec<Option<(String, TimeKey)>>,
    next: usize,
}

/// The key of the id of `event` (the JSON text of its `field`), if it has one.
fn seen_of(event: &Event, field: &str) -> Result<Option<String>, Error> {
    Ok(event.value_at_text(field)?.map(|id| seen_key(&id)))
}

/// `seen/<id>`, the id escaped for a key.
fn seen_key(id: &str) -> String {
    let mut key = String::from("seen/");
    key::escape_into(id, &mut key);
    key
}

fn kept_key(ts: i64) -> TimeKey {
    TimeKey::new("kept/", ts)
}

impl Dedup {
    /// The time whose ids the timer at `ts` forgets.
    fn kept_at(&self, timer: i64) -> i64 {
        timer - self.within - 1
    }

    /// The names an event reads: those found in `before_batch`, or found now.
    fn names(&mut self, event: &Event) -> Result<Option<(String, TimeKey)>, Error> {
        if let Some(found) = self.names.get_mut(self.next) {
            self.next += 1;
            return Ok(found.take());
        }
        Ok(seen_of(event, &self.field)?.map(|seen| (seen, kept_key(event.ts))))
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
            names: Vec::new(),
            next: 0,
        })
    }

    /// Read every entry the batch will need in one host call.
    fn before_batch(&mut self, batch: &[Event]) -> Result<(), Error> {
        self.names.clear();
        self.next = 0;
        for e in batch {
            self.names
                .push(seen_of(e, &self.field)?.map(|seen| (seen, kept_key(e.ts))));
        }
        let entries = batch
            .iter()
            .zip(&self.names)
            .filter_map(|(e, n)| Some((e.key.as_str(), n.as_ref()?)));
        state::prefetch_entries(entries.flat_map(|(k, (seen, kept))| [(k, seen.as_str()), (k, &**kept)]));
        Ok(())
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let Some((seen, kept)) = self.names(&event)? else {
            out.emit(event);
            return Ok(());
        };
        let ts = event.ts;
        let earlier = state::get_as::<i64>(&seen)?;
        if let Some(t) = earlier
            && (ts - t).abs() <= self.within
        {
            ValueState::<u64>::new("dropped").update(|n| n.unwrap_or(0) + 1)?;
            return Ok(());
        }
        let id = &seen["seen/".len()..];
        if let Some(t) = earlier {
            // Kept again, at another time: off the list of `t`, whose timer has not fired.
            let earlier_list = kept_key(t);
            let mut ids: Vec<String> = state::get_as(&earlier_list)?.unwrap_or_default();
            ids.retain(|i| i != id);
            if ids.is_empty() {
                state::remove(&earlier_list);
            } else {
                state::set_as(&earlier_list, &ids)?;
            }
        }
        state::set_as(&seen, &ts)?;
        state::push_as(&kept, id)?;
        timers::register(&event.key, ts + self.within + 1)?;
        out.emit(event);
        Ok(())
    }

    /// Read the lists the timers forget in one host call.
    fn before_timers(&mut self, fired: &[Event]) -> Result<(), Error> {
        let names: Vec<TimeKey> = fired.iter().map(|t| kept_key(self.kept_at(t.ts))).collect();
        state::prefetch_entries(fired.iter().zip(&names).map(|(t, n)| (t.key.as_str(), &**n)));
        Ok(())
    }

    /// Forget the ids kept at the timer's time minus `within + 1` (and not kept again since).
    fn on_timer(&mut self, _key: &str, ts: i64, _out: &mut Output) -> Result<(), Error> {
        let kept = kept_key(self.kept_at(ts));
        let ids: Vec<String> = state::get_as(&kept)?.unwrap_or_default();
        let mut seen = String::from("seen/");
        for id in ids {
            seen.truncate("seen/".len());
            seen.push_str(&id);
            state::discard(&seen);
        }
        state::discard(&kept);
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
        assert_eq!(h.keyed_json("k", "dropped"), Some(json!(1)));
    }

    /// The state's entries whose scoped key holds one of `parts`.
    fn entries(h: &Harness<Dedup>, parts: &[&str]) -> Vec<String> {
        h.state()
            .into_keys()
            .filter(|k| parts.iter().any(|p| k.contains(p)))
            .collect()
    }

    fn ev(key: &str, ts: i64, id: i64) -> Event {
        Event::json(key, ts, &json!({ "id": id })).unwrap()
    }

    #[test]
    fn an_id_kept_again_before_its_timer_fired_is_not_forgotten_by_it() {
        let mut h = Harness::<Dedup>::new(r#"{"id_field": "id", "within_ms": 10}"#).unwrap();
        assert_eq!(h.feed(vec![ev("k", 1, 7)]).unwrap().len(), 1);
        // 19 ms later, before the watermark reached the first keep's timer (12): kept again.
        assert_eq!(h.feed(vec![ev("k", 20, 7)]).unwrap().len(), 1);
        assert_eq!(h.current_watermark(), Some(20), "the timer of 12 has fired");
        assert_eq!(h.keyed_json("k", "seen/7"), Some(json!(20)));
        assert_eq!(
            h.feed(vec![ev("k", 25, 7)]).unwrap().len(),
            0,
            "a duplicate of 20"
        );
        // Kept again within one batch: the first keep's list loses it at once.
        assert_eq!(h.feed(vec![ev("k", 40, 8), ev("k", 60, 8)]).unwrap().len(), 2);
        let lists = entries(&h, &["/kept/"]);
        assert_eq!(lists.len(), 1, "{lists:?}");
        assert_eq!(h.feed(vec![ev("k", 65, 8)]).unwrap().len(), 0);
        h.watermark(100).unwrap();
        assert_eq!(entries(&h, &["/seen/", "/kept/"]), Vec::<String>::new());
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
