//! What a store holds, as typed summaries: [`list`] (one line per checkpoint) and [`verify`]
//! (every checkpoint's integrity and chain). The CLI only formats them (text or JSON).

use serde::Serialize;

use super::restore::{load_chain, read_checkpoint as read_one};
use super::{CheckpointError, Codec, JsonlPosition, Kind};
use crate::store::{CheckpointId, CheckpointStore};

/// One checkpoint as `cairn checkpoints list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Its id.
    pub id: CheckpointId,
    /// Full or delta.
    pub kind: Kind,
    /// The full checkpoint its chain starts from.
    pub base: CheckpointId,
    /// The checkpoint before it in the chain.
    pub parent: Option<CheckpointId>,
    /// Stored bytes.
    pub bytes: usize,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Input bytes consumed (for a JSON Lines input; 0 for other sources).
    pub input_offset: u64,
    /// Output bytes written.
    pub output_len: u64,
    /// Events read.
    pub events_in: u64,
    /// Whether the store's latest pointer names it.
    pub latest: bool,
    /// Checkpoints a restore of it reads: 1 for a full one, base + deltas for a delta.
    pub chain_len: u32,
    /// Entries written or removed in it, per operator (all of them in a full checkpoint).
    pub keys: Vec<OperatorKeys>,
    /// How long its write took (cut to commit), µs, as the next checkpoint of the same process
    /// recorded it; `None` for the newest and where no later one was written by that process.
    pub write_us: Option<u32>,
}

/// Entries of one operator in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorKeys {
    /// The operator.
    pub operator: String,
    /// Entries set (with their value) and removed.
    pub keys: usize,
}

/// A checkpoint that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damaged {
    /// Its id.
    pub id: CheckpointId,
    /// What is wrong.
    pub error: String,
}

/// One entry of [`list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Listed {
    /// Readable.
    Ok(Summary),
    /// Not readable.
    Damaged(Damaged),
}

/// Every checkpoint of `store`, oldest first; a damaged one is listed with its error.
pub fn list(store: &dyn CheckpointStore, codec: &Codec) -> Result<Vec<Listed>, CheckpointError> {
    let latest = store.latest()?;
    let mut out = Vec::new();
    // What each checkpoint's header says of the write of the one before it.
    let mut write_of_previous = std::collections::HashMap::new();
    for id in store.list()? {
        out.push(match read_one(store, codec, id) {
            Ok((h, d, bytes)) => Listed::Ok(Summary {
                write_us: {
                    write_of_previous.insert(id, h.previous_write_us);
                    None
                },
                id,
                kind: h.kind,
                base: h.base,
                parent: h.parent,
                bytes,
                created_ms: h.created_ms,
                input_offset: JsonlPosition::from_source(&d.host.source).map_or(0, |p| p.offset),
                output_len: d.host.output_len,
                events_in: d.host.events_in,
                latest: latest == Some(id),
                chain_len: 1,
                keys: d
                    .operators
                    .iter()
                    .map(|o| OperatorKeys {
                        operator: o.name.clone(),
                        keys: o.state.sets.len() + o.state.deletes.len(),
                    })
                    .collect(),
            }),
            Err(e) => Listed::Damaged(Damaged {
                id,
                error: e.to_string(),
            }),
        });
    }
    // Chain lengths from the parent links (a parent that is not listed ends the walk).
    let parents: std::collections::HashMap<CheckpointId, Option<CheckpointId>> = out
        .iter()
        .filter_map(|l| match l {
            Listed::Ok(s) => Some((s.id, s.parent)),
            Listed::Damaged(_) => None,
        })
        .collect();
    for l in &mut out {
        if let Listed::Ok(s) = l {
            let mut n = 1;
            let mut cur = s.parent;
            while let Some(p) = cur
                && n <= parents.len() as u32
            {
                n += 1;
                cur = parents.get(&p).copied().flatten();
            }
            s.chain_len = n;
            s.write_us = write_of_previous.get(&(s.id + 1)).copied().flatten();
        }
    }
    Ok(out)
}

/// The result of checking one checkpoint and the chain it restores through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Its id.
    pub id: CheckpointId,
    /// Full or delta, when readable.
    pub kind: Option<Kind>,
    /// The ids it restores through, base first, when valid.
    pub chain: Vec<CheckpointId>,
    /// What is wrong; `None` when it restores.
    pub error: Option<String>,
}

/// Every checkpoint of a store, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// One entry per checkpoint, oldest first.
    pub checkpoints: Vec<Verified>,
}

impl Verification {
    /// How many are damaged.
    pub fn damaged(&self) -> usize {
        self.checkpoints.iter().filter(|c| c.error.is_some()).count()
    }
}

/// Check every checkpoint of `store`: integrity (checksum or authentication tag), format, and
/// that its chain restores.
pub fn verify(store: &dyn CheckpointStore, codec: &Codec) -> Result<Verification, CheckpointError> {
    let mut checkpoints = Vec::new();
    for id in store.list()? {
        checkpoints.push(match load_chain(store, codec, id) {
            Ok(r) => Verified {
                id,
                kind: Some(r.header.kind),
                chain: r.chain,
                error: None,
            },
            Err(e) => Verified {
                id,
                kind: None,
                chain: Vec::new(),
                error: Some(e.to_string()),
            },
        });
    }
    Ok(Verification { checkpoints })
}
