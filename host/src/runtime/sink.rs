use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use thiserror::Error;

use super::jsonl::encode_event;
use super::writer::Background;
use crate::{Batch, EventRef};

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
    /// Encoded and written by a thread of its own ([`JsonlSink::in_background`]); the file
    /// (if it is one) kept for fsyncs.
    Background(Background, Option<File>),
    /// Only while switching targets.
    Moved,
}

/// Events to a JSON Lines file or stdout, counting the bytes written (recorded in checkpoints
/// so a restart truncates the file to exactly what the checkpoint covered). Written on the
/// calling thread, or on a thread of its own after [`JsonlSink::in_background`].
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

    /// Encode and write on a thread of its own from now on: [`JsonlSink::write_batch`] hands a
    /// batch over and returns. The byte count, flushes and syncs wait for the thread, so they
    /// mean what they mean on the calling thread; a write error is reported by the next call.
    pub fn in_background(mut self) -> Result<Self, SinkError> {
        let err = |source| SinkError {
            output: self.name.clone(),
            source,
        };
        let (out, file): (Box<dyn Write + Send>, _) = match std::mem::replace(&mut self.target, Target::Moved)
        {
            Target::File(w) => {
                let file = w.into_inner().map_err(|e| err(e.into_error()))?;
                let kept = file.try_clone().map_err(err)?;
                (Box::new(file), Some(kept))
            }
            Target::Stream(w) => (w, None),
            t @ (Target::Background(..) | Target::Moved) => {
                self.target = t;
                return Ok(self);
            }
        };
        self.target = Target::Background(Background::start(out, self.written).map_err(err)?, file);
        Ok(self)
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes written so far (including any kept from before a restart). In the background,
    /// this waits until the thread has encoded everything handed over.
    pub fn len(&self) -> u64 {
        match &self.target {
            // An error is the next write's or flush's to report: the count stays as it was.
            Target::Background(bg, _) => bg.count().unwrap_or(self.written),
            _ => self.written,
        }
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A second handle to the output file (for a background fsync before a checkpoint
    /// commits); `None` for stdout or a writer.
    pub fn file_handle(&self) -> Option<File> {
        match &self.target {
            Target::File(w) => w.get_ref().try_clone().ok(),
            Target::Background(_, file) => file.as_ref().and_then(|f| f.try_clone().ok()),
            Target::Stream(_) | Target::Moved => None,
        }
    }

    fn failed(&self, source: io::Error) -> SinkError {
        SinkError {
            output: self.name.clone(),
            source,
        }
    }

    /// Write a batch's output events, one JSON line each (in the background: hand it over).
    pub fn write_batch(&mut self, out: Batch) -> Result<(), SinkError> {
        if let Target::Background(bg, _) = &self.target {
            return bg.events(out).map_err(|e| self.failed(e));
        }
        for e in &out {
            self.write_event(e)?;
        }
        Ok(())
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

    /// Write a record of the input that is not an event, with why, as a JSON line
    /// `{"error": "...", "record": "<its text, invalid UTF-8 replaced>"}`.
    pub fn write_bad_record(&mut self, raw: &[u8], error: &str) -> Result<(), SinkError> {
        self.write_line(|line| {
            line.extend_from_slice(b"{\"error\":");
            let _ = serde_json::to_writer(&mut *line, error);
            line.extend_from_slice(b",\"record\":");
            let _ = serde_json::to_writer(&mut *line, &String::from_utf8_lossy(raw));
            line.extend_from_slice(b"}\n");
        })
    }

    /// Build one line in the reused buffer with `fill`, then write it.
    fn write_line(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<(), SinkError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        fill(&mut line);
        let r = match &mut self.target {
            Target::File(w) => w.write_all(&line),
            Target::Stream(w) => w.write_all(&line),
            Target::Background(bg, _) => bg.bytes(line.clone()),
            Target::Moved => Ok(()),
        };
        self.written += line.len() as u64;
        self.line = line;
        r.map_err(|e| self.failed(e))
    }

    /// Push buffered bytes to the OS.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        let r = match &mut self.target {
            Target::File(w) => w.flush(),
            Target::Stream(w) => w.flush(),
            Target::Background(bg, _) => bg.flush().map(|n| self.written = n),
            Target::Moved => Ok(()),
        };
        r.map_err(|e| self.failed(e))
    }

    /// Flush and, for a file, fsync: after this the bytes counted by [`JsonlSink::len`] are
    /// durable (a checkpoint must not record more output than survives a crash).
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        let file = match &self.target {
            Target::File(w) => Some(w.get_ref()),
            Target::Background(_, file) => file.as_ref(),
            Target::Stream(_) | Target::Moved => None,
        };
        if let Some(f) = file {
            f.sync_data().map_err(|e| self.failed(e))?;
        }
        Ok(())
    }
}

