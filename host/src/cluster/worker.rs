//! `cairn worker`: join a job's workers, take the shards rendezvous hashing gives this worker
//! under leases, run each on a thread of its own ([`super::shard::run_shard`]), hand shards
//! over when a worker joins, and drop a shard whose lease is lost or whose commit was fenced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv::Store};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::assign::{Action, Backoff, Seen, Settle, allowed, plan};
use super::kv::{Lease, Refused, live_keys, put_ttl, read};
use super::record::{
    ClusterError, JobRecord, Names, PLUGINS, connected, coordinator, error_chain, job_record, nats_err,
};
use super::shard::{ShardContext, ShardEnd, read_last, run_shard};
use crate::checkpoint::KeySource;
use crate::engine::ComponentCache;
use crate::runtime::{IoOptions, PipelineFile};

/// How long a shard that failed waits before this worker starts it again, the first time; each
/// failure in a row doubles it, up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest a failing shard waits.
const LAST_RETRY: Duration = Duration::from_secs(60);

/// How a worker runs.
pub struct WorkerOptions {
    /// `nats://host:port[,host:port…]` (credentials allowed).
    pub coordinator: String,
    /// The job's name.
    pub job: String,
    /// This worker's id (unique among the job's workers; default: host name and process id).
    pub worker_id: String,
    /// How long a lease lasts without renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// Stream settings (credentials, retries).
    pub io: IoOptions,
    /// The checkpoints' encryption key.
    pub key: KeySource,
    /// Where plugins are kept (each verified against its SHA-256).
    pub plugin_dir: PathBuf,
    /// The compiled-component cache.
    pub cache: Option<ComponentCache>,
    /// Set (SIGTERM) to hand every shard back and leave.
    pub stop: Arc<AtomicBool>,
    /// Leave once every shard of the job is done.
    pub exit_when_done: bool,
}

/// What a worker did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Shards this worker ran to their end.
    pub finished: Vec<u32>,
    /// Times a shard of this worker was fenced.
    pub fenced: u64,
}

struct Running {
    epoch: u64,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ShardEnd>,
    /// Being handed over: keep the lease until the shard has stopped, then delete it.
    releasing: bool,
    /// The lease's revision after this worker's last write.
    rev: u64,
}

/// Run a worker until `stop` (or, with `exit_when_done`, until every shard is done).
pub fn run_worker(opts: WorkerOptions) -> Result<WorkerReport, ClusterError> {
    if opts.lease_ttl < Duration::from_secs(2) {
        return Err(ClusterError::Other(format!(
            "--lease-ttl {}: a lease lasts at least 2s (NATS counts TTLs in whole seconds)",
            humantime::format_duration(opts.lease_ttl)
        )));
    }
    let u = coordinator(&opts.coordinator)?;
    let (rt, _client, js) = connected(&u, &opts.io)?;
    let record = rt.block_on(job_record(&js, &u, &opts.job, opts.io.retry_for))?;
    let operators = rt.block_on(load_plugins(&js, &u, &record, &opts))?;
    let names = record.names();
    let (leases, members) = rt
        .block_on(async {
            let l = js.get_key_value(names.leases_bucket()).await;
            let m = js.get_key_value(names.members_bucket()).await;
            Ok::<_, String>((l.map_err(|e| e.to_string())?, m.map_err(|e| e.to_string())?))
        })
        .map_err(|e| nats_err(&u, format!("opening the job's buckets: {e}")))?;
    let ctx = Arc::new(ShardContext {
        coordinator: opts.coordinator.clone(),
        url: u.clone(),
        record: record.clone(),
        operators,
        io: opts.io.clone(),
        key: opts.key.clone(),
    });
    tracing::info!(
        worker = %opts.worker_id,
        job = %record.name,
        "worker started: {} shards, lease {}",
        record.shards,
        humantime::format_duration(opts.lease_ttl)
    );
    let me = opts.worker_id.clone();
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut done: Vec<u32> = Vec::new();
    let mut report = WorkerReport::default();
    let tick = opts.lease_ttl / 3;
    let mut settle = Settle::default();
    let mut backoff = Backoff::new(FIRST_RETRY, LAST_RETRY);
    loop {
        let round = Instant::now();
        let leaving = opts.stop.load(Ordering::Relaxed);
        // Shards that ended.
        for shard in running.keys().copied().collect::<Vec<_>>() {
            if !running[&shard].thread.is_finished() {
                continue;
            }
            let r = running.remove(&shard).expect("present");
            let end = r
                .thread
                .join()
                .unwrap_or_else(|_| ShardEnd::Failed("the shard's thread panicked".into()));
            match end {
                ShardEnd::Done => {
                    tracing::info!(
                        shard,
                        epoch = r.epoch,
                        "shard done: input ended, every output committed"
                    );
                    report.finished.push(shard);
                    done.push(shard);
                }
                ShardEnd::Stopped => {
                    tracing::info!(shard, epoch = r.epoch, "shard stopped and committed");
                    backoff.ended_well(shard);
                }
                ShardEnd::Fenced(e) => {
                    report.fenced += 1;
                    backoff.ended_well(shard);
                    tracing::warn!(
                        shard,
                        epoch = r.epoch,
                        "FENCED: shard {shard} dropped, its state with it ({e})"
                    );
                }
                ShardEnd::Failed(e) => {
                    let wait = backoff.failed(shard, Instant::now());
                    tracing::error!(
                        shard,
                        epoch = r.epoch,
                        "shard {shard} failed: {e}; this worker starts it again in {}",
                        humantime::format_duration(wait)
                    )
                }
            }
            // Free the lease for whoever should own the shard now.
            let _ = rt.block_on(leases.delete_expect_revision(Names::lease_key(shard), Some(r.rev)));
        }
        if leaving && running.is_empty() {
            let _ = rt.block_on(members.delete(&me));
            tracing::info!(worker = %me, "worker left");
            return Ok(report);
        }
        let alive = rt.block_on(heartbeat(&js, &members, &names, &me, opts.lease_ttl, leaving));
        let view = rt.block_on(look(&js, &leases, &names, &record, &mut done, opts.io.retry_for));
        let (members_now, seen) = match (alive, view) {
            (Ok(m), Ok(s)) => (m, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(worker = %me, "the coordinator: {e}; retrying");
                std::thread::sleep(tick);
                continue;
            }
        };
        if opts.exit_when_done && done.len() as u32 >= record.shards && running.is_empty() {
            let _ = rt.block_on(members.delete(&me));
            tracing::info!(worker = %me, "every shard is done; worker left");
            return Ok(report);
        }
        let ids: Vec<u32> = running.keys().copied().collect();
        let settled = settle.observe(&members_now);
        let actions = allowed(
            plan(&me, &members_now, &seen, &ids),
            settled,
            &backoff,
            Instant::now(),
        );
        for action in actions {
            act(
                &rt,
                &js,
                &names,
                &ctx,
                &mut running,
                action,
                &me,
                opts.lease_ttl,
                leaving,
            );
        }
        std::thread::sleep(tick.saturating_sub(round.elapsed()));
    }
}

