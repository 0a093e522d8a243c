//! What a checkpoint holds: the host's position and counters, and every operator's state (all
//! of it in a full checkpoint, the changes in a delta).

use serde::{Deserialize, Serialize};

use crate::state::StateDelta;

/// The host's own part of a checkpoint: where the input and output stood, the counters and
/// the watermark at the cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The job (pipeline) name; checkpoints are keyed by (job, operator, partition).
    pub job: String,
    /// Where the source stood: a record only the source interprets, so that new sources
    /// (streams, partitions) need no change of the checkpoint format.
    pub source: SourcePosition,
    /// Output bytes written.
    pub output_len: u64,
    /// Dead-letter file bytes written (0 without one).
    pub dead_letter_len: u64,
    /// Events read.
    pub events_in: u64,
    /// Events written.
    pub events_out: u64,
    /// Batches processed.
    pub batches: u64,
    /// The watermark (highest event time seen).
    pub watermark: Option<i64>,
    /// What the sink needs to finish its part of this checkpoint after a restore (format 4;
    /// empty for a JSON Lines output, whose position is `output_len`).
    pub sink: SinkPosition,
}

/// A sink's record at the cut, as the sink wrote it (for a sink that makes its output visible
/// only once the checkpoint is durable: what it had not yet made visible).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkPosition {
    /// Which kind of sink wrote it; empty when the sink keeps nothing here.
    pub kind: String,
    /// The sink's own record.
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// A source's position at the cut, as the source wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Which kind of source wrote it, e.g. [`JsonlPosition::KIND`].
    pub kind: String,
    /// The source's own record (for a JSON Lines input: a [`JsonlPosition`] as JSON text).
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// Where a JSON Lines input stood: the record of sources of kind [`JsonlPosition::KIND`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonlPosition {
    /// The input's name as given.
    pub input: String,
    /// Bytes consumed (whole lines).
    pub offset: u64,
    /// Lines consumed.
    pub line: u64,
    /// Events per batch: results depend on batch boundaries (the watermark moves between
    /// batches), so a job resumes only with the batch size it was checkpointed with. Absent in
    /// checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
}

impl JsonlPosition {
    /// The kind of source.
    pub const KIND: &'static str = "jsonl";

    /// As a source position.
    pub fn to_source(&self) -> SourcePosition {
        SourcePosition {
            kind: Self::KIND.into(),
            record: serde_json::to_vec(self).unwrap_or_default(),
        }
    }

    /// Read it back; `None` when `p` is another kind of source's position or malformed.
    pub fn from_source(p: &SourcePosition) -> Option<Self> {
        if p.kind != Self::KIND {
            return None;
        }
        serde_json::from_slice(&p.record).ok()
    }
}

/// One operator's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSnapshot {
    /// The operator's name within the job.
    pub name: String,
    /// SHA-256 of the plugin's component, hex.
    pub plugin_digest: String,
    /// The operator's configuration text.
    pub config: String,
    /// How many key groups its keyed entries are split into (fixed for a job; recorded so a
    /// job can restore with another parallelism).
    pub key_groups: u32,
    /// How many instances the cut was taken from (1 before format 5).
    pub parallelism: u32,
    /// Entries expired by state TTL over the operator's life, all instances summed (before
    /// format 5: the host's `!e` entry among the operator's entries).
    pub expired: u64,
    /// The state version its plugin declared (0 before format 6, and for plugins that declare
    /// none): a plugin of a newer one migrates the state on restore.
    pub state_version: u32,
    /// All entries (full checkpoint) or the changes since the parent (delta). The payload
    /// stores them grouped by key group (`payload`).
    pub state: StateDelta,
}

/// Everything a checkpoint holds: one consistent cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointData {
    /// The host's position and counters.
    pub host: HostState,
    /// Every operator, in pipeline order.
    pub operators: Vec<OperatorSnapshot>,
}
