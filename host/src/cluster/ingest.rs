//! `cairn ingest`: route a JSON Lines file's events to a job's key-group subjects, in atomic
//! batches, so that a re-run after a crash (at any later time) adds no event twice; then end
//! every subject with an end marker.
//!
//! Every message carries the number of its line (`Cairn-Line`). A batch is stored whole or not
//! at all, and the next is sent only once the last is stored, so what the stream holds is
//! always a prefix of the file: a re-run reads the last message of every subject and goes on
//! after the highest line it finds — the server's duplicate window plays no part.

use std::io::BufRead;
use std::path::Path;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind};
use bytes::Bytes;

use super::record::{ClusterError, connected, coordinator, job_record, nats_err};
use crate::runtime::IoOptions;
use crate::runtime::nats::{END_HEADER, with_retry};
use async_nats::jetstream::stream::{LastRawMessageError, LastRawMessageErrorKind};

/// The header holding a message's line number in the ingested file.
pub const LINE_HEADER: &str = "Cairn-Line";

/// Messages per atomic batch (the server takes at most 1000).
const BATCH: usize = 1000;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Lines of the file that an earlier run had already stored.
    pub skipped: u64,
    /// Events published by this run.
    pub published: u64,
    /// Whether this run wrote the end markers (false: an earlier run had).
    pub ended: bool,
}

/// Publish the events of `input` (JSON Lines) to job `name`'s input subjects, resuming after
/// whatever an earlier run stored, and (with `end`) end every subject: a later run with a
/// longer file goes on after the lines stored so far until one ends the input.
pub fn ingest(
    url: &str,
    name: &str,
    input: &Path,
    end: bool,
    io: &IoOptions,
) -> Result<IngestReport, ClusterError> {
    let u = coordinator(url)?;
    let (rt, client, js) = connected(&u, io)?;
    let record = rt.block_on(job_record(&js, &u, name, io.retry_for))?;
    let names = record.names();
    let stream = rt
        .block_on(with_retry(
            "opening the input stream",
            io.retry_for,
            |_| false,
            || js.get_stream(names.input_stream()),
        ))
        .map_err(|e| nats_err(&u, e))?;
    // Where an earlier run stopped: the highest line of any subject, and whether it ended.
    let mut after = 0u64;
    let mut ended = 0u32;
    for g in 0..record.key_groups {
        let subject = names.input_subject(g);
        let last = rt.block_on(with_retry(
            "reading where an earlier ingest stopped",
            io.retry_for,
            |e: &LastRawMessageError| e.kind() == LastRawMessageErrorKind::NoMessageFound,
            || stream.get_last_raw_message_by_subject(&subject),
        ));
        let m = match last {
            Ok(m) => m,
            Err(e) if e.contains("no message found") => continue,
            Err(e) => return Err(nats_err(&u, e)),
        };
        let h = m.headers;
        if h.get(END_HEADER).is_some() {
            ended += 1;
        }
        for key in [LINE_HEADER, END_HEADER] {
            if let Some(n) = h.get(key).and_then(|v| v.as_str().parse::<u64>().ok()) {
                after = after.max(n);
            }
        }
    }
    if ended == record.key_groups {
        return Ok(IngestReport {
            skipped: after,
            ..Default::default()
        });
    }
    let shown = input.display().to_string();
    let file = std::fs::File::open(input).map_err(|source| ClusterError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut report = IngestReport {
        skipped: after,
        ..Default::default()
    };
    let mut pending: Vec<(String, HeaderMap, Bytes)> = Vec::with_capacity(BATCH);
    let mut line_no = 0u64;
    let mut sent = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|source| ClusterError::Io {
            path: shown.clone(),
            source,
        })?;
        line_no += 1;
        if line_no <= after || line.trim().is_empty() {
            continue;
        }
        let key = key_of(&line).map_err(|e| ClusterError::Other(format!("{shown}, line {line_no}: {e}")))?;
        let group = cairn_codec::scoped::key_group(&key, record.key_groups);
        let mut h = HeaderMap::new();
        h.insert(LINE_HEADER, line_no.to_string().as_str());
        pending.push((names.input_subject(group), h, Bytes::from(line)));
        if pending.len() == BATCH {
            sent += rt.block_on(send(&client, &js, &stream, &u, &mut pending, line_no, io))?;
        }
    }
    sent += rt.block_on(send(&client, &js, &stream, &u, &mut pending, line_no, io))?;
    report.published = sent;
    if !end {
        return Ok(report);
    }
    // The end markers, one per key group's subject, carrying the file's line count.
    let total = line_no.max(after);
    for g in 0..record.key_groups {
        let mut h = HeaderMap::new();
        h.insert(END_HEADER, total.to_string().as_str());
        pending.push((names.input_subject(g), h, Bytes::new()));
        if pending.len() == BATCH {
            rt.block_on(send(&client, &js, &stream, &u, &mut pending, total, io))?;
        }
    }
    rt.block_on(send(&client, &js, &stream, &u, &mut pending, total, io))?;
    report.ended = true;
    Ok(report)
}

/// Whether `message` (a batch's last) is the last message of its subject.
async fn stored(stream: &jetstream::stream::Stream, message: &(String, HeaderMap, Bytes)) -> bool {
    let (subject, h, _) = message;
    let Ok(last) = stream.get_last_raw_message_by_subject(subject).await else {
        return false;
    };
    [LINE_HEADER, END_HEADER].iter().any(|k| {
        h.get(*k).is_some() && h.get(*k).map(|v| v.as_str()) == last.headers.get(*k).map(|v| v.as_str())
    })
}

/// The `key` of a JSON Lines event (a string; events without one are refused).
fn key_of(line: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Keyed {
        key: String,
    }
    serde_json::from_str::<Keyed>(line)
        .map(|k| k.key)
        .map_err(|e| format!("not an event with a string `key` ({e})"))
}

/// Publish `pending` as one atomic batch (waiting for it to be stored), retrying while the
/// server is away; the events it held.
async fn send(
    client: &async_nats::Client,
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    u: &crate::runtime::nats::NatsUrl,
    pending: &mut Vec<(String, HeaderMap, Bytes)>,
    through: u64,
    io: &IoOptions,
) -> Result<u64, ClusterError> {
    if pending.is_empty() {
        return Ok(0);
    }
    let n = pending.len();
    let mut attempt = 0u32;
    let r = with_retry(
        "ingesting",
        io.retry_for,
        |_: &String| false,
        || {
            attempt += 1;
            let id = format!("ingest-{}-{through}-{attempt}", std::process::id());
            let pending = &*pending;
            async move {
                for (i, (subject, h, body)) in pending.iter().enumerate() {
                    let mut h = h.clone();
                    h.insert("Nats-Batch-Id", id.as_str());
                    h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                    if i + 1 < n {
                        client
                            .publish_with_headers(subject.clone(), h, body.clone())
                            .await
                            .map_err(|e| e.to_string())?;
                    } else {
                        h.insert("Nats-Batch-Commit", "1");
                        let ack = js
                            .publish_with_headers(subject.clone(), h, body.clone())
                            .await
                            .map_err(|e| e.to_string())?
                            .await;
                        if let Err(e) = ack {
                            // Stored although the answer was lost? The batch's last message says.
                            if e.kind() != PublishErrorKind::WrongLastSequence
                                && stored(stream, &pending[n - 1]).await
                            {
                                return Ok(());
                            }
                            return Err(e.to_string());
                        }
                    }
                }
                Ok::<(), String>(())
            }
        },
    )
    .await;
    r.map_err(|e| nats_err(u, e))?;
    pending.clear();
    Ok(n as u64)
}
