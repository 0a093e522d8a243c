//! Savepoints: a checkpoint (with its chain) materialised as one self-contained full checkpoint
//! under a name, kept in the store's metadata (`savepoint-<name>`), where retention never looks
//! and no TTL applies, until it is unpinned. A job can start from one (`--restore-from NAME`)
//! at any time later, as from Flink's savepoints. The index of a store's savepoints is the
//! metadata blob `savepoints` (JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::Placement;
use super::ranged::{DecodeStats, Select};
use super::restore::{Restored, restore};
use super::{CheckpointData, CheckpointError, Codec, Kind};
use crate::store::{CheckpointId, CheckpointStore};

const INDEX: &str = "savepoints";

/// A savepoint as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Savepoint {
    /// Its name.
    pub name: String,
    /// The checkpoint it was taken from.
    pub checkpoint: CheckpointId,
    /// When it was pinned, ms since the epoch.
    pub pinned_ms: u64,
    /// Its stored bytes.
    pub bytes: u64,
}

/// Why a savepoint could not be made, found or read.
#[derive(Debug, thiserror::Error)]
pub enum SavepointError {
    /// The name cannot be a savepoint's.
    #[error(
        "{0:?} cannot name a savepoint: use 1 to 64 letters, digits, '.', '_' or '-', not all digits (those are \
         checkpoint ids)"
    )]
    BadName(String),
    /// No savepoint has this name.
    #[error("there is no savepoint {name:?} in {store}{}", if known.is_empty() { String::new() } else { format!(" (it has {known:?})") })]
    NotFound {
        /// The name asked for.
        name: String,
        /// The store.
        store: String,
        /// The savepoints it has.
        known: Vec<String>,
    },
    /// The name is taken.
    #[error("savepoint {name:?} exists already in {store} (from checkpoint {checkpoint}); unpin it first")]
    Exists {
        /// The name.
        name: String,
        /// The store.
        store: String,
        /// The checkpoint it holds.
        checkpoint: CheckpointId,
    },
    /// The store holds no checkpoint to pin.
    #[error("{0} holds no checkpoint to pin")]
    Empty(String),
    /// Reading or writing the checkpoints failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Whether `name` can be a savepoint's: 1 to 64 of `[A-Za-z0-9._-]`, not all digits.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.bytes().all(|b| b.is_ascii_digit())
}

fn blob(name: &str) -> String {
    format!("savepoint-{name}")
}

fn read_index(store: &dyn CheckpointStore) -> Result<BTreeMap<String, Savepoint>, CheckpointError> {
    Ok(match store.get_meta(INDEX)? {
        Some(b) if !b.is_empty() => serde_json::from_slice(&b).map_err(|e| CheckpointError::Encode {
            id: 0,
            message: format!("the savepoint index of {} is not readable: {e}", store.describe()),
        })?,
        _ => BTreeMap::new(),
    })
}

fn write_index(
    store: &mut dyn CheckpointStore,
    index: &BTreeMap<String, Savepoint>,
) -> Result<(), CheckpointError> {
    let text = serde_json::to_vec(index).map_err(|e| CheckpointError::Encode {
        id: 0,
        message: e.to_string(),
    })?;
    Ok(store.put_meta(INDEX, &text)?)
}

/// The store's savepoints, by name.
pub fn list(store: &dyn CheckpointStore) -> Result<Vec<Savepoint>, CheckpointError> {
    Ok(read_index(store)?.into_values().collect())
}

/// Pin checkpoint `at` (the newest restorable one when `None`) as savepoint `name`: its chain
/// restored, then written whole as one full checkpoint.
pub fn pin(
    store: &mut dyn CheckpointStore,
    codec: &Codec,
    at: Option<CheckpointId>,
    name: &str,
) -> Result<Savepoint, SavepointError> {
    if !valid_name(name) {
        return Err(SavepointError::BadName(name.to_string()));
    }
    let mut index = read_index(store)?;
    if let Some(s) = index.get(name) {
        return Err(SavepointError::Exists {
            name: name.to_string(),
            store: store.describe(),
            checkpoint: s.checkpoint,
        });
    }
    let r = restore(store, codec, at)?.ok_or_else(|| SavepointError::Empty(store.describe()))?;
    let data = CheckpointData {
        host: r.host.clone(),
        operators: r
            .operators
            .iter()
            .map(super::RestoredOperator::to_snapshot)
            .collect(),
    };
    let at = Placement {
        id: r.id,
        kind: Kind::Full,
        base: r.id,
        parent: None,
    };
    let bytes = codec
        .encode(at, r.header.created_ms, &data)
        .map_err(|message| CheckpointError::Encode { id: r.id, message })?;
    store
        .put_meta(&blob(name), &bytes)
        .map_err(CheckpointError::from)?;
    let pinned_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let s = Savepoint {
        name: name.to_string(),
        checkpoint: r.id,
        pinned_ms,
        bytes: bytes.len() as u64,
    };
    index.insert(name.to_string(), s.clone());
    write_index(store, &index)?;
    Ok(s)
}

/// Release savepoint `name` (its bytes are emptied, its entry removed from the index).
pub fn unpin(store: &mut dyn CheckpointStore, name: &str) -> Result<Savepoint, SavepointError> {
    let mut index = read_index(store)?;
    let Some(s) = index.remove(name) else {
        return Err(not_found(store, name, &index));
    };
    write_index(store, &index)?;
    store.put_meta(&blob(name), &[]).map_err(CheckpointError::from)?;
    Ok(s)
}

fn not_found(store: &dyn CheckpointStore, name: &str, index: &BTreeMap<String, Savepoint>) -> SavepointError {
    SavepointError::NotFound {
        name: name.to_string(),
        store: store.describe(),
        known: index.keys().cloned().collect(),
    }
}

/// Restore the key groups `select` asks for of savepoint `name`.
pub fn load(
    store: &dyn CheckpointStore,
    codec: &Codec,
    name: &str,
    select: Select<'_>,
    stats: &mut DecodeStats,
) -> Result<Restored, SavepointError> {
    let bytes = match store.get_meta(&blob(name)).map_err(CheckpointError::from)? {
        Some(b) if !b.is_empty() => b,
        _ => return Err(not_found(store, name, &read_index(store)?)),
    };
    let header = super::Header::decode(&bytes).map_err(|damage| CheckpointError::Damaged {
        store: format!("{} (savepoint {name})", store.describe()),
        id: 0,
        damage,
    })?;
    let id = header.sequence;
    let (header, data) =
        codec
            .decode_part(id, &bytes, select, stats)
            .map_err(|damage| CheckpointError::Damaged {
                store: format!("{} (savepoint {name})", store.describe()),
                id,
                damage,
            })?;
    let operators = data
        .operators
        .into_iter()
        .map(super::RestoredOperator::from_snapshot)
        .collect();
    Ok(Restored {
        id,
        header,
        chain: vec![id],
        host: data.host,
        operators,
        skipped: Vec::new(),
        // A savepoint is never the store's newest: the chain goes on with a full checkpoint.
        is_latest: false,
    })
}
