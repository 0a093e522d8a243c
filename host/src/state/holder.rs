use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;

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

/// One key's entry. A removed key that the last checkpoint holds stays as a tombstone
/// (`value: None`) until the next checkpoint takes it, so the delta knows to delete it; the
/// holder purges taken tombstones a few at a time as batches begin. A key the last checkpoint
/// does not hold leaves no trace when removed (a window or timer that came and went between
/// two checkpoints), and none at all when changes are not tracked.
#[derive(Debug)]
struct Slot {
    value: Option<Value>,
    /// The epoch of the last write: the batch's inside a transaction, else the holder's
    /// current one. A slot written at or after `gen_start` changed since the last checkpoint,
    /// and `changed[pos & POS]` holds its key and current value; `pos & ABSENT` then says
    /// that the last checkpoint does not hold the key.
    epoch: u32,
    pos: u32,
}

/// `Slot::pos`: the key was absent from the last checkpoint (set at its first change since).
const ABSENT: u32 = 1 << 31;
/// `Slot::pos`: the position in the change list.
const POS: u32 = ABSENT - 1;

/// What a key was before the open batch first wrote it: `None` when it had no entry at all,
/// else its value, epoch and position in the change list.
#[derive(Debug)]
struct Undo {
    key: Key,
    prev: Option<(Option<Value>, u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct Txn {
    epoch: u32,
    changed_len: usize,
}

/// Where a write to an existing slot is recorded: the undo log (its first write in the open
/// batch) and the change list (its first write since the checkpoint; later ones update it).
struct Log<'a> {
    changed: &'a mut Vec<(Key, Option<Value>)>,
    undo: &'a mut Vec<Undo>,
    txn: bool,
    /// `None`: changes are not tracked.
    gen_start: Option<u32>,
}

impl Log<'_> {
    /// Record that `k`'s slot now holds `new`, written at `epoch`, and store it.
    fn write(self, k: &Key, slot: &mut Slot, epoch: u32, new: Option<Value>) {
        if self.txn && slot.epoch != epoch {
            self.undo.push(Undo {
                key: k.clone(),
                prev: Some((slot.value.clone(), slot.epoch, slot.pos)),
            });
        }
        match self.gen_start {
            None => {}
            Some(gen_start) if slot.epoch >= gen_start => {
                let copy = &mut self.changed[(slot.pos & POS) as usize].1;
                // SAFETY: a changed slot's entry in `changed` holds a clone of its value
                // (every write and rollback sets both), and the slot still holds its own.
                unsafe { super::value::overwrite_clone(copy, &slot.value, new.clone()) };
            }
            Some(_) => {
                // Its first change since the checkpoint: a (clean) tombstone's key is one the
                // checkpoint deleted.
                let absent = if slot.value.is_none() { ABSENT } else { 0 };
                slot.pos = change_pos(self.changed) | absent;
                self.changed.push((k.clone(), new.clone()));
            }
        }
        slot.epoch = epoch;
        slot.value = new;
    }
}

/// The position of the next entry of the change list.
fn change_pos(changed: &[(Key, Option<Value>)]) -> u32 {
    assert!(
        changed.len() < POS as usize,
        "over 2^31 keys changed between two checkpoints"
    );
    changed.len() as u32
}

