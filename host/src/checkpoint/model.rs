use serde::{Deserialize, Serialize};

use crate::state::StateDelta;

/// The host's own part of a checkpoint: where the input and output stood, the counters and
/// the watermark at the cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The job (pipeline) name; checkpoints are keyed by (job, operator, partition).
    pub job: String,
    /// The input's name as given.
    pub input: String,
    /// Input bytes consumed (whole lines).
    pub input_offset: u64,
    /// Input lines consumed.
    pub input_line: u64,
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
}

/// One operator's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The operator's name within the job.
    pub name: String,
    /// The partition this instance owns (0 when unpartitioned).
    pub partition: u32,
    /// SHA-256 of the plugin's component, hex.
    pub plugin_digest: String,
    /// The operator's configuration text.
    pub config: String,
    /// All entries (full checkpoint) or the changes since the parent (delta).
    #[serde(with = "super::state_serde")]
    pub state: StateDelta,
}

/// Everything a checkpoint holds: one consistent cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointData {
    /// The host's position and counters.
    pub host: HostState,
    /// Every operator, in pipeline order.
    pub operators: Vec<OperatorSnapshot>,
}
