//! Reading ahead: a job's [`Source`] is read and parsed into batches on a thread of its own, while
//! the job's thread runs the operators on the batch before. On a machine with a core to spare
//! the parsing (a fifth of a counter job) leaves the processing thread's path.
//!
//! The batches are exactly those [`read_batch`] reads in line — same boundaries, same events,
//! same early end at a malformed line — and the position the job records in a checkpoint is
//! the end of the last batch it *took*, never what the thread has read beyond it. At most
//! [`AHEAD`] batches wait; when the job stops taking them (it ended or was stopped), the thread
//! ends at its next send.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use super::SourceError;
use super::io::{Pull, Source};
use crate::Batch;
use crate::checkpoint::SourcePosition;

/// Batches read ahead of the one being processed.
const AHEAD: usize = 2;

/// How often a job waiting for input looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A record the source refused as not an event, consumed under the skip error policy.
#[derive(Debug)]
pub(crate) struct Bad {
    /// Why it is not an event.
    pub message: String,
    /// Its bytes.
    pub raw: Vec<u8>,
}

/// One batch as read: its events, the records skipped among them, the error that ended it
/// early (if any), where the source stood after it, and why it ended.
#[derive(Debug)]
pub(crate) struct Taken {
    pub batch: Batch,
    pub bad: Vec<Bad>,
    pub failure: Option<SourceError>,
    pub position: SourcePosition,
    pub progress: u64,
    /// The input ended after this batch.
    pub end: bool,
    /// An unbounded source had caught up: the batch was cut short by `--batch-wait`.
    pub caught_up: bool,
}

/// How batches are cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    /// Events per batch.
    pub size: usize,
    /// How long an unbounded source that has caught up is waited for before a batch is cut
    /// short of its size.
    pub wait: Duration,
    /// Consume and report malformed records instead of ending the batch with an error.
    pub skip_bad: bool,
}

