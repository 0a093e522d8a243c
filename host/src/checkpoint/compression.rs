//! How hard a checkpoint's payload is compressed. Either way the result is one LZ4 block
//! (format flag `FLAG_LZ4`), read by the same decoder: the setting changes the size and the
//! write time, never what can read it, so it can change from one checkpoint to the next.

use std::fmt;
use std::str::FromStr;

/// The highest LZ4 HC level offered.
const MAX_LEVEL: u8 = 9;

/// The compressor of checkpoint payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// LZ4's fast mode (`lz4_flex`): ~500 MB/s, larger checkpoints.
    Fast,
    /// LZ4 HC (the reference C library) at this level, 1 to 9: smaller checkpoints (a window
    /// operator's state: 41% smaller at level 4 than `Fast`), written at ~90 MB/s at level 4,
    /// ~25 MB/s at 9; read as fast. (Levels 10 to 12, LZ4's optimal parser, are not offered:
    /// they crashed inside the C library in the build linked with RocksDB.)
    High(u8),
}

impl Default for Compression {
    /// LZ4 HC level 4: checkpoints are written off the processing thread, mostly as small
    /// deltas, and their size is what a store keeps and ships.
    fn default() -> Self {
        Compression::High(4)
    }
}

impl Compression {
    /// Compress `raw` into one LZ4 block (no size prefix).
    pub fn compress(self, raw: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Compression::Fast => Ok(lz4_flex::block::compress(raw)),
            Compression::High(level) => lz4::block::compress(
                raw,
                Some(lz4::block::CompressionMode::HIGHCOMPRESSION(i32::from(level))),
                false,
            )
            .map_err(|e| format!("LZ4 HC level {level} could not compress {} bytes: {e}", raw.len())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Fast => f.write_str("fast"),
            Compression::High(level) => write!(f, "high:{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    /// `fast`, `high` (level 4) or `high:<1-9>`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a compression: use fast, high, or high:<level 1-9>");
        match s {
            "fast" => Ok(Compression::Fast),
            "high" => Ok(Compression::default()),
            _ => {
                let level: u8 = s
                    .strip_prefix("high:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if !(1..=MAX_LEVEL).contains(&level) {
                    return Err(bad());
                }
                Ok(Compression::High(level))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Compression, MAX_LEVEL};

    proptest! {
        /// Every setting writes a block the one decoder reads back.
        #[test]
        fn every_setting_is_read_by_the_one_decoder(
            chunks in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..64), 0..40),
            level in 1u8..=MAX_LEVEL,
        ) {
            // Repetitive data, as state is: chunks repeated.
            let raw: Vec<u8> = chunks.iter().cycle().take(chunks.len() * 3).flatten().copied().collect();
            for c in [Compression::Fast, Compression::High(level)] {
                let block = c.compress(&raw).unwrap();
                prop_assert_eq!(lz4_flex::block::decompress(&block, raw.len()).unwrap(), raw.clone());
            }
        }
    }

    #[test]
    fn settings_parse_and_print() {
        for (text, c) in [
            ("fast", Compression::Fast),
            ("high", Compression::High(4)),
            ("high:9", Compression::High(9)),
        ] {
            assert_eq!(text.parse::<Compression>(), Ok(c));
        }
        assert_eq!(Compression::High(7).to_string().parse(), Ok(Compression::High(7)));
        for bad in ["", "slow", "high:0", "high:10", "high:x"] {
            let e = bad.parse::<Compression>().unwrap_err();
            assert!(e.contains("use fast, high"), "{e}");
        }
    }

    #[test]
    fn high_compression_is_smaller_on_repetitive_state() {
        let raw: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("11:sensor-{:04}/win/{:016x}", i % 2000, i / 7).into_bytes())
            .collect();
        let fast = Compression::Fast.compress(&raw).unwrap().len();
        let high = Compression::High(9).compress(&raw).unwrap().len();
        assert!(high < fast, "HC {high} vs fast {fast}");
    }
}
