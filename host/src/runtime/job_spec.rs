//! What a job is and what it tells: [`JobSpec`] (input, operators, output, checkpoints, error
//! policy, hooks), [`JobReport`], and the errors a job stops with.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use thiserror::Error;

use super::{InputLimits, RunError, RunStats};
use crate::checkpoint::{CheckpointConfig, CheckpointError, Codec, CommitInfo};
use crate::store::{CheckpointId, CheckpointStore};
use crate::{CallError, OperatorBuilder};

/// Why a job stopped with an error.
#[derive(Debug, Error)]
pub enum JobError {
    /// Processing failed (input, output or an operator).
    #[error(transparent)]
    Run(#[from] RunError),
    /// Restoring or taking a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An operator could not be started.
    #[error(transparent)]
    Operator(#[from] CallError),
    /// The checkpoint does not match the job as configured now.
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    /// An operator cannot run with the parallelism asked for.
    #[error(transparent)]
    Parallelism(#[from] ParallelismError),
    /// The savepoint to restore could not be read.
    #[error(transparent)]
    Savepoint(#[from] crate::checkpoint::savepoint::SavepointError),
    /// A plugin of another state version cannot take the checkpoint's state.
    #[error(transparent)]
    Migration(#[from] super::MigrationError),
}

/// Why an operator cannot run with the parallelism asked for.
#[derive(Debug, Error)]
pub enum ParallelismError {
    /// The plugin's state is all operator-wide.
    #[error(
        "operator `{operator}` cannot run with parallelism {parallelism}: {why}; run it with parallelism 1"
    )]
    SingleInstance {
        /// The operator.
        operator: String,
        /// The parallelism asked for.
        parallelism: u32,
        /// Why it runs as one instance only.
        why: String,
    },
    /// More instances than key groups.
    #[error(
        "operator `{operator}` cannot run with parallelism {parallelism}: the job has {groups} key groups, and \
         each instance owns at least one; lower the parallelism or (for a new job) raise --key-groups"
    )]
    TooMany {
        /// The operator.
        operator: String,
        /// The parallelism asked for.
        parallelism: u32,
        /// The job's key groups.
        groups: u32,
    },
    /// The checkpoint holds operator-wide entries, which one of several instances cannot own.
    #[error(
        "operator `{operator}` cannot be restored with parallelism {parallelism}: checkpoint {checkpoint} \
         holds {entries} operator-wide entries, which cannot be split by key group; run it with parallelism 1"
    )]
    OperatorWide {
        /// The operator.
        operator: String,
        /// The parallelism asked for.
        parallelism: u32,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its operator-wide entries.
        entries: usize,
    },
    /// The job's own key groups (a shard's) are not a range of its groups, or too few for the
    /// operator's instances.
    #[error(
        "operator `{operator}` cannot run with parallelism {parallelism} over key groups {}..{} of {groups}: \
         each instance owns at least one of the job's groups; lower the parallelism",
        owned.start, owned.end
    )]
    Owned {
        /// The operator.
        operator: String,
        /// The job's own groups.
        owned: std::ops::Range<u32>,
        /// The job's key groups.
        groups: u32,
        /// The parallelism asked for.
        parallelism: u32,
    },
    /// The number of key groups is out of bounds.
    #[error("{0} key groups: a job has 1 to 32768")]
    KeyGroups(u32),
}

