//! Checkpoints: one consistent cut of every operator's state and the host's own position.
//!
//! * [`format`]: the versioned binary header and integrity checks;
//! * [`codec`]: payload serialization (bincode), compression (LZ4) and the checksum;
//! * [`model`]: what a checkpoint holds;
//! * [`manager`]: full/delta decisions, the background writer, retention;
//! * [`restore`]: rebuilding state from a base and its deltas, with fallback.
//!
//! Uses [`crate::store`] for the bytes; knows nothing of WASM.

pub mod codec;
mod error;
pub mod format;
pub mod manager;
pub mod model;
pub mod restore;

pub use codec::Codec;
pub use error::{CheckpointError, Damage};
pub use format::{Header, Kind};
pub use manager::{CheckpointConfig, Checkpointer, CommitInfo, OperatorPart, ResumePoint};
pub use model::{CheckpointData, HostState, OperatorSnapshot};
pub use restore::{Restored, RestoredOperator, describe, restore};
