//! What the end-to-end bench's native programs (`src/bin/native-*.rs`) share: reading the input
//! in batches and moving the watermark as `cairn run` does, so that their output is Cairn's.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::Path;

use anyhow::Result;

/// The lines of a file in batches of up to `size`.
pub struct LineBatches {
    lines: Lines<BufReader<File>>,
    size: usize,
}

impl LineBatches {
    /// Read `path` in batches of `size` lines.
    pub fn open(path: impl AsRef<Path>, size: usize) -> Result<Self> {
        Ok(Self {
            lines: BufReader::with_capacity(1 << 16, File::open(path)?).lines(),
            size: size.max(1),
        })
    }
}

impl Iterator for LineBatches {
    type Item = Result<Vec<String>>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch: Result<Vec<String>, _> = self.lines.by_ref().take(self.size).collect();
        match batch {
            Ok(b) if b.is_empty() => None,
            Ok(b) => Some(Ok(b)),
            Err(e) => Some(Err(e.into())),
        }
    }
}

/// The watermark as `cairn run` moves it: after each batch, to the batch's highest ts if that
/// is higher.
#[derive(Debug, Default, Clone, Copy)]
pub struct Watermark(Option<i64>);

impl Watermark {
    /// The watermark in force (none before the first batch).
    pub fn get(&self) -> Option<i64> {
        self.0
    }

    /// A batch whose highest ts was `max` ended: the new watermark if it moved.
    pub fn after_batch(&mut self, max: Option<i64>) -> Option<i64> {
        if max > self.0 {
            self.0 = max;
            max
        } else {
            None
        }
    }
}
