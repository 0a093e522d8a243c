//! Reading a JetStream stream by stream sequence.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};

use super::{KIND, NatsUrl, connect, runtime, with_retry};
use crate::Batch;
use crate::checkpoint::SourcePosition;
use crate::runtime::SourceError;
use crate::runtime::io::{Opening, Pull, Source};
use crate::runtime::jsonl::parse_line_into;

/// Where a NATS source stood: the record of positions of kind [`KIND`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NatsPosition {
    stream: String,
    /// The stream sequence of the last message handed out (0: none yet).
    seq: u64,
    batch_size: u64,
    /// A shard's input: the subjects whose end marker was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ended: Vec<String>,
}

/// The header that marks the end of a bounded input on one subject (`cairn ingest` writes it
/// after the last event of each key group's subject).
pub const END_HEADER: &str = "Cairn-End";

/// What a shard of a sharded job reads ([`crate::cluster`]): its key groups' subjects. Its
/// batches are cut by count only (never by time), so that its output does not depend on
/// when events arrive; it ends when every subject has its end marker.
#[derive(Debug, Clone)]
pub struct ShardInput {
    /// The subjects to read (filters: one wildcard for all of a shard's groups).
    pub subjects: Vec<String>,
    /// How many subjects end (one per key group): the input ends when every one has.
    pub ends: usize,
    /// The job's key groups.
    pub key_groups: u32,
    /// The groups the shard owns.
    pub owned: std::ops::Range<u32>,
}

/// The batch size a NATS position records.
pub fn recorded_batch_size(p: &SourcePosition) -> Option<u64> {
    serde_json::from_slice::<NatsPosition>(&p.record)
        .ok()
        .map(|p| p.batch_size)
}

type Messages = consumer::pull::Ordered;

/// Events from a JetStream stream, one per message (the body is a JSON Lines line).
pub struct NatsSource {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    name: String,
    stream: String,
    messages: Messages,
    /// The last sequence handed out (or skipped).
    seq: u64,
    /// Messages the server had not yet delivered after the last one received.
    pending: u64,
    batch_size: u64,
    max_key: usize,
    retry_for: Duration,
    /// The message refused last: its sequence and body.
    refused: Option<(u64, Vec<u8>)>,
    /// When receiving started failing (the server unreachable), if it does.
    failing_since: Option<Instant>,
    /// Messages received and not yet handed out (not consumed: a restore reads them again).
    ready: std::collections::VecDeque<jetstream::Message>,
    /// A shard's input, and the subjects that ended.
    shard: Option<(ShardInput, Vec<String>)>,
}

/// Messages taken from the client per trip into its runtime, at most.
const READY: usize = 512;

impl NatsSource {
    /// Open `url` (`nats://…/STREAM[?subject=FILTER&start=first|new]`) at the position `at`.
    pub fn open(url: &str, at: Option<&SourcePosition>, how: Opening<'_>) -> Result<Self, SourceError> {
        Self::open_with(url, at, how, None)
    }

    /// Open a shard's input (`url` names the job's input stream) at the position `at`.
    pub fn open_shard(
        url: &str,
        at: Option<&SourcePosition>,
        how: Opening<'_>,
        shard: ShardInput,
    ) -> Result<Self, SourceError> {
        Self::open_with(url, at, how, Some(shard))
    }

