//! How a `StateDelta` was written into payloads of versions 1 and 2 (bincode through serde:
//! keys as strings, values as byte strings), read straight into the holder's shared forms.
//! Version 3 writes sorted blocks instead (`block.rs`).

use serde::Deserialize;

use crate::state::{Key, Value};

#[derive(Deserialize)]
pub(super) struct DeltaIn {
    #[serde(deserialize_with = "entries::deserialize")]
    pub sets: Vec<(Key, Value)>,
    #[serde(deserialize_with = "keys::deserialize")]
    pub deletes: Vec<Key>,
}

/// Keys and values decoded straight into their shared form: one allocation each, borrowing
/// from the (decompressed) checkpoint bytes when the decoder allows it.
struct KeyDe(Key);
struct ValueDe(Value);

impl<'de> Deserialize<'de> for KeyDe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KeyDe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a state key (string)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<KeyDe, E> {
                Ok(KeyDe(Key::from(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for ValueDe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ValueDe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a state value (bytes)")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<ValueDe, E> {
                Ok(ValueDe(Value::from(b)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ValueDe, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(ValueDe(Value::from(v)))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Values as byte strings (one copy) rather than sequences of numbers.
mod entries {
    use serde::Deserializer;

    use super::{Key, KeyDe, Value, ValueDe};

    /// Straight into the final vector (no intermediate one to convert).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Key, Value)>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<(Key, Value)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of (key, value) entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 24));
                while let Some((k, v)) = seq.next_element::<(KeyDe, ValueDe)>()? {
                    out.push((k.0, v.0));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

mod keys {
    use serde::{Deserialize, Deserializer};

    use super::{Key, KeyDe};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Key>, D::Error> {
        let v = Vec::<KeyDe>::deserialize(d)?;
        Ok(v.into_iter().map(|k| k.0).collect())
    }
}
