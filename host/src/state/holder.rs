use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A write the state refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// A quota would be exceeded.
    #[error("state quota {limit} = {value} would be exceeded ({detail})")]
    QuotaExceeded {
        /// Which limit (`max-keys`, `max-state-bytes`, `max-value-bytes`).
        limit: &'static str,
        /// Its configured value.
        value: u64,
        /// What the write attempted.
        detail: String,
    },
}

/// Quotas applied to every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuotas {
    /// Maximum number of keys.
    pub max_keys: u64,
    /// Maximum bytes of keys plus values.
    pub max_state_bytes: u64,
    /// Maximum bytes of one value.
    pub max_value_bytes: u64,
}

impl Default for StateQuotas {
    fn default() -> Self {
        Self {
            max_keys: u64::MAX,
            max_state_bytes: u64::MAX,
            max_value_bytes: u64::MAX,
        }
    }
}

/// A stored value: shared, so the map, the dirty set, the undo log and a checkpoint in flight
/// hold the same bytes without copying them.
pub type Value = Arc<Vec<u8>>;

/// The changes since the previous checkpoint: keys set (with their current value) and keys
/// removed. Applying it to the state of the previous checkpoint gives the current state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    /// Keys written since the previous checkpoint, with their value now (in no particular
    /// order; the checkpoint writer sorts them off the processing thread).
    #[serde(with = "entries_serde")]
    pub sets: Vec<(String, Value)>,
    /// Keys removed since the previous checkpoint.
    pub deletes: Vec<String>,
}

impl StateDelta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.deletes.is_empty()
    }
}

