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

use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, json, key, state, timers};
use serde::Deserialize;

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
    /// A timers call's lists' names, each followed by the `seen/<id>` names it lists:
    /// (timer, start, end) (reused).
    seen_names: String,
    seen_spans: Vec<(usize, usize, usize)>,
}

/// An event's names in [`Dedup::names`]: `seen/<id>` at `.0..`.1`, `ids/<ts>` at `.1..`.2`.
#[derive(Debug, Clone, Copy)]
struct Span(usize, usize, usize);

const SEEN: &str = "seen/";

/// `seen/<id>` (the id escaped for a key) in `buf`.
fn seen_key<'b>(buf: &'b mut String, id: &str) -> &'b str {
    buf.clear();
    buf.push_str(SEEN);
    buf.push_str(id);
    buf
}

/// `ids/<ts>`, the ids kept at `ts`, in `buf`.
fn ids_key(buf: &mut String, ts: i64) -> &str {
    buf.clear();
    push_ids_key(buf, ts);
    buf
}

/// `ids/<ts>` appended to `buf`.
fn push_ids_key(buf: &mut String, ts: i64) {
    buf.push_str("ids/");
    key::push_ordered_i64(buf, ts);
}

/// `list` (a JSON list of strings, as serde_json writes it: `["a","b"]`) with `id` appended,
/// into `out`; `None` if `list` is not of that form.
fn appended(list: Option<&[u8]>, id: &str, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    match list {
        None => out.push(b'['),
        Some(l) if l.len() >= 2 && l[0] == b'[' && l[l.len() - 1] == b']' => {
            out.extend_from_slice(&l[..l.len() - 1]);
            if l.len() > 2 {
                out.push(b',');
            }
        }
        Some(_) => return None,
    }
    serde_json::to_writer(&mut *out, id).ok()?;
    out.push(b']');
    Some(())
}

/// The text between a list's brackets when it is a list of ids as this operator writes it
/// (`["7","\"a\""]`) and none of them holds a backslash (each id's JSON text is then the id
/// between quotes, and quotes are only the list's own); `None` for anything else, which is
/// read as JSON instead. Its ids: [`ids_in`].
fn plain_list(list: &[u8]) -> Option<&str> {
    let inner = list.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let inner = json::utf8(inner).ok()?;
    if inner.is_empty() {
        return Some(inner);
    }
    // `"a","b","c"`: quotes only at the ends and around each `,` between ids, no backslash.
    let b = inner.as_bytes();
    let end = b.len().checked_sub(1)?;
    if end == 0 || b[0] != b'"' || b[end] != b'"' {
        return None;
    }
    let mut i = 1;
    while i < end {
        match b[i] {
            b'\\' => return None,
            b'"' if b[i + 1] == b',' && i + 2 < end && b[i + 2] == b'"' => i += 3,
            b'"' => return None,
            _ => i += 1,
        }
    }
    Some(inner)
}

