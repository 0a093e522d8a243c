//! JSON Lines <-> events: `{"key": "sensor-1", "ts": 1700000000000, "value": <any JSON>}`.

use serde::Deserialize;
use serde_json::value::RawValue;

use std::borrow::Cow;

use super::json_check::is_json;
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
    if let Some((key, ts, value)) = canonical(line) {
        return Ok((Cow::Borrowed(key), ts, value));
    }
    // serde would also accept `["key", ts, value]` for a struct; only objects are events.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("expected a JSON object".into());
    }
    let parsed: LineIn<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let value = parsed.value.map_or(&b"null"[..], |v| v.get().as_bytes());
    Ok((parsed.key, parsed.ts.unwrap_or(line_no as i64), value))
}

/// The fast path for the shape Cairn itself writes, `{"key":"<plain>","ts":<int>,"value":<json>}`
/// (no whitespace, no escapes in the key, the fields in this order): one pass over the line,
/// the key's UTF-8 checked once, the value checked as JSON. `None` for anything else, which
/// the general parser then reads (and rejects with a precise message if it must).
fn canonical(line: &[u8]) -> Option<(&str, i64, &[u8])> {
    let rest = line.strip_prefix(b"{\"key\":\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if rest[end] != b'"' {
        return None;
    }
    let key = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end + 1..].strip_prefix(b",\"ts\":")?;
    let digits = rest.iter().position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
    let ts = parse_i64(&rest[..digits])?;
    let rest = rest[digits..].strip_prefix(b",\"value\":")?;
    let value = rest.strip_suffix(b"}")?;
    // The value must be one JSON value and nothing else, without surrounding whitespace (which
    // the general parser leaves out of it): else the general parser reads it, or says why not.
    let (first, last) = (value.first()?, value.last()?);
    if first.is_ascii_whitespace() || last.is_ascii_whitespace() || !is_json(value) {
        return None;
    }
    Some((key, ts, value))
}

/// A JSON integer as an i64 (no leading `+`, no leading zeros, no overflow).
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, b),
    };
    // serde reads `-0` as a float, which is no i64: leave it to the general parser too.
    if digits.is_empty()
        || digits.len() > 19
        || (digits.len() > 1 && digits[0] == b'0')
        || (neg && digits == b"0")
    {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(i64::from(d - b'0'))?
        } else {
            v.checked_add(i64::from(d - b'0'))?
        };
    }
    Some(v)
}

/// Append `s` as a JSON string: as it is between quotes when nothing in it needs escaping
/// (serde_json escapes `"`, `\` and control characters only), else through serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Append `event` as one JSON line (with its newline) to `out`. The value is written as JSON
/// when its bytes are JSON, as a JSON string when they are other UTF-8 text, and as an array
/// of byte numbers otherwise.
pub fn encode_event<'a>(event: impl Into<EventRef<'a>>, out: &mut Vec<u8>) {
    let event = event.into();
    out.extend_from_slice(b"{\"key\":");
    write_str(out, event.key);
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(itoa::Buffer::new().format(event.ts).as_bytes());
    out.extend_from_slice(b",\"value\":");
    let v = event.value;
    match is_json(v) {
        true if !v.iter().any(|&b| b == b'\n' || b == b'\r') => out.extend_from_slice(v),
        true => {
            // Valid JSON spread over lines: re-encode compactly to keep one event per line.
            match serde_json::from_slice::<serde_json::Value>(v) {
                Ok(value) => {
                    let _ = serde_json::to_writer(&mut *out, &value);
                }
                Err(_) => out.extend_from_slice(b"null"),
            }
        }
        false => match std::str::from_utf8(v) {
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keys_are_written_as_serde_writes_them(key in "[a-z0-9\"\\\\\u{0}-\u{1f}\u{7f}é/-]{0,12}") {
            let mut out = Vec::new();
            super::write_str(&mut out, &key);
            prop_assert_eq!(out, serde_json::to_vec(&key).unwrap());
        }
    }

    /// The general parser alone.
    fn general(line: &[u8], line_no: u64) -> Result<(String, i64, Vec<u8>), String> {
        if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err("expected a JSON object".into());
        }
        let p: LineIn<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let value = p.value.map_or(&b"null"[..], |v| v.get().as_bytes());
        Ok((p.key.into_owned(), p.ts.unwrap_or(line_no as i64), value.to_vec()))
    }

    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            ".{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("{\"a\":[1,2.5,null]}".to_string()),
            Just(" 1".to_string()),
            Just("1 ".to_string()),
            Just("[1,2]".to_string()),
            Just("{}".to_string()),
            Just("1,\"key\":\"x\"".to_string()),
        ]
    }

    proptest! {
        /// The fast path reads exactly what the general parser reads, and refuses nothing the
        /// general parser accepts (it then falls back to it).
        #[test]
        fn the_fast_path_agrees_with_the_general_parser(
            key in "[a-z\\\\\"/é\u{1}]{0,6}",
            ts in prop_oneof![any::<i64>().prop_map(|t| t.to_string()), Just("01".to_string()), Just("-0".to_string()), Just("1.5".to_string())],
            value in json_value(),
            cut in any::<prop::sample::Index>(),
        ) {
            let line = format!("{{\"key\":{},\"ts\":{ts},\"value\":{value}}}", serde_json::to_string(&key).unwrap());
            for l in [line.as_bytes(), &line.as_bytes()[..cut.index(line.len() + 1)]] {
                let fast = canonical(l).map(|(k, t, v)| (k.to_string(), t, v.to_vec()));
                let slow = general(l, 7);
                if let Some(f) = fast {
                    prop_assert_eq!(Ok(f), slow.clone());
                }
                prop_assert_eq!(parse(l, 7).map(|(k, t, v)| (k.into_owned(), t, v.to_vec())), slow);
            }
        }
    }

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
