use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use thiserror::Error;

use super::jsonl::encode_event;
use crate::EventRef;

/// A failure writing the output.
#[derive(Debug, Error)]
#[error("could not write output {output}")]
pub struct SinkError {
    /// The output's name.
    pub output: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

enum Target {
    File(BufWriter<File>),
    Stream(Box<dyn Write + Send>),
}

/// Events to a JSON Lines file or stdout, counting the bytes written (recorded in checkpoints
/// so a restart truncates the file to exactly what the checkpoint covered).
pub struct JsonlSink {
    target: Target,
    name: String,
    written: u64,
    line: Vec<u8>,
}

impl JsonlSink {
    /// Create or truncate `path` (`-` for stdout).
    pub fn create(path: &str) -> Result<Self, SinkError> {
        Self::open_at(path, 0)
    }

    /// Open `path` keeping its first `len` bytes and dropping the rest (recovery).
    pub fn open_at(path: &str, len: u64) -> Result<Self, SinkError> {
        let err = |source| SinkError {
            output: path.to_string(),
            source,
        };
        if path == "-" {
            if len != 0 {
                return Err(err(io::Error::other(
                    "stdout cannot be truncated to resume from a checkpoint; pass the output as a file",
                )));
            }
            return Ok(Self::from_writer(
                "stdout",
                Box::new(BufWriter::new(io::stdout())),
            ));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            // A device or a pipe (`/dev/null`, a FIFO): written as a stream, never truncated.
            if len != 0 {
                return Err(err(io::Error::other(
                    "it is not a regular file, so it cannot be truncated to resume from a checkpoint; pass the output as a file",
                )));
            }
            return Ok(Self::from_writer(
                path,
                Box::new(BufWriter::with_capacity(1 << 16, file)),
            ));
        }
        let actual = meta.len();
        if actual < len {
            return Err(err(io::Error::other(format!(
                "the checkpoint says {len} bytes were written but the file has only {actual}; \
                 was the output replaced or truncated? Restore it, or start over with a new checkpoint store"
            ))));
        }
        file.set_len(len).map_err(err)?;
        file.seek(SeekFrom::Start(len)).map_err(err)?;
        Ok(Self {
            target: Target::File(BufWriter::with_capacity(1 << 16, file)),
            name: path.to_string(),
            written: len,
            line: Vec::with_capacity(256),
        })
    }

    /// Events to any writer; `name` is used in errors.
    pub fn from_writer(name: &str, writer: Box<dyn Write + Send>) -> Self {
        Self {
            target: Target::Stream(writer),
            name: name.to_string(),
            written: 0,
            line: Vec::with_capacity(256),
        }
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes written so far (including any kept from before a restart).
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// A second handle to the output file (for a background fsync before a checkpoint
    /// commits); `None` for stdout or a writer.
    pub fn file_handle(&self) -> Option<File> {
        match &self.target {
            Target::File(w) => w.get_ref().try_clone().ok(),
            Target::Stream(_) => None,
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.target {
            Target::File(w) => w,
            Target::Stream(w) => w,
        }
    }

    /// Write one event as a JSON line.
    pub fn write_event<'a>(&mut self, event: impl Into<EventRef<'a>>) -> Result<(), SinkError> {
        let event = event.into();
        self.write_line(|line| encode_event(event, line))
    }

    /// Write one event that an operator could not process, with the error, as a JSON line
    /// `{"error": "...", "event": {"key": ..., "ts": ..., "value": ...}}`.
    pub fn write_dead_letter<'a>(
        &mut self,
        event: impl Into<EventRef<'a>>,
        error: &str,
    ) -> Result<(), SinkError> {
        let event = event.into();
        self.write_line(|line| {
            line.extend_from_slice(b"{\"error\":");
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *line, error);
            line.extend_from_slice(b",\"event\":");
            encode_event(event, line);
            line.pop(); // the event's newline
            line.extend_from_slice(b"}\n");
        })
    }

    /// Build one line in the reused buffer with `fill`, then write it.
    fn write_line(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<(), SinkError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        fill(&mut line);
        let r = self.writer().write_all(&line);
        self.written += line.len() as u64;
        self.line = line;
        r.map_err(|source| SinkError {
            output: self.name.clone(),
            source,
        })
    }

    /// Push buffered bytes to the OS.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.writer().flush().map_err(|source| SinkError {
            output: self.name.clone(),
            source,
        })
    }

    /// Flush and, for a file, fsync: after this the bytes counted by [`JsonlSink::len`] are
    /// durable (a checkpoint must not record more output than survives a crash).
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        if let Target::File(w) = &mut self.target {
            w.get_ref().sync_data().map_err(|source| SinkError {
                output: self.name.clone(),
                source,
            })?;
        }
        Ok(())
    }
}
