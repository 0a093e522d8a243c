//! [`StateHolder`]: the key-value map under the state core ([`super::OperatorState`]), which
//! owns what changed since the last checkpoint and how to undo a failed batch. It owns: the
//! entries (a hash table of slots; an ordered index built on the first listing), their usage
//! against the quotas, the change list that the next delta is taken from (`changes.rs`; each
//! changed key once, with its current value), the undo log of the open transaction, and the
//! restore of checkpointed entries (`checkpoint.rs`). Keys are stored as given: what a key
//! means (scope, TTL records, timers, key groups) is the state core's business, not this map's.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;

use self::changes::{Change, Changes};
use super::usage::Usage;

/// Key `k` became live (`live`) or went away: keep the ordered index (once built) and the
/// host entries' index up to date.
fn index(order: &mut OnceCell<BTreeSet<Key>>, host_keys: &mut BTreeSet<Key>, k: &Key, live: bool) {
    if let Some(ix) = order.get_mut() {
        if live {
            ix.insert(k.clone());
        } else {
            ix.remove(k);
        }
    }
    if k.starts_with('!') {
        if live {
            host_keys.insert(k.clone());
        } else {
            host_keys.remove(k);
        }
    }
}
pub use super::usage::{StateError, StateQuotas};

pub use super::key::Key;

use super::value::Value;

/// The changes since the previous checkpoint: keys set (with their current value) and keys
/// removed. Applying it to the state of the previous checkpoint gives the current state.
/// How it is serialized into checkpoints is the `checkpoint` module's business.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDelta {
    /// Keys written since the previous checkpoint, with their value now (in no particular
    /// order; the checkpoint writer sorts them off the processing thread).
    pub sets: Vec<(Key, Value)>,
    /// Keys removed since the previous checkpoint.
    pub deletes: Vec<Key>,
}

impl StateDelta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.deletes.is_empty()
    }
}

/// One live key's entry. A removed key leaves the map at once: when the last checkpoint may
/// hold it, its removal stays in the change list (an entry without a value) for the next
/// delta; a key the last checkpoint does not hold leaves no trace (a window or timer that came
/// and went between two checkpoints), and none at all when changes are not tracked. A key
/// removed and written again since the checkpoint has a new slot and an entry of its own:
/// the delta deletes and sets it, which applied in that order (deletes first) leaves the value.
#[derive(Debug)]
struct Slot {
    value: Value,
    /// The epoch of the last write: the batch's inside a transaction, else the holder's
    /// current one. A slot written at or after `gen_start` changed since the last checkpoint,
    /// and the change list's entry at `pos & POS` holds its key and current value; `pos &
    /// ABSENT` then says that its removal needs no entry (the last checkpoint does not hold
    /// the key, or an earlier entry removes it).
    epoch: u32,
    pos: u32,
}

/// `Slot::pos`: the key needs no removal entry (set at its first change since the checkpoint).
const ABSENT: u32 = 1 << 31;
/// `Slot::pos`: the position in the change list.
const POS: u32 = ABSENT - 1;

/// What a key was before the open batch wrote it (first, or took it out of the change list):
/// `prev` is `None` when it had no entry at all, else its value, epoch and position in the
/// change list; `change` what the write did to the list.
#[derive(Debug)]
struct Undo {
    key: Key,
    prev: Option<(Value, u32, u32)>,
    change: Change,
}

#[derive(Debug, Clone, Copy)]
struct Txn {
    epoch: u32,
}

/// Where a write to an existing slot is recorded: the undo log (its first write in the open
/// batch) and the change list (its first write since the checkpoint; later ones update it).
struct Log<'a> {
    changed: &'a mut Changes,
    undo: &'a mut Vec<Undo>,
    txn: bool,
    /// `None`: changes are not tracked.
    gen_start: Option<u32>,
}

