//! How the host keeps state TTL (event time) for keyed scopes: entries of the operator's state
//! under keys no guest can name (see [`crate::timers`]), so that they are checkpointed, rolled
//! back and grouped by key group with the state.
//!
//! * `!w/<scope>`: the watermark in force when the scope was last written (8 bytes, i64
//!   little-endian), or empty when it was written before the first watermark (it then counts
//!   as written at the first watermark).
//! * `!x/<ts>/<scope>` (empty value): the scope may expire at `ts` (16 hex digits, as for
//!   timers; byte order is time order): the host looks again then.

use crate::timers::{parse_time_key, time_bound, time_key_into};

/// The count of entries expired so far (u64 little-endian), kept with the state so that a
/// checkpoint can tell it.
pub const EXPIRED_COUNT: &str = "!e";

/// The prefix of the last-write entries.
pub const WRITTEN_PREFIX: &str = "!w/";
/// The prefix of the expiry index.
pub const INDEX_PREFIX: &str = "!x/";

/// The last-write entry of `scope`.
pub fn written_key(scope: &str) -> String {
    let mut s = String::with_capacity(WRITTEN_PREFIX.len() + scope.len());
    s.push_str(WRITTEN_PREFIX);
    s.push_str(scope);
    s
}

/// The expiry index entry of `scope` at `ts`.
pub fn index_key(ts: i64, scope: &str) -> String {
    let mut s = String::with_capacity(INDEX_PREFIX.len() + 17 + scope.len());
    time_key_into(&mut s, INDEX_PREFIX, ts, scope);
    s
}

/// A bound for range scans of the index: entries with a time `<= ts` sort below it.
pub fn index_after(ts: i64) -> String {
    time_bound(INDEX_PREFIX, ts)
}

/// `(ts, scope)` of an index entry.
pub fn parse_index(entry: &str) -> Option<(i64, &str)> {
    parse_time_key(entry, INDEX_PREFIX)
}

/// The stream key (scope) a host entry of TTL belongs to.
pub fn scope_of(entry: &str) -> Option<&str> {
    if let Some(s) = entry.strip_prefix(WRITTEN_PREFIX) {
        return Some(s);
    }
    parse_index(entry).map(|(_, s)| s)
}

/// The value of a last-write entry: `None` = before the first watermark.
pub fn encode_written(watermark: Option<i64>) -> Vec<u8> {
    watermark.map(|w| w.to_le_bytes().to_vec()).unwrap_or_default()
}

/// Read a last-write value: `Some(None)` = before the first watermark, `None` = malformed.
pub fn decode_written(value: &[u8]) -> Option<Option<i64>> {
    match value.len() {
        0 => Some(None),
        _ => value.try_into().ok().map(|b| Some(i64::from_le_bytes(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let (a, b) = (index_key(-5, "k/1"), index_key(7, "a"));
        assert_eq!(parse_index(&a), Some((-5, "k/1")));
        assert!(a < b && b < index_after(7) && index_after(6) < b);
        assert_eq!(scope_of(&written_key("s")), Some("s"));
        assert_eq!(scope_of(&b), Some("a"));
        assert_eq!(scope_of("*/x"), None);
        for w in [None, Some(-1), Some(i64::MAX)] {
            assert_eq!(decode_written(&encode_written(w)), Some(w));
        }
        assert_eq!(decode_written(b"xyz"), None);
    }
}
