//! Where checkpoints live: one trait, one module per backend, chosen by a URL.
//! Knows nothing of WASM, state or the checkpoint format: it stores opaque bytes under ids.

mod file;
mod memory;
mod redis;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(feature = "s3")]
mod s3;
mod url;

use thiserror::Error;

pub use file::FileStore;
pub use memory::MemoryStore;
pub use redis::RedisStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;
#[cfg(feature = "s3")]
pub use s3::{S3Options, S3Store};
pub use url::{StoreUrl, namespaced, open};

/// A checkpoint id: its sequence number, increasing within a store namespace.
pub type CheckpointId = u64;

/// A failure of a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL is not one Cairn understands.
    #[error(
        "invalid store URL {url:?}: {reason}; accepted forms: memory:, file:<dir>, rocksdb:<dir>, \
         redis://<host>:<port>[/<db>][?prefix=<p>&ttl=<secs>], s3://<bucket>[/<prefix>][?endpoint=<url>&region=<r>]"
    )]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another writer changed the store since this handle read it (two jobs checkpointing to
    /// one place): this handle's commit was refused so that the other one's stands.
    #[error(
        "checkpoint store {store} changed under us: {message}; another job is checkpointing to \
         the same store: stop it, or give each job its own store or prefix"
    )]
    Conflict {
        /// The store's URL.
        store: String,
        /// What was refused.
        message: String,
    },
    /// An I/O or server failure.
    #[error("checkpoint store {store}: {action} failed: {message}")]
    Backend {
        /// The store's URL.
        store: String,
        /// What was attempted.
        action: String,
        /// What went wrong.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn backend(store: &str, action: impl Into<String>, err: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            store: store.to_string(),
            action: action.into(),
            message: err.to_string(),
        }
    }
}

/// A place that holds a namespace's checkpoints as opaque bytes, plus a "latest" pointer and
/// small metadata blobs (e.g. the encryption salt).
///
/// Committing is two steps, [`put`](Self::put) (the checkpoint's bytes, not yet named by the
/// pointer) and [`publish`](Self::publish) (move the pointer), so that a deployment can keep
/// the bytes in one place and its commit record in another; [`commit`](Self::commit) does both
/// and is atomic: afterwards the checkpoint is fully present and the pointer names it; after a
/// crash in the middle, either both or (at least) the pointer is unchanged.
pub trait CheckpointStore: Send {
    /// The URL the store was opened from (for messages).
    fn describe(&self) -> String;
    /// Store the bytes of checkpoint `id` without moving the pointer. `chain` lists the
    /// checkpoints `id` needs to be restored (its base and earlier deltas): a store that
    /// expires entries keeps them alive at least as long as `id`.
    fn put(&mut self, id: CheckpointId, bytes: &[u8], chain: &[CheckpointId]) -> Result<(), StoreError>;
    /// Point "latest" at checkpoint `id`, stored before by [`put`](Self::put).
    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError>;
    /// Store checkpoint `id` and then point "latest" at it. Stores that can do both in one
    /// atomic step override this.
    fn commit(&mut self, id: CheckpointId, bytes: &[u8], chain: &[CheckpointId]) -> Result<(), StoreError> {
        self.put(id, bytes, chain)?;
        self.publish(id)
    }
    /// The bytes of checkpoint `id`, if present.
    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every checkpoint id present, ascending.
    fn list(&self) -> Result<Vec<CheckpointId>, StoreError>;
    /// The "latest" pointer.
    fn latest(&self) -> Result<Option<CheckpointId>, StoreError>;
    /// Delete checkpoint `id` (absent is fine).
    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError>;
    /// A metadata blob.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Write a metadata blob atomically.
    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
}