impl super::io::Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, out: Batch) -> Result<(), SinkError> {
        JsonlSink::write_batch(self, out)
    }

    /// Flushed to the OS; the checkpoint fsyncs the file before it commits.
    fn prepare(&mut self) -> Result<(u64, crate::checkpoint::SinkPosition), SinkError> {
        JsonlSink::flush(self)?;
        Ok((JsonlSink::len(self), Default::default()))
    }

    fn durable_file(&self) -> Option<File> {
        self.file_handle()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        JsonlSink::flush(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(from: i64, n: i64) -> Batch {
        let mut b = Batch::new();
        for ts in from..from + n {
            let value = if ts % 3 == 0 {
                b"not json".to_vec()
            } else {
                format!("{{\"n\":{ts}}}").into_bytes()
            };
            b.push(&format!("k\"{}", ts % 7), ts, &value).unwrap();
        }
        b
    }

    /// The same calls on a sink writing in line and one writing in the background.
    fn write(sink: &mut JsonlSink) -> Vec<u64> {
        let mut lens = Vec::new();
        for round in 0..50 {
            sink.write_batch(batch(round * 1000, 997)).unwrap();
            lens.push(sink.len());
            sink.write_event(EventRef {
                key: "one",
                ts: round,
                value: b"[1]",
            })
            .unwrap();
            sink.write_dead_letter(
                EventRef {
                    key: "bad",
                    ts: round,
                    value: b"x",
                },
                "it failed",
            )
            .unwrap();
            if round % 10 == 0 {
                sink.flush().unwrap();
                lens.push(sink.len());
            }
        }
        sink.sync().unwrap();
        lens.push(sink.len());
        lens
    }

    #[test]
    fn the_background_writes_the_same_bytes_and_counts_them_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        let mut inline = JsonlSink::create(a.to_str().unwrap()).unwrap();
        let mut background = JsonlSink::create(b.to_str().unwrap())
            .unwrap()
            .in_background()
            .unwrap();
        assert_eq!(write(&mut inline), write(&mut background));
        assert!(background.file_handle().is_some());
        drop(background);
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(a.len() > 1_000_000, "{} bytes", a.len());
        assert_eq!(a, b);
        // Resuming in the background keeps the bytes counted before.
        let dir2 = tempfile::tempdir().unwrap();
        let c = dir2.path().join("c.jsonl");
        std::fs::write(&c, b"{\"key\":\"k\",\"ts\":1,\"value\":1}\n").unwrap();
        let resumed = JsonlSink::open_at(c.to_str().unwrap(), 29)
            .unwrap()
            .in_background()
            .unwrap();
        assert_eq!(resumed.len(), 29);
    }

    #[test]
    fn a_write_error_in_the_background_is_reported_and_sticks() {
        let mut sink = JsonlSink::create("/dev/full").unwrap().in_background().unwrap();
        // Handing over succeeds until the thread has met the error (it writes 64 KiB at a time).
        let mut reported = None;
        for round in 0..200 {
            if let Err(e) = sink.write_batch(batch(round * 1000, 1000)) {
                reported = Some(e);
                break;
            }
        }
        let e = reported.unwrap_or_else(|| sink.flush().unwrap_err());
        assert_eq!(e.output, "/dev/full");
        assert!(
            e.source.to_string().contains("No space left"),
            "{e:?}: {}",
            e.source
        );
        // Sticky: a flush after it fails too, so no checkpoint counts the lost output.
        assert!(sink.flush().is_err());
    }
}
