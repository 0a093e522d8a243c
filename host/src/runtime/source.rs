use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use thiserror::Error;

use serde::{Deserialize, Serialize};

use super::jsonl::{check_key, parse_line, parse_line_into};
use crate::sandbox::ByteSize;

/// Bounds on what one input line may hold, so that bad input cannot exhaust memory. A line
/// past a bound is refused like a malformed line, with the input's name and line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputLimits {
    /// Bytes of one line. Default 16 MiB.
    pub max_line_bytes: ByteSize,
    /// Bytes of one event's key. Default 64 KiB.
    pub max_key_bytes: ByteSize,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: ByteSize(16 << 20),
            max_key_bytes: ByteSize(64 << 10),
        }
    }
}
use crate::{Batch, Event};

/// A failure reading the input.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The input could not be opened or read.
    #[error("could not read input {input}")]
    Io {
        /// The input's name.
        input: String,
        /// The OS error.
        source: io::Error,
    },
    /// A line is not an event.
    #[error(
        "input {input}, line {line}: {message}; each line must be a JSON object \
         {{\"key\": \"<string>\", \"ts\": <integer ms, optional>, \"value\": <any JSON>}}. \
         Events before this line were processed and written; fix the line and run again"
    )]
    Malformed {
        /// The input's name.
        input: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Events from a JSON Lines file or stdin, tracking the byte offset just past the last line
/// read (recorded in checkpoints so a restart resumes exactly there).
pub struct JsonlSource {
    reader: Box<dyn BufRead + Send>,
    name: String,
    offset: u64,
    line: u64,
    buf: Vec<u8>,
    limits: InputLimits,
    /// The line the last read refused as malformed: its bytes read so far, and whether more of
    /// it is unread (a line past `max_line_bytes`).
    refused: Option<(u64, bool)>,
    /// Recorded in the position (a job resumes only with its batch size).
    batch_size: Option<u64>,
}

impl JsonlSource {
    /// Open `path` (`-` for stdin).
    pub fn open(path: &str) -> Result<Self, SourceError> {
        Self::open_at(path, 0, 0)
    }

    /// Open `path` positioned at byte `offset`, which is the start of line `line + 1`.
    /// stdin cannot be positioned: an offset other than 0 is an error for it.
    pub fn open_at(path: &str, offset: u64, line: u64) -> Result<Self, SourceError> {
        let io_err = |source| SourceError::Io {
            input: path.to_string(),
            source,
        };
        if path == "-" {
            if offset != 0 {
                return Err(io_err(io::Error::other(
                    "stdin cannot be repositioned to resume from a checkpoint; pass the input as a file",
                )));
            }
            return Ok(Self::from_reader("stdin", Box::new(BufReader::new(io::stdin()))));
        }
        let mut file = File::open(path).map_err(io_err)?;
        if offset > 0 {
            let len = file.metadata().map_err(io_err)?.len();
            if offset > len {
                return Err(io_err(io::Error::other(format!(
                    "the checkpoint says {offset} bytes were consumed but the file has only {len}; \
                     was the input replaced? Use the original input, or start over with a new checkpoint store"
                ))));
            }
            file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        }
        let mut src = Self::from_reader(path, Box::new(BufReader::with_capacity(1 << 16, file)));
        src.offset = offset;
        src.line = line;
        Ok(src)
    }

    /// Events from any reader; `name` is used in errors.
    pub fn from_reader(name: &str, reader: Box<dyn BufRead + Send>) -> Self {
        Self {
            reader,
            name: name.to_string(),
            offset: 0,
            line: 0,
            buf: Vec::with_capacity(256),
            limits: InputLimits::default(),
            refused: None,
            batch_size: None,
        }
    }

    /// Apply `limits` to the lines read from now on.
    pub fn with_limits(mut self, limits: InputLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Record `n` events per batch in [`super::io::Source::position`].
    pub fn with_batch_size(mut self, n: u64) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// The input's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes consumed so far (whole lines only).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Lines consumed so far.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next event, or `None` at end of input. Blank lines are skipped. A malformed line is
    /// an error; the offset then still points at its start, so nothing is lost.
    pub fn next_event(&mut self) -> Result<Option<Event>, SourceError> {
        let mut event = None;
        let max_key = self.limits.max_key_bytes.0 as usize;
        self.next_with(|text, line_no| {
            let e = parse_line(text, line_no)?;
            check_key(&e.key, max_key)?;
            event = Some(e);
            Ok(())
        })?;
        Ok(event)
    }

    /// Like [`JsonlSource::next_event`], appending the event to `batch` (no allocation per
    /// event). Returns whether there was one.
    pub fn next_into(&mut self, batch: &mut Batch) -> Result<bool, SourceError> {
        let max_key = self.limits.max_key_bytes.0 as usize;
        self.next_with(|text, line_no| parse_line_into(text, line_no, batch, max_key))
    }

    /// Read up to the next non-blank line and hand it to `parse`; false at end of input.
    fn next_with(
        &mut self,
        parse: impl FnOnce(&[u8], u64) -> Result<(), String>,
    ) -> Result<bool, SourceError> {
        let max_line = self.limits.max_line_bytes.0;
        self.refused = None;
        loop {
            self.buf.clear();
            // At most one byte past the bound: a longer line is refused without reading it all.
            let n = (&mut self.reader)
                .take(max_line.saturating_add(1))
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| SourceError::Io {
                    input: self.name.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(false);
            }
            let line_no = self.line + 1;
            let content = self.buf.len() - usize::from(self.buf.last() == Some(&b'\n'));
            if content as u64 > max_line {
                self.refused = Some((n as u64, self.buf.last() != Some(&b'\n')));
                return Err(SourceError::Malformed {
                    input: self.name.clone(),
                    line: line_no,
                    message: format!(
                        "the line is longer than max_line_bytes = {}",
                        self.limits.max_line_bytes
                    ),
                });
            }
            let text = trim(&self.buf);
            if text.is_empty() {
                self.line = line_no;
                self.offset += n as u64;
                continue;
            }
            if let Err(message) = parse(text, line_no) {
                self.refused = Some((n as u64, false));
                return Err(SourceError::Malformed {
                    input: self.name.clone(),
                    line: line_no,
                    message,
                });
            }
            self.line = line_no;
            self.offset += n as u64;
            return Ok(true);
        }
    }
}

impl super::io::Source for JsonlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> crate::checkpoint::SourcePosition {
        crate::checkpoint::JsonlPosition {
            input: self.name.clone(),
            offset: self.offset,
            line: self.line,
            batch_size: self.batch_size,
        }
        .to_source()
    }

    fn progress(&self) -> u64 {
        self.offset
    }

    fn next_into(
        &mut self,
        batch: &mut Batch,
        _wait: std::time::Duration,
    ) -> Result<super::io::Pull, SourceError> {
        Ok(if JsonlSource::next_into(self, batch)? {
            super::io::Pull::Event
        } else {
            super::io::Pull::End
        })
    }

    /// The refused line's first `max_line_bytes` (a longer line's rest is read and dropped).
    fn skip(&mut self) -> Result<Vec<u8>, SourceError> {
        let Some((mut n, more)) = self.refused.take() else {
            return Ok(Vec::new());
        };
        let line = trim(&self.buf).to_vec();
        if more {
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = (&mut self.reader)
                    .take(1 << 20)
                    .read_until(b'\n', &mut rest)
                    .map_err(|source| SourceError::Io {
                        input: self.name.clone(),
                        source,
                    })?;
                n += m as u64;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        self.offset += n;
        self.line += 1;
        Ok(line)
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., last] = b
        && last.is_ascii_whitespace()
    {
        b = rest;
    }
    while let [first, rest @ ..] = b
        && first.is_ascii_whitespace()
    {
        b = rest;
    }
    b
}
