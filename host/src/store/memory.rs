use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{CheckpointId, CheckpointStore, StoreError};

#[derive(Debug, Default)]
struct Inner {
    checkpoints: BTreeMap<CheckpointId, Vec<u8>>,
    latest: Option<CheckpointId>,
    meta: HashMap<String, Vec<u8>>,
}

/// Checkpoints in memory: for tests and embedders that only need restore within a process.
/// Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave Inner half-updated (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CheckpointStore for MemoryStore {
    fn describe(&self) -> String {
        "memory:".into()
    }

    fn put(&mut self, id: CheckpointId, bytes: &[u8], _chain: &[CheckpointId]) -> Result<(), StoreError> {
        self.lock().checkpoints.insert(id, bytes.to_vec());
        Ok(())
    }

    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.lock().latest = Some(id);
        Ok(())
    }

    fn commit(&mut self, id: CheckpointId, bytes: &[u8], _chain: &[CheckpointId]) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.checkpoints.insert(id, bytes.to_vec());
        g.latest = Some(id);
        Ok(())
    }

    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().checkpoints.get(&id).cloned())
    }

    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        Ok(self.lock().checkpoints.keys().copied().collect())
    }

    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        Ok(self.lock().latest)
    }

    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.lock().checkpoints.remove(&id);
        Ok(())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().meta.get(name).cloned())
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.lock().meta.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
}