impl Log<'_> {
    /// Record that `k`'s slot now holds `new`, written at `epoch`, and store it.
    fn write(self, k: &Key, slot: &mut Slot, epoch: u32, new: Value) {
        let prev = (self.txn && slot.epoch != epoch).then(|| (slot.value.clone(), slot.epoch, slot.pos));
        let change = match self.gen_start {
            None => Change::InPlace,
            Some(gen_start) if slot.epoch >= gen_start => {
                // SAFETY: a changed slot's entry in the change list holds a clone of its value
                // (every write and rollback sets both), and the slot still holds its own.
                unsafe { self.changed.set(slot.pos & POS, &slot.value, Some(new.clone())) };
                Change::InPlace
            }
            Some(_) => {
                // Its first change since the checkpoint (which holds it).
                let (at, change) = self.changed.add(k.clone(), Some(new.clone()));
                slot.pos = at;
                change
            }
        };
        if prev.is_some() {
            self.undo.push(Undo {
                key: k.clone(),
                prev,
                change,
            });
        }
        slot.epoch = epoch;
        slot.value = new;
    }
}

/// One operator instance's state: the entries, what changed since the last checkpoint, and the
/// open batch's undo log.
///
/// Point reads and writes are one hash lookup; an ordered index of the keys (for
/// [`StateHolder::list_keys`]) is built on the first range query and kept up to date after.
/// `set` and `remove` record a key in the change list with its current value (a key once per
/// checkpoint, or twice when removed and written again; its slot knows where), so
/// [`StateHolder::take_delta`] hands the list to the checkpoint as it is: the pause of a cut
/// does not look a single key up, and a removed key leaves the map at once (no tombstones to
/// purge later). Keys and values are shared (`Arc`) between the map,
/// the index, the change list, the undo log and a checkpoint in flight, so none of them copies
/// one. Between [`StateHolder::begin`] and [`StateHolder::commit`]/[`StateHolder::rollback`]
/// the first write of each key records its previous entry, so a failed batch leaves no trace,
/// not even in what counts as changed.
#[derive(Debug)]
pub struct StateHolder {
    slots: HashMap<Key, Slot>,
    /// Ordered live keys; built on demand.
    order: OnceCell<BTreeSet<Key>>,
    /// Ordered live host entries (keys starting with `!`: timers, TTL records), always kept:
    /// listing timers must not build the index of every key.
    host_keys: BTreeSet<Key>,
    /// Entries, counted.
    usage: Usage,
    /// Keys changed since the last checkpoint, each once, with their value now (`None`:
    /// removed). A write to a changed key overwrites its value there without reading it
    /// (`overwrite_clone`), so the random place in this list costs no cache miss.
    changed: Changes,
    /// Whether changes are tracked (false: no checkpoint will be taken, see
    /// [`StateHolder::untrack`]).
    track: bool,
    undo: Vec<Undo>,
    txn: Option<Txn>,
    /// The newest epoch handed out (batches and checkpoint generations share the counter).
    last_epoch: u32,
    /// The first epoch since the last checkpoint: slots written at or after it are changed.
    gen_start: u32,
    quotas: StateQuotas,
}