/// Values as byte strings (one copy) rather than sequences of numbers.
mod entries_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    use super::Value;

    pub fn serialize<S: Serializer>(sets: &[(String, Value)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(sets.iter().map(|(k, v)| (k, Bytes::new(v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Value)>, D::Error> {
        let v = Vec::<(String, ByteBuf)>::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(k, b)| (k, std::sync::Arc::new(b.into_vec())))
            .collect())
    }
}

#[derive(Debug)]
struct Undo {
    value: Option<Value>,
    dirty: bool,
    deleted: bool,
}

/// One operator instance's state: the map, what changed since the last checkpoint, and the
/// open batch's undo log.
///
/// `set` marks a key dirty, `remove` marks it deleted; [`StateHolder::take_delta`] hands both
/// to the checkpoint and clears them. Values are shared (`Arc`) between the map, the dirty set
/// and the undo log, so taking a delta never searches the map and recording an undo never
/// copies a value. Between [`StateHolder::begin`] and
/// [`StateHolder::commit`]/[`StateHolder::rollback`] the first write of each key records its
/// previous value and flags, so a failed batch leaves no trace, not even in the dirty sets.
#[derive(Debug, Default)]
pub struct StateHolder {
    map: BTreeMap<String, Value>,
    bytes: u64,
    /// Keys set since the last checkpoint, with their current value.
    dirty: HashMap<String, Value>,
    deleted: HashSet<String>,
    undo: Option<HashMap<String, Undo>>,
    quotas: StateQuotas,
}

fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl StateHolder {
    /// An empty state with no quotas.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty state with the given quotas.
    pub fn with_quotas(quotas: StateQuotas) -> Self {
        Self {
            quotas,
            ..Self::default()
        }
    }

    /// Change the quotas (existing entries are kept even if they exceed them).
    pub fn set_quotas(&mut self, quotas: StateQuotas) {
        self.quotas = quotas;
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.map.get(key).map(|v| v.as_slice())
    }

    /// Whether `key` holds a value.
    pub fn exists(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the state is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of keys plus values.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of keys changed since the last checkpoint.
    pub fn dirty_len(&self) -> usize {
        self.dirty.len() + self.deleted.len()
    }

    fn record_undo(&mut self, key: &str) {
        if let Some(undo) = &mut self.undo
            && !undo.contains_key(key)
        {
            undo.insert(
                key.to_owned(),
                Undo {
                    value: self.map.get(key).cloned(),
                    dirty: self.dirty.contains_key(key),
                    deleted: self.deleted.contains(key),
                },
            );
        }
    }

    /// Store `value` under `key`, subject to the quotas.
    pub fn set(&mut self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        let q = self.quotas;
        if value.len() as u64 > q.max_value_bytes {
            return Err(StateError::QuotaExceeded {
                limit: "max-value-bytes",
                value: q.max_value_bytes,
                detail: format!("value of {} bytes for key {key:?}", value.len()),
            });
        }
        let old = self.map.get(key);
        let old_bytes = old.map(|v| entry_bytes(key, v)).unwrap_or(0);
        let new_total = self.bytes - old_bytes + entry_bytes(key, &value);
        if old.is_none() && self.map.len() as u64 >= q.max_keys {
            return Err(StateError::QuotaExceeded {
                limit: "max-keys",
                value: q.max_keys,
                detail: format!("adding key {key:?}"),
            });
        }
        if new_total > q.max_state_bytes && new_total > self.bytes {
            return Err(StateError::QuotaExceeded {
                limit: "max-state-bytes",
                value: q.max_state_bytes,
                detail: format!("state would hold {new_total} bytes"),
            });
        }
        self.record_undo(key);
        self.bytes = new_total;
        let value: Value = Arc::new(value);
        if let Some(slot) = self.map.get_mut(key) {
            *slot = value.clone();
        } else {
            self.map.insert(key.to_owned(), value.clone());
        }
        if let Some(slot) = self.dirty.get_mut(key) {
            *slot = value;
        } else {
            self.dirty.insert(key.to_owned(), value);
        }
        if !self.deleted.is_empty() {
            self.deleted.remove(key);
        }
        Ok(())
    }

    /// Delete `key`; returns whether it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        if !self.map.contains_key(key) {
            return false;
        }
        self.record_undo(key);
        if let Some(old) = self.map.remove(key) {
            self.bytes -= entry_bytes(key, &old);
        }
        self.dirty.remove(key);
        self.deleted.insert(key.to_owned());
        true
    }

    /// Up to `limit` keys starting with `prefix`, in byte order, strictly after `start_after`.
    pub fn list_keys(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Vec<String> {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.map
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Open a batch transaction. Nested calls keep the outer one.
    pub fn begin(&mut self) {
        if self.undo.is_none() {
            self.undo = Some(HashMap::new());
        }
    }

    /// Keep the open batch's writes.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// Discard the open batch's writes: state, size and dirty/deleted sets are exactly what
    /// they were at [`StateHolder::begin`].
    pub fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        for (key, u) in undo {
            if let Some(cur) = self.map.remove(&key) {
                self.bytes -= entry_bytes(&key, &cur);
            }
            match u.value {
                Some(v) => {
                    self.bytes += entry_bytes(&key, &v);
                    if u.dirty {
                        self.dirty.insert(key.clone(), v.clone());
                    } else {
                        self.dirty.remove(&key);
                    }
                    self.map.insert(key.clone(), v);
                }
                None => {
                    self.dirty.remove(&key);
                }
            }
            if u.deleted {
                self.deleted.insert(key);
            } else {
                self.deleted.remove(&key);
            }
        }
    }

    /// Whether a batch transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.undo.is_some()
    }

    /// The changes since the last checkpoint, clearing the dirty and deleted sets. Call it
    /// between batches (not inside a transaction).
    pub fn take_delta(&mut self) -> StateDelta {
        let sets: Vec<(String, Value)> = self.dirty.drain().collect();
        let deletes: Vec<String> = self.deleted.drain().collect();
        StateDelta { sets, deletes }
    }

    /// Every entry, as a delta from empty state; does not touch the dirty sets.
    pub fn snapshot(&self) -> StateDelta {
        StateDelta {
            sets: self.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            deletes: Vec::new(),
        }
    }

    /// Forget what changed since the last checkpoint (after a full checkpoint was taken).
    pub fn clear_changes(&mut self) {
        self.dirty.clear();
        self.deleted.clear();
    }

    /// Apply a checkpoint delta (restore path): no quotas, no dirty tracking.
    pub fn apply(&mut self, delta: StateDelta) {
        if self.map.is_empty() && delta.deletes.is_empty() {
            // Restoring a full checkpoint: its entries come sorted, so the map is bulk-built.
            self.bytes = delta.sets.iter().map(|(k, v)| entry_bytes(k, v)).sum();
            self.map = delta.sets.into_iter().collect();
            return;
        }
        for key in delta.deletes {
            if let Some(old) = self.map.remove(&key) {
                self.bytes -= entry_bytes(&key, &old);
            }
        }
        for (key, value) in delta.sets {
            let key_len = key.len() as u64;
            self.bytes += key_len + value.len() as u64;
            if let Some(old) = self.map.insert(key, value) {
                self.bytes -= key_len + old.len() as u64;
            }
        }
    }

    /// Replace everything with the given entries (restore path).
    pub fn replace(&mut self, entries: StateDelta) {
        let quotas = self.quotas;
        *self = Self::with_quotas(quotas);
        self.apply(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_values_and_dirty_sets() {
        let mut s = StateHolder::new();
        s.set("a", b"1".to_vec()).unwrap();
        s.set("b", b"2".to_vec()).unwrap();
        let _ = s.take_delta();
        s.remove("b");
        s.begin();
        s.set("a", b"10".to_vec()).unwrap();
        s.set("c", b"3".to_vec()).unwrap();
        s.set("b", b"20".to_vec()).unwrap();
        s.remove("a");
        s.rollback();
        assert_eq!(s.get("a"), Some(&b"1"[..]));
        assert_eq!(s.get("b"), None);
        assert_eq!(s.get("c"), None);
        assert_eq!(s.bytes(), 2);
        let d = s.take_delta();
        assert_eq!(d.sets, vec![]);
        assert_eq!(d.deletes, vec!["b".to_string()]);
    }

    #[test]
    fn quotas_refuse_without_changing_state() {
        let mut s = StateHolder::with_quotas(StateQuotas {
            max_keys: 2,
            max_state_bytes: 100,
            max_value_bytes: 10,
        });
        s.set("a", vec![0; 10]).unwrap();
        let e = s.set("b", vec![0; 11]).unwrap_err();
        assert!(e.to_string().contains("max-value-bytes = 10"), "{e}");
        s.set("b", vec![0; 1]).unwrap();
        let e = s.set("c", vec![]).unwrap_err();
        assert!(e.to_string().contains("max-keys = 2"), "{e}");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn list_keys_pages_through_a_prefix() {
        let mut s = StateHolder::new();
        for k in ["w/1", "w/2", "w/3", "x/1", "v/9"] {
            s.set(k, vec![]).unwrap();
        }
        assert_eq!(s.list_keys("w/", None, 2), vec!["w/1", "w/2"]);
        assert_eq!(s.list_keys("w/", Some("w/2"), 10), vec!["w/3"]);
        assert_eq!(s.list_keys("", Some("w/3"), 10), vec!["x/1"]);
    }
}
