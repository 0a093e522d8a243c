//! Stored keys: short ones in place, longer ones shared.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// The longest key kept in place.
pub const INLINE_KEY_BYTES: usize = 38;

/// A stored state key (a scoped key, `cairn_codec::scoped`).
///
/// Keys of up to [`INLINE_KEY_BYTES`] bytes (a stream key in its scope, `8:user-417/count`,
/// a window's `10:user-12345/win/<16 hex digits>` or a timer's `!t/<16 hex digits>/user-12345`)
/// live in place: the hash table compares a probed key without following a pointer, and
/// storing one allocates nothing. Longer keys are shared (`Arc`) between the map, the ordered
/// index, the change list, the undo log and a checkpoint in flight, so none of them copies it.
/// Hashes, compares and orders as the `str` it holds.
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_KEY_BYTES] },
    Shared(Arc<str>),
}

impl Key {
    /// A key holding a copy of `s`.
    pub fn new(s: &str) -> Self {
        if s.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Key(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            Key(Repr::Shared(Arc::from(s)))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: the bytes were copied from a `str` of exactly `len` bytes (`Key::new`).
            Repr::Inline { len, bytes } => unsafe { std::str::from_utf8_unchecked(&bytes[..*len as usize]) },
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::new(s)
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        if s.len() <= INLINE_KEY_BYTES {
            Key::new(&s)
        } else {
            Key(Repr::Shared(Arc::from(s)))
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// The `str` order. Two keys in place compare as big-endian words of their zero-padded
    /// bytes, then by length (the ordered indexes compare timer keys that share their first
    /// 20 bytes: no call into `memcmp` per step).
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => {
                // Where one key is shorter, its padding (0) is at most the other's byte: a
                // key that is a prefix of the other is ordered by the lengths, as in `str`.
                let word = |s: &[u8; INLINE_KEY_BYTES], i: usize| {
                    let mut w = [0u8; 8];
                    let n = (INLINE_KEY_BYTES - i).min(8);
                    w[..n].copy_from_slice(&s[i..i + n]);
                    u64::from_be_bytes(w)
                };
                for i in (0..INLINE_KEY_BYTES).step_by(8) {
                    let (p, q) = (word(x, i), word(y, i));
                    if p != q {
                        return p.cmp(&q);
                    }
                }
                a.cmp(b)
            }
            _ => self.as_str().cmp(other.as_str()),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn short_keys_in_place_long_ones_shared_and_both_act_as_str() {
        for n in [0, 1, INLINE_KEY_BYTES, INLINE_KEY_BYTES + 1, 300] {
            let s: String = "é-ab".chars().cycle().take(n).collect();
            let k = Key::new(&s);
            assert_eq!(&*k, s.as_str());
            assert_eq!(matches!(k.0, Repr::Inline { .. }), s.len() <= INLINE_KEY_BYTES);
            let mut map = HashMap::new();
            map.insert(k.clone(), 1);
            assert_eq!(map.get(s.as_str()), Some(&1), "looked up by &str");
        }
        let set: BTreeSet<Key> = ["b", "a", "ab", &"z".repeat(40)]
            .into_iter()
            .map(Key::from)
            .collect();
        let order: Vec<&str> = set.iter().map(|k| k.as_str()).collect();
        assert_eq!(order, ["a", "ab", "b", &*"z".repeat(40)]);
        assert_eq!(std::mem::size_of::<Key>(), 40);
    }

    proptest::proptest! {
        #[test]
        fn orders_as_str(a in "[\\x00ab\u{ff}é]{0,42}", b in "[\\x00ab\u{ff}é]{0,42}", shared_prefix in "[!t/0-9a-f]{0,24}") {
            let (a, b) = (format!("{shared_prefix}{a}"), format!("{shared_prefix}{b}"));
            let (ka, kb) = (Key::new(&a), Key::new(&b));
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b), "{:?} {:?}", a, b);
            proptest::prop_assert_eq!(ka.cmp(&ka.clone()), Ordering::Equal);
            // A key and itself followed by NULs (equal words, apart by length only).
            let padded = format!("{a}\0\0");
            proptest::prop_assert_eq!(ka.cmp(&Key::new(&padded)), a.as_str().cmp(padded.as_str()));
            proptest::prop_assert_eq!(Key::new(&padded).cmp(&ka), padded.as_str().cmp(a.as_str()));
        }
    }
}