impl Default for StateHolder {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
            order: OnceCell::new(),
            host_keys: BTreeSet::new(),
            usage: Usage::default(),
            changed: Changes::default(),
            track: true,
            undo: Vec::new(),
            txn: None,
            // Epoch 0 is "clean" (restored entries); the first generation starts at 1.
            last_epoch: 1,
            gen_start: 1,
            quotas: StateQuotas::default(),
        }
    }
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

    /// Stop tracking changes: for a state that will never be checkpointed (a job without a
    /// checkpoint store). A removed key then leaves the map at once and a write records
    /// nothing but its undo (batches still roll back); [`StateHolder::take_delta`] must not be
    /// called after.
    pub fn untrack(&mut self) {
        self.changed = Changes::default();
        self.track = false;
    }

    /// The change-list generation, or `None` when changes are not tracked.
    fn generation(&self) -> Option<u32> {
        self.track.then_some(self.gen_start)
    }

    /// The quotas.
    pub fn quotas(&self) -> StateQuotas {
        self.quotas
    }

    /// Change the quotas (existing entries are kept even if they exceed them).
    pub fn set_quotas(&mut self, quotas: StateQuotas) {
        self.quotas = quotas;
    }

    /// The value under `key`, shared.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.slots.get(key).map(|s| &s.value)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.get_value(key).map(|v| &**v)
    }

    /// Whether `key` holds a value.
    pub fn exists(&self, key: &str) -> bool {
        self.get_value(key).is_some()
    }

    /// Number of keys (timers not included).
    pub fn len(&self) -> usize {
        self.usage.keys
    }

    /// Whether the state holds no key and no timer.
    pub fn is_empty(&self) -> bool {
        self.usage.keys == 0 && self.usage.timers == 0
    }

    /// Bytes of keys plus values (timers not included).
    pub fn bytes(&self) -> u64 {
        self.usage.bytes
    }

    /// Number of timers (entries under `cairn_codec::timers::PREFIX`).
    pub fn timers(&self) -> usize {
        self.usage.timers
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut all: Vec<(&str, &[u8])> = self.slots.iter().map(|(k, s)| (&**k, &*s.value)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// Number of entries of the next delta: keys changed since the last checkpoint (one
    /// removed and written again since counts twice: deleted, then set).
    pub fn dirty_len(&self) -> usize {
        self.changed.len()
    }

    /// Store `value` under `key`, subject to the quotas.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> Result<(), StateError> {
        self.put(key, value.into(), true)
    }

    /// Store `value` under `key` unless a value is there already (which stays), subject to
    /// the quotas; one lookup either way (a timer registered again).
    pub fn set_if_absent(&mut self, key: &str, value: impl Into<Value>) -> Result<(), StateError> {
        self.put(key, value.into(), false)
    }

    /// [`StateHolder::set`] (`replace`) or [`StateHolder::set_if_absent`], hashing `key` once.
    fn put(&mut self, key: &str, value: Value, replace: bool) -> Result<(), StateError> {
        let epoch = self.txn.map_or(self.last_epoch, |t| t.epoch);
        let generation = self.generation();
        match self.slots.entry_ref(key) {
            EntryRef::Occupied(mut e) => {
                if !replace {
                    return Ok(());
                }
                let old = e.get().value.len();
                self.usage.check(&self.quotas, key, value.len(), Some(old))?;
                // (An entry lends its key and value one at a time: the key is copied, or its
                // `Arc` counted, which costs less than hashing it again.)
                let k = e.key().clone();
                let slot = e.get_mut();
                self.usage.sub(key, old);
                self.usage.add(key, value.len());
                let log = Log {
                    changed: &mut self.changed,
                    undo: &mut self.undo,
                    txn: self.txn.is_some(),
                    gen_start: generation,
                };
                log.write(&k, slot, epoch, value);
            }
            EntryRef::Vacant(e) => {
                self.usage.check(&self.quotas, key, value.len(), None)?;
                let k = Key::from(key);
                let (pos, change) = if generation.is_some() {
                    let (at, change) = self.changed.add(k.clone(), Some(value.clone()));
                    (at | ABSENT, change)
                } else {
                    (0, Change::InPlace)
                };
                if self.txn.is_some() {
                    self.undo.push(Undo {
                        key: k.clone(),
                        prev: None,
                        change,
                    });
                }
                index(&mut self.order, &mut self.host_keys, &k, true);
                self.usage.add(key, value.len());
                e.insert_with_key(k, Slot { value, epoch, pos });
            }
        }
        Ok(())
    }

    /// Delete `key`; returns whether it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        let generation = self.generation();
        let EntryRef::Occupied(e) = self.slots.entry_ref(key) else {
            return false;
        };
        let epoch = self.txn.map_or(self.last_epoch, |t| t.epoch);
        let (k, slot) = e.remove_entry();
        self.usage.sub(&k, slot.value.len());
        index(&mut self.order, &mut self.host_keys, &k, false);
        let change = match generation {
            None => Change::InPlace,
            Some(g) if slot.epoch >= g && slot.pos & ABSENT != 0 => {
                // Its entry goes (and its place is the next new key's).
                self.changed.take_out(slot.pos & POS);
                Change::TakenOut
            }
            Some(g) if slot.epoch >= g => {
                // SAFETY: a changed slot's entry holds a clone of its value; the slot, just
                // taken out, holds its own.
                unsafe { self.changed.set(slot.pos & POS, &slot.value, None) };
                Change::InPlace
            }
            // Its first change since the checkpoint (which holds it): the delta deletes it.
            Some(_) => self.changed.add(k.clone(), None).1,
        };
        // A place freed is undone even when the batch wrote the key before: a rollback then
        // frees and takes places exactly in reverse.
        if self.txn.is_some() && (slot.epoch != epoch || change == Change::TakenOut) {
            self.undo.push(Undo {
                key: k,
                prev: Some((slot.value, slot.epoch, slot.pos)),
                change,
            });
        }
        true
    }

    /// Whether the ordered key index exists (the first [`StateHolder::list_keys`] builds it:
    /// ~0.3 s at 1M keys, once).
    pub fn has_ordered_index(&self) -> bool {
        self.order.get().is_some()
    }

    fn index(&self) -> &BTreeSet<Key> {
        self.order.get_or_init(|| self.slots.keys().cloned().collect())
    }

    /// Up to `limit` keys starting with `prefix`, in byte order, strictly after `start_after`.
    /// A prefix starting with `!` lists host entries only, from their own small index.
    pub fn list_keys(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Vec<Key> {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let ix = if prefix.starts_with('!') {
            &self.host_keys
        } else {
            self.index()
        };
        ix.range::<str, _>((lower, Bound::Unbounded))
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Keys starting with `prefix` that sort before `below`, in byte order, at most `limit`
    /// (due timers: only those, not the first `limit` timers, are looked at and cloned).
    pub fn list_keys_below(&self, prefix: &str, below: &str, limit: usize) -> Vec<Key> {
        if below <= prefix {
            return Vec::new();
        }
        let ix = if prefix.starts_with('!') {
            &self.host_keys
        } else {
            self.index()
        };
        ix.range::<str, _>((Bound::Included(prefix), Bound::Excluded(below)))
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The next epoch. Once per 4 billion, every slot is renumbered first (changed ones to 1,
    /// the others to 0) so that no slot keeps a number the next epochs reuse.
    fn next_epoch(&mut self) -> u32 {
        if self.last_epoch == u32::MAX {
            let gen_start = self.gen_start;
            for slot in self.slots.values_mut() {
                slot.epoch = u32::from(slot.epoch >= gen_start);
            }
            self.gen_start = 1;
            self.last_epoch = 1;
        }
        self.last_epoch += 1;
        self.last_epoch
    }

    /// Open a batch transaction. Nested calls keep the outer one.
    pub fn begin(&mut self) {
        if self.txn.is_none() {
            let epoch = self.next_epoch();
            self.txn = Some(Txn { epoch });
        }
    }

    /// Keep the open batch's writes.
    pub fn commit(&mut self) {
        self.txn = None;
        self.undo.clear();
    }

    /// Discard the open batch's writes: state, size and changes are exactly what they were at
    /// [`StateHolder::begin`].
    pub fn rollback(&mut self) {
        if self.txn.take().is_none() {
            return;
        }
        let generation = self.generation();
        for u in self.undo.drain(..).rev() {
            // The change list first, as the write left it (the log is undone in reverse).
            match (u.change, &u.prev) {
                (Change::Pushed | Change::Reused(_), _) => self.changed.unadd(&u.key, u.change),
                (Change::TakenOut, Some((value, _, pos))) => {
                    self.changed
                        .put_back(pos & POS, u.key.clone(), Some(value.clone()))
                }
                (Change::InPlace, Some((value, epoch, pos))) if generation.is_some_and(|g| *epoch >= g) => {
                    // Changed before the batch: its change entry is back to that value.
                    self.changed.restore_value(pos & POS, Some(value.clone()))
                }
                _ => {}
            }
            let (cur, prev_value) = match u.prev {
                None => (self.slots.remove(&*u.key).map(|s| s.value), None),
                Some((value, epoch, pos)) => {
                    let restored = Slot {
                        value: value.clone(),
                        epoch,
                        pos,
                    };
                    // A key the batch removed has no slot.
                    let cur = match self.slots.get_mut(&*u.key) {
                        Some(slot) => Some(std::mem::replace(slot, restored).value),
                        None => {
                            self.slots.insert(u.key.clone(), restored);
                            None
                        }
                    };
                    (cur, Some(value))
                }
            };
            if let Some(v) = &cur {
                self.usage.sub(&u.key, v.len());
            }
            if let Some(v) = &prev_value {
                self.usage.add(&u.key, v.len());
            }
            match (cur.is_some(), prev_value.is_some()) {
                (true, false) => index(&mut self.order, &mut self.host_keys, &u.key, false),
                (false, true) => index(&mut self.order, &mut self.host_keys, &u.key, true),
                _ => {}
            }
        }
    }

    /// Whether a batch transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }
}

mod changes;
mod checkpoint;
#[cfg(test)]
mod tests;
