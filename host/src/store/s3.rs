use std::collections::BTreeMap;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
    WriteMultipart,
};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use super::{CheckpointId, CheckpointStore, StoreError};

/// The smallest part S3 accepts (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Checkpoints above this size go up as multipart uploads, in parts of this size.
pub const DEFAULT_PART_SIZE: usize = 16 << 20;
/// How long a failing request is retried (with backoff) before the operation fails.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(20);
/// Parts uploaded at once by a multipart upload.
const PARTS_IN_FLIGHT: usize = 4;

/// The pointer object: which checkpoints are committed, under which object, and the latest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Manifest {
    latest: Option<CheckpointId>,
    /// id → object name (relative to the prefix).
    checkpoints: BTreeMap<CheckpointId, String>,
}

/// An object's bytes and its ETag.
type Versioned = (Vec<u8>, Option<String>);

/// Where [`S3Store`] connects and how it writes.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The key prefix ("" for the bucket's root).
    pub prefix: String,
    /// Settings from the URL's query (`endpoint`, `region`, `allow_http`, …, any key of
    /// object_store's `AmazonS3ConfigKey`); they override the `AWS_*` environment variables.
    pub config: Vec<(String, String)>,
    /// Checkpoints larger than this go up in parts of this size.
    pub part_size: usize,
}

/// Checkpoints in S3 or an S3-compatible object store, under `<prefix>/`:
///
/// - `ckpt-<id, 20 digits>-<writer>.cairn`: a checkpoint's bytes, written whole (one put, or a
///   multipart upload for large ones) under a name no other writer uses, never overwritten;
/// - `LATEST`: the manifest (JSON): the committed checkpoints' objects and the latest id. It is
///   the only object ever replaced, and only by a conditional put on the version this handle
///   last saw (`If-Match: <etag>`, or `If-None-Match: *` when there is none), so that of two
///   jobs checkpointing to one prefix exactly one wins; the other gets [`StoreError::Conflict`].
/// - `meta-<name>`: metadata blobs (the encryption salt).
///
/// Writing a checkpoint's object ([`put`](CheckpointStore::put)) and naming it in the manifest
/// ([`publish`](CheckpointStore::publish)) are separate steps. Requests are retried with
/// exponential backoff on 5xx answers, timeouts and refused connections, for up to
/// [`DEFAULT_RETRY_TIMEOUT`] (the URL's `retry_timeout` changes it).
pub struct S3Store {
    store: AmazonS3,
    runtime: Runtime,
    url: String,
    prefix: String,
    part_size: usize,
    retry_timeout: Duration,
    /// This handle's writer name, in the objects it writes.
    writer: String,
    /// The manifest as this handle last read or wrote it, and its ETag.
    manifest: Manifest,
    etag: Option<String>,
    /// Objects put but not published yet.
    pending: BTreeMap<CheckpointId, String>,
    /// Manifests this handle sent whose answer never came (the server may have written them):
    /// finding one of them in place later is finding our own write, not another job's.
    unanswered: Vec<Manifest>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("url", &self.url).finish()
    }
}

