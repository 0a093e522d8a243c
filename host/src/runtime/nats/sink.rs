//! Publishing a job's output to a subject exactly once: held until the checkpoint is durable,
//! then atomic batches fenced on the job's commit subject.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream::LastRawMessageErrorKind};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{NatsUrl, connect, runtime, with_retry};
use crate::Batch;
use crate::checkpoint::{HostState, SinkPosition};
use crate::runtime::SinkError;
use crate::runtime::io::{Opening, Sink};
use crate::runtime::jsonl::encode_event;

/// Outputs per atomic batch (the server takes at most 1000 messages; one is the commit record).
pub const OUTPUTS_PER_BATCH: usize = 999;

/// What a checkpoint keeps of a NATS sink: the outputs not yet published at the cut.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Held {
    /// Outputs published before the first of these (the job's output count).
    first: u64,
    /// JSON lines, each ending in `\n`.
    #[serde(with = "serde_bytes")]
    lines: Vec<u8>,
}

/// [`Held`] as written, borrowing the lines.
#[derive(Serialize)]
struct HeldRef<'a> {
    first: u64,
    #[serde(with = "serde_bytes")]
    lines: &'a [u8],
}

/// The body of a commit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The job.
    pub job: String,
    /// Outputs published by the job so far.
    pub through: u64,
    /// A shard's commit: the shard, its owner's epoch, the checkpoint it makes current and the
    /// input position that checkpoint holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
}

/// What a shard's commit record adds ([`crate::cluster`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The shard.
    pub shard: u32,
    /// The epoch of the owner that committed (its lease's revision when acquired).
    pub epoch: u64,
    /// The checkpoint this commit makes current: (the epoch that wrote it, its id); `None`
    /// before the first checkpoint.
    pub checkpoint: Option<(u64, u64)>,
    /// The input stream sequence that checkpoint read up to.
    pub input_seq: u64,
    /// Events the shard had read by then.
    pub events_in: u64,
    /// The shard's input ended and every output is published.
    #[serde(default)]
    pub done: bool,
}

/// What a shard's job, its checkpoint store and its sink tell each other: the checkpoint the
/// store made durable last, where the job's input stood after each batch, whether the sink
/// was fenced, and the last commit.
#[derive(Debug, Default)]
pub struct ShardLink {
    /// The last checkpoint put in the store: (epoch, id).
    pub checkpoint: std::sync::Mutex<Option<(u64, u64)>>,
    /// The input sequence and events read after the last batch.
    pub progress: std::sync::Mutex<(u64, u64)>,
    /// A newer owner committed: this one may never publish again.
    pub fenced: std::sync::atomic::AtomicBool,
    /// The last commit: its record and its sequence on the commit subject.
    pub last: std::sync::Mutex<Option<(CommitRecord, u64)>>,
}

/// A shard's sink: where its commit subject stood when its checkpoint was chosen, and the
/// shared [`ShardLink`].
#[derive(Debug, Clone)]
pub struct ShardCommit {
    /// The shard.
    pub shard: u32,
    /// This owner's epoch.
    pub epoch: u64,
    /// Outputs published by the last commit read (the one whose checkpoint was restored).
    pub through: u64,
    /// Its sequence: the fence of this owner's first commit.
    pub fence: u64,
    /// Shared with the job's store and the worker.
    pub link: std::sync::Arc<ShardLink>,
}

/// The kind of sink record a NATS sink writes.
const SINK_KIND: &str = "nats";

/// Output events to a NATS subject, one message per event (the body is the JSON line).
pub struct NatsSink {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    name: String,
    job: String,
    subject: String,
    commit_subject: String,
    /// Outputs published so far (the last commit record's count).
    through: u64,
    /// The commit subject's last sequence: the fence of the next commit.
    fence: u64,
    /// Outputs not yet published, JSON lines.
    held: Vec<u8>,
    /// Bytes of `held` the last prepare covered.
    prepared: usize,
    retry_for: Duration,
    line: Vec<u8>,
    batches: u64,
    /// `--delivery exactly-once` (else each batch is published at once, acknowledged).
    exactly_once: bool,
    /// A shard's sink, and the input position its last prepare covered.
    shard: Option<(ShardCommit, (u64, u64))>,
}

