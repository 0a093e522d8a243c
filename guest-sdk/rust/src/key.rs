//! Building state keys from parts without ambiguity and with a useful order.
//!
//! Event keys may contain `/`; [`join`] escapes each part (`%` → `%25`, `/` → `%2F`) so that
//! `join(&["a/b", "c"])` and `join(&["a", "b/c"])` differ. [`ordered_i64`] writes a timestamp
//! so that string order is numeric order (negative values included).

/// Escape one part: `%` → `%25`, `/` → `%2F`.
pub fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    escape_into(part, &mut out);
    out
}

/// Append [`escape`]`(part)` to `out` (a byte scan, no formatting machinery: a key is built
/// on every event).
pub fn escape_into(part: &str, out: &mut String) {
    if !part.bytes().any(|b| b == b'%' || b == b'/') {
        out.push_str(part);
        return;
    }
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
}

/// Undo [`escape`].
pub fn unescape(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    Some(text.replace("%2F", "/").replace("%25", "%"))
}

/// Join escaped parts with `/`.
pub fn join(parts: &[&str]) -> String {
    parts.iter().map(|p| escape(p)).collect::<Vec<_>>().join("/")
}

/// 16 hex digits whose string order is the numeric order of `v`.
pub fn ordered_i64(v: i64) -> String {
    let mut s = String::with_capacity(16);
    push_ordered_i64(&mut s, v);
    s
}

/// Append [`ordered_i64`]`(v)` to `out` (no formatting machinery: a window's or an id's key
/// is built on every event).
pub fn push_ordered_i64(out: &mut String, v: i64) {
    cairn_codec::timers::push_ordered_ts(out, v);
}

/// A short key built on the stack: a prefix of up to 8 bytes, then [`ordered_i64`]`(v)` — a
/// window's `win/…` or a time bucket's `ids/…` — without allocating on every event.
///
/// ```
/// use cairn_sdk::key::{TimeKey, ordered_i64};
/// assert_eq!(&*TimeKey::new("win/", -5), format!("win/{}", ordered_i64(-5)));
/// ```
#[derive(Clone, Copy)]
pub struct TimeKey {
    buf: [u8; 24],
    len: u8,
}

impl TimeKey {
    /// `prefix` (at most 8 bytes) followed by the 16 digits of `v`.
    pub fn new(prefix: &str, v: i64) -> Self {
        assert!(
            prefix.len() <= 8,
            "a TimeKey prefix is at most 8 bytes: {prefix:?}"
        );
        let mut buf = [0u8; 24];
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        buf[prefix.len()..prefix.len() + 16].copy_from_slice(&ordered_digits(v));
        Self {
            buf,
            len: (prefix.len() + 16) as u8,
        }
    }
}

impl std::ops::Deref for TimeKey {
    type Target = str;
    fn deref(&self) -> &str {
        // SAFETY: the bytes are a whole `str` (the prefix) followed by ASCII hex digits.
        unsafe { std::str::from_utf8_unchecked(&self.buf[..self.len as usize]) }
    }
}

impl std::fmt::Debug for TimeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// The 16 hex digits of [`ordered_i64`]`(v)`: the host's timer encoding
/// (`cairn_codec::timers::ordered_ts`).
fn ordered_digits(v: i64) -> [u8; 16] {
    cairn_codec::timers::ordered_ts(v)
}

/// Undo [`ordered_i64`].
pub fn parse_ordered_i64(text: &str) -> Option<i64> {
    u64::from_str_radix(text, 16).ok().map(|u| (u ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_do_not_collide_and_round_trip() {
        assert_ne!(join(&["a/b", "c"]), join(&["a", "b/c"]));
        for s in ["", "a", "a/b", "%2F", "x%y/z"] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
        }
    }

    #[test]
    fn ordered_i64_sorts_numerically() {
        let mut v = vec![5, -3, 0, i64::MIN, i64::MAX, -1, 1_700_000_000_000];
        let mut enc: Vec<String> = v.iter().map(|&x| ordered_i64(x)).collect();
        v.sort();
        enc.sort();
        let back: Vec<i64> = enc.iter().map(|e| parse_ordered_i64(e).unwrap()).collect();
        assert_eq!(back, v);
        // The keys stored in checkpoints: exactly what `{:016x}` of the flipped value wrote.
        for x in v
            .iter()
            .copied()
            .chain([0x0123_4567_89ab_cdef, -0x0123_4567_89ab_cdef])
        {
            assert_eq!(ordered_i64(x), format!("{:016x}", (x as u64) ^ (1 << 63)));
        }
    }
}
