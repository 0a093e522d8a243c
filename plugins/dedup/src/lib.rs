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
//! All of a key's state is in its scope: `seen/<id>` holds the id's ts, and `kept/<ts>` the ids
//! kept at that ts and not kept again since (an id kept again, at another time, is taken off
//! its earlier list), which the key's timer at `ts + within_ms + 1` forgets without reading
//! their times. Lists named `ids/<ts>`, which dedup wrote before (2026-12-01), may still name
//! ids kept again since: their timers check each id's time before forgetting it. (One corner
//! stays: a key whose events at one ts were kept both before and after the upgrade keeps the
//! older list's ids until they are kept again.)

use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, json, key, state, timers};
use serde::Deserialize;

mod text;
use text::{appended, ids_in, plain_i64, plain_list};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    id_field: String,
    within_ms: i64,
}

/// The operator. Its buffers are reused from event to event (the keys of the id's entries,
/// the id's JSON text and the id escaped), so that an event allocates nothing for them.
pub struct Dedup {
    field: String,
    within: i64,
    text: Vec<u8>,
    seen_key: String,
    ids_key: String,
    ids: Vec<u8>,
    /// The text of the list of ids a timer forgets (reused).
    list_text: String,
    /// Duplicates dropped in the batch being handled, added to `dropped` at its end.
    dropped: u64,
    /// The entry names a batch's events (or a timers call's timers) read, one after the
    /// other, and where each one's are (reused).
    names: String,
    spans: Vec<Option<Span>>,
}

/// An event's names in [`Dedup::names`]: `seen/<id>` at `.0..`.1`, `kept/<ts>` at `.1..`.2`.
#[derive(Debug, Clone, Copy)]
struct Span(usize, usize, usize);

const SEEN: &str = "seen/";
/// The lists of ids kept at a time and not kept again since.
const KEPT: &str = "kept/";
/// The lists of ids kept at a time that dedup wrote before `kept/` (2026-12-01).
const LEGACY: &str = "ids/";

/// `seen/<id>` (the id escaped for a key) in `buf`.
fn seen_key<'b>(buf: &'b mut String, id: &str) -> &'b str {
    buf.clear();
    buf.push_str(SEEN);
    buf.push_str(id);
    buf
}

/// `<prefix><ts>` (a list of the ids kept at `ts`) in `buf`.
fn list_key<'b>(buf: &'b mut String, prefix: &str, ts: i64) -> &'b str {
    buf.clear();
    buf.push_str(prefix);
    key::push_ordered_i64(buf, ts);
    buf
}

/// `kept/<ts>` appended to `buf`.
fn push_kept_key(buf: &mut String, ts: i64) {
    buf.push_str(KEPT);
    key::push_ordered_i64(buf, ts);
}

/// The time `seen/<id>` (`key`) holds: the integer as this operator writes it, read without
/// serde; anything else is read as JSON (and fails as that would).
fn seen_at(key: &str) -> Result<Option<i64>, Error> {
    match state::get_with(key, plain_i64) {
        None => Ok(None),
        Some(Some(t)) => Ok(Some(t)),
        Some(None) => state::get_as::<i64>(key),
    }
}

/// The time whose ids a timer fired at `fired` forgets.
fn kept_at(fired: i64, within: i64) -> i64 {
    fired.saturating_sub(within).saturating_sub(1)
}

impl Dedup {
    fn forget_at(&self, ts: i64) -> i64 {
        ts.saturating_add(self.within).saturating_add(1)
    }

    /// The event's id (its field's JSON text: `7`, `"a"`, `89.5` as serde_json writes it,
    /// floats through the SDK's faster writer of the same digits), escaped for a key, appended
    /// to `into`; false when the event has no such field.
    fn push_id(&mut self, event: &Event, into: &mut String) -> Result<bool, Error> {
        let Some(id) = event.value_at_json(&self.field)? else {
            return Ok(false);
        };
        self.text.clear();
        match &id {
            serde_json::Value::Number(n) if n.is_f64() => {
                json::write_f64(&mut self.text, n.as_f64().expect("a float"))
            }
            _ => serde_json::to_writer(&mut self.text, &id)?,
        }
        let text = json::utf8(&self.text).expect("serde_json writes UTF-8");
        if text.bytes().any(|c| c == b'%' || c == b'/') {
            into.push_str(&key::escape(text));
        } else {
            into.push_str(text);
        }
        Ok(true)
    }

    /// The names the event reads, `seen/<id>` then `kept/<ts>`, appended to `names`; `None`
    /// (and nothing appended) when the event has no id.
    fn push_names(&mut self, event: &Event, names: &mut String) -> Result<Option<Span>, Error> {
        let a = names.len();
        names.push_str(SEEN);
        if !self.push_id(event, names)? {
            names.truncate(a);
            return Ok(None);
        }
        let b = names.len();
        push_kept_key(names, event.ts);
        Ok(Some(Span(a, b, names.len())))
    }

