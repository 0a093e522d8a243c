//! Numeric aggregates shared by operators: count, sum, min, max, average and standard
//! deviation, updated one value at a time (Welford's algorithm, stable for long streams).

use serde::{Deserialize, Serialize};

/// A running aggregate of numbers; serializable so it can live in state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest value (`None` before the first).
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared differences from the mean (Welford's M2).
    pub m2: f64,
}

/// What operators emit for a [`Stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Sum.
    pub sum: f64,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Average (`None` when empty).
    pub avg: Option<f64>,
    /// Population standard deviation (`None` when empty).
    pub stddev: Option<f64>,
}

impl Stats {
    /// Add one value.
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The figures to emit.
    pub fn summary(&self) -> Summary {
        let n = self.count;
        Summary {
            count: n,
            sum: self.sum,
            min: self.min,
            max: self.max,
            avg: (n > 0).then_some(self.mean),
            stddev: (n > 0).then(|| (self.m2 / n as f64).max(0.0).sqrt()),
        }
    }

    /// The length of [`Stats::to_bytes`].
    pub const BYTES: usize = 49;

    /// A compact binary form for state (no JSON to write or parse per update): a flags byte
    /// (bit 0: `min` set, bit 1: `max` set), then `count` (u64) and `sum`, `min`, `max`,
    /// `mean`, `m2` (f64 bits), little-endian. Exact: every float comes back bit for bit.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[0] = u8::from(self.min.is_some()) | (u8::from(self.max.is_some()) << 1);
        out[1..9].copy_from_slice(&self.count.to_le_bytes());
        let floats = [
            self.sum,
            self.min.unwrap_or(0.0),
            self.max.unwrap_or(0.0),
            self.mean,
            self.m2,
        ];
        for (i, f) in floats.iter().enumerate() {
            out[9 + 8 * i..17 + 8 * i].copy_from_slice(&f.to_bits().to_le_bytes());
        }
        out
    }

    /// The form to store: [`Stats::to_bytes`], or — for the aggregate of one value `x`, which
    /// is exactly what adding `x` to an empty one gives, bit for bit — the flags byte 4 and
    /// `x`'s bits (9 bytes: short enough for the host to keep in place and to answer a read
    /// inline, where 49 bytes cost an allocation on each side).
    pub fn stored(&self) -> StoredStats {
        let x = self.sum;
        let one = self.count == 1
            && self.min.map(f64::to_bits) == Some(x.to_bits())
            && self.max.map(f64::to_bits) == Some(x.to_bits())
            && self.mean.to_bits() == x.to_bits()
            && self.m2.to_bits() == 0;
        let mut buf = [0u8; Self::BYTES];
        if one {
            buf[0] = ONE_VALUE;
            buf[1..9].copy_from_slice(&x.to_bits().to_le_bytes());
            StoredStats { buf, len: 9 }
        } else {
            buf = self.to_bytes();
            StoredStats {
                buf,
                len: Self::BYTES as u8,
            }
        }
    }

    /// Read what [`Stats::stored`] or [`Stats::to_bytes`] wrote, or the JSON form earlier
    /// versions stored (a value starting with `{`); `None` for anything else.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes).ok();
        }
        if bytes.len() == 9 && bytes[0] == ONE_VALUE {
            let x = f64::from_bits(u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes")));
            return Some(Self {
                count: 1,
                sum: x,
                min: Some(x),
                max: Some(x),
                mean: x,
                m2: 0.0,
            });
        }
        if bytes.len() != Self::BYTES || bytes[0] & !3 != 0 {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let f = |i: usize| f64::from_bits(u64_at(9 + 8 * i));
        Some(Self {
            count: u64_at(1),
            sum: f(0),
            min: (bytes[0] & 1 != 0).then(|| f(1)),
            max: (bytes[0] & 2 != 0).then(|| f(2)),
            mean: f(3),
            m2: f(4),
        })
    }
}

/// The flags byte of [`Stats::stored`]'s one-value form.
const ONE_VALUE: u8 = 4;

/// What [`Stats::stored`] gives: the bytes to store.
#[derive(Debug, Clone, Copy)]
pub struct StoredStats {
    buf: [u8; Stats::BYTES],
    len: u8,
}

impl std::ops::Deref for StoredStats {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The number at `path` in a JSON value: a field name, a dotted path (`"a.b"`), or `""` for
/// the value itself. Numbers and numeric strings count; anything else is `None`.
pub fn number_at(value: &serde_json::Value, path: &str) -> Option<f64> {
    let v = value_at(value, path)?;
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The JSON value at `path` (see [`number_at`]).
pub fn value_at<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, part| match v {
        serde_json::Value::Object(m) => m.get(part),
        serde_json::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_the_two_pass_formula() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut s = Stats::default();
        xs.iter().for_each(|&x| s.add(x));
        let sum = s.summary();
        assert_eq!(
            (sum.count, sum.sum, sum.min, sum.max),
            (8, 40.0, Some(2.0), Some(9.0))
        );
        assert_eq!(sum.avg, Some(5.0));
        assert!((sum.stddev.unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(Stats::default().summary().avg, None);
    }

    #[test]
    fn paths() {
        let v = serde_json::json!({"a": {"b": [1, "2.5"]}, "t": 3});
        assert_eq!(number_at(&v, "t"), Some(3.0));
        assert_eq!(number_at(&v, "a.b.1"), Some(2.5));
        assert_eq!(number_at(&v, "a.x"), None);
        assert_eq!(number_at(&serde_json::json!(4), ""), Some(4.0));
    }
}

#[cfg(test)]
mod binary_tests {
    use proptest::prelude::*;

    use super::Stats;

    proptest! {
        /// What `stored` writes reads back bit for bit, whatever was added (NaN, infinities,
        /// -0.0 included), and one ordinary value takes the 9-byte form.
        #[test]
        fn the_stored_form_round_trips_bit_for_bit(xs in proptest::collection::vec(any::<u64>(), 0..4)) {
            let mut s = Stats::default();
            for x in &xs {
                s.add(f64::from_bits(*x));
            }
            let back = Stats::from_stored(&s.stored()).expect("reads back");
            prop_assert_eq!(back.to_bytes(), s.to_bytes());
            let x = xs.first().map(|b| f64::from_bits(*b));
            if xs.len() == 1 && x.is_some_and(|x| x.is_finite() && x.to_bits() != (-0.0f64).to_bits()) {
                prop_assert_eq!(s.stored().len(), 9);
            }
            if xs.len() != 1 {
                prop_assert_eq!(s.stored().len(), Stats::BYTES);
            }
        }
    }

    #[test]
    fn the_binary_form_round_trips_exactly_and_json_still_reads() {
        let mut s = Stats::default();
        assert_eq!(Stats::from_stored(&s.to_bytes()), Some(s.clone()));
        for x in [0.1, -3.25, 12.5, 7.0] {
            s.add(x);
        }
        assert_eq!(Stats::from_stored(&s.to_bytes()), Some(s.clone()));
        // (JSON has no infinity: the binary form keeps one.)
        let mut huge = s.clone();
        huge.add(1e300);
        huge.add(-1e300);
        assert!(huge.m2.is_infinite());
        assert_eq!(Stats::from_stored(&huge.to_bytes()), Some(huge));
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(Stats::from_stored(&json), Some(s.clone()));
        assert_eq!(Stats::from_stored(b"\x07"), None);
        let mut bad = s.to_bytes();
        bad[0] = 4;
        assert_eq!(Stats::from_stored(&bad), None);
    }
}
