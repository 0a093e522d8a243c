//! What a state holds, counted for its quotas: keys and bytes of the operator's entries, and
//! timers (entries under `cairn_codec::timers::PREFIX`) apart, against their own quota. The
//! host's other entries (state TTL bookkeeping, one or two per keyed scope) count as keys.

use cairn_codec::timers;

pub use super::error::StateError;

/// Quotas applied to every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuotas {
    /// Maximum number of keys (timers not included).
    pub max_keys: u64,
    /// Maximum bytes of keys plus values (timers not included).
    pub max_state_bytes: u64,
    /// Maximum bytes of one value.
    pub max_value_bytes: u64,
    /// Maximum number of timers.
    pub max_timers: u64,
}

impl Default for StateQuotas {
    fn default() -> Self {
        Self {
            max_keys: u64::MAX,
            max_state_bytes: u64::MAX,
            max_value_bytes: u64::MAX,
            max_timers: u64::MAX,
        }
    }
}

/// Live entries, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Live keys, timers not included.
    pub keys: usize,
    /// Bytes of those keys plus their values.
    pub bytes: u64,
    /// Live timers.
    pub timers: usize,
}

fn entry_bytes(key: &str, value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

impl Usage {
    /// A live entry appeared.
    pub fn add(&mut self, key: &str, value_len: usize) {
        if timers::is_timer(key) {
            self.timers += 1;
        } else {
            self.keys += 1;
            self.bytes += entry_bytes(key, value_len);
        }
    }

    /// A live entry went away.
    pub fn sub(&mut self, key: &str, value_len: usize) {
        if timers::is_timer(key) {
            self.timers -= 1;
        } else {
            self.keys -= 1;
            self.bytes -= entry_bytes(key, value_len);
        }
    }

    /// Check a write of a `value_len`-byte value under `key` (replacing a value of `old` bytes,
    /// if the key is live) against the quotas.
    pub fn check(
        &self,
        q: &StateQuotas,
        key: &str,
        value_len: usize,
        old: Option<usize>,
    ) -> Result<(), StateError> {
        if value_len as u64 > q.max_value_bytes {
            return Err(StateError::QuotaExceeded {
                limit: "max-value-bytes",
                value: q.max_value_bytes,
                detail: format!("value of {value_len} bytes for key {key:?}"),
            });
        }
        if timers::is_timer(key) {
            if old.is_none() && self.timers as u64 >= q.max_timers {
                let what =
                    timers::parse(key).map_or_else(|| key.to_string(), |(k, ts)| format!("{k:?} at {ts}"));
                return Err(StateError::QuotaExceeded {
                    limit: "max-timers",
                    value: q.max_timers,
                    detail: format!("registering the timer of {what}"),
                });
            }
            return Ok(());
        }
        if old.is_none() && self.keys as u64 >= q.max_keys {
            return Err(StateError::QuotaExceeded {
                limit: "max-keys",
                value: q.max_keys,
                detail: format!("adding key {key:?}"),
            });
        }
        let new_total = self.bytes - old.map_or(0, |o| entry_bytes(key, o)) + entry_bytes(key, value_len);
        if new_total > q.max_state_bytes && new_total > self.bytes {
            return Err(StateError::QuotaExceeded {
                limit: "max-state-bytes",
                value: q.max_state_bytes,
                detail: format!("state would hold {new_total} bytes"),
            });
        }
        Ok(())
    }
}