/// Carry out one action.
#[allow(clippy::too_many_arguments)]
fn act(
    rt: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    names: &Names,
    ctx: &Arc<ShardContext>,
    running: &mut BTreeMap<u32, Running>,
    action: Action,
    me: &str,
    ttl: Duration,
    leaving: bool,
) {
    let bucket = names.leases_bucket();
    let lease = |epoch: u64| {
        Bytes::from(
            serde_json::to_vec(&Lease {
                worker: me.to_string(),
                epoch,
            })
            .unwrap_or_default(),
        )
    };
    match action {
        Action::Acquire { shard } if !leaving => {
            let key = Names::lease_key(shard);
            let expect = match rt.block_on(js.get_key_value(&bucket)) {
                Ok(b) => match rt.block_on(read(&b, &key)) {
                    Ok(Err(rev)) => rev,
                    _ => return,
                },
                Err(_) => return,
            };
            match rt.block_on(put_ttl(js, &bucket, &key, lease(0), Some(expect), ttl)) {
                Ok(epoch) => {
                    tracing::info!(shard, epoch, "acquired shard {shard}");
                    let stop = Arc::new(AtomicBool::new(false));
                    let (c, s) = (ctx.clone(), stop.clone());
                    let thread = std::thread::Builder::new()
                        .name(format!("shard-{shard}"))
                        .spawn(move || run_shard(&c, shard, epoch, s));
                    match thread {
                        Ok(thread) => {
                            running.insert(
                                shard,
                                Running {
                                    epoch,
                                    stop,
                                    thread,
                                    releasing: false,
                                    rev: epoch,
                                },
                            );
                        }
                        Err(e) => tracing::error!(shard, "could not start a thread for shard {shard}: {e}"),
                    }
                }
                Err(Refused::Moved) => {}
                Err(Refused::Failed(e)) => tracing::warn!(shard, "acquiring shard {shard}: {e}"),
            }
        }
        Action::Acquire { .. } => {}
        Action::Renew { shard, rev } | Action::Release { shard, rev } => {
            let Some(r) = running.get_mut(&shard) else {
                // A lease of an earlier life of this worker: free it.
                let _ = rt.block_on(async {
                    let b = js.get_key_value(&bucket).await?;
                    b.delete_expect_revision(Names::lease_key(shard), Some(rev))
                        .await
                        .map_err(async_nats::Error::from)
                });
                return;
            };
            if matches!(action, Action::Release { .. }) || leaving {
                if !r.releasing {
                    tracing::info!(shard, epoch = r.epoch, "handing shard {shard} over");
                }
                r.releasing = true;
                r.stop.store(true, Ordering::Relaxed);
            }
            // Renewed until the shard has stopped (then deleted by the reaper).
            match rt.block_on(put_ttl(
                js,
                &bucket,
                &Names::lease_key(shard),
                lease(r.epoch),
                Some(rev),
                ttl,
            )) {
                Ok(new) => r.rev = new,
                Err(Refused::Moved) => {
                    tracing::warn!(
                        shard,
                        epoch = r.epoch,
                        "lost the lease of shard {shard}; stopping it"
                    );
                    r.stop.store(true, Ordering::Relaxed);
                }
                Err(Refused::Failed(e)) => tracing::warn!(shard, "renewing the lease of shard {shard}: {e}"),
            }
        }
        Action::Drop { shard } => {
            if let Some(r) = running.get(&shard) {
                tracing::warn!(
                    shard,
                    epoch = r.epoch,
                    "shard {shard} is leased to another worker now; stopping it"
                );
                r.stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Say this worker is alive (unless leaving); the live workers.
async fn heartbeat(
    js: &jetstream::Context,
    members: &Store,
    names: &Names,
    me: &str,
    ttl: Duration,
    leaving: bool,
) -> Result<Vec<String>, String> {
    if !leaving {
        put_ttl(
            js,
            &names.members_bucket(),
            me,
            Bytes::from_static(b"{}"),
            None,
            ttl,
        )
        .await
        .map_err(|e| match e {
            Refused::Moved => "heartbeat refused".to_string(),
            Refused::Failed(e) => e,
        })?;
    }
    let mut live = live_keys(members).await?;
    if leaving {
        live.retain(|m| m != me);
    }
    Ok(live)
}

/// Every shard's lease, and which shards are done (`done` caches those seen done).
async fn look(
    js: &jetstream::Context,
    leases: &Store,
    names: &Names,
    record: &JobRecord,
    done: &mut Vec<u32>,
    retry_for: Duration,
) -> Result<BTreeMap<u32, Seen>, String> {
    let mut seen = BTreeMap::new();
    for shard in 0..record.shards {
        if done.contains(&shard) {
            seen.insert(shard, Seen::Done);
            continue;
        }
        let s = match read(leases, &Names::lease_key(shard)).await? {
            Ok((value, rev)) => match serde_json::from_slice::<Lease>(&value) {
                Ok(l) => Seen::Held {
                    worker: l.worker,
                    rev,
                },
                Err(_) => Seen::Held {
                    worker: String::new(),
                    rev,
                },
            },
            Err(_) => {
                let (last, _) = read_last(js, names, shard, retry_for).await?;
                if last.shard.is_some_and(|s| s.done) {
                    done.push(shard);
                    Seen::Done
                } else {
                    Seen::Free
                }
            }
        };
        seen.insert(shard, s);
    }
    Ok(seen)
}

/// Fetch the job's plugins (each checked against its digest) and build its operators.
async fn load_plugins(
    js: &jetstream::Context,
    u: &crate::runtime::nats::NatsUrl,
    record: &JobRecord,
    opts: &WorkerOptions,
) -> Result<Vec<crate::OperatorBuilder>, ClusterError> {
    let dir = opts.plugin_dir.join(&record.name);
    let io = |path: &std::path::Path, source| ClusterError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let store = js
        .get_object_store(PLUGINS)
        .await
        .map_err(|e| nats_err(u, format!("opening object store {PLUGINS}: {e}")))?;
    for digest in &record.plugins {
        let path = dir.join(format!("{digest}.wasm"));
        let have = std::fs::read(&path).ok().filter(|b| sha256_hex(b) == *digest);
        if have.is_some() {
            continue;
        }
        let mut object = store
            .get(digest)
            .await
            .map_err(|e| nats_err(u, format!("fetching plugin {digest}: {e}")))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| nats_err(u, format!("reading plugin {digest}: {e}")))?;
        let got = sha256_hex(&bytes);
        if got != *digest {
            return Err(ClusterError::Other(format!(
                "plugin {digest} of job {} arrived with SHA-256 {got}: refusing to run it; recreate the job",
                record.name
            )));
        }
        std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
    }
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, &record.pipeline).map_err(|e| io(&file, e))?;
    let spec = PipelineFile::load(&file).map_err(|e| ClusterError::Other(error_chain(&e)))?;
    let engine = spec
        .engine()
        .map_err(|e| ClusterError::Other(error_chain(&e)))?
        .with_cache(opts.cache.clone());
    spec.builders(&engine)
        .map_err(|e| ClusterError::Other(error_chain(&e)))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
