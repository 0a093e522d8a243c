use std::time::Duration;

use redis::{Client, Connection};

use super::{CheckpointId, CheckpointStore, StoreError};

const TIMEOUT: Duration = Duration::from_secs(3);

/// Checkpoints in Redis, under a key prefix:
/// `<prefix>:ckpt:<id>` (the bytes), `<prefix>:ids` (a sorted set of ids), `<prefix>:latest`,
/// `<prefix>:meta:<name>`.
///
/// A commit is one MULTI/EXEC transaction: the checkpoint, its id and the pointer land
/// together or not at all. With a TTL, every commit also renews the TTL of the checkpoints
/// the new one needs (its base and earlier deltas), so a base never expires before a delta
/// that needs it. A lost connection is re-established on the next call.
pub struct RedisStore {
    client: Client,
    conn: Option<Connection>,
    url: String,
    prefix: String,
    ttl: Option<u64>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("url", &self.url).finish()
    }
}

impl RedisStore {
    /// Open the store; `server` is `redis://host:port[/db]`. Connects lazily.
    pub fn open(url: &str, server: &str, prefix: &str, ttl: Option<u64>) -> Result<Self, StoreError> {
        let client = Client::open(server).map_err(|e| StoreError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let mut store = Self {
            client,
            conn: None,
            url: url.to_string(),
            prefix: prefix.to_string(),
            ttl,
        };
        // Fail early with a clear message if the server is unreachable.
        store.conn()?;
        Ok(store)
    }

    fn err(&self, action: impl Into<String>, e: impl std::fmt::Display) -> StoreError {
        StoreError::backend(
            &self.url,
            action,
            format!("{e} (is the Redis server at this address running and reachable?)"),
        )
    }

    fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        if self.conn.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(TIMEOUT)
                .map_err(|e| self.err("connecting", e))?;
            c.set_read_timeout(Some(TIMEOUT))
                .map_err(|e| self.err("connecting", e))?;
            c.set_write_timeout(Some(TIMEOUT))
                .map_err(|e| self.err("connecting", e))?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::backend("redis", "connecting", "no connection"))
    }

    /// Run `f` on the connection; drop the connection on error so the next call reconnects.
    fn with<T>(
        &mut self,
        action: &str,
        f: impl FnOnce(&mut Connection, &str) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let prefix = self.prefix.clone();
        let conn = self.conn()?;
        match f(conn, &prefix) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.conn = None;
                Err(self.err(action, e))
            }
        }
    }
}

fn ckpt_key(prefix: &str, id: CheckpointId) -> String {
    format!("{prefix}:ckpt:{id}")
}

/// Queue the commands that store checkpoint `id` (bytes, id set, TTLs of its chain).
fn add_checkpoint(
    pipe: &mut redis::Pipeline,
    p: &str,
    ttl: Option<u64>,
    id: CheckpointId,
    bytes: &[u8],
    chain: &[CheckpointId],
) {
    match ttl {
        Some(t) => pipe
            .cmd("SET")
            .arg(ckpt_key(p, id))
            .arg(bytes)
            .arg("EX")
            .arg(t)
            .ignore(),
        None => pipe.cmd("SET").arg(ckpt_key(p, id)).arg(bytes).ignore(),
    };
    pipe.cmd("ZADD").arg(format!("{p}:ids")).arg(id).arg(id).ignore();
    if let Some(t) = ttl {
        for &needed in chain {
            pipe.cmd("EXPIRE").arg(ckpt_key(p, needed)).arg(t).ignore();
        }
    }
}

impl CheckpointStore for RedisStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn put(&mut self, id: CheckpointId, bytes: &[u8], chain: &[CheckpointId]) -> Result<(), StoreError> {
        let ttl = self.ttl;
        self.with(&format!("writing checkpoint {id}"), |c, p| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            add_checkpoint(&mut pipe, p, ttl, id, bytes, chain);
            pipe.query::<()>(c)
        })
    }

    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.with(&format!("pointing latest at checkpoint {id}"), |c, p| {
            redis::cmd("SET")
                .arg(format!("{p}:latest"))
                .arg(id)
                .query::<()>(c)
        })
    }

    /// One MULTI/EXEC: the checkpoint, its id and the pointer land together or not at all.
    fn commit(&mut self, id: CheckpointId, bytes: &[u8], chain: &[CheckpointId]) -> Result<(), StoreError> {
        let ttl = self.ttl;
        self.with(&format!("committing checkpoint {id}"), |c, p| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            add_checkpoint(&mut pipe, p, ttl, id, bytes, chain);
            pipe.cmd("SET").arg(format!("{p}:latest")).arg(id).ignore();
            pipe.query::<()>(c)
        })
    }

    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        // Reads use a fresh connection so that `&self` suffices.
        let mut c = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| self.err("connecting", e))?;
        let _ = c.set_read_timeout(Some(TIMEOUT));
        redis::cmd("GET")
            .arg(ckpt_key(&self.prefix, id))
            .query::<Option<Vec<u8>>>(&mut c)
            .map_err(|e| self.err(format!("reading checkpoint {id}"), e))
    }

    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        let mut c = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| self.err("connecting", e))?;
        let p = &self.prefix;
        let ids: Vec<CheckpointId> = redis::cmd("ZRANGE")
            .arg(format!("{p}:ids"))
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .map_err(|e| self.err("listing checkpoints", e))?;
        if ids.is_empty() {
            return Ok(ids);
        }
        // With a TTL, entries may have expired: keep the ids whose data still exists.
        let mut pipe = redis::pipe();
        for &id in &ids {
            pipe.cmd("EXISTS").arg(ckpt_key(p, id));
        }
        let exists: Vec<bool> = pipe
            .query(&mut c)
            .map_err(|e| self.err("listing checkpoints", e))?;
        Ok(ids
            .into_iter()
            .zip(exists)
            .filter(|(_, e)| *e)
            .map(|(id, _)| id)
            .collect())
    }

    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        let mut c = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| self.err("connecting", e))?;
        redis::cmd("GET")
            .arg(format!("{}:latest", self.prefix))
            .query::<Option<CheckpointId>>(&mut c)
            .map_err(|e| self.err("reading the latest pointer", e))
    }

    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.with(&format!("deleting checkpoint {id}"), |c, p| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(ckpt_key(p, id))
                .ignore()
                .cmd("ZREM")
                .arg(format!("{p}:ids"))
                .arg(id)
                .ignore()
                .query::<()>(c)
        })
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| self.err("connecting", e))?;
        redis::cmd("GET")
            .arg(format!("{}:meta:{name}", self.prefix))
            .query::<Option<Vec<u8>>>(&mut c)
            .map_err(|e| self.err(format!("reading metadata {name}"), e))
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.with(&format!("writing metadata {name}"), |c, p| {
            redis::cmd("SET")
                .arg(format!("{p}:meta:{name}"))
                .arg(bytes)
                .query::<()>(c)
        })
    }
}