fn sink_err(output: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError {
        output: output.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The commit subject of `job` writing `subject`: `<subject>.commit.<job>`, the job's name
/// made a single subject token.
pub fn commit_subject(subject: &str, job: &str) -> String {
    let token: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{subject}.commit.{token}")
}

impl NatsSink {
    /// Open `url` (`nats://…/SUBJECT[?commit=SUBJECT]`), resuming from a restored checkpoint's
    /// host state: what it held and the commit subject has not recorded is published first.
    pub fn open(url: &str, restored: Option<&HostState>, how: Opening<'_>) -> Result<Self, SinkError> {
        Self::open_with(url, restored, how, None)
    }

    /// Open a shard's sink: every commit carries a [`ShardRecord`], and the first is fenced
    /// by the commit read when the shard's checkpoint was chosen (`shard.fence`), not by the
    /// commit subject as it is now.
    pub fn open_shard(
        url: &str,
        restored: Option<&HostState>,
        how: Opening<'_>,
        shard: ShardCommit,
    ) -> Result<Self, SinkError> {
        Self::open_with(url, restored, how, Some(shard))
    }

    fn open_with(
        url: &str,
        restored: Option<&HostState>,
        how: Opening<'_>,
        shard: Option<ShardCommit>,
    ) -> Result<Self, SinkError> {
        let u = NatsUrl::parse(url).map_err(|e| sink_err(&super::shown(url), e))?;
        let name = u.shown.clone();
        u.only(&["commit"]).map_err(|e| sink_err(&name, e))?;
        let subject = u.name.clone();
        if subject.contains(['*', '>', ' ']) {
            return Err(sink_err(
                &name,
                "an output subject must be a literal subject, without wildcards",
            ));
        }
        let commit_subject = u
            .param("commit")
            .map(str::to_string)
            .unwrap_or_else(|| commit_subject(&subject, how.job));
        let rt = runtime().map_err(|e| sink_err(&name, e))?;
        let retry_for = how.io.retry_for;
        let exactly_once = how.io.delivery == crate::runtime::io::Delivery::ExactlyOnce;
        let (client, js, stream, through, fence) = rt
            .block_on(async {
                let client = connect(&u, how.io).await?;
                let js = jetstream::new(client.clone());
                if !exactly_once {
                    let stream_name = js.stream_by_subject(subject.clone()).await.map_err(|e| {
                        format!("no stream captures subject {subject} ({e}); create one, e.g. `cairn stream create`")
                    })?;
                    let stream = js.get_stream(stream_name).await.map_err(|e| e.to_string())?;
                    return Ok((client, js, stream, 0, 0));
                }
                let fix = format!(
                    "create a stream with allow_atomic that captures both, e.g. `cairn stream create {}/OUTPUT \
                     --subjects {subject},{subject}.commit.>`",
                    u.shown.rsplit_once('/').map_or("nats://HOST:PORT", |(b, _)| b)
                );
                let stream_name = js
                    .stream_by_subject(subject.clone())
                    .await
                    .map_err(|e| format!("no stream captures subject {subject} ({e}); {fix}"))?;
                let commits_in = js.stream_by_subject(commit_subject.clone()).await.ok();
                if commits_in.as_deref() != Some(stream_name.as_str()) {
                    return Err(format!(
                        "stream {stream_name} captures {subject} but not the job's commit subject {commit_subject} \
                         (an atomic batch is stored in one stream); {fix}"
                    ));
                }
                let stream = js.get_stream(stream_name.clone()).await.map_err(|e| e.to_string())?;
                let info = stream.get_info().await.map_err(|e| e.to_string())?;
                if !info.config.allow_atomic_publish {
                    return Err(format!(
                        "stream {stream_name} does not allow atomic batch publishes, which exactly-once output \
                         needs; enable them: `cairn stream create {}/{stream_name} --subjects {} --allow-atomic` \
                         (updates the stream), or pass --delivery at-least-once",
                        u.shown.rsplit_once('/').map_or("nats://HOST:PORT", |(b, _)| b),
                        info.config.subjects.join(",")
                    ));
                }
                let (last, fence) = last_commit(&stream, &commit_subject, retry_for).await?;
                let through = last.through;
                Ok::<_, String>((client, js, stream, through, fence))
            })
            .map_err(|e| sink_err(&name, e))?;
        let mut sink = Self {
            rt,
            client,
            js,
            stream,
            name,
            job: how.job.to_string(),
            subject,
            commit_subject,
            through,
            fence,
            held: Vec::new(),
            prepared: 0,
            retry_for,
            line: Vec::new(),
            batches: 0,
            exactly_once,
            shard: None,
        };
        if let Some(c) = shard {
            (sink.through, sink.fence) = (c.through, c.fence);
            let at = *c.link.progress.lock().unwrap_or_else(|p| p.into_inner());
            sink.shard = Some((c, at));
        }
        if let Some(h) = restored.map(|h| &h.sink).filter(|s| s.kind == SINK_KIND) {
            sink.finish_restored(h)?;
        }
        Ok(sink)
    }

    /// Publish what the restored checkpoint held beyond what the commit subject records.
    fn finish_restored(&mut self, record: &SinkPosition) -> Result<(), SinkError> {
        let (held, _): (Held, usize) =
            bincode::serde::decode_from_slice(&record.record, bincode::config::standard()).map_err(|e| {
                sink_err(
                    &self.name,
                    format!("the checkpoint's sink record is unreadable: {e}"),
                )
            })?;
        let count = held.lines.iter().filter(|&&b| b == b'\n').count() as u64;
        let end = held.first + count;
        if self.through < held.first {
            return Err(sink_err(
                &self.name,
                format!(
                    "the commit subject {} records {} outputs published, but the checkpoint expects {} before \
                     its own: was the stream purged, or the commit subject written by another job? Start over \
                     with a new checkpoint store, or restore the stream",
                    self.commit_subject, self.through, held.first
                ),
            ));
        }
        if self.through >= end {
            tracing::info!(output = %self.name, "the restored checkpoint's {count} outputs were published before the restart");
            return Ok(());
        }
        let skip = (self.through - held.first) as usize;
        let start = nth_line_start(&held.lines, skip);
        tracing::info!(
            output = %self.name,
            "publishing the restored checkpoint's last {} of {count} outputs",
            end - self.through
        );
        self.publish(&held.lines[start..])
    }

    /// Publish `lines` (JSON lines) in atomic batches, each with a commit record and fenced.
    fn publish(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        let mut rest = lines;
        while !rest.is_empty() {
            let cut = nth_line_start(rest, OUTPUTS_PER_BATCH);
            let (chunk, after) = rest.split_at(cut);
            self.publish_batch(chunk)?;
            rest = after;
        }
        Ok(())
    }

    /// One atomic batch: `chunk`'s lines on the subject, then the commit record on the commit
    /// subject, expecting its last sequence to be the fence (else another run published).
    fn publish_batch(&mut self, chunk: &[u8]) -> Result<(), SinkError> {
        let n = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let through = self.through + n;
        let commit = CommitRecord {
            job: self.job.clone(),
            through,
            shard: self
                .shard
                .as_ref()
                .map(|(c, (input_seq, events_in))| ShardRecord {
                    shard: c.shard,
                    epoch: c.epoch,
                    checkpoint: *c.link.checkpoint.lock().unwrap_or_else(|p| p.into_inner()),
                    input_seq: *input_seq,
                    events_in: *events_in,
                    done: false,
                }),
        };
        let record = serde_json::to_vec(&commit).map_err(|e| sink_err(&self.name, e))?;
        let (client, js, stream) = (&self.client, &self.js, &self.stream);
        let (subject, commit_subject, fence) = (&self.subject, &self.commit_subject, self.fence);
        let retry_for = self.retry_for;
        let ours = &commit;
        self.batches += 1;
        let batch_id = format!("{}-{}-{}", std::process::id(), through, self.batches);
        let started = std::time::Instant::now();
        let result = self.rt.block_on(async {
            let mut attempt = 0u32;
            with_retry("publishing output", retry_for, |e: &Attempt| matches!(e, Attempt::Fenced(_)), || {
                attempt += 1;
                let id = format!("{batch_id}-{attempt}");
                let record = record.clone();
                async move {
                    match atomic_batch(client, js, subject, commit_subject, &id, chunk, fence, record).await {
                        Ok(seq) => Ok(seq),
                        Err(e) => {
                            // The batch may have been stored and only its answer lost: the commit
                            // subject says.
                            match last_commit(stream, commit_subject, Duration::ZERO).await {
                                Ok((r, seq)) if r == *ours && seq > fence => Ok(seq),
                                Ok((CommitRecord { through: t, .. }, seq)) if seq != fence => Err(Attempt::Fenced(format!(
                                    "{FENCED}: another run of this job published meanwhile (commit subject {commit_subject} \
                                     at sequence {seq}, {t} outputs; this run expected sequence {fence}): this run \
                                     stops without publishing"
                                ))),
                                _ => Err(e),
                            }
                        }
                    }
                }
            })
            .await
        });
        match result {
            Ok(seq) => {
                self.fence = seq;
                self.through = through;
                if let Some((c, _)) = &self.shard {
                    tracing::debug!(
                        shard = c.shard,
                        outputs = n,
                        commit_us = started.elapsed().as_micros() as u64,
                        "committed"
                    );
                    *c.link.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((commit, seq));
                }
                Ok(())
            }
            Err(e) => {
                if let (Some((c, _)), true) = (&self.shard, e.contains(&format!("{FENCED}:"))) {
                    c.link.fenced.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err(sink_err(&self.name, e))
            }
        }
    }
}

/// How the error of a publish refused by the fence starts.
pub const FENCED: &str = "FENCED";

/// Why an atomic batch was not stored.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// Another writer moved the commit subject: never retried.
    Fenced(String),
    /// Anything else (the server away, a timeout): retried.
    Failed(String),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Fenced(e) | Attempt::Failed(e) => f.write_str(e),
        }
    }
}