impl S3Store {
    /// Connect and read the manifest. Credentials, region and endpoint come from the `AWS_*`
    /// environment variables, overridden by `options.config`.
    pub fn open(options: S3Options) -> Result<Self, StoreError> {
        let url = if options.prefix.is_empty() {
            format!("s3://{}", options.bucket)
        } else {
            format!("s3://{}/{}", options.bucket, options.prefix)
        };
        let bad = |reason: String| StoreError::BadUrl {
            url: url.clone(),
            reason,
        };
        let mut retry_timeout = DEFAULT_RETRY_TIMEOUT;
        let mut config = Vec::new();
        for (k, v) in &options.config {
            if k == "retry_timeout" {
                retry_timeout = humantime::parse_duration(v)
                    .map_err(|e| bad(format!("retry_timeout {v:?}: {e} (e.g. 20s, 500ms, 2m)")))?;
            } else {
                config.push((k, v));
            }
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&options.bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(4),
                    base: 2.0,
                },
                max_retries: if retry_timeout.is_zero() { 0 } else { 16 },
                retry_timeout,
            })
            .with_config(
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::Timeout),
                "30s",
            )
            .with_config(
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::ConnectTimeout),
                "5s",
            );
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            builder = builder.with_config(AmazonS3ConfigKey::Region, "us-east-1");
        }
        for (k, v) in config {
            let key: AmazonS3ConfigKey = k.parse().map_err(|_| {
                bad(format!(
                    "unknown query parameter {k:?} (known: endpoint, region, allow_http, part_size, \
                     retry_timeout, access_key_id, secret_access_key, session_token, and any other AWS_* setting \
                     in lower case)"
                ))
            })?;
            builder = builder.with_config(key, v);
        }
        // reqwest's rustls has no provider of its own (host/Cargo.toml): ring, for the whole
        // process, unless one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend(&url, "starting the S3 client", e))?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| StoreError::backend(&url, "drawing a writer id", e))?;
        let mut s = Self {
            store,
            runtime,
            url,
            prefix: options.prefix.trim_matches('/').to_string(),
            part_size: options.part_size.max(MIN_PART_SIZE),
            retry_timeout,
            writer: hex::encode(id),
            manifest: Manifest::default(),
            etag: None,
            pending: BTreeMap::new(),
            unanswered: Vec::new(),
        };
        let (manifest, etag) = s.read_manifest()?;
        s.manifest = manifest;
        s.etag = etag;
        Ok(s)
    }

    /// Run `op` again, with backoff, while it fails on the way to or from the server (a
    /// refused connection, a reset, a timeout), until the retry timeout. object_store retries
    /// idempotent requests itself; this also covers the conditional puts, which are safe to
    /// repeat here: a checkpoint object's name is this writer's alone (so "already exists" on
    /// a repeat means the earlier attempt landed), and a manifest put that landed is recognised
    /// as our own (`write_manifest`).
    async fn again<T, Fut>(&self, mut op: impl FnMut() -> Fut) -> object_store::Result<T>
    where
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match op().await {
                Err(e) if on_the_wire(&e) && started.elapsed() + pause < self.retry_timeout => {
                    tracing::debug!(store = %self.url, "retrying in {pause:?}: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(4));
                }
                r => return r,
            }
        }
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn err(&self, action: impl Into<String>, e: impl std::fmt::Display) -> StoreError {
        StoreError::backend(
            &self.url,
            action,
            format!(
                "{e} (is the endpoint reachable, does the bucket exist, and do AWS_ACCESS_KEY_ID / \
                 AWS_SECRET_ACCESS_KEY grant access? For a local server set AWS_ENDPOINT_URL and \
                 AWS_ALLOW_HTTP=true)"
            ),
        )
    }

    fn conflict(&self, message: String) -> StoreError {
        StoreError::Conflict {
            store: self.url.clone(),
            message,
        }
    }

    /// An object's bytes and ETag, or `None` if it does not exist.
    fn read(&self, name: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(name);
        self.runtime.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => {
                    let etag = r.meta.e_tag.clone();
                    let bytes = r
                        .bytes()
                        .await
                        .map_err(|e| self.err(format!("reading {path}"), e))?;
                    Ok(Some((bytes.to_vec(), etag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err(format!("reading {path}"), e)),
            }
        })
    }

    fn read_manifest(&self) -> Result<(Manifest, Option<String>), StoreError> {
        match self.read("LATEST")? {
            None => Ok((Manifest::default(), None)),
            Some((bytes, etag)) => {
                let m = serde_json::from_slice(&bytes).map_err(|e| {
                    self.err(
                        format!("reading {}", self.path("LATEST")),
                        format!("it is not a Cairn manifest ({e}); was the prefix used by something else?"),
                    )
                })?;
                Ok((m, etag))
            }
        }
    }

    /// Replace the manifest with `change(current)`, on the condition that it is still the
    /// version this handle last saw.
    ///
    /// When the answer to a put is lost (the server went away mid-request), the put may or may
    /// not have landed. Such a manifest is remembered; if a later conditional put is refused and
    /// the manifest in place is one of them, it was our own write: this handle takes it as the
    /// version it last saw and applies its change on top. Any other manifest in place is
    /// another writer's, a [`StoreError::Conflict`].
    fn write_manifest(
        &mut self,
        change: impl Fn(&Manifest) -> Manifest,
        what: &str,
    ) -> Result<(), StoreError> {
        let path = self.path("LATEST");
        loop {
            let next = change(&self.manifest);
            let body = serde_json::to_vec(&next).map_err(|e| self.err(what, e))?;
            let mode = match &self.etag {
                Some(e) => PutMode::Update(UpdateVersion {
                    e_tag: Some(e.clone()),
                    version: None,
                }),
                None => PutMode::Create,
            };
            let body = bytes::Bytes::from(body);
            let result = self.runtime.block_on(self.again(|| {
                let opts = PutOptions {
                    mode: mode.clone(),
                    ..Default::default()
                };
                self.store.put_opts(&path, PutPayload::from(body.clone()), opts)
            }));
            match result {
                Ok(r) => {
                    self.manifest = next;
                    self.unanswered.clear();
                    self.etag = r.e_tag;
                    if self.etag.is_none() {
                        // A server that does not answer with an ETag: read it back.
                        self.etag = self.read_manifest()?.1;
                    }
                    return Ok(());
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    // Maybe our own earlier attempt landed and only its answer was lost: then the
                    // manifest is one we wrote (it names objects only we write).
                    let (now, etag) = self.read_manifest()?;
                    if now == next {
                        self.manifest = next;
                        self.unanswered.clear();
                        self.etag = etag;
                        return Ok(());
                    }
                    if self.unanswered.contains(&now) {
                        tracing::debug!(store = %self.url, "an earlier manifest put whose answer was lost had landed");
                        self.manifest = now;
                        self.unanswered.clear();
                        self.etag = etag;
                        continue;
                    }
                    return Err(self.conflict(format!(
                        "{what} was refused because {path} was replaced since this job read it \
                         (it now names checkpoint {})",
                        now.latest.map_or("none".into(), |l| l.to_string())
                    )));
                }
                Err(e) => {
                    if on_the_wire(&e) {
                        self.unanswered.push(next);
                    }
                    return Err(self.err(what, e));
                }
            }
        }
    }
}