/// The ids of a list's text as [`plain_list`] gives it.
fn ids_in(inner: &str) -> impl Iterator<Item = &str> {
    let body = (!inner.is_empty()).then(|| &inner[1..inner.len() - 1]);
    body.into_iter().flat_map(|b| b.split('"').step_by(2))
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

/// `-`? then 1 to 18 digits, no leading zero, not `-0`: an integer as serde_json writes it.
fn plain_i64(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    // (serde_json reads `-0` as a float: declined too.)
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
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

    /// The names the event reads, `seen/<id>` then `ids/<ts>`, appended to `names`; `None`
    /// (and nothing appended) when the event has no id.
    fn push_names(&mut self, event: &Event, names: &mut String) -> Result<Option<Span>, Error> {
        let a = names.len();
        names.push_str(SEEN);
        if !self.push_id(event, names)? {
            names.truncate(a);
            return Ok(None);
        }
        let b = names.len();
        push_ids_key(names, event.ts);
        Ok(Some(Span(a, b, names.len())))
    }

    /// The event (in its key's scope), whose id's time is in `seen` and whose time's list of
    /// ids in `at`: dropped if a duplicate, else kept and passed on.
    fn handle(&mut self, event: Event, seen: &str, at: &str, out: &mut Output) -> Result<(), Error> {
        let ts = event.ts;
        match seen_at(seen)? {
            Some(t) if (ts - t).abs() <= self.within => self.dropped += 1,
            _ => {
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

    /// Forget each of `ids` that was kept at `kept_at` (and not kept again since, at another
    /// time).
    fn forget<'i>(&mut self, kept_at: i64, ids: impl Iterator<Item = &'i str>) -> Result<(), Error> {
        for id in ids {
            let seen = seen_key(&mut self.seen_key, id);
            if seen_at(seen)? == Some(kept_at) {
                state::remove(seen);
            }
        }
        Ok(())
    }

    /// Ahead of a timers call's `on_timer` calls: the lists of ids they forget, read in one
    /// host call, then the `seen/<id>` entries those lists name in another (which names the
    /// lists again, already read, so that the SDK follows `on_timer`'s reads in its order).
    fn prefetch_forgotten(&mut self, timers: &[Event]) {
        let within = self.within;
        let (names, spans) = (&mut self.names, &mut self.spans);
        names.clear();
        spans.clear();
        for t in timers {
            let a = names.len();
            push_ids_key(names, kept_at(t.ts, within));
            spans.push(Some(Span(a, names.len(), names.len())));
        }
        let named = timers
            .iter()
            .zip(spans.iter())
            .filter_map(|(t, s)| Some((t.key.as_str(), (*s)?)));
        state::prefetch_entries(named.map(|(k, s)| (k, &names[s.0..s.1])));
        let (seen, seen_spans) = (&mut self.seen_names, &mut self.seen_spans);
        seen.clear();
        seen_spans.clear();
        for (i, (t, s)) in timers.iter().zip(spans.iter()).enumerate() {
            let Some(s) = s else { continue };
            let _scope = state::enter_key(&t.key);
            let list = &names[s.0..s.1];
            // The list again, then its ids: the order `on_timer` reads them in. (A list not in
            // this operator's form is read by `on_timer` itself.)
            let a = seen.len();
            seen.push_str(list);
            seen_spans.push((i, a, seen.len()));
            state::get_with(list, |list| {
                for id in plain_list(list).into_iter().flat_map(ids_in) {
                    let a = seen.len();
                    seen.push_str(SEEN);
                    seen.push_str(id);
                    seen_spans.push((i, a, seen.len()));
                }
            });
        }
        state::prefetch_entries(
            seen_spans
                .iter()
                .map(|&(i, a, b)| (timers[i].key.as_str(), &seen[a..b])),
        );
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
            seen_names: String::new(),
            seen_spans: Vec::new(),
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

    fn on_timer(&mut self, _key: &str, ts: i64, _out: &mut Output) -> Result<(), Error> {
        let kept_at = kept_at(ts, self.within);
        let at = ids_key(&mut self.ids_key, kept_at);
        let mut text = std::mem::take(&mut self.list_text);
        text.clear();
        let listed = state::get_with(at, |list| plain_list(list).map(|l| text.push_str(l)));
        let forgotten = if listed == Some(None) {
            // Not a list of plain strings: read it as JSON (or fail saying why).
            state::get_as::<Vec<String>>(at)
                .and_then(|list| self.forget(kept_at, list.unwrap_or_default().iter().map(String::as_str)))
        } else {
            self.forget(kept_at, ids_in(&text))
        };
        self.list_text = text;
        forgotten?;
        state::remove(ids_key(&mut self.ids_key, kept_at));
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
    fn an_id_is_appended_as_serde_writes_the_list() {
        let ids = ["7", "\"a\\\"b\"", "x%2Fy", "é", ""];
        for n in 0..ids.len() {
            let list: Vec<String> = ids[..n].iter().map(|s| s.to_string()).collect();
            let stored = (n > 0).then(|| serde_json::to_vec(&list).unwrap());
            let mut out = Vec::new();
            appended(stored.as_deref(), ids[n], &mut out).unwrap();
            let mut want = list.clone();
            want.push(ids[n].to_string());
            assert_eq!(out, serde_json::to_vec(&want).unwrap());
        }
        assert_eq!(
            appended(Some(b"{}"), "1", &mut Vec::new()),
            None,
            "not a list: read as JSON"
        );
    }

    #[test]
    fn plain_id_lists_are_read_as_serde_reads_them() {
        let ids = ["7", "89.5", "", "x%2Fy", "é", "a\"b", "back\\slash", "tab\t"];
        for n in 0..ids.len() {
            for m in n..=ids.len() {
                let list: Vec<String> = ids[n..m].iter().map(|s| s.to_string()).collect();
                let text = serde_json::to_vec(&list).unwrap();
                match plain_list(&text) {
                    Some(inner) => assert_eq!(ids_in(inner).collect::<Vec<_>>(), list),
                    None => assert!(
                        list.iter().any(|id| id.contains(['"', '\\', '\t'])),
                        "{list:?} declined"
                    ),
                }
            }
        }
        for other in [
            &b"{}"[..],
            b"[1]",
            b"[\"a\",2]",
            b" [\"a\"]",
            b"[\"a\"",
            b"[\"a\"]]",
            b"[\"a\",]",
            b"[\"a\",\"]",
            b"[\"a\" ,\"b\"]",
            b"[\"\"\"]",
        ] {
            assert_eq!(plain_list(other), None, "{other:?}");
        }
    }

    #[test]
    fn plain_integers_are_read_as_serde_reads_them() {
        // What this operator writes is read without serde...
        for n in [0i64, 1, -1, 7, 1_700_000_000_000, -999_999_999_999_999_999] {
            assert_eq!(plain_i64(n.to_string().as_bytes()), Some(n));
        }
        // ... and nothing is read otherwise than serde reads it (declined: serde reads it).
        for text in [
            "-0",
            "01",
            "",
            "-",
            "1.0",
            "1e3",
            " 1",
            "+1",
            "12a",
            "\"5\"",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
        ] {
            if let Some(v) = plain_i64(text.as_bytes()) {
                assert_eq!(Some(v), serde_json::from_str::<i64>(text).ok(), "{text:?}");
            }
        }
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