    fn open_with(
        url: &str,
        at: Option<&SourcePosition>,
        how: Opening<'_>,
        shard: Option<ShardInput>,
    ) -> Result<Self, SourceError> {
        let u = NatsUrl::parse(url).map_err(|e| io_err(url, e))?;
        u.only(&["subject", "start"]).map_err(|e| io_err(&u.shown, e))?;
        let err = |e: String| io_err(&u.shown, e);
        let rt = runtime().map_err(|e| err(e.to_string()))?;
        let filter = u.param("subject").unwrap_or_default().to_string();
        let start_new = match u.param("start") {
            None | Some("first") => false,
            Some("new") => true,
            Some(other) => return Err(err(format!("start={other}: use start=first or start=new"))),
        };
        let at = match at {
            Some(p) => Some(
                serde_json::from_slice::<NatsPosition>(&p.record)
                    .map_err(|e| err(format!("the checkpoint's position is not a NATS position: {e}")))?,
            ),
            None => None,
        };
        if let Some(p) = &at
            && p.stream != u.name
        {
            return Err(err(format!(
                "the checkpoint was taken reading stream {}, not {}; pass the stream the job was started with",
                p.stream, u.name
            )));
        }
        let (client, messages, seq) = rt.block_on(async {
            let client = connect(&u, how.io).await?;
            let js = jetstream::new(client.clone());
            let stream = with_retry("looking up the stream", how.io.retry_for, not_found, || {
                js.get_stream(u.name.clone())
            })
            .await
            .map_err(|e| {
                format!("{e}; create it first, e.g. `cairn stream create {}/{} --subjects <subjects>`", base(&u), u.name)
            })?;
            let state = with_retry("reading the stream's state", how.io.retry_for, |_| false, || stream.get_info())
                .await?
                .state;
            let seq = match &at {
                Some(p) => {
                    // Messages after the checkpoint's must still be there.
                    if state.first_sequence > p.seq + 1 && state.last_sequence > p.seq {
                        return Err(format!(
                            "the checkpoint read up to sequence {}, but the stream now starts at sequence {}: \
                             messages {}..{} were removed by its retention before the job read them. Nothing \
                             was skipped; raise the stream's limits, or start over with a new checkpoint store",
                            p.seq,
                            state.first_sequence,
                            p.seq + 1,
                            state.first_sequence - 1
                        ));
                    }
                    p.seq
                }
                None if start_new => state.last_sequence,
                None => 0,
            };
            let config = consumer::pull::OrderedConfig {
                filter_subject: if shard.is_some() { String::new() } else { filter.clone() },
                filter_subjects: shard.as_ref().map(|s| s.subjects.clone()).unwrap_or_default(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: seq + 1,
                },
                ..Default::default()
            };
            let consumer = with_retry("creating a consumer", how.io.retry_for, |_| false, || {
                stream.create_consumer(config.clone())
            })
            .await?;
            let messages = consumer.messages().await.map_err(|e| format!("reading: {e}"))?;
            Ok::<_, String>((client, messages, seq))
        })
        .map_err(err)?;
        Ok(Self {
            rt,
            client,
            name: u.shown.clone(),
            stream: u.name.clone(),
            messages,
            seq,
            pending: u64::MAX,
            batch_size: how.batch_size,
            max_key: how.limits.max_key_bytes.0 as usize,
            retry_for: how.io.retry_for,
            refused: None,
            failing_since: None,
            ready: std::collections::VecDeque::new(),
            shard: shard.map(|s| (s, at.map(|p| p.ended).unwrap_or_default())),
        })
    }

    /// A shard's input whose every subject has ended.
    fn all_ended(&self) -> bool {
        self.shard
            .as_ref()
            .is_some_and(|(s, ended)| ended.len() >= s.ends)
    }
}

impl NatsSource {
    /// Reading failed (`why`): wait on, retrying, until `--nats-retry` has passed since the
    /// first failure; then fail.
    fn failing(&mut self, why: &str) -> Result<Pull, SourceError> {
        crate::runtime::metrics::broker_retry();
        let since = *self.failing_since.get_or_insert_with(|| {
            tracing::warn!(input = %self.name, "reading: {why}; retrying for up to {}", humantime::format_duration(self.retry_for));
            Instant::now()
        });
        if since.elapsed() >= self.retry_for {
            return Err(io_err(
                &self.name,
                format!(
                    "reading: {why}; gave up after {} of retries (--nats-retry)",
                    humantime::format_duration(self.retry_for)
                ),
            ));
        }
        Ok(Pull::Waiting)
    }
}

fn not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j) if j.code() == 404)
}

/// `nats://host:port` of a shown URL.
fn base(u: &NatsUrl) -> String {
    u.shown
        .rsplit_once('/')
        .map_or(u.shown.clone(), |(b, _)| b.to_string())
}

fn io_err(input: &str, e: String) -> SourceError {
    SourceError::Io {
        input: super::shown(input),
        source: std::io::Error::other(e),
    }
}