/// Whether `e` failed on the way to or from the server (not an answer of the server).
fn on_the_wire(e: &object_store::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<object_store::client::HttpError>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

impl CheckpointStore for S3Store {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn put(&mut self, id: CheckpointId, bytes: &[u8], _chain: &[CheckpointId]) -> Result<(), StoreError> {
        let name = format!("ckpt-{id:020}-{}.cairn", self.writer);
        let path = self.path(&name);
        let action = format!("writing checkpoint {id} to {path}");
        let body = bytes::Bytes::copy_from_slice(bytes);
        let (store, part_size) = (&self.store, self.part_size);
        let result = self.runtime.block_on(self.again(|| {
            let body = body.clone();
            let path = &path;
            async move {
                if body.len() <= part_size {
                    let opts = PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    };
                    let len = body.len() as u64;
                    match store.put_opts(path, PutPayload::from(body), opts).await {
                        // The name is this writer's alone and it puts each id once: an earlier
                        // attempt (ours, or one object_store repeated) landed and only its answer
                        // was lost. A put is atomic; check its size all the same.
                        Err(e @ object_store::Error::AlreadyExists { .. }) => match store.head(path).await {
                            Ok(meta) if meta.size == len => Ok(()),
                            _ => Err(e),
                        },
                        r => r.map(|_| ()),
                    }
                } else {
                    let upload = store.put_multipart(path).await?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, part_size);
                    for chunk in body.chunks(part_size) {
                        w.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                        w.put(body.slice_ref(chunk));
                    }
                    w.finish().await.map(|_| ())
                }
            }
        }));
        result.map_err(|e| self.err(action, e))?;
        self.pending.insert(id, name);
        Ok(())
    }

    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        let Some(name) = self
            .pending
            .get(&id)
            .cloned()
            .or_else(|| self.manifest.checkpoints.get(&id).cloned())
        else {
            return Err(self.err(
                format!("pointing latest at checkpoint {id}"),
                "this handle never wrote that checkpoint",
            ));
        };
        let add = |m: &Manifest| {
            let mut next = m.clone();
            next.checkpoints.insert(id, name.clone());
            next.latest = Some(id);
            next
        };
        self.write_manifest(add, &format!("committing checkpoint {id}"))?;
        self.pending.remove(&id);
        Ok(())
    }

    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        let (manifest, _) = self.read_manifest()?;
        let Some(name) = manifest.checkpoints.get(&id) else {
            return Ok(None);
        };
        Ok(self.read(name)?.map(|(b, _)| b))
    }

    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        Ok(self.read_manifest()?.0.checkpoints.keys().copied().collect())
    }

    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        Ok(self.read_manifest()?.0.latest)
    }

    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        let Some(name) = self.manifest.checkpoints.get(&id).cloned() else {
            return Ok(());
        };
        let remove = |m: &Manifest| {
            let mut next = m.clone();
            next.checkpoints.remove(&id);
            if next.latest == Some(id) {
                next.latest = next.checkpoints.keys().next_back().copied();
            }
            next
        };
        self.write_manifest(remove, &format!("deleting checkpoint {id}"))?;
        // Unnamed now; a failure here only leaves an object nothing refers to.
        let path = self.path(&name);
        match self.runtime.block_on(self.again(|| self.store.delete(&path))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("deleting {path}"), e)),
        }
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(&format!("meta-{name}"))?.map(|(b, _)| b))
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(&format!("meta-{name}"));
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.runtime
            .block_on(self.again(|| self.store.put(&path, PutPayload::from(body.clone()))))
            .map(|_| ())
            .map_err(|e| self.err(format!("writing {path}"), e))
    }
}
