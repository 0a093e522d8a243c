//! How the host stores event-time timers: as entries of the operator's state, under keys that
//! no guest can name, so that timers are checkpointed (full and delta), rolled back with a
//! failed batch and split by key group exactly like state.
//!
//! A timer of stream key `k` at event time `ts` is the entry `!t/<ts>/<k>` with an empty
//! value, where `<ts>` is 16 hex digits whose string order is the numeric order of `ts`
//! ([`ordered_ts`]). Byte order of these keys is therefore (ts, key) order, the order in which
//! timers fire. Guests' keys are scoped keys (`<len>:…` or `*/…`, [`crate::scoped`]): they never
//! start with `!`.

/// The prefix of every timer entry.
pub const PREFIX: &str = "!t/";

/// [`ordered_ts`]`(ts)` appended to `out`.
pub fn push_ordered_ts(out: &mut String, ts: i64) {
    out.push_str(crate::ascii(&ordered_ts(ts)));
}

/// 16 lower-case hex digits whose string order is the numeric order of `ts`.
pub fn ordered_ts(ts: i64) -> [u8; 16] {
    let v = (ts as u64) ^ (1 << 63);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex8((v >> 32) as u32));
    out[8..].copy_from_slice(&hex8(v as u32));
    out
}

/// The 8 lower-case hex digits of `x`, most significant first, computed in one 64-bit word
/// (a window's or a timer's key is built on every event; a digit at a time cost ~100
/// instructions in WebAssembly).
fn hex8(x: u32) -> [u8; 8] {
    // Each nibble into a byte of its own: byte i (from the least significant) = nibble i.
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // '0' + n, plus 39 more ('a' - '0' - 10) where n >= 10: n + 6 carries into bit 4 then.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * 39).to_be_bytes()
}

/// `<prefix><ts: 16 hex digits>/<tail>`, appended to `out`: the form of the host's time-ordered
/// entries (timers here, the TTL index in [`crate::expiry`]).
pub(crate) fn time_key_into(out: &mut String, prefix: &str, ts: i64, tail: &str) {
    out.push_str(prefix);
    push_ordered_ts(out, ts);
    out.push('/');
    out.push_str(tail);
}

/// A bound for range scans of `prefix`'s time-ordered entries: those with a time `<= ts` sort
/// below it, every later one above (`/` + anything sorts before `0`, 0x30).
pub(crate) fn time_bound(prefix: &str, ts: i64) -> String {
    let mut s = String::with_capacity(prefix.len() + 17);
    s.push_str(prefix);
    push_ordered_ts(&mut s, ts);
    s.push('0');
    s
}

/// `(ts, tail)` of a time-ordered entry under `prefix`, or `None`.
pub(crate) fn parse_time_key<'a>(entry: &'a str, prefix: &str) -> Option<(i64, &'a str)> {
    let rest = entry.strip_prefix(prefix)?;
    let hex = rest.get(..16)?;
    let tail = rest.get(16..)?.strip_prefix('/')?;
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let v = u64::from_str_radix(hex, 16).ok()?;
    Some(((v ^ (1 << 63)) as i64, tail))
}

/// The entry of the timer of stream key `key` at `ts`.
pub fn entry_key(key: &str, ts: i64) -> String {
    let mut s = String::with_capacity(PREFIX.len() + 17 + key.len());
    entry_key_into(&mut s, key, ts);
    s
}

/// [`entry_key`], appended to `out`.
pub fn entry_key_into(out: &mut String, key: &str, ts: i64) {
    time_key_into(out, PREFIX, ts, key);
}

/// A bound for range scans: every timer entry with a time `<= ts` sorts below it, every later
/// one above.
pub fn after_ts(ts: i64) -> String {
    time_bound(PREFIX, ts)
}

/// `(key, ts)` of a timer entry, or `None` for any other key.
pub fn parse(entry: &str) -> Option<(&str, i64)> {
    parse_time_key(entry, PREFIX).map(|(ts, key)| (key, ts))
}

/// Whether a stored key is a timer entry.
pub fn is_timer(entry: &str) -> bool {
    entry.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The digits are `format!("{:016x}")` of the sign-flipped value.
        #[test]
        fn ordered_ts_is_the_flipped_value_in_hex(ts in any::<i64>()) {
            let want = format!("{:016x}", (ts as u64) ^ (1 << 63));
            let got = ordered_ts(ts);
            prop_assert_eq!(std::str::from_utf8(&got).unwrap(), want);
        }

        #[test]
        fn entries_round_trip_and_sort_by_time_then_key(a in (".{0,6}", any::<i64>()), b in (".{0,6}", any::<i64>())) {
            let (ea, eb) = (entry_key(&a.0, a.1), entry_key(&b.0, b.1));
            prop_assert_eq!(parse(&ea), Some((a.0.as_str(), a.1)));
            prop_assert!(is_timer(&ea));
            let by_entry = ea.cmp(&eb);
            let by_pair = (a.1, a.0.as_bytes()).cmp(&(b.1, b.0.as_bytes()));
            prop_assert_eq!(by_entry, by_pair);
            // Every timer at or before a.1 sorts below after_ts(a.1), every later one above.
            prop_assert_eq!(eb.as_str() < after_ts(a.1).as_str(), b.1 <= a.1);
        }
    }

    #[test]
    fn other_keys_are_not_timers() {
        for k in [
            "*/x",
            "3:abc/count",
            "!t/",
            "!t/zz",
            "!t/0000000000000000",
            "!t/000000000000000g/k",
        ] {
            assert_eq!(parse(k), None, "{k}");
        }
        assert_eq!(parse("!t/8000000000000005/a/b"), Some(("a/b", 5)));
    }
}