/// Publish `chunk`'s lines (JSON lines) on `subject` and `record` on `commit_subject` as one
/// atomic batch whose commit expects `commit_subject`'s last sequence to be `fence`; the
/// record's sequence.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn atomic_batch(
    client: &async_nats::Client,
    js: &jetstream::Context,
    subject: &str,
    commit_subject: &str,
    id: &str,
    chunk: &[u8],
    fence: u64,
    record: Vec<u8>,
) -> Result<u64, Attempt> {
    let failed = |e: &dyn std::fmt::Display| Attempt::Failed(e.to_string());
    let mut n = 0u64;
    for line in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        n += 1;
        let mut h = HeaderMap::new();
        h.insert("Nats-Batch-Id", id);
        h.insert("Nats-Batch-Sequence", n.to_string().as_str());
        client
            .publish_with_headers(subject.to_string(), h, Bytes::copy_from_slice(line))
            .await
            .map_err(|e| failed(&e))?;
    }
    let mut h = HeaderMap::new();
    h.insert("Nats-Batch-Id", id);
    h.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
    h.insert("Nats-Batch-Commit", "1");
    h.insert("Nats-Expected-Last-Subject-Sequence", fence.to_string().as_str());
    let ack = js
        .publish_with_headers(commit_subject.to_string(), h, Bytes::from(record))
        .await
        .map_err(|e| failed(&e))?
        .await;
    match ack {
        Ok(a) => Ok(a.sequence),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(Attempt::Failed(e.to_string())),
        Err(e) => Err(failed(&e)),
    }
}

