//! [`Limits`]: the one definition of every per-operator limit, its default and its name. The
//! pipeline TOML's `[[operators]]` sections deserialize into it (its fields flattened beside
//! `plugin` and `config`), and the command line's flags take their defaults from it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Per-operator limits. Exceeding one fails the current batch with an error naming the
/// plugin, the limit and its value; the batch's state writes are rolled back.
///
/// In a pipeline file every field is optional (its default applies), sizes are written like
/// `"256MiB"` or as a number of bytes, durations like `"10s"`:
///
/// ```toml
/// [[operators]]
/// plugin = "window.wasm"
/// timeout = "5s"
/// memory_limit = "64MiB"
/// max_keys = 100000
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline of one call into the plugin (`init`, `process`, `on-watermark`).
    /// Default 10s.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Fuel (roughly, wasm instructions) per call; `None` = unbounded (the default).
    pub fuel: Option<u64>,
    /// Linear memory of the instance, bytes. Default 256 MiB. TOML: `memory_limit`.
    #[serde(rename = "memory_limit", with = "size_usize")]
    pub memory_bytes: usize,
    /// Table elements of the instance. Default 100,000.
    pub table_elements: usize,
    /// Keys in the operator's state. Default 10,000,000.
    pub max_keys: u64,
    /// Bytes (keys + values) in the operator's state. Default 4 GiB.
    #[serde(with = "size_u64")]
    pub max_state_bytes: u64,
    /// Bytes of one state value. Default 16 MiB.
    #[serde(with = "size_u64")]
    pub max_value_bytes: u64,
    /// Event-time timers registered and not yet fired. Default 10,000,000.
    pub max_timers: u64,
    /// State TTL in event time: a keyed scope not written for this long (by the watermark) is
    /// expired, its entries never read again and removed. `None` (the default): never.
    /// TOML: `state_ttl = "1h"`.
    #[serde(with = "opt_duration_text")]
    pub state_ttl: Option<Duration>,
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
            max_timers: 10_000_000,
            state_ttl: None,
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

    /// Set the state TTL (event time).
    pub fn with_state_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// Set the timer quota.
    pub fn with_max_timers(mut self, max_timers: u64) -> Self {
        self.max_timers = max_timers;
        self
    }

    /// Check values that parse but make no sense; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("timeout: must be positive".into());
        }
        if self
            .state_ttl
            .is_some_and(|t| t.is_zero() || t.as_millis() > i64::MAX as u128)
        {
            return Err("state_ttl: must be positive and at most i64::MAX ms".into());
        }
        Ok(())
    }
}

/// A byte size written with an optional unit: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
/// `G`/`GB`/`GiB` (all powers of 1024). Displays in the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a size like 256MiB"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {text:?}; use B, KiB, MiB or GiB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n != 0 && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Number(u64),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Number(n) => Ok(ByteSize(n)),
            Text::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Parse a byte size (see [`ByteSize`]).
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<ByteSize>().map(|s| s.0)
}

mod size_u64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ByteSize;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        ByteSize(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Ok(ByteSize::deserialize(d)?.0)
    }
}

mod size_usize {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ByteSize;

    pub fn serialize<S: Serializer>(v: &usize, s: S) -> Result<S::Ok, S::Error> {
        ByteSize(*v as u64).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = ByteSize::deserialize(d)?.0;
        usize::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} bytes is too large")))
    }
}

mod duration_text {
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

mod opt_duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_defaults_come_from_one_place() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap(), ByteSize(256 << 20));
        assert_eq!(ByteSize(4 << 30).to_string(), "4GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
        assert!("5 parsecs".parse::<ByteSize>().is_err());
        let l: Limits =
            toml::from_str("timeout = \"5s\"\nmemory_limit = \"64MiB\"\nmax_state_bytes = 1024").unwrap();
        assert_eq!(l.timeout, Duration::from_secs(5));
        assert_eq!(l.memory_bytes, 64 << 20);
        assert_eq!(l.max_state_bytes, 1024);
        assert_eq!(l.max_keys, Limits::default().max_keys);
        let e = toml::from_str::<Limits>("max_kees = 5").unwrap_err().to_string();
        assert!(e.contains("unknown field `max_kees`"), "{e}");
        let back: Limits = toml::from_str(&toml::to_string(&Limits::default()).unwrap()).unwrap();
        assert_eq!(back, Limits::default());
    }
}
