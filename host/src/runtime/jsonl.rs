//! JSON Lines <-> events: `{"key": "sensor-1", "ts": 1700000000000, "value": <any JSON>}`.

use serde::Deserialize;
use serde_json::value::RawValue;

use std::borrow::Cow;

use crate::{Batch, Event, EventRef};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// Parse one line into an event. `line_no` (1-based) is the event time when `ts` is absent.
/// The event's value is the exact JSON text of `value` (`null` when absent).
pub fn parse_line(line: &[u8], line_no: u64) -> Result<Event, String> {
    let (key, ts, value) = parse(line, line_no)?;
    Ok(Event {
        key: key.into_owned(),
        ts,
        value: value.to_vec(),
    })
}

/// [`parse_line`] straight into `batch`: the key and value are copied once, into the batch.
/// A key longer than `max_key_bytes` is refused.
pub fn parse_line_into(
    line: &[u8],
    line_no: u64,
    batch: &mut Batch,
    max_key_bytes: usize,
) -> Result<(), String> {
    let (key, ts, value) = parse(line, line_no)?;
    check_key(&key, max_key_bytes)?;
    batch.push(&key, ts, value).map_err(|e| e.to_string())
}

/// Refuse a key longer than `max_key_bytes`.
pub fn check_key(key: &str, max_key_bytes: usize) -> Result<(), String> {
    if key.len() > max_key_bytes {
        return Err(format!(
            "the key has {} bytes, more than max_key_bytes = {max_key_bytes}",
            key.len()
        ));
    }
    Ok(())
}

fn parse(line: &[u8], line_no: u64) -> Result<(Cow<'_, str>, i64, &[u8]), String> {
    // serde would also accept `["key", ts, value]` for a struct; only objects are events.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("expected a JSON object".into());
    }
    let parsed: LineIn<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let value = parsed.value.map_or(&b"null"[..], |v| v.get().as_bytes());
    Ok((parsed.key, parsed.ts.unwrap_or(line_no as i64), value))
}

/// Append `event` as one JSON line (with its newline) to `out`. The value is written as JSON
/// when its bytes are JSON, as a JSON string when they are other UTF-8 text, and as an array
/// of byte numbers otherwise.
pub fn encode_event<'a>(event: impl Into<EventRef<'a>>, out: &mut Vec<u8>) {
    let event = event.into();
    out.extend_from_slice(b"{\"key\":");
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &event.key);
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(event.ts.to_string().as_bytes());
    out.extend_from_slice(b",\"value\":");
    let v = event.value;
    match serde_json::from_slice::<serde::de::IgnoredAny>(v) {
        Ok(_) if !v.iter().any(|&b| b == b'\n' || b == b'\r') => out.extend_from_slice(v),
        Ok(_) => {
            // Valid JSON spread over lines: re-encode compactly to keep one event per line.
            match serde_json::from_slice::<serde_json::Value>(v) {
                Ok(value) => {
                    let _ = serde_json::to_writer(&mut *out, &value);
                }
                Err(_) => out.extend_from_slice(b"null"),
            }
        }
        Err(_) => match std::str::from_utf8(v) {
            Ok(text) => {
                let _ = serde_json::to_writer(&mut *out, text);
            }
            Err(_) => {
                let _ = serde_json::to_writer(&mut *out, v);
            }
        },
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: &Event) -> String {
        let mut v = Vec::new();
        encode_event(e, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn value_is_exact_json_text() {
        let e = parse_line(br#"{"key":"s","ts":5,"value": {"a": [1, 2.50]} }"#, 1).unwrap();
        assert_eq!(e.value, br#"{"a": [1, 2.50]}"#);
        assert_eq!(e.ts, 5);
        assert_eq!(enc(&e), "{\"key\":\"s\",\"ts\":5,\"value\":{\"a\": [1, 2.50]}}\n");
    }

    #[test]
    fn missing_ts_is_line_number_and_missing_value_is_null() {
        let e = parse_line(br#"{"key":"s"}"#, 42).unwrap();
        assert_eq!((e.ts, e.value.as_slice()), (42, &b"null"[..]));
    }

    #[test]
    fn bad_lines_are_rejected() {
        assert!(parse_line(b"{\"key\": 3}", 1).is_err());
        assert!(parse_line(b"{\"ts\": 3}", 1).is_err());
        assert!(parse_line(b"not json", 1).is_err());
        assert!(parse_line(b"{\"key\":\"a\",\"ts\":\"x\"}", 1).is_err());
        assert!(parse_line(b"{\"key\":\"a\",\"extra\":1}", 1).is_err());
    }

    #[test]
    fn arrays_are_not_events_and_huge_numbers_pass_through_verbatim() {
        // Found by the jsonl_parse fuzz target.
        assert!(parse_line(b"[\"'\",0,\t[\t99999999992047e81007777]]\t", 1).is_err());
        let e = parse_line(br#"{"key":"k","value":[1e81007777]}"#, 1).unwrap();
        assert_eq!(enc(&e), "{\"key\":\"k\",\"ts\":1,\"value\":[1e81007777]}\n");
    }

    #[test]
    fn non_json_values_become_strings_or_bytes() {
        let e = Event {
            key: "k\"".into(),
            ts: -1,
            value: b"hi there".to_vec(),
        };
        assert_eq!(enc(&e), "{\"key\":\"k\\\"\",\"ts\":-1,\"value\":\"hi there\"}\n");
        let e = Event {
            key: "k".into(),
            ts: 0,
            value: vec![0xff, 1],
        };
        assert_eq!(enc(&e), "{\"key\":\"k\",\"ts\":0,\"value\":[255,1]}\n");
        let e = Event {
            key: "k".into(),
            ts: 0,
            value: b"{\n\"a\": 1}".to_vec(),
        };
        assert_eq!(enc(&e), "{\"key\":\"k\",\"ts\":0,\"value\":{\"a\":1}}\n");
    }
}