/// Read up to `cut.size` events. The batch ends early at the end of the input, at an error
/// (returned beside the events before it, which must still be processed: nothing before a bad
/// record is lost), or when an unbounded source has caught up and `cut.wait` brought nothing.
/// An empty batch is returned only at the end or an error, once `closed` is set, or — when
/// `idle_ok` — as soon as a source that has caught up brought nothing (so that the job can
/// make held output visible while its input is idle).
pub(crate) fn read_batch(source: &mut dyn Source, cut: Cut, closed: &AtomicBool, idle_ok: bool) -> Taken {
    let mut batch = Batch::new();
    let mut bad = Vec::new();
    let mut failure = None;
    let (mut end, mut caught_up) = (false, false);
    while batch.len() < cut.size {
        match source.next_into(&mut batch, cut.wait) {
            Ok(Pull::Event) => {}
            Ok(Pull::CaughtUp) => {
                if idle_ok || !batch.is_empty() || !bad.is_empty() || closed.load(Ordering::Relaxed) {
                    caught_up = true;
                    break;
                }
            }
            Ok(Pull::Waiting) => {
                if closed.load(Ordering::Relaxed) {
                    break;
                }
            }
            Ok(Pull::End) => {
                end = true;
                break;
            }
            Err(SourceError::Malformed { input, line, message }) if cut.skip_bad => match source.skip() {
                Ok(raw) => bad.push(Bad {
                    message: format!("input {input}, line {line}: {message}"),
                    raw,
                }),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            },
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    Taken {
        batch,
        bad,
        failure,
        position: source.position(),
        progress: source.progress(),
        end,
        caught_up,
    }
}

/// Batches of a [`Source`], read on a thread.
pub(crate) struct ReadAhead {
    name: String,
    unbounded: bool,
    pos: SourcePosition,
    progress: u64,
    batches: Receiver<Taken>,
    closed: Arc<AtomicBool>,
}

impl ReadAhead {
    /// Start reading `source` in batches cut as `cut` says.
    pub(crate) fn spawn(mut source: Box<dyn Source>, cut: Cut) -> std::io::Result<Self> {
        let name = source.name().to_string();
        let unbounded = source.is_unbounded();
        let pos = source.position();
        let progress = source.progress();
        let (tx, batches) = sync_channel(AHEAD);
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        std::thread::Builder::new()
            .name("cairn-input".into())
            .spawn(move || read_all(&mut *source, cut, tx, &flag))?;
        Ok(Self {
            name,
            unbounded,
            pos,
            progress,
            batches,
            closed,
        })
    }

    /// The input's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether the source never ends (a stream).
    pub(crate) fn is_unbounded(&self) -> bool {
        self.unbounded
    }

    /// Where the source stood after the batches taken so far.
    pub(crate) fn position(&self) -> &SourcePosition {
        &self.pos
    }

    /// How far the batches taken so far read, in the source's unit.
    pub(crate) fn progress(&self) -> u64 {
        self.progress
    }

    /// The next batch, as [`read_batch`] cut it; after the last one, an empty batch marked as
    /// the end. `None` when `stop` was set while waiting for it (the source may be blocked on
    /// input that never comes: the job stops at the position of the batches it took). With
    /// `tick`, an empty batch marked as caught up once no batch came for that long (the job's
    /// chance to move event time on an idle input).
    pub(crate) fn next_batch(&mut self, stop: &AtomicBool, tick: Option<Duration>) -> Option<Taken> {
        let waiting = std::time::Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            match self.batches.recv_timeout(STOP_POLL) {
                Ok(t) => {
                    self.pos = t.position.clone();
                    self.progress = t.progress;
                    return Some(t);
                }
                Err(RecvTimeoutError::Timeout) if tick.is_some_and(|t| waiting.elapsed() >= t) => {
                    return Some(self.empty(false));
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The thread sent its last batch (the end, or one that ended in an error).
                Err(RecvTimeoutError::Disconnected) => return Some(self.empty(true)),
            }
        }
    }

    /// An empty batch at the current position: the end, or an idle tick (caught up).
    fn empty(&self, end: bool) -> Taken {
        Taken {
            batch: Batch::new(),
            bad: Vec::new(),
            failure: None,
            position: self.pos.clone(),
            progress: self.progress,
            end,
            caught_up: !end,
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

fn read_all(source: &mut dyn Source, cut: Cut, tx: SyncSender<Taken>, closed: &AtomicBool) {
    // One empty batch after input stops coming, not one per wait.
    let mut idle_ok = false;
    loop {
        let taken = read_batch(source, cut, closed, idle_ok);
        idle_ok = !taken.batch.is_empty();
        let last = taken.failure.is_some() || taken.end;
        if closed.load(Ordering::Relaxed) || tx.send(taken).is_err() || last {
            super::cpu::record("input");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::checkpoint::JsonlPosition;
    use crate::runtime::JsonlSource;

    fn source(text: &str) -> Box<dyn Source> {
        Box::new(JsonlSource::from_reader(
            "test",
            Box::new(Cursor::new(text.as_bytes().to_vec())),
        ))
    }

    fn cut(size: usize, skip_bad: bool) -> Cut {
        Cut {
            size,
            wait: Duration::from_millis(10),
            skip_bad,
        }
    }

    fn line_of(p: &SourcePosition) -> u64 {
        JsonlPosition::from_source(p).unwrap().line
    }

    fn text() -> String {
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("{{\"key\":\"k{i}\",\"ts\":{i},\"value\":{i}}}\n"));
            if i == 6 {
                text.push('\n');
            }
        }
        text.push_str("not json\n{\"key\":\"z\",\"ts\":1,\"value\":1}\n");
        text
    }

    #[test]
    fn batches_and_positions_are_those_read_in_line() {
        let text = text();
        let never = AtomicBool::new(false);
        let mut inline = source(&text);
        let mut ahead = ReadAhead::spawn(source(&text), cut(4, false)).unwrap();
        assert_eq!(ahead.name(), "test");
        // Until the malformed line (a job stops there): the third batch.
        for n in 1..=3 {
            let want = read_batch(&mut *inline, cut(4, false), &never, false);
            let got = ahead.next_batch(&never, None).unwrap();
            let events = |b: &Batch| b.iter().map(|e| (e.key.to_string(), e.ts)).collect::<Vec<_>>();
            assert_eq!(events(&got.batch), events(&want.batch));
            assert_eq!(got.failure.is_some(), n == 3);
            assert_eq!(
                got.failure.map(|e| e.to_string()),
                want.failure.map(|e| e.to_string())
            );
            assert_eq!(ahead.position(), &inline.position());
        }
        // It ended at the malformed line 12; the position is that line's start.
        assert_eq!(line_of(ahead.position()), 11);
        assert!(ahead.next_batch(&never, None).unwrap().batch.is_empty());
        assert_eq!(line_of(ahead.position()), 11);
    }

    #[test]
    fn under_the_skip_policy_a_malformed_line_is_consumed_and_reported() {
        let never = AtomicBool::new(false);
        let mut src = source(&text());
        let first = read_batch(&mut *src, cut(100, true), &never, false);
        assert_eq!(first.batch.len(), 11);
        assert_eq!(first.bad.len(), 1);
        assert_eq!(first.bad[0].raw, b"not json");
        assert!(
            first.bad[0].message.contains("line 12"),
            "{}",
            first.bad[0].message
        );
        assert!(first.end && first.failure.is_none());
        assert_eq!(line_of(&first.position), 13);
    }

    #[test]
    fn a_stop_while_waiting_for_input_returns_at_once() {
        // A pipe that never ends: the reader blocks.
        let (reader, _writer) = std::io::pipe().unwrap();
        let src = Box::new(JsonlSource::from_reader(
            "pipe",
            Box::new(std::io::BufReader::new(reader)),
        ));
        let mut ahead = ReadAhead::spawn(src, cut(4, false)).unwrap();
        let stop = AtomicBool::new(false);
        let stopper = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::Relaxed);
            });
            let t = std::time::Instant::now();
            let got = ahead.next_batch(&stop, None);
            (got.is_none(), t.elapsed())
        });
        assert!(stopper.0, "stopped, no batch");
        assert!(stopper.1 < Duration::from_secs(5), "{:?}", stopper.1);
    }

    #[test]
    fn a_job_that_stops_taking_batches_ends_the_thread() {
        let text: String = (0..10_000)
            .map(|i| format!("{{\"key\":\"k\",\"ts\":{i},\"value\":1}}\n"))
            .collect();
        let never = AtomicBool::new(false);
        let mut ahead = ReadAhead::spawn(source(&text), cut(10, false)).unwrap();
        let first = ahead.next_batch(&never, None).unwrap();
        assert_eq!(first.batch.len(), 10);
        drop(ahead); // the thread's next send fails and it returns
    }
}
