//! The state holder's checkpoint side: deltas and snapshots taken, and checkpoints applied
//! on restore.

use hashbrown::hash_map::RawEntryMut;

use super::*;

impl StateHolder {
    /// The changes since the last checkpoint, clearing them. Call it between batches (not
    /// inside a transaction). No key is looked up: the change list already holds each changed
    /// key's value, and a new epoch makes every slot clean.
    pub fn take_delta(&mut self) -> StateDelta {
        debug_assert!(self.txn.is_none(), "take_delta inside a batch transaction");
        assert!(self.track, "take_delta on a state whose changes are not tracked");
        let mut deletes = Vec::new();
        // Collected in place (same element size): no allocation, one pass.
        let sets = self.changed.take(|(key, value)| match value {
            Some(v) => Some((key, v)),
            None => {
                deletes.push(key);
                None
            }
        });
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
                .map(|(k, s)| (k.clone(), s.value.clone()))
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
        debug_assert!(self.changed.len() == 0, "apply on a state with pending changes");
        self.slots
            .reserve(delta.sets.len().saturating_sub(self.slots.len()));
        let mut ix = self.order.take();
        for key in delta.deletes {
            if let Some(Slot { value: old, .. }) = self.slots.remove(&*key) {
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
        let (sets, hashes) = self.in_table_order(delta.sets);
        for (i, (key, value)) in sets.into_iter().enumerate() {
            usage.add(&key, value.len());
            if let Some(ix) = &mut ix {
                ix.insert(key.clone());
            }
            if key.starts_with('!') {
                self.host_keys.insert(key.clone());
            }
            // One hash per entry (the one the table order was found with, if it was).
            let hash = match hashes.get(i) {
                Some(&h) => h,
                None => self.slots.hasher().hash_one(key.as_str()),
            };
            match self
                .slots
                .raw_entry_mut()
                .from_key_hashed_nocheck(hash, key.as_str())
            {
                RawEntryMut::Occupied(mut e) => {
                    let old = std::mem::replace(&mut e.get_mut().value, value);
                    usage.sub(e.key(), old.len());
                    e.get_mut().epoch = 0;
                }
                RawEntryMut::Vacant(e) => {
                    e.insert_hashed_nocheck(
                        hash,
                        key,
                        Slot {
                            value,
                            epoch: 0,
                            pos: 0,
                        },
                    );
                }
            }
        }
        self.usage = usage;
        if let Some(ix) = ix {
            let _ = self.order.set(ix);
        }
    }

    /// `sets` reordered so that, inserted one after the other, they walk the table from one
    /// end to the other instead of probing it at random: by their bucket's position, in up to
    /// 4,096 runs (a counting sort on the hash, the entries swapped into place where they
    /// are: no allocation but their hashes). Restoring 1M keys, each insert then finds
    /// its bucket in cache; in key order (a checkpoint's) it missed almost every time. With
    /// them, each entry's hash (none for few entries, which stay as they are).
    pub(super) fn in_table_order(&self, mut sets: Vec<(Key, Value)>) -> (Vec<(Key, Value)>, Vec<u64>) {
        if sets.len() < 1 << 16 {
            // Small enough to stay in cache whatever the order.
            return (sets, Vec::new());
        }
        let buckets = (self.slots.capacity() / 7 * 8).next_power_of_two().max(1);
        let bits = buckets.trailing_zeros();
        let run_bits = bits.min(12);
        let shift = bits - run_bits;
        let hasher = self.slots.hasher();
        let mut hashes: Vec<u64> = sets.iter().map(|(k, _)| hasher.hash_one(k.as_str())).collect();
        let run = |h: u64| (h as usize & (buckets - 1)) >> shift;
        // Where each run starts and (as entries are placed) where its next entry goes.
        let mut next = vec![0usize; (1 << run_bits) + 1];
        for &h in &hashes {
            next[run(h) + 1] += 1;
        }
        for r in 1..next.len() {
            next[r] += next[r - 1];
        }
        let ends: Vec<usize> = next[1..].to_vec();
        for r in 0..ends.len() {
            // Swap each entry of run `r`'s range that belongs elsewhere to its run's next
            // place, until the range holds its own: every swap places one entry for good.
            while next[r] < ends[r] {
                let i = next[r];
                let t = run(hashes[i]);
                if t == r {
                    next[r] += 1;
                } else {
                    let j = next[t];
                    sets.swap(i, j);
                    hashes.swap(i, j);
                    next[t] += 1;
                }
            }
        }
        (sets, hashes)
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
