//! The output written on a thread of its own: the job hands each batch's output over as it is
//! (no copy, no encoding on the processing thread) and a `cairn-output` thread encodes it as
//! JSON Lines and writes it, in order. The processing thread only waits for it where the
//! output must be exact: when it asks how many bytes were written (a checkpoint records it),
//! and at a flush.
//!
//! A write error stops the writing (nothing after it is written) and is reported to the
//! processing thread at its next hand-over, flush or count, so a checkpoint never records
//! output that did not reach the OS.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::jsonl::encode_event;
use crate::Batch;

/// Bytes encoded before the thread writes them out (and the size of its writes).
const CHUNK: usize = 1 << 16;

/// Output batches in flight at most (the processing thread waits beyond).
const IN_FLIGHT: usize = 4;

enum Msg {
    /// A batch's output events, encoded and written in order.
    Events(Batch),
    /// Lines already encoded (events written one by one, dead letters).
    Bytes(Vec<u8>),
    /// Write out everything so far and flush it to the OS; answer with the bytes written.
    Flush(SyncSender<Result<u64, Failure>>),
    /// Answer with the bytes encoded so far (after everything sent before).
    Count(SyncSender<Result<u64, Failure>>),
}

/// A write error, kept to be reported again (`io::Error` is not `Clone`).
#[derive(Debug, Clone)]
pub(super) struct Failure {
    kind: io::ErrorKind,
    message: String,
}

impl From<Failure> for io::Error {
    fn from(f: Failure) -> Self {
        io::Error::new(f.kind, f.message)
    }
}

/// The processing thread's end.
pub(super) struct Background {
    tx: Option<SyncSender<Msg>>,
    failed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Start the writer thread on `out`, which already holds `written` bytes.
    pub fn start(out: Box<dyn Write + Send>, written: u64) -> io::Result<Self> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-output".into())
            .spawn(move || write_all(rx, out, written, &flag))?;
        Ok(Self {
            tx: Some(tx),
            failed,
            thread: Some(thread),
        })
    }

    fn send(&self, msg: Msg) -> io::Result<()> {
        let tx = self.tx.as_ref().expect("open until dropped");
        tx.send(msg)
            .map_err(|_| io::Error::other("the output writer thread stopped"))
    }

    /// Hand over a batch's output; an earlier write error is reported here.
    pub fn events(&self, out: Batch) -> io::Result<()> {
        self.check()?;
        self.send(Msg::Events(out))
    }

    /// Hand over encoded lines.
    pub fn bytes(&self, lines: Vec<u8>) -> io::Result<()> {
        self.check()?;
        self.send(Msg::Bytes(lines))
    }

    /// Everything handed over written and flushed to the OS; the bytes written.
    pub fn flush(&self) -> io::Result<u64> {
        self.ask(Msg::Flush)
    }

    /// The bytes encoded from everything handed over so far.
    pub fn count(&self) -> io::Result<u64> {
        self.ask(Msg::Count)
    }

    fn ask(&self, msg: fn(SyncSender<Result<u64, Failure>>) -> Msg) -> io::Result<u64> {
        let (reply, answer) = sync_channel(1);
        self.send(msg(reply))?;
        let r = answer
            .recv()
            .map_err(|_| io::Error::other("the output writer thread stopped"))?;
        r.map_err(io::Error::from)
    }

    /// Report a write error the thread met, if any.
    fn check(&self) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            self.count()?;
        }
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has written everything.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread's side: the output, the bytes encoded and not yet written, and the
/// first write error.
struct Writer {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    written: u64,
    failure: Option<Failure>,
}

impl Writer {
    /// Write out what is encoded once it fills a chunk (or now, flushed, with `flush`).
    fn put(&mut self, flush: bool, failed: &AtomicBool) {
        if self.failure.is_some() || !(flush || self.buf.len() >= CHUNK) {
            return;
        }
        let r = self
            .out
            .write_all(&self.buf)
            .and_then(|()| if flush { self.out.flush() } else { Ok(()) });
        self.buf.clear();
        if let Err(e) = r {
            self.failure = Some(Failure {
                kind: e.kind(),
                message: e.to_string(),
            });
            failed.store(true, Ordering::Release);
        }
    }

    fn answer(&self) -> Result<u64, Failure> {
        self.failure.clone().map_or(Ok(self.written), Err)
    }
}

/// The writer thread: encode and write what arrives, in order, until the channel closes.
fn write_all(rx: Receiver<Msg>, out: Box<dyn Write + Send>, written: u64, failed: &AtomicBool) {
    let mut w = Writer {
        out,
        buf: Vec::with_capacity(CHUNK + 4096),
        written,
        failure: None,
    };
    for msg in rx {
        match msg {
            Msg::Events(batch) if w.failure.is_none() => {
                for e in &batch {
                    let before = w.buf.len();
                    encode_event(e, &mut w.buf);
                    w.written += (w.buf.len() - before) as u64;
                    w.put(false, failed);
                }
            }
            Msg::Bytes(lines) if w.failure.is_none() => {
                w.written += lines.len() as u64;
                w.buf.extend_from_slice(&lines);
                w.put(false, failed);
            }
            // After a write error nothing more is written.
            Msg::Events(_) | Msg::Bytes(_) => {}
            Msg::Flush(reply) => {
                w.put(true, failed);
                let _ = reply.send(w.answer());
            }
            Msg::Count(reply) => {
                let _ = reply.send(w.answer());
            }
        }
    }
    w.put(true, failed);
    super::cpu::record("output");
}