    /// The event (in its key's scope), whose id's time is in `seen` and whose time's list of
    /// ids in `at`: dropped if a duplicate, else kept and passed on.
    fn handle(&mut self, event: Event, seen: &str, at: &str, out: &mut Output) -> Result<(), Error> {
        let ts = event.ts;
        match seen_at(seen)? {
            Some(t) if (ts - t).abs() <= self.within => self.dropped += 1,
            earlier => {
                if let Some(t) = earlier {
                    // Kept again, at another time: off the list of `t`, whose timer has not
                    // fired (it would have forgotten the id).
                    self.unlist(t, &seen[SEEN.len()..])?;
                }
                self.keep(ts, seen, at)?;
                timers::register(&event.key, self.forget_at(ts))?;
                out.emit(event);
            }
        }
        Ok(())
    }

    /// Remember that the id of `seen` was kept at `ts`: its time, and its place in the list
    /// `at` of ids kept at `ts` (which the key's timer at `ts + within + 1` forgets).
    fn keep(&mut self, ts: i64, seen: &str, at: &str) -> Result<(), Error> {
        state::set_as(seen, &ts)?;
        let (id, ids) = (&seen[SEEN.len()..], &mut self.ids);
        match state::get_with(at, |old| appended(Some(old), id, ids)) {
            None => appended(None, id, ids).ok_or_else(|| Error::msg("an id is not JSON text"))?,
            Some(Some(())) => {}
            // Not in the form this operator writes: read it as JSON (or fail saying why).
            Some(None) => {
                let mut list: Vec<String> = state::get_as(at)?.unwrap_or_default();
                list.push(id.to_string());
                *ids = serde_json::to_vec(&list)?;
            }
        }
        state::set(at, ids)?;
        Ok(())
    }

    /// Each id of the list `<prefix><t>` (read without serde when it is plain) given to `f`;
    /// whether there is such a list (it stays).
    fn each_listed(
        &mut self,
        prefix: &str,
        t: i64,
        mut f: impl FnMut(&mut Self, &str) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let at = list_key(&mut self.ids_key, prefix, t);
        let mut text = std::mem::take(&mut self.list_text);
        text.clear();
        let listed = state::get_with(at, |list| plain_list(list).map(|l| text.push_str(l)));
        let r = match listed {
            None => Ok(false),
            Some(Some(())) => ids_in(&text).try_for_each(|id| f(self, id)).map(|()| true),
            // Not a list of plain strings: read it as JSON (or fail saying why).
            Some(None) => state::get_as::<Vec<String>>(at).and_then(|list| {
                list.unwrap_or_default()
                    .iter()
                    .try_for_each(|id| f(self, id))
                    .map(|()| true)
            }),
        };
        self.list_text = text;
        r
    }

    /// Take `id` off the list of ids kept at `t` (`kept/<t>`; removed when none remains).
    /// Nothing when it is not there (a list that dedup wrote before `kept/`: its timer checks
    /// each id's time).
    fn unlist(&mut self, t: i64, id: &str) -> Result<(), Error> {
        let at = list_key(&mut self.ids_key, KEPT, t);
        let ids = &mut self.ids;
        match state::get_with(at, |list| text::without(list, id, ids)) {
            None => {}
            Some(Ok(true)) => state::set(at, ids)?,
            Some(Ok(false)) => {
                state::remove(at);
            }
            Some(Err(e)) => return Err(e.into()),
        }
        Ok(())
    }

    /// A batch: the names of each event's entries first, read from the host in one call,
    /// then each event in its key's scope. An event whose value fails to parse stops the
    /// first pass; the events before it are handled, then it fails as it would alone.
    fn batch(
        &mut self,
        batch: Vec<Event>,
        names: &mut String,
        spans: &mut Vec<Option<Span>>,
        out: &mut Output,
    ) -> Result<(), Error> {
        for e in &batch {
            match self.push_names(e, names) {
                Ok(s) => spans.push(s),
                Err(_) => break,
            }
        }
        let named = batch
            .iter()
            .zip(spans.iter())
            .filter_map(|(e, s)| Some((e.key.as_str(), (*s)?)));
        state::prefetch_entries(named.flat_map(|(k, s)| [(k, &names[s.0..s.1]), (k, &names[s.1..s.2])]));
        for (i, event) in batch.into_iter().enumerate() {
            let _scope = state::enter_key(&event.key);
            let span = match spans.get(i) {
                Some(&s) => s,
                // (The event whose value failed to parse: it fails again here.)
                None => self.push_names(&event, names)?,
            };
            match span {
                None => out.emit(event),
                Some(s) => self.handle(event, &names[s.0..s.1], &names[s.1..s.2], out)?,
            }
        }
        Ok(())
    }

