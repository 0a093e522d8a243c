//! What a sharded job is ([`JobRecord`]), the names of its streams, subjects and buckets
//! ([`Names`]), and the errors of the cluster commands.

use std::ops::Range;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::runtime::IoOptions;
use crate::runtime::nats::{NatsUrl, connect, runtime};

/// The key-value bucket that holds every job's record.
pub const JOBS_BUCKET: &str = "cairn_jobs";
/// The object store that holds the jobs' plugins, each under its SHA-256.
pub const PLUGINS: &str = "cairn_plugins";

/// Why a cluster command failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The job file is not a valid job.
    #[error("job file {path}: {message}")]
    JobFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// There is no such job on the coordinator.
    #[error(
        "no job named {name:?} on {coordinator}; create it with `cairn job create --coordinator {coordinator} --job <job.toml>`"
    )]
    NoJob {
        /// The job's name.
        name: String,
        /// The coordinator URL (no credentials).
        coordinator: String,
    },
    /// Talking to NATS failed.
    #[error("{coordinator}: {message}")]
    Nats {
        /// The coordinator URL (no credentials).
        coordinator: String,
        /// What failed.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else, said in full.
    #[error("{0}")]
    Other(String),
}

/// A sharded job as `cairn job create` records it. It holds no secrets: store credentials and
/// encryption keys come from each worker's own environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's name: letters, digits, `-` and `_`.
    pub name: String,
    /// Shards (fixed; divides `key_groups`).
    pub shards: u32,
    /// Key groups (fixed).
    pub key_groups: u32,
    /// Events per batch.
    pub batch_size: usize,
    /// The checkpoint store's URL (every worker must reach it: S3 or Redis across machines).
    pub store: String,
    /// A checkpoint (and so a commit) every this many events of a shard.
    pub checkpoint_every: u64,
    /// JetStream replicas of the job's streams and buckets.
    pub replicas: usize,
    /// The pipeline file's TOML, each plugin named `<sha256>.wasm`.
    pub pipeline: String,
    /// The plugins' SHA-256 digests (hex), as stored in [`PLUGINS`].
    pub plugins: Vec<String>,
}

impl JobRecord {
    /// The key groups shard `shard` owns.
    pub fn groups_of(&self, shard: u32) -> Range<u32> {
        let per = self.key_groups / self.shards.max(1);
        shard * per..(shard + 1) * per
    }

    /// The shard that owns key group `group`.
    pub fn shard_of(&self, group: u32) -> u32 {
        group / (self.key_groups / self.shards.max(1)).max(1)
    }

    /// The names of the job's streams, subjects and buckets.
    pub fn names(&self) -> Names {
        Names {
            job: self.name.clone(),
            per_shard: (self.key_groups / self.shards.max(1)).max(1),
        }
    }
}

/// Check a job's name (it becomes part of subjects, streams and buckets).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 48
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "job name {name:?}: use 1 to 48 letters, digits, `-` and `_` (it names NATS subjects and streams)"
        ));
    }
    Ok(())
}

/// The names a job's data lives under on the coordinator.
#[derive(Debug, Clone)]
pub struct Names {
    job: String,
    /// Key groups per shard.
    per_shard: u32,
}

impl Names {
    /// The name shard `shard`'s job runs under (in its checkpoints and commit records).
    pub fn shard_job(&self, shard: u32) -> String {
        format!("{}.shard-{shard}", self.job)
    }

    /// The input stream: `CAIRN_<job>_IN`, capturing `cairn.<job>.in.>`.
    pub fn input_stream(&self) -> String {
        format!("CAIRN_{}_IN", self.job)
    }

    /// The output stream: `CAIRN_<job>_OUT`, capturing outputs and commit records.
    pub fn output_stream(&self) -> String {
        format!("CAIRN_{}_OUT", self.job)
    }

    /// Key group `group`'s input subject: `cairn.<job>.in.<shard>.<group>`, its shard first so
    /// that a shard reads its groups with one wildcard ([`Names::shard_input`]).
    pub fn input_subject(&self, group: u32) -> String {
        format!("cairn.{}.in.{}.{group}", self.job, group / self.per_shard)
    }

    /// Every input subject of shard `shard`: `cairn.<job>.in.<shard>.*`.
    pub fn shard_input(&self, shard: u32) -> String {
        format!("cairn.{}.in.{shard}.*", self.job)
    }

