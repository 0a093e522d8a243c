//! Taking checkpoints: the synchronous cut on the processing thread and the background
//! writer that encodes, commits and applies retention.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::codec::Placement;
use super::{CheckpointData, CheckpointError, Codec, HostState, Kind, OperatorSnapshot};
use crate::state::StateHolder;
use crate::store::{CheckpointId, CheckpointStore, StoreError};

/// How checkpoints are chained and retained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// A full checkpoint after this many deltas (0 = every checkpoint is full).
    pub full_every: u32,
    /// How many restorable checkpoints to keep (at least 1); bases they need are kept too.
    pub max_retained: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            full_every: 10,
            max_retained: 3,
        }
    }
}

/// A committed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Its id.
    pub id: CheckpointId,
    /// Full or delta.
    pub kind: Kind,
    /// Stored bytes.
    pub bytes: usize,
    /// Keys written or removed, over all operators.
    pub keys: usize,
    /// Time from the cut to the commit (off the processing thread).
    pub write_time: Duration,
    /// Checkpoints deleted by retention.
    pub deleted: Vec<CheckpointId>,
}

/// One operator as the checkpoint cut sees it: identity and a handle on each instance's state.
pub struct OperatorPart<'a> {
    /// Name within the job.
    pub name: &'a str,
    /// SHA-256 of its plugin, hex.
    pub plugin_digest: String,
    /// Its configuration text.
    pub config: &'a str,
    /// The job's key groups.
    pub key_groups: u32,
    /// Entries expired by state TTL over the operator's life, all instances summed.
    pub expired: u64,
    /// The state version its plugin declares.
    pub state_version: u32,
    /// Each instance's state, their key groups disjoint (the cut takes every one's delta or
    /// snapshot; the checkpoint holds them as one operator's entries).
    pub states: Vec<&'a mut StateHolder>,
}

impl<'a> OperatorPart<'a> {
    /// One instance that owns every one of the default 128 key groups.
    pub fn single(name: &'a str, plugin_digest: String, config: &'a str, state: &'a mut StateHolder) -> Self {
        Self {
            name,
            plugin_digest,
            config,
            key_groups: cairn_codec::scoped::DEFAULT_KEY_GROUPS,
            expired: 0,
            state_version: 0,
            states: vec![state],
        }
    }
}

/// Where the chain continues after a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// The restored checkpoint.
    pub id: CheckpointId,
    /// Its chain's full checkpoint.
    pub base: CheckpointId,
    /// Deltas in its chain after the base.
    pub deltas: u32,
    /// Whether the chain can go on with a delta: it was the newest checkpoint (otherwise the
    /// next checkpoint is full, so the newer ones are not mixed into a chain that skips them)
    /// and the job has the same operators (a runtime sets it false when they changed).
    pub was_latest: bool,
}

struct WriteJob {
    at: Placement,
    /// Per operator (by index), the states of its instances after the first, joined to the
    /// operator's on the writer thread (the cut only moves them out).
    more: Vec<(usize, Vec<crate::state::StateDelta>)>,
    /// How long the write of checkpoint `at.id - 1` took, µs, if this process wrote it.
    previous_write_us: Option<u32>,
    data: CheckpointData,
    output: Option<File>,
    keys: usize,
}

