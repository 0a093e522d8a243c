//! Running one shard as its owner: restore the checkpoint the last commit record names, run
//! the shard's job over its key groups' subjects, commit every checkpoint fenced, and say how
//! it ended ([`ShardEnd`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;

use super::record::{JobRecord, Names};
use super::shard_store::ShardStore;
use crate::OperatorBuilder;
use crate::checkpoint::{CheckpointConfig, HostState, KeySource, SourcePosition};
use crate::runtime::io::{Endpoints, Opening, Sink, Source};
use crate::runtime::nats::{
    CommitRecord, FENCED, NatsSink, NatsSource, ShardCommit, ShardInput, ShardLink, ShardRecord,
    atomic_batch, connect, last_commit, runtime,
};
use crate::runtime::{
    CheckpointSpec, ErrorPolicy, InputLimits, IoOptions, JobSpec, SinkError, SourceError, Triggers, run_job,
};

/// What every shard a worker runs shares.
pub struct ShardContext {
    /// The coordinator URL as given (credentials included: never shown).
    pub coordinator: String,
    /// Parsed.
    pub url: crate::runtime::nats::NatsUrl,
    /// The job.
    pub record: JobRecord,
    /// Its operators, plugins loaded.
    pub operators: Vec<OperatorBuilder>,
    /// Stream settings.
    pub io: IoOptions,
    /// The checkpoints' encryption key.
    pub key: KeySource,
}

/// How a shard's run ended.
#[derive(Debug)]
pub enum ShardEnd {
    /// Its input ended and everything is committed.
    Done,
    /// Stopped on request, after a last checkpoint and commit.
    Stopped,
    /// A newer owner committed: this run may never publish again.
    Fenced(String),
    /// Anything else.
    Failed(String),
}

/// The last commit record on shard `shard`'s commit subject and its sequence (0: none).
pub async fn read_last(
    js: &jetstream::Context,
    names: &Names,
    shard: u32,
    retry_for: Duration,
) -> Result<(CommitRecord, u64), String> {
    let stream = js
        .get_stream(names.output_stream())
        .await
        .map_err(|e| format!("opening stream {}: {e}", names.output_stream()))?;
    last_commit(&stream, &names.commit_subject(shard), retry_for).await
}

/// Run shard `shard` as its owner at `epoch` until its input ends, `stop` is set, or it fails.
pub fn run_shard(ctx: &ShardContext, shard: u32, epoch: u64, stop: Arc<AtomicBool>) -> ShardEnd {
    let names = ctx.record.names();
    let failed = |e: String| ShardEnd::Failed(e);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return failed(e.to_string()),
    };
    let js = match rt.block_on(async { connect(&ctx.url, &ctx.io).await.map(jetstream::new) }) {
        Ok(js) => js,
        Err(e) => return failed(e),
    };
    let (last, seq) = match rt.block_on(read_last(&js, &names, shard, ctx.io.retry_for)) {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let restored = last.shard.clone().unwrap_or_default();
    if restored.done {
        return ShardEnd::Done;
    }
    let link = Arc::new(ShardLink::default());
    // Until this owner's first checkpoint, a commit (the rest of a restored checkpoint's
    // output) makes the restored checkpoint current again.
    *link.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = restored.checkpoint;
    *link.progress.lock().unwrap_or_else(|p| p.into_inner()) = (restored.input_seq, restored.events_in);
    if seq > 0 {
        *link.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((last.clone(), seq));
    }
    let (store, codec) = match ShardStore::open(
        &ctx.record.store,
        shard,
        epoch,
        restored.checkpoint.map(|(e, _)| e),
        &ctx.key,
        link.clone(),
    ) {
        Ok(s) => s,
        Err(e) => return failed(format!("opening the checkpoint store: {e}")),
    };
    let base = ctx.coordinator.trim_end_matches('/');
    let ends = ShardEndpoints {
        input: format!("{base}/{}", names.input_stream()),
        output: format!(
            "{base}/{}?commit={}",
            names.output_subject(shard),
            names.commit_subject(shard)
        ),
        shard: ShardInput {
            subjects: vec![names.shard_input(shard)],
            ends: ctx.record.groups_of(shard).len(),
            key_groups: ctx.record.key_groups,
            owned: ctx.record.groups_of(shard),
        },
        commit: ShardCommit {
            shard,
            epoch,
            through: last.through,
            fence: seq,
            link: link.clone(),
        },
    };
    let progress_link = link.clone();
    let spec = JobSpec {
        name: names.shard_job(shard),
        input: ends.input.clone(),
        output: ends.output.clone(),
        endpoints: Some(Box::new(ends)),
        operators: ctx.operators.clone(),
        key_groups: Some(ctx.record.key_groups),
        owned_groups: Some(ctx.record.groups_of(shard)),
        batch_size: Some(ctx.record.batch_size),
        checkpoint: Some(CheckpointSpec {
            store: Box::new(store),
            codec,
            config: CheckpointConfig::default(),
            triggers: Triggers {
                interval: Some(Duration::from_secs(2)),
                every_events: Some(ctx.record.checkpoint_every),
            },
            restore_from: restored.checkpoint.map(|(_, id)| id),
            restore_savepoint: None,
            accept_plugin_change: false,
            accept_config_change: false,
            allow_dropped_state: false,
            renames: Vec::new(),
            migration_timeout: crate::runtime::DEFAULT_MIGRATION_TIMEOUT,
        }),
        stop,
        on_error: ErrorPolicy::Fail,
        input_limits: InputLimits::default(),
        io: ctx.io.clone(),
        keep_open: false,
        ready: None,
        progress: Some(Box::new(move |p| {
            *progress_link.progress.lock().unwrap_or_else(|p| p.into_inner()) = (p.input_offset, p.events_in);
        })),
    };
    let fenced = |e: String| ShardEnd::Fenced(e);
    match run_job(spec) {
        Ok(report) if report.stopped => ShardEnd::Stopped,
        Ok(_) => match rt.block_on(commit_done(&js, &names, shard, epoch, &link)) {
            Ok(()) => ShardEnd::Done,
            Err(e) if e.starts_with(FENCED) => fenced(e),
            Err(e) => failed(e),
        },
        Err(e) if link.fenced.load(Ordering::SeqCst) => fenced(super::record::error_chain(&e)),
        Err(e) => failed(super::record::error_chain(&e)),
    }
}

