//! Reading ahead: a job's input is read and parsed into batches on a thread of its own, while
//! the job's thread runs the operators on the batch before. On a machine with a core to spare
//! the parsing (a fifth of a counter job) leaves the processing thread's path.
//!
//! The batches are exactly those [`read_batch`] reads in line — same boundaries, same events,
//! same early end at a malformed line — and the position the job records in a checkpoint is
//! the end of the last batch it *took*, never what the thread has read beyond it. At most
//! [`AHEAD`] batches wait; when the job stops taking them (it ended or was stopped), the thread
//! ends at its next send.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::run::read_batch;
use super::{JsonlSource, SourceError};
use crate::Batch;

/// Batches read ahead of the one being processed.
const AHEAD: usize = 2;

/// A batch, the error that ended it early (if any), and the input position after it.
type Item = (Batch, Option<SourceError>, (u64, u64));

/// Batches of a [`JsonlSource`], read on a thread.
pub(crate) struct ReadAhead {
    name: String,
    pos: (u64, u64),
    batches: Receiver<Item>,
}

impl ReadAhead {
    /// Start reading `source` in batches of `batch_size`.
    pub(crate) fn spawn(source: JsonlSource, batch_size: usize) -> std::io::Result<Self> {
        let name = source.name().to_string();
        let pos = (source.offset(), source.line());
        let (tx, batches) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("cairn-input".into())
            .spawn(move || read_all(source, batch_size, tx))?;
        Ok(Self { name, pos, batches })
    }

    /// The input's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Bytes and lines consumed by the batches taken so far.
    pub(crate) fn position(&self) -> (u64, u64) {
        self.pos
    }

    /// The next batch and, if reading ended it early, why (as [`read_batch`]); after the last
    /// batch, an empty one.
    pub(crate) fn next_batch(&mut self) -> (Batch, Option<SourceError>) {
        match self.batches.recv() {
            Ok((batch, failure, pos)) => {
                self.pos = pos;
                (batch, failure)
            }
            // The thread sent its last batch (a short one, or one that ended in an error).
            Err(_) => (Batch::new(), None),
        }
    }
}

fn read_all(mut source: JsonlSource, batch_size: usize, tx: SyncSender<Item>) {
    loop {
        let (batch, failure) = read_batch(&mut source, batch_size);
        let last = failure.is_some() || batch.len() < batch_size;
        let pos = (source.offset(), source.line());
        if tx.send((batch, failure, pos)).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn source(text: &str) -> JsonlSource {
        JsonlSource::from_reader("test", Box::new(Cursor::new(text.as_bytes().to_vec())))
    }

    #[test]
    fn batches_and_positions_are_those_read_in_line() {
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("{{\"key\":\"k{i}\",\"ts\":{i},\"value\":{i}}}\n"));
            if i == 6 {
                text.push('\n');
            }
        }
        text.push_str("not json\n{\"key\":\"z\",\"ts\":1,\"value\":1}\n");
        let mut inline = source(&text);
        let mut ahead = ReadAhead::spawn(source(&text), 4).unwrap();
        assert_eq!(ahead.name(), "test");
        // Until the malformed line (a job stops there): the third batch.
        for n in 1..=3 {
            let (want, want_err) = read_batch(&mut inline, 4);
            let (got, got_err) = ahead.next_batch();
            let events = |b: &Batch| b.iter().map(|e| (e.key.to_string(), e.ts)).collect::<Vec<_>>();
            assert_eq!(events(&got), events(&want));
            assert_eq!(got_err.is_some(), n == 3);
            assert_eq!(got_err.map(|e| e.to_string()), want_err.map(|e| e.to_string()));
            assert_eq!(ahead.position(), (inline.offset(), inline.line()));
        }
        // It ended at the malformed line 12; the position is that line's start.
        assert_eq!(ahead.position().1, 11);
        assert!(ahead.next_batch().0.is_empty());
        assert_eq!(ahead.position().1, 11);
    }

    #[test]
    fn a_job_that_stops_taking_batches_ends_the_thread() {
        let text: String = (0..10_000)
            .map(|i| format!("{{\"key\":\"k\",\"ts\":{i},\"value\":1}}\n"))
            .collect();
        let mut ahead = ReadAhead::spawn(source(&text), 10).unwrap();
        let (first, _) = ahead.next_batch();
        assert_eq!(first.len(), 10);
        drop(ahead); // the thread's next send fails and it returns
    }
}