    /// Shard `shard`'s output subject: `cairn.<job>.out.<shard>`.
    pub fn output_subject(&self, shard: u32) -> String {
        format!("cairn.{}.out.{shard}", self.job)
    }

    /// Shard `shard`'s commit subject: `cairn.<job>.commit.<shard>`.
    pub fn commit_subject(&self, shard: u32) -> String {
        format!("cairn.{}.commit.{shard}", self.job)
    }

    /// The subjects of the input stream.
    pub fn input_subjects(&self) -> Vec<String> {
        vec![format!("cairn.{}.in.>", self.job)]
    }

    /// The subjects of the output stream.
    pub fn output_subjects(&self) -> Vec<String> {
        vec![
            format!("cairn.{}.out.>", self.job),
            format!("cairn.{}.commit.>", self.job),
        ]
    }

    /// The leases bucket: `cairn_<job>_leases`, key `shard-<i>`.
    pub fn leases_bucket(&self) -> String {
        format!("cairn_{}_leases", self.job)
    }

    /// The members bucket: `cairn_<job>_members`, one key per live worker.
    pub fn members_bucket(&self) -> String {
        format!("cairn_{}_members", self.job)
    }

    /// Shard `shard`'s lease key.
    pub fn lease_key(shard: u32) -> String {
        format!("shard-{shard}")
    }
}

/// The coordinator URL as given (`nats://host:port[,host:port…]`), parsed; it names no stream.
pub(crate) fn coordinator(url: &str) -> Result<NatsUrl, ClusterError> {
    let with_name = format!("{}/_", url.trim_end_matches('/'));
    NatsUrl::parse(&with_name).map_err(|e| ClusterError::Other(format!("--coordinator {url:?}: {e}")))
}

/// A tokio runtime and a client connected to the coordinator.
pub(crate) fn connected(
    url: &NatsUrl,
    io: &IoOptions,
) -> Result<(tokio::runtime::Runtime, async_nats::Client, jetstream::Context), ClusterError> {
    let rt = runtime().map_err(|e| ClusterError::Other(format!("starting the NATS client: {e}")))?;
    let (client, js) = rt
        .block_on(async {
            let client = connect(url, io).await?;
            let js = jetstream::new(client.clone());
            Ok::<_, String>((client, js))
        })
        .map_err(|e| nats_err(url, e))?;
    Ok((rt, client, js))
}

/// A NATS failure at `url`.
pub(crate) fn nats_err(url: &NatsUrl, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats {
        coordinator: url.shown.trim_end_matches("/_").to_string(),
        message: e.to_string(),
    }
}

/// `e` and its sources, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        s.push_str(": ");
        s.push_str(&x.to_string());
        source = x.source();
    }
    s
}

/// The record of job `name`, retrying for up to `retry_for` while the servers do not answer
/// (a cluster electing a leader).
pub async fn job_record(
    js: &jetstream::Context,
    url: &NatsUrl,
    name: &str,
    retry_for: std::time::Duration,
) -> Result<JobRecord, ClusterError> {
    let no_job = || ClusterError::NoJob {
        name: name.to_string(),
        coordinator: url.shown.trim_end_matches("/_").to_string(),
    };
    let started = std::time::Instant::now();
    let bytes = loop {
        let attempt = async {
            let jobs = match js.get_key_value(JOBS_BUCKET).await {
                Ok(b) => b,
                Err(e) if e.to_string().contains("not found") => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            jobs.get(name).await.map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(Some(b)) => break b,
            Ok(None) => return Err(no_job()),
            Err(e) if started.elapsed() >= retry_for => {
                return Err(nats_err(
                    url,
                    format!("reading job {name:?}: {e} (gave up after --nats-retry)"),
                ));
            }
            Err(e) => {
                tracing::warn!("reading job {name:?}: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| nats_err(url, format!("job {name:?}'s record is not a job record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_own_contiguous_groups() {
        let r = JobRecord {
            name: "j".into(),
            shards: 4,
            key_groups: 128,
            batch_size: 1,
            store: String::new(),
            checkpoint_every: 1,
            replicas: 1,
            pipeline: String::new(),
            plugins: vec![],
        };
        assert_eq!(r.groups_of(0), 0..32);
        assert_eq!(r.groups_of(3), 96..128);
        for g in 0..128 {
            assert!(r.groups_of(r.shard_of(g)).contains(&g));
        }
        assert!(check_name("counts-1_a").is_ok());
        assert!(check_name("a.b").is_err());
    }
}
