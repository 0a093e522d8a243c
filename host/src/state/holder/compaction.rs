//! The change list's compaction: the void entries of keys that came and went since the last
//! checkpoint dropped once they are most of the list.

use super::*;

/// The change list is compacted once it holds at least this many voids, and they are at
/// least half of it (a few in tests, so that the model-based proptest compacts often).
const COMPACT_FROM: usize = if cfg!(test) { 3 } else { 4096 };
/// A compaction tells the staying entries' slots their new places by one pass over every slot
/// when there are at most this many slots per staying entry (a pass reads memory in order; a
/// lookup per entry reads it at random), else by a lookup per entry. (In tests: either way,
/// by the parity of the voids, so that the model-based proptest runs both.)
const SWEEP_PER_ENTRY: usize = 8;

impl StateHolder {
    /// Drop the void entries (keys that came and went) from the change list once they are
    /// most of it, moving the others up and telling their slots where they are now. Between
    /// batches only: no undo entry refers to a position then. (A job whose keys live shortly —
    /// a dedup's ids, a window's timers — would otherwise carry a list of mostly voids, 64
    /// bytes each, from one checkpoint to the next.)
    pub(super) fn compact_changes(&mut self) {
        if self.voids < COMPACT_FROM || self.voids * 2 < self.changed.len() {
            return;
        }
        let staying = self.changed.len() - self.voids;
        let sweep = if cfg!(test) {
            self.voids.is_multiple_of(2)
        } else {
            self.slots.len() <= SWEEP_PER_ENTRY * staying
        };
        // Move the staying entries up; with `sweep`, note where each went (old place -> new)
        // and tell the slots afterwards in one pass over all of them, in memory order, which
        // costs less than a random lookup per entry when the slots are few.
        let mut moved_to = if sweep {
            vec![0u32; self.changed.len()]
        } else {
            Vec::new()
        };
        let mut kept = 0;
        for i in 0..self.changed.len() {
            if self.changed[i].0.is_void() {
                continue;
            }
            self.changed.swap(i, kept);
            // (`moved_to` is empty unless sweeping.)
            if let Some(to) = moved_to.get_mut(i) {
                *to = kept as u32;
            } else {
                let slot = self
                    .slots
                    .get_mut(&*self.changed[kept].0)
                    .expect("a changed key keeps its slot until the checkpoint takes it");
                slot.pos = (slot.pos & ABSENT) | kept as u32;
            }
            kept += 1;
        }
        if sweep {
            for slot in self.slots.values_mut() {
                // Changed since the checkpoint: it has an entry in the list.
                if slot.epoch >= self.gen_start {
                    slot.pos = (slot.pos & ABSENT) | moved_to[(slot.pos & POS) as usize];
                }
            }
        }
        // What is left are voids, which hold no value.
        self.changed.truncate(kept);
        self.voids = 0;
    }
}