    /// Forget `id` (of a list that dedup wrote before `kept/`) if it was kept at `kept_at` and
    /// not kept again since, at another time.
    fn forget_checked(&mut self, kept_at: i64, id: &str) -> Result<(), Error> {
        let seen = seen_key(&mut self.seen_key, id);
        if seen_at(seen)? == Some(kept_at) {
            state::remove(seen);
        }
        Ok(())
    }

    /// Ahead of a timers call's `on_timer` calls: the lists of ids they forget, read in one
    /// host call.
    fn prefetch_forgotten(&mut self, timers: &[Event]) {
        let within = self.within;
        let (names, spans) = (&mut self.names, &mut self.spans);
        names.clear();
        spans.clear();
        for t in timers {
            let a = names.len();
            push_kept_key(names, kept_at(t.ts, within));
            spans.push(Some(Span(a, names.len(), names.len())));
        }
        let named = timers
            .iter()
            .zip(spans.iter())
            .filter_map(|(t, s)| Some((t.key.as_str(), (*s)?)));
        state::prefetch_entries(named.map(|(k, s)| (k, &names[s.0..s.1])));
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
            text: Vec::new(),
            seen_key: String::new(),
            ids_key: String::new(),
            ids: Vec::new(),
            list_text: String::new(),
            dropped: 0,
            names: String::new(),
            spans: Vec::new(),
        })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let mut names = std::mem::take(&mut self.names);
        names.clear();
        let r = match self.push_names(&event, &mut names) {
            Ok(None) => {
                out.emit(event);
                Ok(())
            }
            Ok(Some(s)) => self.handle(event, &names[s.0..s.1], &names[s.1..s.2], out),
            Err(e) => Err(e),
        };
        self.names = names;
        r
    }

    /// The batch's entries read in one host call (see [`Dedup::batch`]), and its duplicates
    /// counted with one update of `dropped` instead of one per duplicate (a failed batch
    /// leaves no write either way).
    fn on_batch(&mut self, batch: Vec<Event>, out: &mut Output) -> Result<(), Error> {
        self.dropped = 0;
        let mut names = std::mem::take(&mut self.names);
        let mut spans = std::mem::take(&mut self.spans);
        names.clear();
        spans.clear();
        let r = self.batch(batch, &mut names, &mut spans, out);
        self.names = names;
        self.spans = spans;
        r?;
        let dropped = std::mem::take(&mut self.dropped);
        if dropped > 0 {
            ValueState::<u64>::operator("dropped").update(|n| n.unwrap_or(0) + dropped)?;
        }
        Ok(())
    }

    fn before_timers(&mut self, timers: &[Event]) -> Result<(), Error> {
        self.prefetch_forgotten(timers);
        Ok(())
    }

    /// Forget the ids kept at the timer's time minus `within + 1` (and not kept again since):
    /// their `seen/` entries and their list go, without reading their times.
    fn on_timer(&mut self, _key: &str, ts: i64, _out: &mut Output) -> Result<(), Error> {
        let kept_at = kept_at(ts, self.within);
        let forget = |op: &mut Self, id: &str| {
            state::discard(seen_key(&mut op.seen_key, id));
            Ok(())
        };
        if self.each_listed(KEPT, kept_at, forget)? {
            state::remove(list_key(&mut self.ids_key, KEPT, kept_at));
        } else if self.each_listed(LEGACY, kept_at, |op, id| op.forget_checked(kept_at, id))? {
            // A list that dedup wrote before `kept/`: its ids may have been kept again since.
            state::remove(list_key(&mut self.ids_key, LEGACY, kept_at));
        }
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
    fn lists_written_before_kept_are_forgotten_as_before() {
        let mut h = Harness::<Dedup>::new(r#"{"id_field": "id", "within_ms": 10}"#).unwrap();
        // State as dedup wrote it before `kept/`: 7 kept at 1; 8 kept at 1, then again at 30
        // (still listed at 1); their timers at 12 and 41.
        state::with_key("k", || {
            state::set_as("seen/7", &1).unwrap();
            state::set_as("seen/8", &30).unwrap();
            state::set_as(&format!("ids/{}", key::ordered_i64(1)), &["7", "8"]).unwrap();
            state::set_as(&format!("ids/{}", key::ordered_i64(30)), &["8"]).unwrap();
        });
        timers::register("k", 12).unwrap();
        timers::register("k", 41).unwrap();
        h.watermark(12).unwrap();
        assert_eq!(h.keyed_json("k", "seen/7"), None, "forgotten at its time");
        assert_eq!(
            h.keyed_json("k", "seen/8"),
            Some(json!(30)),
            "kept again since: stays"
        );
        assert_eq!(h.send("k", 35, json!({"id": 8})).unwrap().len(), 0);
        h.watermark(41).unwrap();
        assert_eq!(entries(&h, &["/seen/", "/ids/"]), Vec::<String>::new());
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
