//! `cairn job status` (per shard: owner, epoch, position, lag, done) and `cairn job export`
//! (the committed output, shard by shard).

use std::io::Write;

use async_nats::jetstream::consumer;
use futures_util::StreamExt;
use serde::Serialize;

use super::kv::{Lease, read};
use super::record::{ClusterError, Names, connected, coordinator, job_record, nats_err};
use super::shard::read_last;
use crate::runtime::IoOptions;

/// Where one shard stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// The shard.
    pub shard: u32,
    /// Its key groups, `[first, end)`.
    pub groups: (u32, u32),
    /// The worker holding its lease, if any.
    pub owner: Option<String>,
    /// The epoch of its last commit.
    pub epoch: u64,
    /// The input stream sequence its last commit read up to.
    pub position: u64,
    /// Events it had read by its last commit.
    pub events_in: u64,
    /// Outputs committed.
    pub outputs: u64,
    /// Messages of its subjects after `position` (its lag).
    pub lag: u64,
    /// Its input ended and every output is committed.
    pub done: bool,
}

/// Every shard of job `name`.
pub fn status(url: &str, name: &str, io: &IoOptions) -> Result<Vec<ShardStatus>, ClusterError> {
    let u = coordinator(url)?;
    let (rt, _client, js) = connected(&u, io)?;
    rt.block_on(async {
        let record = job_record(&js, &u, name, io.retry_for).await?;
        let names = record.names();
        let leases = js
            .get_key_value(names.leases_bucket())
            .await
            .map_err(|e| nats_err(&u, e))?;
        let input = js
            .get_stream(names.input_stream())
            .await
            .map_err(|e| nats_err(&u, e))?;
        let mut out = Vec::new();
        for shard in 0..record.shards {
            let groups = record.groups_of(shard);
            let (last, _) = read_last(&js, &names, shard, io.retry_for)
                .await
                .map_err(|e| nats_err(&u, e))?;
            let s = last.shard.clone().unwrap_or_default();
            let owner = match read(&leases, &Names::lease_key(shard))
                .await
                .map_err(|e| nats_err(&u, e))?
            {
                Ok((v, _)) => serde_json::from_slice::<Lease>(&v).ok().map(|l| l.worker),
                Err(_) => None,
            };
            // The lag: what an ephemeral consumer from the position would still deliver.
            let subjects = vec![names.shard_input(shard)];
            let c = input
                .create_consumer(consumer::pull::Config {
                    filter_subjects: subjects,
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: s.input_seq + 1,
                    },
                    inactive_threshold: std::time::Duration::from_secs(5),
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_err(&u, e))?;
            let lag = c.cached_info().num_pending;
            let _ = input.delete_consumer(&c.cached_info().name).await;
            out.push(ShardStatus {
                shard,
                groups: (groups.start, groups.end),
                owner,
                epoch: s.epoch,
                position: s.input_seq,
                events_in: s.events_in,
                outputs: last.through,
                lag,
                done: s.done,
            });
        }
        Ok(out)
    })
}

/// Write job `name`'s committed output to `out`, shard by shard (each in commit order); the
/// number of outputs per shard.
pub fn export(url: &str, name: &str, out: &mut dyn Write, io: &IoOptions) -> Result<Vec<u64>, ClusterError> {
    let u = coordinator(url)?;
    let (rt, _client, js) = connected(&u, io)?;
    rt.block_on(async {
        let record = job_record(&js, &u, name, io.retry_for).await?;
        let names = record.names();
        let stream = js
            .get_stream(names.output_stream())
            .await
            .map_err(|e| nats_err(&u, e))?;
        let mut counts = Vec::new();
        for shard in 0..record.shards {
            let mut n = 0u64;
            let c = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: names.output_subject(shard),
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_err(&u, e))?;
            let mut pending = c.cached_info().num_pending;
            let mut messages = c.messages().await.map_err(|e| nats_err(&u, e))?;
            while pending > 0 {
                let m = match messages.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(nats_err(&u, e)),
                    None => break,
                };
                pending = m.info().map(|i| i.pending).unwrap_or(0);
                out.write_all(&m.payload)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|source| ClusterError::Io {
                        path: "the output".into(),
                        source,
                    })?;
                n += 1;
            }
            counts.push(n);
        }
        Ok(counts)
    })
}
