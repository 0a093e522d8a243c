//! The change list: each key changed since the last checkpoint, once, with its value now.
//!
//! A key that came and went since the checkpoint (a dedup's id, a window and its timer) frees
//! its place for the next new key: the list never holds more entries than keys were changed at
//! once, and nothing compacts it or tells slots their new places. A freed entry is not even
//! written (a random place in a large list: a cache miss): it stays as it was, a stale entry,
//! until a new key's entry replaces it or the checkpoint takes the list and skips it.

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
    /// The key came and went: its place became free.
    TakenOut,
}

/// The keys changed since the last checkpoint with their value now (`None`: removed), and
/// the free places, whose entries are stale.
#[derive(Debug, Default)]
pub(super) struct Changes {
    list: Vec<(Key, Option<Value>)>,
    /// Free places, the last freed last.
    free: Vec<u32>,
}

impl Changes {
    /// Number of keys changed.
    pub(super) fn len(&self) -> usize {
        self.list.len() - self.free.len()
    }

    /// Entries, stale ones included (tests).
    #[cfg(test)]
    pub(super) fn entries(&self) -> &[(Key, Option<Value>)] {
        &self.list
    }

    /// Free places (tests).
    #[cfg(test)]
    pub(super) fn free(&self) -> &[u32] {
        &self.free
    }

    /// Add `key`'s entry (its first change since the checkpoint); returns its place.
    pub(super) fn add(&mut self, key: Key, value: Option<Value>) -> (u32, Change) {
        if let Some(at) = self.free.pop() {
            // (The stale entry is dropped: one miss for the read and the write.)
            self.list[at as usize] = (key, value);
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
    pub(super) unsafe fn set(&mut self, at: u32, original: &Value, new: Option<Value>) {
        let copy = &mut self.list[at as usize].1;
        // SAFETY: the caller's contract.
        unsafe { super::super::value::overwrite_clone(copy, original, new) };
    }

    /// Free the place `at` (its key came and went). Its entry stays, stale, unread.
    pub(super) fn take_out(&mut self, at: u32) {
        self.free.push(at);
    }

    /// Undo [`Changes::take_out`] of `at` (the place freed last): its entry is `key`'s again,
    /// with `value` (another key's may have taken the place meanwhile).
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
                debug_assert_eq!(&self.list[at as usize].0, key);
                self.free.push(at);
            }
            Change::InPlace | Change::TakenOut => unreachable!("{change:?} added nothing"),
        }
    }

    /// Put `value` back as the value of the entry at `at` (a rollback).
    pub(super) fn restore_value(&mut self, at: u32, value: Option<Value>) {
        self.list[at as usize].1 = value;
    }

    /// The entries, leaving none: each key changed with its value now (`None`: removed).
    /// The next list starts as large as this one ended: it is refilled at the same pace, and
    /// growing it by doubling copied it over and over (fresh pages each time). What `keep`
    /// returns for each entry is collected in place (no allocation) when it is as large.
    pub(super) fn take<T>(&mut self, mut keep: impl FnMut((Key, Option<Value>)) -> Option<T>) -> Vec<T> {
        let mut free = std::mem::take(&mut self.free);
        free.sort_unstable();
        let mut free = free.into_iter().peekable();
        let next = Vec::with_capacity(self.list.len());
        let mut at = 0u32;
        // (`vec::IntoIter` and `filter_map` only: what keeps the collection in place.)
        std::mem::replace(&mut self.list, next)
            .into_iter()
            .filter_map(|entry| {
                let here = at;
                at += 1;
                if free.next_if_eq(&here).is_some() {
                    return None;
                }
                keep(entry)
            })
            .collect()
    }
}
