//! Checkpoints: one consistent cut of every operator's state and the host's own position.
//!
//! * [`format`]: the versioned binary header and integrity checks;
//! * [`codec`]: payload serialization (bincode), compression (LZ4) and the checksum;
//! * [`ranged`]: format 5's index and blocks by key-group range;
//! * [`model`]: what a checkpoint holds;
//! * [`manager`]: full/delta decisions, the background writer, retention;
//! * [`restore`]: rebuilding state from a base and its deltas, with fallback;
//! * [`savepoint`]: checkpoints pinned under a name, self-contained, kept until unpinned;
//! * [`export`], [`import`]: an operator's state as JSON Lines and back (the state processor).
//!
//! Uses [`crate::store`] for the bytes; knows nothing of WASM.

mod block;
pub mod codec;
mod compression;
pub mod crypto;
mod error;
pub mod export;
pub mod format;
pub mod import;
pub mod inspect;
pub mod manager;
pub mod model;
mod payload;
pub mod ranged;
pub mod restore;
pub mod savepoint;
mod state_serde;

pub use codec::Codec;
pub use compression::Compression;
pub use crypto::{EncryptionKey, KeyError, KeyKind, KeySource};
pub use error::{CheckpointError, Damage};
pub use format::{Header, Kind};
pub use manager::{CheckpointConfig, Checkpointer, CommitInfo, OperatorPart, ResumePoint};
pub use model::{CheckpointData, HostState, JsonlPosition, OperatorSnapshot, SinkPosition, SourcePosition};
pub use ranged::DecodeStats;
pub use restore::{Restored, RestoredOperator, read_checkpoint, restore, restore_part};

/// Why a store could not be opened for checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed or its URL is bad.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The key does not fit the store.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Open the store at `url` and settle its encryption with `key` (see [`crypto::setup`]):
/// returns the store and the codec to read and write it with.
pub fn open_store(
    url: &str,
    key: &KeySource,
) -> Result<(Box<dyn crate::store::CheckpointStore>, Codec), OpenError> {
    let mut store = crate::store::open(url)?;
    let key = crypto::setup(store.as_mut(), key)?;
    Ok((store, Codec::with_key(key.as_ref())))
}

/// Copy every committed checkpoint of `from` (and its encryption metadata) into the empty
/// store `to`, byte for byte, so a job can resume on another backend or machine. Plain
/// checkpoints are verified on the way (damaged ones are refused); returns the ids copied.
pub fn copy_store(
    from: &dyn crate::store::CheckpointStore,
    to: &mut dyn crate::store::CheckpointStore,
) -> Result<Vec<crate::store::CheckpointId>, CheckpointError> {
    if !to.list()?.is_empty() {
        return Err(CheckpointError::Encode {
            id: 0,
            message: format!(
                "{} already holds checkpoints; copy into an empty store (a new directory, prefix or database)",
                to.describe()
            ),
        });
    }
    crypto::copy_meta(from, to).map_err(|e| CheckpointError::Encode {
        id: 0,
        message: e.to_string(),
    })?;
    let latest = from.latest()?.unwrap_or(u64::MAX);
    let plain = Codec::plain();
    let mut copied = Vec::new();
    for id in from.list()?.into_iter().filter(|&id| id <= latest) {
        let Some(bytes) = from.get(id)? else { continue };
        match plain.verify(id, &bytes) {
            Ok(_) | Err(Damage::NeedsKey) => {}
            Err(damage) => {
                return Err(CheckpointError::Damaged {
                    store: from.describe(),
                    id,
                    damage,
                });
            }
        }
        to.commit(id, &bytes, &[])?;
        copied.push(id);
    }
    Ok(copied)
}