/// Publish the shard's last commit record again, marked done, fenced by the last commit (a
/// shard whose input held no event has none: its first record says it is done).
async fn commit_done(
    js: &jetstream::Context,
    names: &Names,
    shard: u32,
    epoch: u64,
    link: &ShardLink,
) -> Result<(), String> {
    let last = link.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (input_seq, events_in) = *link.progress.lock().unwrap_or_else(|p| p.into_inner());
    let (mut record, seq) = last.unwrap_or_else(|| {
        let record = CommitRecord {
            job: names.shard_job(shard),
            through: 0,
            shard: Some(ShardRecord {
                shard,
                epoch,
                checkpoint: None,
                input_seq,
                events_in,
                done: false,
            }),
        };
        (record, 0)
    });
    if let Some(s) = &mut record.shard {
        s.done = true;
    }
    let body = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    let id = format!("{}-done-{shard}-{seq}", std::process::id());
    let client = js.client();
    match atomic_batch(
        &client,
        js,
        &names.output_subject(shard),
        &names.commit_subject(shard),
        &id,
        &[],
        seq,
        body,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = e.to_string();
            if e.contains("wrong last sequence") {
                Err(format!(
                    "{FENCED}: another owner committed shard {shard} meanwhile ({e})"
                ))
            } else {
                Err(format!("committing shard {shard} done: {e}"))
            }
        }
    }
}

/// A shard's source and sink.
struct ShardEndpoints {
    input: String,
    output: String,
    shard: ShardInput,
    commit: ShardCommit,
}

impl Endpoints for ShardEndpoints {
    fn source_kind(&self) -> String {
        crate::runtime::nats::KIND.into()
    }

    fn open_source(
        &self,
        at: Option<&SourcePosition>,
        how: Opening<'_>,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(NatsSource::open_shard(
            &self.input,
            at,
            how,
            self.shard.clone(),
        )?))
    }

    fn open_sink(&self, restored: Option<&HostState>, how: Opening<'_>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(NatsSink::open_shard(
            &self.output,
            restored,
            how,
            self.commit.clone(),
        )?))
    }

    fn needs_checkpoints(&self, _io: &IoOptions) -> Option<String> {
        Some("a shard commits its output with its checkpoints".into())
    }
}
