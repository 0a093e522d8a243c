//! The newest event time of each stream key in the batch being processed: what a keyed write
//! during the batch is stamped with for state TTL (or the watermark, if later). The batched
//! speed paths do not say which event made a write, so the batch decides; deterministic for a
//! given input and batch size.

use hashbrown::HashMap;

/// Per stream key, the newest `ts` among the batch's events.
#[derive(Debug, Default)]
pub(crate) struct BatchTimes {
    newest: HashMap<Box<str>, i64>,
}

impl BatchTimes {
    /// Record the batch's `(key, ts)` pairs (the previous batch's are forgotten).
    pub fn fill<'a>(&mut self, events: impl Iterator<Item = (&'a str, i64)>) {
        self.newest.clear();
        for (key, ts) in events {
            match self.newest.get_mut(key) {
                Some(t) => *t = (*t).max(ts),
                None => {
                    self.newest.insert(key.into(), ts);
                }
            }
        }
    }

    /// Forget the batch.
    pub fn clear(&mut self) {
        self.newest.clear();
    }

    /// The stamp of a write to stream key `scope`: the newest `ts` of its events in the batch
    /// or `watermark`, whichever is later (`None`: neither is known yet).
    pub fn stamp(&self, scope: &str, watermark: Option<i64>) -> Option<i64> {
        match (self.newest.get(scope).copied(), watermark) {
            (Some(t), Some(w)) => Some(t.max(w)),
            (t, w) => t.or(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stamped_with_its_newest_event_or_the_watermark_if_later() {
        let mut b = BatchTimes::default();
        b.fill([("a", 5), ("b", 9), ("a", 7), ("a", 6)].into_iter());
        assert_eq!(b.stamp("a", Some(3)), Some(7));
        assert_eq!(b.stamp("a", Some(8)), Some(8));
        assert_eq!(b.stamp("a", None), Some(7));
        assert_eq!(b.stamp("c", Some(4)), Some(4));
        assert_eq!(b.stamp("c", None), None);
        b.clear();
        assert_eq!(b.stamp("b", Some(1)), Some(1));
    }
}