/// The last commit record on `commit_subject`: (outputs published, its sequence); (0, 0)
/// when there is none.
pub(crate) async fn last_commit(
    stream: &jetstream::stream::Stream,
    commit_subject: &str,
    retry_for: Duration,
) -> Result<(CommitRecord, u64), String> {
    let found = with_retry(
        "reading the last commit record",
        retry_for,
        |e: &jetstream::stream::LastRawMessageError| e.kind() == LastRawMessageErrorKind::NoMessageFound,
        || stream.get_last_raw_message_by_subject(commit_subject),
    )
    .await;
    match found {
        Ok(m) => {
            let r: CommitRecord = serde_json::from_slice(&m.payload).map_err(|e| {
                format!("the last message on commit subject {commit_subject} is not a commit record: {e}")
            })?;
            Ok((r, m.sequence))
        }
        Err(e) if e.contains("no message found") => Ok((CommitRecord::default(), 0)),
        Err(e) => Err(e),
    }
}

/// The byte offset where line `n` (0-based) of `lines` starts (the length when it has fewer).
fn nth_line_start(lines: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    lines
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(n - 1)
        .map_or(lines.len(), |(i, _)| i + 1)
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, out: Batch) -> Result<(), SinkError> {
        for e in &out {
            self.line.clear();
            encode_event(e, &mut self.line);
            self.held.extend_from_slice(&self.line);
        }
        if !self.exactly_once {
            let held = std::mem::take(&mut self.held);
            let (js, subject) = (&self.js, &self.subject);
            let r = self.rt.block_on(async {
                let mut acks = Vec::new();
                for line in held.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    acks.push(
                        js.publish(subject.clone(), Bytes::copy_from_slice(line))
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                for ack in acks {
                    ack.await.map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            });
            r.map_err(|e| sink_err(&self.name, format!("publishing output: {e}")))?;
        }
        Ok(())
    }

    /// The outputs not yet published go into the checkpoint.
    fn prepare(&mut self) -> Result<(u64, SinkPosition), SinkError> {
        self.prepared = self.held.len();
        if let Some((c, at)) = &mut self.shard {
            *at = *c.link.progress.lock().unwrap_or_else(|p| p.into_inner());
        }
        if self.held.is_empty() {
            return Ok((0, SinkPosition::default()));
        }
        // Encoded where it lies (no copy of the held output first); reads back as a `Held`.
        let held = HeldRef {
            first: self.through,
            lines: &self.held,
        };
        let record = bincode::serde::encode_to_vec(&held, bincode::config::standard())
            .map_err(|e| sink_err(&self.name, e))?;
        Ok((
            0,
            SinkPosition {
                kind: SINK_KIND.into(),
                record,
            },
        ))
    }

    /// Publish what the durable checkpoint held.
    fn commit(&mut self) -> Result<(), SinkError> {
        let n = std::mem::take(&mut self.prepared);
        if n == 0 {
            // A shard commits every checkpoint, outputs or not: the record makes it current.
            return match self.shard {
                Some(_) => self.publish_batch(&[]),
                None => Ok(()),
            };
        }
        let held = std::mem::take(&mut self.held);
        let r = self.publish(&held[..n]);
        self.held = held;
        match r {
            Ok(()) => {
                self.held.drain(..n);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn holds_output(&self) -> bool {
        !self.held.is_empty()
    }

    /// Without checkpoints: publish everything now.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.prepared = self.held.len();
        self.commit()
    }
}