/// How a checkpoint differs from the job that would resume from it. Resuming could feed an
/// operator state it does not understand: the job refuses unless told to accept the change.
#[derive(Debug, Error)]
pub enum Mismatch {
    /// The checkpoint holds the state of operators the job no longer has.
    #[error(
        "checkpoint {checkpoint} holds the state of operators {dropped:?}, which the job (operators {now:?}) no \
         longer has; resuming would leave that state behind"
    )]
    Dropped {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The operators whose state would be left behind.
        dropped: Vec<String>,
        /// The job's operators.
        now: Vec<String>,
    },
    /// A rename names an operator the checkpoint does not hold.
    #[error(
        "operator `{old}` is not in checkpoint {checkpoint} (it holds {saved:?}), so it cannot be renamed"
    )]
    Rename {
        /// The old name given.
        old: String,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The operators it holds.
        saved: Vec<String>,
    },
    /// An operator's plugin changed (its digest).
    #[error(
        "operator `{operator}`: the plugin changed since checkpoint {checkpoint} (digest {then}… then, {now}… \
         now); its state may not fit the new code"
    )]
    Plugin {
        /// The operator.
        operator: String,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Digest prefix then.
        then: String,
        /// Digest prefix now.
        now: String,
    },
    /// The checkpoint's source position is not one this job's source understands.
    #[error(
        "checkpoint {checkpoint} was taken reading a source of kind `{kind}`; this job reads one of kind \
         `{now}` and cannot resume from it; pass the input the job was started with, or start over with a \
         new store"
    )]
    Source {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The kind of source that wrote the position.
        kind: String,
        /// The kind of source the job reads now.
        now: String,
    },
    /// The job ended its event time at the end of its input, and the input grew since.
    #[error(
        "checkpoint {checkpoint} closed event time at the end of {input:?} (byte {offset}), but the input \
         now has {len} bytes: windows and timers were already closed, so the events after it cannot be \
         processed as part of the same job"
    )]
    Closed {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The input.
        input: String,
        /// Where the job ended.
        offset: u64,
        /// The input's length now.
        len: u64,
    },
    /// The batch size changed (results depend on batch boundaries).
    #[error(
        "checkpoint {checkpoint} was taken reading batches of {then} events, this run reads batches of {now}; \
         the watermark moves between batches, so timers, windows and state TTL would decide differently"
    )]
    BatchSize {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The batch size then.
        then: u64,
        /// The batch size now.
        now: u64,
    },
    /// Another number of key groups than the checkpoint's.
    #[error(
        "checkpoint {checkpoint} splits keyed state into {then} key groups, this run asks for {now}; the \
         number of key groups is fixed when a job first starts: leave --key-groups out (or pass {then}), or \
         start over with a new store"
    )]
    KeyGroups {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its key groups.
        then: u32,
        /// The key groups asked for.
        now: u32,
    },
    /// An operator's configuration changed.
    #[error(
        "operator `{operator}`: the configuration changed since checkpoint {checkpoint} ({then} then, {now} now)"
    )]
    Config {
        /// The operator.
        operator: String,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The configuration then.
        then: String,
        /// The configuration now.
        now: String,
    },
}

/// Events per batch when neither the job nor a checkpoint says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// When to checkpoint, besides end of input and shutdown.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Every this long (checked between batches).
    pub interval: Option<Duration>,
    /// Every this many input events (checked between batches).
    pub every_events: Option<u64>,
}

/// What to do when an operator fails a batch (trap, timeout, limit, error value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop with the error, after a final checkpoint at the position before the batch.
    #[default]
    Fail,
    /// Retry the batch's events one at a time; each event that still fails goes to the
    /// dead-letter file with its error, and processing continues.
    Skip {
        /// The dead-letter file (JSON Lines).
        dead_letter: String,
    },
}

/// Checkpointing settings of a job.
pub struct CheckpointSpec {
    /// Where checkpoints go.
    pub store: Box<dyn CheckpointStore>,
    /// How they are encoded.
    pub codec: Codec,
    /// Chaining and retention.
    pub config: CheckpointConfig,
    /// When to take them.
    pub triggers: Triggers,
    /// Restore this checkpoint instead of the newest.
    pub restore_from: Option<CheckpointId>,
    /// Restore this savepoint (`checkpoint::savepoint`) instead of the newest checkpoint.
    pub restore_savepoint: Option<String>,
    /// Resume even if an operator's plugin changed since the checkpoint (needed only for
    /// plugins that declare no state version: one that does resumes by itself at the same
    /// version and migrates from an older one).
    pub accept_plugin_change: bool,
    /// Resume even if an operator's configuration changed since the checkpoint.
    pub accept_config_change: bool,
    /// Resume although the checkpoint holds the state of operators the job no longer has
    /// (that state is left behind).
    pub allow_dropped_state: bool,
    /// Operators renamed since the checkpoint: (old name, new name).
    pub renames: Vec<(String, String)>,
    /// How long migrating the state of a checkpoint to a plugin's newer state version may take
    /// in all ([`super::DEFAULT_MIGRATION_TIMEOUT`] by default).
    pub migration_timeout: Duration,
}

