use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-operator limits. Exceeding one fails the current batch with an error naming the
/// plugin, the limit and its value; the batch's state writes are rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock deadline of one call into the plugin (`init`, `process`, `on-watermark`).
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Maximum fuel (roughly, wasm instructions) per call; `None` = unbounded.
    pub fuel: Option<u64>,
    /// Maximum linear memory of the instance, bytes.
    pub memory_bytes: usize,
    /// Maximum table elements of the instance.
    pub table_elements: usize,
    /// Maximum number of keys in the operator's state.
    pub max_keys: u64,
    /// Maximum total bytes (keys + values) in the operator's state.
    pub max_state_bytes: u64,
    /// Maximum size of one state value, bytes.
    pub max_value_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            fuel: None,
            memory_bytes: 256 << 20,
            table_elements: 100_000,
            max_keys: 10_000_000,
            max_state_bytes: 4 << 30,
            max_value_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// Set the per-call deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Set the per-call fuel budget.
    pub fn with_fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }

    /// Set the linear memory cap.
    pub fn with_memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Set the state quotas.
    pub fn with_state_quotas(mut self, max_keys: u64, max_state_bytes: u64, max_value_bytes: u64) -> Self {
        self.max_keys = max_keys;
        self.max_state_bytes = max_state_bytes;
        self.max_value_bytes = max_value_bytes;
        self
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
