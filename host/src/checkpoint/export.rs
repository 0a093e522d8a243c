//! An operator's restored state as JSON Lines, one entry a line, nothing re-formatted (the
//! state processor's export, `cairn state export`):
//!
//! ```text
//! {"operator": NAME, "key_groups": G, "parallelism": N, "expired": E, "state_version": V, "plugin_digest": …, "config": …}
//! {"scope": "<stream key>" | null, "key": "<key>", "value": <the exact bytes, when valid one-line JSON>}
//! {"scope": …, "key": …, "value_b64": "<the bytes, base64>"}             (any other bytes)
//! {"timer": <ts>, "scope": "<stream key>"}                              (a registered timer)
//! {"host": "<stored key>", "value_b64": …}                              (the host's own records: TTL stamps)
//! {"plain": "<key>", "value" | "value_b64": …}                          (a 0.1.x plugin's unscoped key)
//! ```
//!
//! The header comes first, then the entries in the byte order of their stored keys.

use std::io::{self, Write};

use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::restore::RestoredOperator;

/// The stored bytes as a line's value: `"value": <raw JSON>` when they are valid JSON on one
/// line, else `"value_b64"`.
fn put_value(line: &mut Map<String, Value>, bytes: &[u8]) -> Option<Box<RawValue>> {
    let raw = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.contains('\n'))
        .and_then(|t| RawValue::from_string(t.to_string()).ok());
    if raw.is_none() {
        line.insert(
            "value_b64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
    raw
}

/// One entry's line (without its value when the value is embedded raw, returned apart).
fn entry(stored: &str, bytes: &[u8]) -> (Map<String, Value>, Option<Box<RawValue>>) {
    let mut line = Map::new();
    if let Some((scope, ts)) = cairn_codec::timers::parse(stored) {
        line.insert("timer".into(), json!(ts));
        line.insert("scope".into(), json!(scope));
        return (line, None);
    }
    if stored.starts_with('!') {
        line.insert("host".into(), json!(stored));
        let raw = put_value(&mut line, bytes);
        return (line, raw);
    }
    match cairn_codec::scoped::split(stored) {
        Ok((scope, key)) => {
            line.insert("scope".into(), json!(scope));
            line.insert("key".into(), json!(key));
        }
        Err(_) => {
            line.insert("plain".into(), json!(stored));
        }
    }
    let raw = put_value(&mut line, bytes);
    (line, raw)
}

/// Write `op`'s state as JSON Lines; how many entries.
pub fn export(op: &RestoredOperator, out: &mut dyn Write) -> io::Result<u64> {
    let header = json!({
        "operator": op.name, "key_groups": op.key_groups, "parallelism": op.parallelism,
        "expired": op.expired, "state_version": op.state_version, "plugin_digest": op.plugin_digest, "config": op.config,
    });
    writeln!(out, "{header}")?;
    let mut entries: Vec<(&str, &[u8])> = op.state.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (stored, bytes) in &entries {
        let (mut line, raw) = entry(stored, bytes);
        match raw {
            // The value last, written as it is stored.
            Some(raw) => {
                let text = Value::Object(std::mem::take(&mut line)).to_string();
                let open = &text[..text.len() - 1];
                let sep = if open.len() > 1 { "," } else { "" };
                writeln!(out, "{open}{sep}\"value\":{}}}", raw.get())?;
            }
            None => writeln!(out, "{}", Value::Object(line))?,
        }
    }
    Ok(entries.len() as u64)
}

/// The value of `key` in `scope` (`None`: operator-wide) of `op`, as stored.
pub fn get<'a>(op: &'a RestoredOperator, scope: Option<&str>, key: &str) -> Option<&'a [u8]> {
    let stored = cairn_codec::scoped::compose(scope, key);
    op.state.get(&stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateHolder;

    #[test]
    fn entries_are_written_as_stored_each_kind_on_its_line() {
        let mut state = StateHolder::new();
        let set = |s: &mut StateHolder, k: &str, v: &[u8]| s.set(k, crate::state::Value::from(v)).unwrap();
        set(
            &mut state,
            &cairn_codec::scoped::compose(Some("sensor-1"), "count"),
            b"{\"n\": 1.50}",
        );
        set(
            &mut state,
            &cairn_codec::scoped::compose(None, "late"),
            &[0xff, 0, 1],
        );
        set(&mut state, &cairn_codec::timers::entry_key("sensor-1", 42), b"");
        set(&mut state, "!w/sensor-1", b"\x01");
        set(&mut state, "legacy", b"7");
        let op = RestoredOperator {
            name: "op".into(),
            key_groups: 128,
            parallelism: 2,
            expired: 3,
            state_version: 2,
            plugin_digest: "ab".into(),
            config: "{}".into(),
            state,
        };
        let mut out = Vec::new();
        assert_eq!(export(&op, &mut out).unwrap(), 5);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("{\"config\":\"{}\",\"expired\":3"),
            "{}",
            lines[0]
        );
        assert!(
            lines.contains(&"{\"key\":\"count\",\"scope\":\"sensor-1\",\"value\":{\"n\": 1.50}}"),
            "{text}"
        );
        assert!(
            lines.contains(&"{\"key\":\"late\",\"scope\":null,\"value_b64\":\"/wAB\"}"),
            "{text}"
        );
        assert!(lines.contains(&"{\"scope\":\"sensor-1\",\"timer\":42}"), "{text}");
        assert!(
            lines.contains(&"{\"host\":\"!w/sensor-1\",\"value_b64\":\"AQ==\"}"),
            "{text}"
        );
        assert!(lines.contains(&"{\"plain\":\"legacy\",\"value\":7}"), "{text}");
        for l in &lines {
            serde_json::from_str::<Value>(l).unwrap();
        }
        assert_eq!(get(&op, Some("sensor-1"), "count"), Some(&b"{\"n\": 1.50}"[..]));
    }
}