/// One operator instance's state: the entries, what changed since the last checkpoint, and the
/// open batch's undo log.
///
/// Point reads and writes are one hash lookup; an ordered index of the keys (for
/// [`StateHolder::list_keys`]) is built on the first range query and kept up to date after.
/// `set` and `remove` record a key in the change list with its current value (a key once per
/// checkpoint; its slot knows where), so [`StateHolder::take_delta`] hands the list to the
/// checkpoint as it is: the pause of a cut does not look a single key up (only taken
/// tombstones are, later, a few per batch). Keys and values are shared (`Arc`) between the map,
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
    /// Live (non-tombstone) entries, counted.
    usage: Usage,
    /// Keys changed since the last checkpoint, each once, with their value now (`None`:
    /// removed). A write to a changed key overwrites its value here without reading it
    /// (`overwrite_clone`), so the random place in this list costs no cache miss. A key that
    /// came and went since the checkpoint leaves a [`Key::void`] here (counted in `voids`).
    changed: Vec<(Key, Option<Value>)>,
    voids: usize,
    /// Whether changes are tracked (false: no checkpoint will be taken, see
    /// [`StateHolder::untrack`]).
    track: bool,
    /// Tombstones a checkpoint took, to drop from the map a few per batch.
    purge: Vec<Key>,
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
            changed: Vec::new(),
            voids: 0,
            track: true,
            purge: Vec::new(),
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
        self.changed = Vec::new();
        self.voids = 0;
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
        self.slots.get(key).and_then(|s| s.value.as_ref())
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
        let mut all: Vec<(&str, &[u8])> = self
            .slots
            .iter()
            .filter_map(|(k, s)| s.value.as_deref().map(|v| (&**k, v)))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// Number of keys changed since the last checkpoint.
    pub fn dirty_len(&self) -> usize {
        self.changed.len() - self.voids
    }

    /// Store `value` under `key`, subject to the quotas.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> Result<(), StateError> {
        let value = value.into();
        let epoch = self.txn.map_or(self.last_epoch, |t| t.epoch);
        let generation = self.generation();
        if let Some((k, slot)) = self.slots.get_key_value_mut(key) {
            let old = slot.value.as_ref().map(|v| v.len());
            self.usage.check(&self.quotas, key, value.len(), old)?;
            match old {
                Some(o) => self.usage.sub(key, o),
                None => index(&mut self.order, &mut self.host_keys, k, true),
            }
            self.usage.add(key, value.len());
            let log = Log {
                changed: &mut self.changed,
                undo: &mut self.undo,
                txn: self.txn.is_some(),
                gen_start: generation,
            };
            log.write(k, slot, epoch, Some(value));
        } else {
            self.usage.check(&self.quotas, key, value.len(), None)?;
            let k = Key::from(key);
            if self.txn.is_some() {
                self.undo.push(Undo {
                    key: k.clone(),
                    prev: None,
                });
            }
            let pos = if generation.is_some() {
                let pos = change_pos(&self.changed) | ABSENT;
                self.changed.push((k.clone(), Some(value.clone())));
                pos
            } else {
                0
            };
            index(&mut self.order, &mut self.host_keys, &k, true);
            self.usage.add(key, value.len());
            self.slots.insert(
                k,
                Slot {
                    value: Some(value),
                    epoch,
                    pos,
                },
            );
        }
        Ok(())
    }

    /// Delete `key`; returns whether it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        let generation = self.generation();
        let EntryRef::Occupied(e) = self.slots.entry_ref(key) else {
            return false;
        };
        let Some(old) = &e.get().value else {
            return false;
        };
        let epoch = self.txn.map_or(self.last_epoch, |t| t.epoch);
        self.usage.sub(key, old.len());
        index(&mut self.order, &mut self.host_keys, e.key(), false);
        let slot = e.get();
        let traceless = match generation {
            None => true,
            Some(g) => slot.epoch >= g && slot.pos & ABSENT != 0,
        };
        if !traceless {
            let k = e.key().clone();
            let log = Log {
                changed: &mut self.changed,
                undo: &mut self.undo,
                txn: self.txn.is_some(),
                gen_start: generation,
            };
            log.write(&k, e.into_mut(), epoch, None);
            return true;
        }
        // Not in the last checkpoint (or none will be taken): the key leaves the map, and its
        // change-list entry becomes void.
        let (k, slot) = e.remove_entry();
        if generation.is_some() {
            let entry = &mut self.changed[(slot.pos & POS) as usize];
            // SAFETY: a changed slot's entry holds a clone of its value; the slot holds its own.
            unsafe { super::value::overwrite_clone(&mut entry.1, &slot.value, None) };
            entry.0 = Key::void();
            self.voids += 1;
        }
        if self.txn.is_some() && slot.epoch != epoch {
            self.undo.push(Undo {
                key: k,
                prev: Some((slot.value, slot.epoch, slot.pos)),
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
        self.order.get_or_init(|| {
            self.slots
                .iter()
                .filter(|(_, s)| s.value.is_some())
                .map(|(k, _)| k.clone())
                .collect()
        })
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
            self.purge_some();
            let epoch = self.next_epoch();
            self.txn = Some(Txn {
                epoch,
                changed_len: self.changed.len(),
            });
        }
    }

    /// Drop from the map some of the tombstones a checkpoint took (those not written since):
    /// at least 256 per call, more when many wait, so they never pile up.
    fn purge_some(&mut self) {
        let n = self.purge.len().min(256.max(self.purge.len() / 16));
        let from = self.purge.len() - n;
        for key in self.purge.drain(from..) {
            if let EntryRef::Occupied(e) = self.slots.entry_ref(&*key)
                && e.get().value.is_none()
                && e.get().epoch < self.gen_start
            {
                e.remove();
            }
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
        let Some(txn) = self.txn.take() else {
            return;
        };
        let generation = self.generation();
        for u in self.undo.drain(..).rev() {
            let (cur, prev_value) = match u.prev {
                None => (self.slots.remove(&*u.key).and_then(|s| s.value), None),
                Some((value, epoch, pos)) => {
                    if generation.is_some_and(|g| epoch >= g) {
                        // Changed before the batch: its change entry is back to that value
                        // (and to its key, if the batch removed it without a trace).
                        let entry = &mut self.changed[(pos & POS) as usize];
                        if entry.0.is_void() {
                            entry.0 = u.key.clone();
                            self.voids -= 1;
                        }
                        entry.1 = value.clone();
                    }
                    let restored = Slot {
                        value: value.clone(),
                        epoch,
                        pos,
                    };
                    // A key the batch removed without a trace has no slot.
                    let cur = match self.slots.get_mut(&*u.key) {
                        Some(slot) => std::mem::replace(slot, restored).value,
                        None => {
                            self.slots.insert(u.key.clone(), restored);
                            None
                        }
                    };
                    (cur, value)
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
        // Keys first changed inside the batch were appended after `changed_len`; their slots
        // are back to their epochs before it.
        let voided = self.changed[txn.changed_len.min(self.changed.len())..]
            .iter()
            .filter(|(k, _)| k.is_void())
            .count();
        self.voids -= voided;
        self.changed.truncate(txn.changed_len);
    }

    /// Whether a batch transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// The changes since the last checkpoint, clearing them. Call it between batches (not
    /// inside a transaction). No key is looked up: the change list already holds each changed
    /// key's value, and a new epoch makes every slot clean.
    pub fn take_delta(&mut self) -> StateDelta {
        debug_assert!(self.txn.is_none(), "take_delta inside a batch transaction");
        assert!(self.track, "take_delta on a state whose changes are not tracked");
        self.voids = 0;
        let mut deletes = Vec::new();
        let purge = &mut self.purge;
        // Collected in place (same element size): no allocation, one pass.
        let sets = std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|(key, value)| match value {
                _ if key.is_void() => None,
                Some(v) => Some((key, v)),
                None => {
                    purge.push(key.clone());
                    deletes.push(key);
                    None
                }
            })
            .collect();
        let delta = StateDelta { sets, deletes };
        self.gen_start = self.next_epoch();
        delta
    }

    /// Every entry, as a delta from empty state (unsorted); does not touch the changes.
    pub fn snapshot(&self) -> StateDelta {
        StateDelta {
            sets: self
                .slots
                .iter()
                .filter_map(|(k, s)| s.value.as_ref().map(|v| (k.clone(), v.clone())))
                .collect(),
            deletes: Vec::new(),
        }
    }

    /// Forget what changed since the last checkpoint (after a full checkpoint was taken).
    pub fn clear_changes(&mut self) {
        if self.track {
            let _ = self.take_delta();
        }
    }

    /// Apply a checkpoint delta (restore path): no quotas, and the applied entries do not
    /// count as changed. Call it on a state without pending changes (a restored one).
    pub fn apply(&mut self, delta: StateDelta) {
        debug_assert!(self.txn.is_none(), "apply inside a batch transaction");
        debug_assert!(self.changed.is_empty(), "apply on a state with pending changes");
        self.slots
            .reserve(delta.sets.len().saturating_sub(self.slots.len()));
        let mut ix = self.order.take();
        for key in delta.deletes {
            if let Some(Slot { value: Some(old), .. }) = self.slots.remove(&*key) {
                self.usage.sub(&key, old.len());
                if let Some(ix) = &mut ix {
                    ix.remove(&*key);
                }
                if key.starts_with('!') {
                    self.host_keys.remove(&*key);
                }
            }
        }
        let mut usage = self.usage;
        for (key, value) in self.in_table_order(delta.sets).into_iter().flatten() {
            usage.add(&key, value.len());
            if let Some(ix) = &mut ix {
                ix.insert(key.clone());
            }
            if key.starts_with('!') {
                self.host_keys.insert(key.clone());
            }
            // One hash per entry.
            match self.slots.entry(key) {
                hashbrown::hash_map::Entry::Occupied(mut e) => {
                    if let Some(old) = e.get_mut().value.replace(value) {
                        usage.sub(e.key(), old.len());
                    }
                    e.get_mut().epoch = 0;
                }
                hashbrown::hash_map::Entry::Vacant(e) => {
                    e.insert(Slot {
                        value: Some(value),
                        epoch: 0,
                        pos: 0,
                    });
                }
            }
        }
        self.usage = usage;
        if let Some(ix) = ix {
            let _ = self.order.set(ix);
        }
    }

    /// `sets` in runs that, inserted one after the other, walk the table from one end to the
    /// other instead of probing it at random: entries by their bucket's position, in up to
    /// 4,096 runs (a counting sort on the hash; the entries are moved once, sequentially
    /// read). Restoring 1M keys, each insert then finds its bucket in cache; in key order (a
    /// checkpoint's) it missed almost every time.
    fn in_table_order(&self, sets: Vec<(Key, Value)>) -> Vec<Vec<(Key, Value)>> {
        if sets.len() < 1 << 16 {
            // Small enough to stay in cache whatever the order: one run, nothing hashed twice.
            return vec![sets];
        }
        let buckets = (self.slots.capacity() / 7 * 8).next_power_of_two().max(1);
        let bits = buckets.trailing_zeros();
        let run_bits = bits.min(12);
        let shift = bits - run_bits;
        let hasher = self.slots.hasher();
        let run_of: Vec<u16> = sets
            .iter()
            .map(|(k, _)| ((hasher.hash_one(k.as_str()) as usize & (buckets - 1)) >> shift) as u16)
            .collect();
        let mut sizes = vec![0usize; 1 << run_bits];
        for &r in &run_of {
            sizes[r as usize] += 1;
        }
        let mut runs: Vec<Vec<(Key, Value)>> = sizes.into_iter().map(Vec::with_capacity).collect();
        for (entry, r) in sets.into_iter().zip(run_of) {
            runs[r as usize].push(entry);
        }
        runs
    }

    /// Replace everything with the given entries (restore path).
    pub fn replace(&mut self, entries: StateDelta) {
        let (quotas, track) = (self.quotas, self.track);
        *self = Self::with_quotas(quotas);
        self.apply(entries);
        if !track {
            self.untrack();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_below_a_bound_are_listed_in_order_and_nothing_past_it() {
        let mut s = StateHolder::new();
        for k in ["!t/3", "!t/1", "!t/2", "!u/0", "a"] {
            s.set(k, Vec::new()).unwrap();
        }
        let listed = |below: &str, limit| s.list_keys_below("!t/", below, limit);
        assert_eq!(listed("!t/3", 10), vec![Key::from("!t/1"), Key::from("!t/2")]);
        assert_eq!(listed("!t/9", 2), vec![Key::from("!t/1"), Key::from("!t/2")]);
        assert_eq!(listed("~", 10).len(), 3);
        assert!(listed("!t/", 10).is_empty() && listed("!", 10).is_empty());
        assert_eq!(s.list_keys_below("", "b", 10).len(), 5);
    }

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
        assert_eq!(d.deletes, vec![Key::from("b")]);
    }

    #[test]
    fn tombstones_a_checkpoint_took_leave_the_map_as_batches_begin() {
        let mut s = StateHolder::new();
        for i in 0..1000 {
            s.set(&format!("k{i}"), b"v".to_vec()).unwrap();
        }
        let _ = s.take_delta();
        for i in 0..1000 {
            assert!(s.remove(&format!("k{i}")));
        }
        // One is written again before the purge reaches it: it stays.
        let d = s.take_delta();
        assert_eq!((d.sets.len(), d.deletes.len()), (0, 1000));
        s.set("k7", b"w".to_vec()).unwrap();
        assert_eq!(s.slots.len(), 1000);
        for _ in 0..4 {
            s.begin();
            s.commit();
        }
        assert_eq!(s.slots.len(), 1);
        assert_eq!(s.get("k7"), Some(&b"w"[..]));
        assert_eq!(
            s.take_delta().sets,
            vec![(Key::from("k7"), Value::from(b"w".to_vec()))]
        );
    }

    #[test]
    fn a_large_restore_in_table_order_holds_every_entry() {
        // Past 65,536 entries `apply` inserts in runs by bucket position.
        let n = 70_000;
        let entry = |i: usize, r: usize| {
            (
                Key::from(format!("k{i}").as_str()),
                Value::from(vec![r as u8; i % 30]),
            )
        };
        let mut s = StateHolder::new();
        s.apply(StateDelta {
            sets: (0..n).map(|i| entry(i, 1)).collect(),
            deletes: vec![],
        });
        s.apply(StateDelta {
            sets: (0..n)
                .step_by(7)
                .filter(|i| i % 11 != 0)
                .map(|i| entry(i, 2))
                .collect(),
            deletes: (0..n)
                .step_by(11)
                .map(|i| Key::from(format!("k{i}").as_str()))
                .collect(),
        });
        let mut bytes = 0;
        for i in 0..n {
            let want = (i % 11 != 0).then(|| vec![if i % 7 == 0 { 2 } else { 1 }; i % 30]);
            assert_eq!(s.get(&format!("k{i}")).map(<[u8]>::to_vec), want, "k{i}");
            bytes += want.map_or(0, |w| format!("k{i}").len() + w.len());
        }
        assert_eq!(
            (s.len(), s.bytes(), s.dirty_len()),
            (n - n.div_ceil(11), bytes as u64, 0)
        );
    }

    #[test]
    fn quotas_refuse_without_changing_state() {
        let mut s = StateHolder::with_quotas(StateQuotas {
            max_keys: 2,
            max_state_bytes: 100,
            max_value_bytes: 10,
            max_timers: 1,
        });
        s.set("a", vec![0; 10]).unwrap();
        let e = s.set("b", vec![0; 11]).unwrap_err();
        assert!(e.to_string().contains("max-value-bytes = 10"), "{e}");
        s.set("b", vec![0; 1]).unwrap();
        let e = s.set("c", vec![]).unwrap_err();
        assert!(e.to_string().contains("max-keys = 2"), "{e}");
        assert_eq!(s.len(), 2);
        // Timers count against their own quota, not the keys' or bytes'.
        let t = |k: &str, ts| cairn_codec::timers::entry_key(k, ts);
        s.set(&t("a", 5), vec![]).unwrap();
        let e = s.set(&t("a", 6), vec![]).unwrap_err();
        assert!(e.to_string().contains("max-timers = 1"), "{e}");
        assert!(e.to_string().contains("\"a\" at 6"), "{e}");
        assert_eq!((s.len(), s.timers()), (2, 1));
        s.begin();
        s.remove(&t("a", 5));
        assert_eq!(s.timers(), 0);
        s.rollback();
        assert_eq!((s.len(), s.timers(), s.bytes()), (2, 1, 13));
    }

    #[test]
    fn list_keys_pages_through_a_prefix() {
        let mut s = StateHolder::new();
        for k in ["w/1", "w/2", "w/3", "x/1", "v/9"] {
            s.set(k, vec![]).unwrap();
        }
        let keys = |s: &StateHolder, p, a, n| -> Vec<String> {
            s.list_keys(p, a, n).iter().map(|k| k.to_string()).collect()
        };
        assert_eq!(keys(&s, "w/", None, 2), vec!["w/1", "w/2"]);
        assert_eq!(keys(&s, "w/", Some("w/2"), 10), vec!["w/3"]);
        assert_eq!(keys(&s, "", Some("w/3"), 10), vec!["x/1"]);
        // The index, once built, follows writes, removals and rollbacks.
        s.remove("w/2");
        s.set("w/0", vec![]).unwrap();
        s.begin();
        s.set("w/5", vec![]).unwrap();
        s.remove("w/1");
        s.rollback();
        assert_eq!(keys(&s, "w/", None, 10), vec!["w/0", "w/1", "w/3"]);
    }

    /// What `overwrite_clone` relies on: a changed slot's entry in the change list is its key
    /// and a clone of its value (the same allocation when shared).
    fn assert_change_list_mirrors_slots(s: &StateHolder) {
        let voids = s.changed.iter().filter(|(k, _)| k.is_void()).count();
        assert_eq!(voids, s.voids);
        if !s.track {
            assert!(s.changed.is_empty());
            return;
        }
        for (k, slot) in &s.slots {
            if slot.epoch >= s.gen_start {
                let pos = (slot.pos & POS) as usize;
                assert_eq!(&s.changed[pos].0, k);
                let copy = &s.changed[pos].1;
                assert_eq!(copy, &slot.value, "{k:?}");
                if let (Some(a), Some(b)) = (copy, &slot.value)
                    && a.len() > crate::state::value::INLINE_VALUE_BYTES
                {
                    assert_eq!(a.as_ptr(), b.as_ptr(), "{k:?}: one shared allocation");
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u8),
        Remove(u8),
        Begin,
        Commit,
        Rollback,
        Checkpoint,
        List(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::Set(k, v)),
            2 => (0u8..12).prop_map(Op::Remove),
            1 => Just(Op::Begin),
            1 => Just(Op::Commit),
            1 => Just(Op::Rollback),
            1 => Just(Op::Checkpoint),
            1 => (0u8..3).prop_map(Op::List),
        ]
    }

    fn key_of(k: u8) -> String {
        // `!c/…` keys are host entries (their own ordered index).
        format!("{}/{k:02}", ["a", "b", "!c"][k as usize % 3])
    }

    proptest::proptest! {
        /// The holder against a plain ordered map: same contents, sizes and key listings after
        /// any mix of writes, removals, commits and rollbacks; and a replica that applies only
        /// the deltas always equals the live state at the checkpoint.
        #[test]
        fn behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 1..200), near_wrap: bool, tracked in proptest::bool::weighted(0.8)) {
            use std::collections::{BTreeMap, BTreeSet};
            let mut s = StateHolder::new();
            if !tracked {
                s.untrack();
            }
            // The state at the last checkpoint.
            let mut base: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            if near_wrap {
                // The epoch counter wraps within the run: slots are renumbered, changes kept.
                s.last_epoch = u32::MAX - 30;
                s.gen_start = s.last_epoch;
            }
            let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            type Saved = (BTreeMap<String, Vec<u8>>, BTreeSet<String>);
            let mut saved: Option<Saved> = None;
            let mut touched: BTreeSet<String> = BTreeSet::new();
            let mut replica = StateHolder::new();
            for op in ops {
                match op {
                    Op::Set(k, v) => {
                        // Short values live in place, long ones (> 22 bytes) are shared.
                        let value = vec![v; if v % 3 == 0 { 30 + v as usize % 5 } else { v as usize % 4 }];
                        s.set(&key_of(k), value.clone()).unwrap();
                        model.insert(key_of(k), value);
                        touched.insert(key_of(k));
                    }
                    Op::Remove(k) => {
                        let existed = model.remove(&key_of(k)).is_some();
                        if existed {
                            touched.insert(key_of(k));
                        }
                        proptest::prop_assert_eq!(s.remove(&key_of(k)), existed);
                    }
                    Op::Begin => {
                        if saved.is_none() {
                            saved = Some((model.clone(), touched.clone()));
                        }
                        s.begin();
                    }
                    Op::Commit => {
                        saved = None;
                        s.commit();
                    }
                    Op::Rollback => {
                        if let Some((m, t)) = saved.take() {
                            model = m;
                            touched = t;
                        }
                        s.rollback();
                    }
                    Op::Checkpoint => {
                        if saved.is_none() && tracked {
                            // Keys that came and went since the last checkpoint are not in it.
                            let want: Vec<String> = std::mem::take(&mut touched)
                                .into_iter()
                                .filter(|k| base.contains_key(k) || model.contains_key(k))
                                .collect();
                            proptest::prop_assert_eq!(s.dirty_len(), want.len());
                            let d = s.take_delta();
                            let mut keys: Vec<String> =
                                d.sets.iter().map(|(k, _)| k.to_string()).chain(d.deletes.iter().map(|k| k.to_string())).collect();
                            keys.sort();
                            proptest::prop_assert_eq!(keys, want);
                            base = model.clone();
                            replica.apply(d);
                            proptest::prop_assert_eq!(s.dirty_len(), 0);
                            let r: Vec<(String, Vec<u8>)> =
                                replica.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
                            let m: Vec<(String, Vec<u8>)> = model.clone().into_iter().collect();
                            proptest::prop_assert_eq!(r, m);
                            proptest::prop_assert_eq!(replica.bytes(), s.bytes());
                        }
                    }
                    Op::List(p) => {
                        let prefix = ["a/", "b/", "!c/"][p as usize];
                        let got: Vec<String> = s.list_keys(prefix, None, 100).iter().map(|k| k.to_string()).collect();
                        let want: Vec<String> = model.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
                        proptest::prop_assert_eq!(got, want);
                    }
                }
                assert_change_list_mirrors_slots(&s);
                // A tombstone is only kept for a key the last checkpoint holds, or for one the
                // last checkpoint deleted (until it is purged); untracked, never.
                for (k, slot) in &s.slots {
                    if slot.value.is_none() {
                        proptest::prop_assert!(tracked, "{:?}: a tombstone, untracked", k);
                        proptest::prop_assert!(
                            base.contains_key(k.as_str()) || slot.epoch < s.gen_start,
                            "{:?}: a tombstone of a key that came and went", k
                        );
                    }
                }
                if !tracked {
                    proptest::prop_assert_eq!(s.dirty_len(), 0);
                }
                let got: Vec<(String, Vec<u8>)> = s.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
                let want: Vec<(String, Vec<u8>)> = model.clone().into_iter().collect();
                proptest::prop_assert_eq!(got, want);
                proptest::prop_assert_eq!(s.len(), model.len());
                let bytes: usize = model.iter().map(|(k, v)| k.len() + v.len()).sum();
                proptest::prop_assert_eq!(s.bytes(), bytes as u64);
            }
        }
    }
}
