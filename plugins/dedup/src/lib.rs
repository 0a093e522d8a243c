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
    id: String,
    seen_key: String,
    ids_key: String,
    ids: Vec<u8>,
    /// The ids a timer forgets (reused).
    kept: Vec<String>,
    /// Duplicates dropped in the batch being handled, added to `dropped` at its end.
    dropped: u64,
}

/// `seen/<id>` (the id escaped for a key) in `buf`.
fn seen_key<'b>(buf: &'b mut String, id: &str) -> &'b str {
    buf.clear();
    buf.push_str("seen/");
    buf.push_str(id);
    buf
}

/// `ids/<ts>`, the ids kept at `ts`, in `buf`.
fn ids_key(buf: &mut String, ts: i64) -> &str {
    buf.clear();
    buf.push_str("ids/");
    key::push_ordered_i64(buf, ts);
    buf
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

/// The ids of a list as this operator writes it (`["7","\"a\""]`) into `out` (cleared first),
/// when none of them holds a backslash (their JSON text is then the id itself); `None` for
/// anything else, which is read as JSON instead.
fn simple_ids(list: &[u8], out: &mut Vec<String>) -> Option<()> {
    out.clear();
    let inner = list.strip_prefix(b"[")?.strip_suffix(b"]")?;
    if inner.is_empty() {
        return Some(());
    }
    let inner = std::str::from_utf8(inner).ok()?;
    let inner = inner.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        return None;
    }
    for id in inner.split("\",\"") {
        if id.contains('"') {
            return None;
        }
        out.push(id.to_string());
    }
    Some(())
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

impl Dedup {
    fn forget_at(&self, ts: i64) -> i64 {
        ts.saturating_add(self.within).saturating_add(1)
    }

    /// Remember that `self.id` was kept at `ts`: its time, and its place in the list of ids
    /// kept at `ts` (which the key's timer at `ts + within + 1` forgets).
    fn keep(&mut self, ts: i64) -> Result<(), Error> {
        state::set_as(seen_key(&mut self.seen_key, &self.id), &ts)?;
        let at = ids_key(&mut self.ids_key, ts);
        let (id, ids) = (&self.id, &mut self.ids);
        match state::get_with(at, |old| appended(Some(old), id, ids)) {
            None => appended(None, id, ids).ok_or_else(|| Error::msg("an id is not JSON text"))?,
            Some(Some(())) => {}
            // Not in the form this operator writes: read it as JSON (or fail saying why).
            Some(None) => {
                let mut list: Vec<String> = state::get_as(at)?.unwrap_or_default();
                list.push(id.clone());
                *ids = serde_json::to_vec(&list)?;
            }
        }
        state::set(at, ids)?;
        Ok(())
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
            id: String::new(),
            seen_key: String::new(),
            ids_key: String::new(),
            ids: Vec::new(),
            kept: Vec::new(),
            dropped: 0,
        })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let ts = event.ts;
        let Some(id) = event.value_at_json(&self.field)? else {
            out.emit(event);
            return Ok(());
        };
        // The id as JSON text (`7`, `"a"`, `89.5`: serde_json's, floats through the SDK's
        // faster writer of the same digits), escaped for a key.
        self.text.clear();
        match &id {
            serde_json::Value::Number(n) if n.is_f64() => {
                json::write_f64(&mut self.text, n.as_f64().expect("a float"))
            }
            _ => serde_json::to_writer(&mut self.text, &id)?,
        }
        let text = std::str::from_utf8(&self.text).expect("serde_json writes UTF-8");
        self.id.clear();
        if text.contains(['%', '/']) {
            self.id.push_str(&key::escape(text));
        } else {
            self.id.push_str(text);
        }
        match seen_at(seen_key(&mut self.seen_key, &self.id))? {
            Some(t) if (ts - t).abs() <= self.within => self.dropped += 1,
            _ => {
                self.keep(ts)?;
                timers::register(&event.key, self.forget_at(ts))?;
                out.emit(event);
            }
        }
        Ok(())
    }

    /// Each event in its key's scope, as by default; the batch's duplicates are then counted
    /// with one update of `dropped` instead of one per duplicate (a failed batch leaves no
    /// write either way).
    fn on_batch(&mut self, batch: Vec<Event>, out: &mut Output) -> Result<(), Error> {
        self.dropped = 0;
        for event in batch {
            let _scope = state::enter_key(&event.key);
            self.on_event(event, out)?;
        }
        let dropped = std::mem::take(&mut self.dropped);
        if dropped > 0 {
            ValueState::<u64>::operator("dropped").update(|n| n.unwrap_or(0) + dropped)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, _key: &str, ts: i64, _out: &mut Output) -> Result<(), Error> {
        let kept_at = ts.saturating_sub(self.within).saturating_sub(1);
        let at = ids_key(&mut self.ids_key, kept_at);
        let ids = &mut self.kept;
        ids.clear();
        let listed = state::get_with(at, |list| simple_ids(list, ids));
        if listed == Some(None) {
            // Not a list of plain strings: read it as JSON (or fail saying why).
            let list: Vec<String> = state::get_as(at)?.unwrap_or_default();
            ids.clear();
            ids.extend(list);
        }
        let ids = std::mem::take(&mut self.kept);
        for id in &ids {
            // Forget the id unless it was kept again since, at another time.
            let seen = seen_key(&mut self.seen_key, id);
            if seen_at(seen)? == Some(kept_at) {
                state::remove(seen);
            }
        }
        state::remove(ids_key(&mut self.ids_key, kept_at));
        self.kept = ids;
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
                let mut got = vec!["stale".to_string()];
                match simple_ids(&text, &mut got) {
                    Some(()) => assert_eq!(got, list),
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
        ] {
            assert_eq!(simple_ids(other, &mut Vec::new()), None, "{other:?}");
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
