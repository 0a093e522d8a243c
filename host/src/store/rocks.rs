use std::path::Path;

use rocksdb::{DB, DBCompressionType, Options, WriteBatch, WriteOptions};

use super::{CheckpointId, CheckpointStore, StoreError};

const LATEST: &[u8] = b"latest";

fn ckpt_key(id: CheckpointId) -> Vec<u8> {
    // Big-endian so that keys sort by id.
    let mut k = b"ckpt/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn meta_key(name: &str) -> Vec<u8> {
    format!("meta/{name}").into_bytes()
}

/// Checkpoints in a RocksDB database: `ckpt/<id, big-endian>` → bytes, `latest` → id,
/// `meta/<name>`. Each commit is one synced write batch holding the checkpoint and the
/// pointer. Tuned for large sequential values: LZ4 (the payload is already LZ4, so this
/// mostly costs nothing), 64 MiB write buffers (3 of them), 64 MiB target file size.
pub struct RocksStore {
    db: DB,
    url: String,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("url", &self.url).finish()
    }
}

impl RocksStore {
    /// Open (creating if needed) the database in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        let url = format!("rocksdb:{}", dir.display());
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_write_buffer_size(64 << 20);
        opts.set_max_write_buffer_number(3);
        opts.set_target_file_size_base(64 << 20);
        let db = DB::open(&opts, dir).map_err(|e| {
            StoreError::backend(
                &url,
                "opening the database",
                format!("{e} (is another cairn process using this store?)"),
            )
        })?;
        Ok(Self { db, url })
    }

    fn err(&self, action: impl Into<String>, e: impl std::fmt::Display) -> StoreError {
        StoreError::backend(&self.url, action, e)
    }

    fn synced() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        w
    }
}

impl CheckpointStore for RocksStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn put(&mut self, id: CheckpointId, bytes: &[u8], _chain: &[CheckpointId]) -> Result<(), StoreError> {
        self.db
            .put_opt(ckpt_key(id), bytes, &Self::synced())
            .map_err(|e| self.err(format!("writing checkpoint {id}"), e))
    }

    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.db
            .put_opt(LATEST, id.to_be_bytes(), &Self::synced())
            .map_err(|e| self.err(format!("pointing latest at checkpoint {id}"), e))
    }

    fn commit(&mut self, id: CheckpointId, bytes: &[u8], _chain: &[CheckpointId]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(ckpt_key(id), bytes);
        batch.put(LATEST, id.to_be_bytes());
        self.db
            .write_opt(batch, &Self::synced())
            .map_err(|e| self.err(format!("committing checkpoint {id}"), e))
    }

    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get(ckpt_key(id))
            .map_err(|e| self.err(format!("reading checkpoint {id}"), e))
    }

    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        let mut ids = Vec::new();
        for item in self.db.prefix_iterator(b"ckpt/") {
            let (k, _) = item.map_err(|e| self.err("listing checkpoints", e))?;
            let Some(rest) = k.strip_prefix(b"ckpt/") else {
                break;
            };
            if let Ok(b) = <[u8; 8]>::try_from(rest) {
                ids.push(u64::from_be_bytes(b));
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        match self
            .db
            .get(LATEST)
            .map_err(|e| self.err("reading the latest pointer", e))?
        {
            None => Ok(None),
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| self.err("reading the latest pointer", "it is not 8 bytes")),
        }
    }

    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.db
            .delete_opt(ckpt_key(id), &Self::synced())
            .map_err(|e| self.err(format!("deleting checkpoint {id}"), e))
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get(meta_key(name))
            .map_err(|e| self.err(format!("reading metadata {name}"), e))
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_opt(meta_key(name), bytes, &Self::synced())
            .map_err(|e| self.err(format!("writing metadata {name}"), e))
    }
}
