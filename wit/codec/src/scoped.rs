//! Scoped keys: how a state entry's scope and key become the one string under which the host
//! stores it (and under which checkpoints record it), and the key-group hash.
//!
//! * keyed scope `s`, key `k`: `<byte length of s in decimal>:<s>/<k>`, e.g. `8:sensor-1/count`
//! * operator-wide scope, key `k`: `*/<k>`, e.g. `*/max_ts`
//!
//! The length prefix makes the form unambiguous whatever the scope contains; every key of one
//! scope shares the prefix `<len>:<s>/`, so a prefix listing within a scope is a prefix
//! listing of scoped keys, in the same order.

use crate::Malformed;
use crate::ascii;

/// The prefix of operator-wide scoped keys.
pub const OPERATOR: &str = "*/";

/// Append the scoped key of (`scope`, `key`) to `out`.
pub fn compose_into(out: &mut String, scope: Option<&str>, key: &str) {
    prefix_into(out, scope);
    out.push_str(key);
}

/// The scoped key of (`scope`, `key`).
pub fn compose(scope: Option<&str>, key: &str) -> String {
    let mut s = String::with_capacity(key.len() + scope.map_or(2, |s| s.len() + 8));
    compose_into(&mut s, scope, key);
    s
}

/// Append the prefix every key of `scope` starts with.
pub fn prefix_into(out: &mut String, scope: Option<&str>) {
    match scope {
        None => out.push_str(OPERATOR),
        Some(s) => {
            // The length in decimal and the `:`, without the formatting machinery (this runs
            // per entry).
            let mut digits = [0u8; 21];
            digits[20] = b':';
            let mut n = s.len();
            let mut i = 20;
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            out.reserve(21 - i + s.len() + 1);
            out.push_str(ascii(&digits[i..]));
            out.push_str(s);
            out.push('/');
        }
    }
}

/// The byte length of the scoped key of (`scope`, `key`), without building it.
pub fn scoped_len(scope: Option<&[u8]>, key: &[u8]) -> usize {
    match scope {
        None => OPERATOR.len() + key.len(),
        Some(s) => decimal_digits(s.len()) + 1 + s.len() + 1 + key.len(),
    }
}

fn decimal_digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Split a scoped key into its scope (`None`: operator-wide) and key.
pub fn split(scoped: &str) -> Result<(Option<&str>, &str), Malformed> {
    let bad = |problem| Malformed {
        what: format!("scoped key {:?}", truncate(scoped)),
        at: 0,
        problem,
    };
    if let Some(key) = scoped.strip_prefix(OPERATOR) {
        return Ok((None, key));
    }
    let (len, rest) = scoped
        .split_once(':')
        .ok_or_else(|| bad("has neither `*/` nor a `<length>:` prefix"))?;
    if len.is_empty()
        || len.len() > 10
        || !len.bytes().all(|b| b.is_ascii_digit())
        || (len.len() > 1 && len.starts_with('0'))
    {
        return Err(bad("has a scope length that is not a decimal number"));
    }
    let n: usize = len
        .parse()
        .map_err(|_| bad("has a scope length that is not a decimal number"))?;
    let scope = rest
        .get(..n)
        .ok_or_else(|| bad("is shorter than its scope length"))?;
    let key = rest[n..]
        .strip_prefix('/')
        .ok_or_else(|| bad("lacks the `/` after its scope"))?;
    Ok((Some(scope), key))
}

/// Check that `scoped` is a well-formed scoped key.
pub fn check(scoped: &str) -> Result<(), Malformed> {
    split(scoped).map(|_| ())
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The default number of key groups of a job (as Flink's default maximum parallelism).
pub const DEFAULT_KEY_GROUPS: u32 = 128;

/// The 64-bit hash of a scope: FNV-1a 64 of its UTF-8 bytes, then MurmurHash3's `fmix64`
/// finaliser (so that the low bits are well mixed). Stable forever: checkpoints depend on it.
pub fn scope_hash(scope: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in scope.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The key group of a keyed scope among `groups` (`groups` > 0): `scope_hash(scope) % groups`.
pub fn key_group(scope: &str, groups: u32) -> u32 {
    (scope_hash(scope) % u64::from(groups.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        assert_eq!(compose(Some("sensor-1"), "count"), "8:sensor-1/count");
        assert_eq!(compose(None, "max_ts"), "*/max_ts");
        assert_eq!(compose(Some(""), ""), "0:/");
        assert_eq!(split("3:a/b/c").unwrap(), (Some("a/b"), "c"));
        assert_eq!(split("*/x").unwrap(), (None, "x"));
        for bad in [
            "",
            "x",
            "3:ab",
            "3:abc",
            "03:abc/",
            ":abc/",
            "-1:a/",
            "99999999999:a/",
        ] {
            assert!(split(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_groups_are_stable() {
        // Golden values (also in `golden`): changing them breaks every checkpoint's split.
        for (scope, groups, want) in crate::golden::KEY_GROUPS {
            assert_eq!(key_group(scope, *groups), *want, "key_group({scope:?}, {groups})");
        }
        let spread: std::collections::BTreeSet<u32> =
            (0..2000).map(|i| key_group(&format!("k{i}"), 128)).collect();
        assert_eq!(
            spread.len(),
            128,
            "2000 keys should reach every one of 128 groups"
        );
    }

    proptest! {
        #[test]
        fn compose_split_round_trip(scope in proptest::option::of(".{0,10}"), key in ".{0,10}") {
            let s = compose(scope.as_deref(), &key);
            prop_assert_eq!(split(&s).unwrap(), (scope.as_deref(), key.as_str()));
            let mut p = String::new();
            prefix_into(&mut p, scope.as_deref());
            prop_assert!(s.starts_with(&p));
            prop_assert_eq!(scoped_len(scope.as_deref().map(str::as_bytes), key.as_bytes()), s.len());
        }
    }
}
