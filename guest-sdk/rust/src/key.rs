//! Building state keys from parts without ambiguity and with a useful order.
//!
//! Event keys may contain `/`; [`join`] escapes each part (`%` → `%25`, `/` → `%2F`) so that
//! `join(&["a/b", "c"])` and `join(&["a", "b/c"])` differ. [`ordered_i64`] writes a timestamp
//! so that string order is numeric order (negative values included).

/// Escape one part: `%` → `%25`, `/` → `%2F`.
pub fn escape(part: &str) -> String {
    if !part.contains(['%', '/']) {
        return part.to_string();
    }
    part.replace('%', "%25").replace('/', "%2F")
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
    format!("{:016x}", (v as u64) ^ (1 << 63))
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
    }
}
