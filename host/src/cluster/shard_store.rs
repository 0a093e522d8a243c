//! A shard's checkpoint store: each owner writes under its own epoch, and the commit record,
//! not a pointer in the store, says which checkpoint is current.
//!
//! Owner `e` of shard `i` writes into namespace `shard-<i>/epoch-<e>` of the job's store and
//! reads the checkpoint it restores from the namespace of the epoch that wrote it. Two owners
//! (a zombie and its successor) therefore never write the same name, and a checkpoint a
//! zombie writes after it lost the shard is never named by a commit record: its commit is
//! fenced. [`CheckpointStore::latest`] is always empty — the job restores the checkpoint the
//! last commit record names (`restore_from`) — and [`CheckpointStore::list`] lists the owner's
//! own checkpoints only, so the restored one is never the newest: the owner's first checkpoint
//! is full, and its chains lie in its own namespace. Once the owner has
//! committed a checkpoint of its own, the namespace it restored from is deleted.

use std::sync::Arc;

use crate::checkpoint::{Codec, KeySource, OpenError, open_store};
use crate::runtime::nats::ShardLink;
use crate::store::{CheckpointId, CheckpointStore, StoreError, namespaced};

/// The namespace of shard `shard`'s owner at `epoch` inside the job's store.
pub fn namespace(store: &str, shard: u32, epoch: u64) -> Result<String, StoreError> {
    namespaced(store, &format!("shard-{shard}/epoch-{epoch}"))
}

/// A shard owner's view of the job's checkpoint store.
pub struct ShardStore {
    epoch: u64,
    own: Box<dyn CheckpointStore>,
    /// The namespace of the checkpoint restored (another epoch's), if any.
    restored: Option<Box<dyn CheckpointStore>>,
    link: Arc<ShardLink>,
}

impl ShardStore {
    /// The store of shard `shard`'s owner at `epoch`, restoring from the namespace of
    /// `restored_epoch` if there is a checkpoint to restore.
    /// `key` encrypts and decrypts every namespace alike (a key, not a passphrase: each
    /// namespace would have a salt of its own).
    pub fn open(
        store: &str,
        shard: u32,
        epoch: u64,
        restored_epoch: Option<u64>,
        key: &KeySource,
        link: Arc<ShardLink>,
    ) -> Result<(Self, Codec), OpenError> {
        let (own, codec) = open_store(&namespace(store, shard, epoch)?, key)?;
        let restored = match restored_epoch {
            Some(e) if e != epoch => Some(crate::store::open(&namespace(store, shard, e)?)?),
            _ => None,
        };
        Ok((
            Self {
                epoch,
                own,
                restored,
                link,
            },
            codec,
        ))
    }

    /// Whether this owner's own checkpoint has been committed: what it restored from is then
    /// no longer needed by anyone.
    fn own_committed(&self) -> bool {
        let last = self.link.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .and_then(|(r, _)| r.shard.as_ref())
            .and_then(|s| s.checkpoint)
            .is_some_and(|(e, _)| e == self.epoch)
    }
}

impl CheckpointStore for ShardStore {
    fn describe(&self) -> String {
        self.own.describe()
    }

    fn put(&mut self, id: CheckpointId, bytes: &[u8], chain: &[CheckpointId]) -> Result<(), StoreError> {
        if self.own_committed()
            && let Some(old) = self.restored.take()
        {
            let mut old = old;
            for id in old.list()? {
                old.delete(id)?;
            }
            tracing::debug!(store = %old.describe(), "deleted the checkpoints of an earlier owner");
        }
        self.own.put(id, bytes, chain)
    }

    /// The pointer is the commit record: remember the checkpoint for the sink's next commit
    /// (and move this namespace's own pointer, for `cairn checkpoints list`).
    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.own.publish(id)?;
        *self.link.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some((self.epoch, id));
        Ok(())
    }

    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        match self.own.get(id)? {
            Some(b) => Ok(Some(b)),
            None => match &self.restored {
                Some(r) => r.get(id),
                None => Ok(None),
            },
        }
    }

    /// This owner's own checkpoints only: the one restored is then never "the newest", so the
    /// owner's first checkpoint is full and its chains never reach into another namespace.
    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        self.own.list()
    }

    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        Ok(None)
    }

    /// Only this owner's own checkpoints are ever deleted by its retention.
    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.own.delete(id)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.own.get_meta(name)
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.own.put_meta(name, bytes)
    }
}