impl Source for NatsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> SourcePosition {
        SourcePosition {
            kind: KIND.into(),
            record: serde_json::to_vec(&NatsPosition {
                stream: self.stream.clone(),
                seq: self.seq,
                batch_size: self.batch_size,
                ended: self.shard.as_ref().map(|(_, e)| e.clone()).unwrap_or_default(),
            })
            .unwrap_or_default(),
        }
    }

    fn progress(&self) -> u64 {
        self.seq
    }

    fn next_into(&mut self, batch: &mut Batch, wait: Duration) -> Result<Pull, SourceError> {
        loop {
            let pull = self.next_message(batch, wait)?;
            // A shard cuts its batches by count only: caught up, it waits on.
            return Ok(match pull {
                Some(Pull::CaughtUp) if self.shard.is_some() => Pull::Waiting,
                Some(p) => p,
                None if self.all_ended() => Pull::End,
                None => continue,
            });
        }
    }

    fn skip(&mut self) -> Result<Vec<u8>, SourceError> {
        Ok(match self.refused.take() {
            Some((seq, body)) => {
                self.seq = seq;
                body
            }
            None => Vec::new(),
        })
    }

    fn is_unbounded(&self) -> bool {
        true
    }
}

impl NatsSource {
    /// The next message into `batch`; `None` for an end marker (consumed).
    fn next_message(&mut self, batch: &mut Batch, wait: Duration) -> Result<Option<Pull>, SourceError> {
        self.refused = None;
        if self.all_ended() {
            return Ok(Some(Pull::End));
        }
        let next = match self.ready.pop_front() {
            Some(m) => Ok(Some(Ok(m))),
            None => {
                // One trip into the runtime per burst: wait for a message, then take every
                // one already delivered (up to READY), so that a busy stream costs one wake-up
                // per burst rather than one per message.
                let (messages, ready) = (&mut self.messages, &mut self.ready);
                self.rt.block_on(async {
                    let first = tokio::time::timeout(wait, messages.next()).await;
                    if matches!(first, Ok(Some(Ok(_)))) {
                        while ready.len() < READY {
                            match messages.next().now_or_never() {
                                Some(Some(Ok(m))) => ready.push_back(m),
                                _ => break,
                            }
                        }
                    }
                    first
                })
            }
        };
        let message = match next {
            // Nothing came: caught up, unless the server is away (then the wait is a failure).
            Err(_) if self.client.connection_state() != async_nats::connection::State::Connected => {
                return self.failing("the NATS server is unreachable").map(Some);
            }
            Err(_) if self.pending == 0 => {
                self.failing_since = None;
                return Ok(Some(Pull::CaughtUp));
            }
            Err(_) => return Ok(Some(Pull::Waiting)),
            Ok(None) => return Err(io_err(&self.name, "the server ended the consumer".into())),
            // The ordered consumer recreates itself after a reconnect; give it the time.
            Ok(Some(Err(e))) => return self.failing(&e.to_string()).map(Some),
            Ok(Some(Ok(m))) => m,
        };
        if self.failing_since.take().is_some() {
            tracing::info!(input = %self.name, "reading again");
        }
        let info = message
            .info()
            .map_err(|e| io_err(&self.name, format!("a message without JetStream metadata: {e}")))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if let Some((_, ended)) = &mut self.shard
            && message
                .headers
                .as_ref()
                .is_some_and(|h| h.get(END_HEADER).is_some())
        {
            let subject = message.subject.to_string();
            if !ended.contains(&subject) {
                ended.push(subject);
            }
            self.seq = seq;
            self.pending = pending;
            return Ok(None);
        }
        let body = message.payload.as_ref();
        let at = batch.end();
        match parse_line_into(body, seq, batch, self.max_key) {
            Ok(()) => {
                self.pending = pending;
                if let Some((shard, _)) = &self.shard
                    && let Some(e) = batch.event_at(at)
                {
                    let group = cairn_codec::scoped::key_group(e.key, shard.key_groups);
                    if !shard.owned.contains(&group) {
                        let key = e.key.to_string();
                        batch.pop_last(at);
                        self.refused = Some((seq, body.to_vec()));
                        return Err(SourceError::Malformed {
                            input: self.name.clone(),
                            line: seq,
                            message: format!(
                                "message at stream sequence {seq} on {}: key {key:?} is in key group {group}, not \
                                 one of this shard's groups {}..{}; publish each event on its key group's subject \
                                 (`cairn ingest` does)",
                                message.subject, shard.owned.start, shard.owned.end
                            ),
                        });
                    }
                }
                self.seq = seq;
                Ok(Some(Pull::Event))
            }
            Err(message) => {
                self.pending = pending;
                self.refused = Some((seq, body.to_vec()));
                Err(SourceError::Malformed {
                    input: self.name.clone(),
                    line: seq,
                    message: format!("message at stream sequence {seq}: {message}"),
                })
            }
        }
    }
}
