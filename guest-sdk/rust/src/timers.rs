//! Event-time timers: ask to be called back ([`crate::Operator::on_timer`]) for a stream key
//! once the watermark reaches a time. The host keeps timers with the state (checkpointed,
//! undone with a failed batch, split by key group); a timer fires once, in (ts, key) order,
//! before [`crate::Operator::on_watermark`], in its key's scope.
//!
//! ```
//! use cairn_sdk::{timers, state};
//! # state::native::reset(Default::default());
//! // Close this key's window at its end.
//! timers::register("sensor-1", 60_000)?;
//! timers::register("sensor-1", 60_000)?; // one timer per (key, ts)
//! assert!(timers::delete("sensor-1", 60_000));
//! assert!(!timers::delete("sensor-1", 60_000));
//! # Ok::<(), cairn_sdk::state::StateError>(())
//! ```
//!
//! Where event time decides something (is this event late? what has expired?), ask
//! [`watermark`]: the host's watermark, the highest event time of the batches before this one.
//! It moves between batches, never inside one, so decisions do not depend on the order of
//! events within a batch, and a replay after a crash decides the same.

use crate::state::StateError;

/// Call [`crate::Operator::on_timer`] with (`key`, `ts`) once the watermark reaches `ts`.
/// Registering the same (key, ts) again changes nothing. Refused beyond the `max-timers` quota.
pub fn register(key: &str, ts: i64) -> Result<(), StateError> {
    backend::register(key, ts)
}

/// Cancel the timer (`key`, `ts`); returns whether there was one.
pub fn delete(key: &str, ts: i64) -> bool {
    backend::delete(key, ts)
}

/// The host's watermark: the highest event time of the batches before this call; `None`
/// before the first event. Read from the host once per call (it moves only between calls).
pub fn watermark() -> Option<i64> {
    backend::watermark()
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod backend {
    use crate::__bindings::cairn::operator::timers as host;
    use crate::state::StateError;

    pub fn register(key: &str, ts: i64) -> Result<(), StateError> {
        crate::state::backend::register_timer(key, ts)
    }

    pub fn delete(key: &str, ts: i64) -> bool {
        crate::state::backend::delete_timer(key, ts)
    }

    thread_local! {
        /// The watermark, read once per export call: it moves only between calls.
        static WATERMARK: std::cell::Cell<Option<Option<i64>>> = const { std::cell::Cell::new(None) };
    }

    pub fn watermark() -> Option<i64> {
        WATERMARK.with(|w| match w.get() {
            Some(v) => v,
            None => {
                let v = host::current_watermark();
                w.set(Some(v));
                v
            }
        })
    }

    /// An export call begins: the watermark may have moved since the last.
    pub fn forget_watermark() {
        WATERMARK.with(|w| w.set(None));
    }
}

/// Natively (unit tests), timers are entries of the in-memory state, as in the host, and the
/// watermark is what [`crate::testing::Harness`] last advanced it to.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod backend {
    use std::cell::Cell;

    use cairn_codec::timers;

    use crate::state::StateError;

    thread_local! {
        static WATERMARK: Cell<Option<i64>> = const { Cell::new(None) };
    }

    pub fn register(key: &str, ts: i64) -> Result<(), StateError> {
        crate::state::native::insert(timers::entry_key(key, ts), Vec::new());
        Ok(())
    }

    pub fn delete(key: &str, ts: i64) -> bool {
        crate::state::native::take(&timers::entry_key(key, ts))
    }

    pub fn watermark() -> Option<i64> {
        WATERMARK.with(Cell::get)
    }

    pub fn set_watermark(w: Option<i64>) {
        WATERMARK.with(|c| c.set(w));
    }

    /// (The host's watermark is read once per call; natively it is the harness's.)
    pub fn forget_watermark() {}

    /// Remove and return up to `limit` timers with `ts <= watermark`, in (ts, key) order.
    pub fn take_due(watermark: i64, limit: usize) -> Vec<(String, i64)> {
        let bound = timers::after_ts(watermark);
        let due: Vec<(String, i64)> = crate::state::native::snapshot()
            .range(timers::PREFIX.to_string()..bound)
            .take(limit)
            .filter_map(|(k, _)| timers::parse(k).map(|(key, ts)| (key.to_string(), ts)))
            .collect();
        for (k, ts) in &due {
            crate::state::native::take(&timers::entry_key(k, *ts));
        }
        due
    }
}
