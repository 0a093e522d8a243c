//! The two key-value buckets workers coordinate through: leases (one key per shard) and
//! members (one key per live worker), both with a TTL per key, written by revision
//! compare-and-swap.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A shard's lease as its key holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker that holds it.
    pub worker: String,
    /// The revision at which the worker acquired it: the owner's epoch, which names its
    /// checkpoints and goes into its commit records.
    pub epoch: u64,
}

/// Why a bucket write did not happen.
#[derive(Debug)]
pub enum Refused {
    /// The key was not at the revision expected (another worker wrote it, or it expired).
    Moved,
    /// The server did not answer or failed.
    Failed(String),
}

/// Create (or open) a bucket whose keys may each carry a TTL.
pub async fn bucket(js: &jetstream::Context, name: &str, replicas: usize) -> Result<kv::Store, String> {
    if let Ok(b) = js.get_key_value(name).await {
        return Ok(b);
    }
    js.create_key_value(kv::Config {
        bucket: name.to_string(),
        history: 1,
        num_replicas: replicas.max(1),
        // Per-key TTLs (a lease's, a heartbeat's); an expired key leaves a marker this long.
        limit_markers: Some(Duration::from_secs(60)),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("creating key-value bucket {name}: {e}"))
}

/// Write `value` under `key` with a TTL of `ttl` (whole seconds, at least one), expecting the
/// key's last revision to be `expect` (`Some(0)`: no value; `None`: whatever it is). The new
/// revision.
pub async fn put_ttl(
    js: &jetstream::Context,
    bucket: &str,
    key: &str,
    value: Bytes,
    expect: Option<u64>,
    ttl: Duration,
) -> Result<u64, Refused> {
    let mut h = HeaderMap::new();
    if let Some(rev) = expect {
        h.insert("Nats-Expected-Last-Subject-Sequence", rev.to_string().as_str());
    }
    h.insert("Nats-TTL", format!("{}s", ttl.as_secs().max(1)).as_str());
    let ack = js
        .publish_with_headers(format!("$KV.{bucket}.{key}"), h, value)
        .await
        .map_err(|e| Refused::Failed(e.to_string()))?
        .await;
    match ack {
        Ok(a) => Ok(a.sequence),
        Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => Err(Refused::Moved),
        Err(e) => Err(Refused::Failed(e.to_string())),
    }
}

/// The value and revision of `key`, if it holds a live value; else the revision of what is
/// there (a delete or expiry marker, or 0 for nothing) to expect when creating it.
pub async fn read(bucket: &kv::Store, key: &str) -> Result<Result<(Bytes, u64), u64>, String> {
    match bucket.entry(key).await.map_err(|e| e.to_string())? {
        Some(e) if e.operation == kv::Operation::Put => Ok(Ok((e.value, e.revision))),
        Some(e) => Ok(Err(e.revision)),
        None => Ok(Err(0)),
    }
}

/// The keys of `bucket` that hold a live value.
pub async fn live_keys(bucket: &kv::Store) -> Result<Vec<String>, String> {
    use futures_util::StreamExt;
    let mut keys = bucket.keys().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(k) = keys.next().await {
        out.push(k.map_err(|e| e.to_string())?);
    }
    out.sort();
    Ok(out)
}