/// A job: input, operators, output, and optionally checkpoints.
pub struct JobSpec {
    /// The job's name (recorded in checkpoints).
    pub name: String,
    /// Input: a JSON Lines file, `-` for stdin, or a `nats://` URL.
    pub input: String,
    /// Output: a JSON Lines file, `-` for stdout, or a `nats://` URL.
    pub output: String,
    /// Another source and sink than `input` and `output` name (an embedder's own); `None`:
    /// those names ([`super::io::Named`]).
    pub endpoints: Option<Box<dyn super::io::Endpoints>>,
    /// The operators, in order (each with its parallelism, `OperatorBuilder::parallelism`).
    pub operators: Vec<OperatorBuilder>,
    /// How many key groups keyed state is split into (1 to 32,768), fixed when the job first
    /// starts; `None`: the restored checkpoint's, else 128. A restore with another number is
    /// refused.
    pub key_groups: Option<u32>,
    /// The key groups this job owns (a shard of a sharded job, [`crate::cluster`]); `None`: all.
    /// Its operators' instances share them, and the state core refuses a key of another group
    /// and operator-wide state unless every group is owned.
    pub owned_groups: Option<std::ops::Range<u32>>,
    /// Events per batch; `None`: the batch size the restored checkpoint was taken with, else
    /// [`DEFAULT_BATCH_SIZE`]. Results depend on batch boundaries (the watermark moves between
    /// batches), so a job resumes only with the batch size its checkpoints were taken with.
    pub batch_size: Option<usize>,
    /// Checkpointing; `None` keeps no checkpoints.
    pub checkpoint: Option<CheckpointSpec>,
    /// Set (e.g. by SIGINT/SIGTERM) to stop after the current batch with a final checkpoint.
    pub stop: Arc<AtomicBool>,
    /// What to do when an operator fails.
    pub on_error: ErrorPolicy,
    /// Bounds on input lines.
    pub input_limits: InputLimits,
    /// How streams are read and written (batch wait, broker credentials and retries).
    pub io: super::IoOptions,
    /// At the end of the input, leave event time where the events put it (for an input that
    /// will grow and be resumed). By default the job ends with a final watermark of
    /// [`FINAL_WATERMARK`], so every timer fires and every open window closes and is emitted.
    pub keep_open: bool,
    /// Set while the job is restored and processing (an admin server's `/readyz`).
    pub ready: Option<Arc<AtomicBool>>,
    /// Called after every batch with where the job stands (a progress bar).
    pub progress: Option<ProgressHook>,
}

/// What [`JobSpec::progress`] calls after every batch.
pub type ProgressHook = Box<dyn FnMut(&Progress) + Send>;

/// Where a running job stands, after a batch.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Input bytes consumed.
    pub input_offset: u64,
    /// The input's size, when it is a file.
    pub input_len: Option<u64>,
    /// Events read (over the job's life).
    pub events_in: u64,
    /// Live state entries, all operators.
    pub state_keys: u64,
    /// Their bytes.
    pub state_bytes: u64,
    /// The last checkpoint committed by this run.
    pub last_checkpoint: Option<CheckpointId>,
}

/// The watermark a bounded input ends with (unless kept open): the end of event time.
pub const FINAL_WATERMARK: i64 = i64::MAX;

/// What a job did.
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    /// Counters over the job's whole life (including before a restore).
    pub stats: RunStats,
    /// The checkpoint restored at start.
    pub restored_from: Option<CheckpointId>,
    /// Checkpoints committed by this run.
    pub checkpoints: Vec<CommitInfo>,
    /// Whether the run stopped on request rather than at end of input.
    pub stopped: bool,
    /// Longest pause of the processing thread for a checkpoint cut.
    pub max_pause: Duration,
    /// Events sent to the dead-letter file by this run.
    pub dead_lettered: u64,
    /// State entries expired by state TTL in this run, all operators together.
    pub expired_keys: u64,
    /// Live state entries at the end, all operators together (timers apart).
    pub state_keys: u64,
    /// Their bytes (keys and values).
    pub state_bytes: u64,
    /// Checkpoints that failed (the store down, the disk full) in this run.
    pub checkpoint_failures: u64,
    /// `stats.events_in` when this run started (non-zero when it resumed).
    pub events_in_at_start: u64,
    /// CPU time of each of the job's threads (Linux; empty elsewhere), by name: `job` (the
    /// thread that ran `run_job`: batches, operators' first instances, checkpoint cuts),
    /// `input`, `output`, and `<operator>-<i>` for an operator's instance `i > 0`.
    pub thread_cpu: Vec<(String, Duration)>,
}