/// Takes checkpoints of a pipeline. The cut (taking each operator's delta or snapshot and the
/// host's position) happens on the calling thread; encoding, compression, the output fsync and
/// the store commit happen on a background thread. At most one checkpoint is in flight.
pub struct Checkpointer {
    config: CheckpointConfig,
    store_name: String,
    next_id: CheckpointId,
    /// (id, base, deltas since base) of the newest checkpoint this chain builds on.
    parent: Option<(CheckpointId, CheckpointId, u32)>,
    force_full: bool,
    in_flight: Option<(Placement, Instant)>,
    jobs: Option<SyncSender<WriteJob>>,
    done: Receiver<Result<CommitInfo, CheckpointError>>,
    writer: Option<JoinHandle<()>>,
    last_pause: Duration,
    /// The last checkpoint this process committed, and how long its write took.
    last_commit: Option<(CheckpointId, Duration)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Checkpointer {
    /// Start checkpointing into `store`. `resume` is the checkpoint the pipeline was restored
    /// from, if any. Reads the headers of existing checkpoints (for ids and retention).
    pub fn start(
        store: Box<dyn CheckpointStore>,
        codec: Codec,
        config: CheckpointConfig,
        resume: Option<ResumePoint>,
    ) -> Result<Self, CheckpointError> {
        let store_name = store.describe();
        let ids = store.list()?;
        // Retention only needs each checkpoint's parent link: read the (CRC-checked) header,
        // not the payload — restore has already verified what it loaded, and decrypting every
        // stored checkpoint again here would only slow start-up down.
        let mut index = BTreeMap::new();
        for &id in &ids {
            if let Some(bytes) = store.get(id)?
                && let Ok(h) = super::Header::decode(&bytes)
                && h.sequence == id
            {
                index.insert(id, h.parent);
            }
        }
        let next_id = ids
            .last()
            .map(|m| m + 1)
            .unwrap_or(1)
            .max(resume.map(|r| r.id + 1).unwrap_or(1));
        let (jobs_tx, jobs_rx) = sync_channel::<WriteJob>(1);
        let (done_tx, done_rx) = sync_channel(1);
        let max_retained = config.max_retained.max(1);
        let writer = std::thread::Builder::new()
            .name("cairn-checkpoint".into())
            .spawn(move || {
                let mut w = Writer {
                    store,
                    codec,
                    index,
                    max_retained,
                };
                for job in jobs_rx {
                    let r = w.write(job);
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| CheckpointError::Encode {
                id: next_id,
                message: format!("could not start the writer thread: {e}"),
            })?;
        Ok(Self {
            config,
            store_name,
            next_id,
            parent: resume.map(|r| (r.id, r.base, r.deltas)),
            force_full: resume.is_some_and(|r| !r.was_latest),
            in_flight: None,
            jobs: Some(jobs_tx),
            done: done_rx,
            writer: Some(writer),
            last_pause: Duration::ZERO,
            last_commit: None,
        })
    }

    /// The store's URL.
    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    /// Whether a checkpoint is being written.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// How long the last cut held the processing thread.
    pub fn last_pause(&self) -> Duration {
        self.last_pause
    }

    fn finish(&mut self, r: Result<CommitInfo, CheckpointError>) -> Result<CommitInfo, CheckpointError> {
        let Some((at, _)) = self.in_flight.take() else {
            return r;
        };
        match &r {
            Ok(info) => {
                self.last_commit = Some((info.id, info.write_time));
                tracing::debug!(id = info.id, kind = %info.kind, bytes = info.bytes, keys = info.keys,
                    write_ms = info.write_time.as_secs_f64() * 1e3, "checkpoint committed");
            }
            Err(e @ CheckpointError::Store(StoreError::Conflict { .. })) => {
                tracing::error!("checkpoint {} refused: {e}; the job stops", at.id);
            }
            Err(e) => {
                tracing::warn!(
                    "checkpoint {} failed: {e}; processing goes on and the next checkpoint will be full",
                    at.id
                );
                self.force_full = true;
                self.parent = None;
            }
        }
        r
    }

    /// The result of the checkpoint in flight, if it has finished (non-blocking).
    pub fn poll(&mut self) -> Option<Result<CommitInfo, CheckpointError>> {
        self.in_flight?;
        match self.done.try_recv() {
            Ok(r) => Some(self.finish(r)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(self.finish(Err(CheckpointError::WriterGone))),
        }
    }

    /// Wait for the checkpoint in flight, if any.
    pub fn wait(&mut self) -> Option<Result<CommitInfo, CheckpointError>> {
        self.in_flight?;
        let r = self.done.recv().unwrap_or(Err(CheckpointError::WriterGone));
        Some(self.finish(r))
    }

    /// Take a checkpoint of `pipeline` at `host`'s position unless one is still being written
    /// (then returns `Ok(None)`: try again later; changes keep accumulating). `output` is a
    /// handle to the output file, fsynced before the checkpoint is committed.
    pub fn begin(
        &mut self,
        host: HostState,
        operators: Vec<OperatorPart<'_>>,
        output: Option<File>,
    ) -> Result<Option<Placement>, CheckpointError> {
        if self.in_flight.is_some() && self.poll().is_none() {
            return Ok(None);
        }
        let started = Instant::now();
        let id = self.next_id;
        let at = match self.parent {
            Some((parent, base, deltas)) if !self.force_full && deltas < self.config.full_every => {
                Placement {
                    id,
                    kind: Kind::Delta,
                    base,
                    parent: Some(parent),
                }
            }
            _ => Placement {
                id,
                kind: Kind::Full,
                base: id,
                parent: None,
            },
        };
        let mut keys = 0;
        let mut more = Vec::new();
        let operators = operators
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                let parallelism = op.states.len() as u32;
                let mut parts: Vec<crate::state::StateDelta> = op
                    .states
                    .into_iter()
                    .map(|holder| {
                        if at.kind == Kind::Full {
                            let s = holder.snapshot();
                            holder.clear_changes();
                            s
                        } else {
                            holder.take_delta()
                        }
                    })
                    .collect();
                keys += parts
                    .iter()
                    .map(|p| p.sets.len() + p.deletes.len())
                    .sum::<usize>();
                let state = if parts.is_empty() {
                    Default::default()
                } else {
                    parts.remove(0)
                };
                if !parts.is_empty() {
                    more.push((i, parts));
                }
                OperatorSnapshot {
                    name: op.name.to_string(),
                    plugin_digest: op.plugin_digest,
                    config: op.config.to_string(),
                    key_groups: op.key_groups,
                    parallelism,
                    expired: op.expired,
                    state_version: op.state_version,
                    state,
                }
            })
            .collect();
        let previous_write_us = self
            .last_commit
            .filter(|(prev, _)| prev + 1 == id)
            .map(|(_, d)| u32::try_from(d.as_micros()).unwrap_or(u32::MAX - 1));
        let job = WriteJob {
            at,
            more,
            previous_write_us,
            data: CheckpointData { host, operators },
            output,
            keys,
        };
        let jobs = self.jobs.as_ref().ok_or(CheckpointError::WriterGone)?;
        jobs.send(job).map_err(|_| CheckpointError::WriterGone)?;
        self.next_id += 1;
        self.force_full = false;
        self.parent = Some(match at.kind {
            Kind::Full => (id, id, 0),
            Kind::Delta => (id, at.base, self.parent.map(|p| p.2).unwrap_or(0) + 1),
        });
        self.in_flight = Some((at, started));
        self.last_pause = started.elapsed();
        Ok(Some(at))
    }

    /// Take a checkpoint and wait for it to be committed (end of input, shutdown).
    pub fn checkpoint_now(
        &mut self,
        host: HostState,
        operators: Vec<OperatorPart<'_>>,
        output: Option<File>,
    ) -> Result<CommitInfo, CheckpointError> {
        if let Some(Err(e)) = self.wait() {
            tracing::warn!("previous checkpoint failed: {e}");
        }
        self.begin(host, operators, output)?;
        self.wait().unwrap_or(Err(CheckpointError::WriterGone))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

struct Writer {
    store: Box<dyn CheckpointStore>,
    codec: Codec,
    /// Valid checkpoints: id -> parent.
    index: BTreeMap<CheckpointId, Option<CheckpointId>>,
    max_retained: usize,
}

impl Writer {
    fn write(&mut self, job: WriteJob) -> Result<CommitInfo, CheckpointError> {
        let started = Instant::now();
        let id = job.at.id;
        if let Some(f) = &job.output {
            f.sync_data().map_err(|e| CheckpointError::OutputSync {
                id,
                message: e.to_string(),
            })?;
        }
        let mut data = job.data;
        for (i, parts) in job.more {
            let state = &mut data.operators[i].state;
            state.sets.reserve(parts.iter().map(|p| p.sets.len()).sum());
            for p in parts {
                state.sets.extend(p.sets);
                state.deletes.extend(p.deletes);
            }
        }
        // Deltas are taken unsorted on the processing thread; sort here for stable bytes.
        for op in &mut data.operators {
            op.state.sets.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            op.state.deletes.sort_unstable();
        }
        let bytes = self
            .codec
            .encode_with(job.at, now_ms(), job.previous_write_us, &data)
            .map_err(|message| CheckpointError::Encode { id, message })?;
        drop(data);
        let mut chain = Vec::new();
        let mut cur = job.at.parent;
        while let Some(p) = cur {
            if chain.len() > self.index.len() {
                break;
            }
            chain.push(p);
            cur = self.index.get(&p).copied().flatten();
        }
        self.store.commit(id, &bytes, &chain)?;
        self.index.insert(id, job.at.parent);
        let deleted = self.retain(id);
        Ok(CommitInfo {
            id,
            kind: job.at.kind,
            bytes: bytes.len(),
            keys: job.keys,
            write_time: started.elapsed(),
            deleted,
        })
    }

    /// Keep the newest `max_retained` checkpoints and every checkpoint their chains need.
    fn retain(&mut self, newest: CheckpointId) -> Vec<CheckpointId> {
        let mut needed = BTreeSet::new();
        for &id in self
            .index
            .range(..=newest)
            .rev()
            .map(|(id, _)| id)
            .take(self.max_retained)
        {
            let mut cur = Some(id);
            while let Some(c) = cur {
                if !needed.insert(c) {
                    break;
                }
                cur = self.index.get(&c).copied().flatten();
            }
        }
        let mut deleted = Vec::new();
        let listed = match self.store.list() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("retention skipped: {e}");
                return deleted;
            }
        };
        for id in listed {
            if id < newest && !needed.contains(&id) {
                match self.store.delete(id) {
                    Ok(()) => {
                        self.index.remove(&id);
                        deleted.push(id);
                    }
                    Err(e) => tracing::warn!("retention could not delete checkpoint {id}: {e}"),
                }
            }
        }
        deleted
    }
}
