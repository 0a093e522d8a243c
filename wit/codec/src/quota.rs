//! The state quota rule, applied by the host to every write and by cairn-sdk when it decides
//! whether a write may be held back (it may only if the host could not refuse it).

/// The state quotas of one operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Keys the state may hold.
    pub max_keys: u64,
    /// Bytes of keys plus values the state may hold.
    pub max_state_bytes: u64,
    /// Bytes one value may have.
    pub max_value_bytes: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_keys: u64::MAX,
            max_state_bytes: u64::MAX,
            max_value_bytes: u64::MAX,
        }
    }
}

/// Which quota a write would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// The value is larger than `max_value_bytes`.
    ValueBytes,
    /// The write adds a key to a state already holding `max_keys`.
    Keys,
    /// The state would grow past `max_state_bytes`; the total it would have.
    StateBytes(u64),
}

impl Breach {
    /// The quota's name, as errors show it.
    pub fn limit(self) -> &'static str {
        match self {
            Breach::ValueBytes => "max-value-bytes",
            Breach::Keys => "max-keys",
            Breach::StateBytes(_) => "max-state-bytes",
        }
    }

    /// The quota's configured value.
    pub fn value(self, q: &Quotas) -> u64 {
        match self {
            Breach::ValueBytes => q.max_value_bytes,
            Breach::Keys => q.max_keys,
            Breach::StateBytes(_) => q.max_state_bytes,
        }
    }
}

/// May a write of a `value_len`-byte value happen, given the state's `keys` and `bytes` now,
/// whether it adds a key, and the state's bytes after it? A write that shrinks the state is
/// allowed even above `max_state_bytes` (so an over-full state can be cleaned up).
pub fn check(
    q: &Quotas,
    value_len: u64,
    adds_key: bool,
    keys: u64,
    bytes: u64,
    bytes_after: u64,
) -> Result<(), Breach> {
    if value_len > q.max_value_bytes {
        return Err(Breach::ValueBytes);
    }
    if adds_key && keys >= q.max_keys {
        return Err(Breach::Keys);
    }
    if bytes_after > q.max_state_bytes && bytes_after > bytes {
        return Err(Breach::StateBytes(bytes_after));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        let q = Quotas {
            max_keys: 2,
            max_state_bytes: 10,
            max_value_bytes: 4,
        };
        assert_eq!(check(&q, 5, false, 0, 0, 5), Err(Breach::ValueBytes));
        assert_eq!(check(&q, 1, true, 2, 0, 2), Err(Breach::Keys));
        assert_eq!(check(&q, 1, false, 2, 0, 2), Ok(()));
        assert_eq!(check(&q, 4, true, 1, 8, 13), Err(Breach::StateBytes(13)));
        assert_eq!(check(&q, 1, false, 2, 14, 12), Ok(()), "shrinking is allowed");
        assert_eq!(Breach::Keys.limit(), "max-keys");
        assert_eq!(Breach::StateBytes(3).value(&q), 10);
    }
}
