//! The change list: each key changed since the last checkpoint, once, with its value now.
//!
//! A key that came and went since the checkpoint (a dedup's id, a window and its timer) leaves
//! a void entry, and its place is the next new key's: the list never holds more entries than
//! keys were changed at once, and nothing compacts it or tells slots their new places.

use super::{Key, POS, Value};

/// What a write did to the change list: what a rollback undoes, in reverse order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Nothing added or taken: the key's entry was overwritten, or changes are not tracked.
    InPlace,
    /// The key's entry was added at the end.
    Pushed,
    /// The key's entry was added in this place, free before.
    Reused(u32),
    /// The key came and went: its entry became void and its place free.
    TakenOut,
}

/// The keys changed since the last checkpoint with their value now (`None`: removed), each
/// once, and the places of void entries.
#[derive(Debug, Default)]
pub(super) struct Changes {
    list: Vec<(Key, Option<Value>)>,
    /// Places of void entries, the last freed last.
    free: Vec<u32>,
}

impl Changes {
    /// Number of keys changed.
    pub(super) fn len(&self) -> usize {
        self.list.len() - self.free.len()
    }

    /// Entries, void ones included (tests).
    #[cfg(test)]
    pub(super) fn entries(&self) -> &[(Key, Option<Value>)] {
        &self.list
    }

    /// Places of void entries (tests).
    #[cfg(test)]
    pub(super) fn free(&self) -> &[u32] {
        &self.free
    }

    /// Add `key`'s entry (its first change since the checkpoint); returns its place.
    pub(super) fn add(&mut self, key: Key, value: Option<Value>) -> (u32, Change) {
        if let Some(at) = self.free.pop() {
            // SAFETY: a free place holds a void entry, which owns nothing: it needs no drop
            // (and is not read, which would be a cache miss at a random place).
            unsafe { std::ptr::write(&mut self.list[at as usize], (key, value)) };
            return (at, Change::Reused(at));
        }
        let at = self.list.len();
        assert!(
            at < POS as usize,
            "over 2^31 keys changed between two checkpoints"
        );
        self.list.push((key, value));
        (at as u32, Change::Pushed)
    }

    /// Store `new` as the value of the entry at `at` without reading it.
    ///
    /// # Safety
    ///
    /// The entry must hold a clone of `original`, which still holds its reference.
    pub(super) unsafe fn set(&mut self, at: u32, original: &Option<Value>, new: Option<Value>) {
        let copy = &mut self.list[at as usize].1;
        // SAFETY: the caller's contract.
        unsafe { super::super::value::overwrite_clone(copy, original, new) };
    }

    /// The entry at `at` becomes void (its key came and went) and its place free, without
    /// reading it.
    ///
    /// # Safety
    ///
    /// The entry must hold clones of `key` and `value`, which still hold their references.
    pub(super) unsafe fn take_out(&mut self, at: u32, key: &Key, value: &Option<Value>) {
        let entry = &mut self.list[at as usize];
        // SAFETY: the caller's contract.
        unsafe {
            super::super::key::overwrite_clone(&mut entry.0, key, Key::void());
            super::super::value::overwrite_clone(&mut entry.1, value, None);
        }
        self.free.push(at);
    }

    /// Undo [`Changes::take_out`] of the entry at `at` (the last place freed).
    pub(super) fn put_back(&mut self, at: u32, key: Key, value: Option<Value>) {
        let freed = self.free.pop();
        debug_assert_eq!(freed, Some(at), "put back in the place freed last");
        self.list[at as usize] = (key, value);
    }

    /// Undo [`Changes::add`] of `key`'s entry, the last change made.
    pub(super) fn unadd(&mut self, key: &Key, change: Change) {
        match change {
            Change::Pushed => {
                let (last, _) = self.list.pop().expect("an entry was pushed");
                debug_assert_eq!(&last, key);
            }
            Change::Reused(at) => {
                let entry = std::mem::replace(&mut self.list[at as usize], (Key::void(), None));
                debug_assert_eq!(&entry.0, key);
                self.free.push(at);
            }
            Change::InPlace | Change::TakenOut => unreachable!("{change:?} added nothing"),
        }
    }

    /// Put `value` back as the value of the entry at `at` (a rollback).
    pub(super) fn restore_value(&mut self, at: u32, value: Option<Value>) {
        self.list[at as usize].1 = value;
    }

    /// The entries, void ones included, leaving none. The next list starts as large as this
    /// one ended: it is refilled at the same pace, and growing it by doubling copied it over
    /// and over (fresh pages each time).
    pub(super) fn take(&mut self) -> Vec<(Key, Option<Value>)> {
        self.free.clear();
        let next = Vec::with_capacity(self.list.len());
        std::mem::replace(&mut self.list, next)
    }
}
