//! Rebuilding state from a checkpoint: its chain from the full base through each delta.

use super::format::Header;
use super::manager::ResumePoint;
use super::ranged::{DecodeStats, Select};
use super::{CheckpointData, CheckpointError, Codec, Damage, HostState, Kind, OperatorSnapshot};
use crate::state::StateHolder;
use crate::store::{CheckpointId, CheckpointStore};

/// Longest chain followed before giving up (guards against cycles in damaged stores).
const MAX_CHAIN: usize = 100_000;

/// One operator's restored state.
#[derive(Debug)]
pub struct RestoredOperator {
    /// Name within the job.
    pub name: String,
    /// The job's key groups.
    pub key_groups: u32,
    /// How many instances the checkpoint was taken from.
    pub parallelism: u32,
    /// Entries expired by state TTL over the operator's life, all instances summed.
    pub expired: u64,
    /// The state version its plugin declared (0: none, or a checkpoint before format 6).
    pub state_version: u32,
    /// Plugin digest (hex) at checkpoint time.
    pub plugin_digest: String,
    /// Configuration at checkpoint time.
    pub config: String,
    /// The state (of the key groups asked for).
    pub state: StateHolder,
}

impl RestoredOperator {
    /// A restored operator of `snap`'s entries (a full checkpoint's).
    pub fn from_snapshot(snap: OperatorSnapshot) -> Self {
        let mut state = StateHolder::new();
        state.apply(snap.state);
        Self {
            name: snap.name,
            key_groups: snap.key_groups,
            parallelism: snap.parallelism,
            expired: snap.expired,
            state_version: snap.state_version,
            plugin_digest: snap.plugin_digest,
            config: snap.config,
            state,
        }
    }

    /// All of it as a full checkpoint's snapshot.
    pub fn to_snapshot(&self) -> OperatorSnapshot {
        OperatorSnapshot {
            name: self.name.clone(),
            plugin_digest: self.plugin_digest.clone(),
            config: self.config.clone(),
            key_groups: self.key_groups,
            parallelism: self.parallelism,
            expired: self.expired,
            state_version: self.state_version,
            state: self.state.snapshot(),
        }
    }
}

/// Before format 5 the expired-entry count was the host's entry `!e` among an operator's
/// entries: take it out (a format-5 cut records it beside the entries), as the count if set.
fn take_legacy_expired(snap: &mut OperatorSnapshot) -> Option<u64> {
    let key = cairn_codec::expiry::EXPIRED_COUNT;
    snap.state.deletes.retain(|k| &**k != key);
    let at = snap.state.sets.iter().position(|(k, _)| &**k == key)?;
    let (_, v) = snap.state.sets.remove(at);
    Some(
        v.get(..8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
    )
}

/// A restored checkpoint.
#[derive(Debug)]
pub struct Restored {
    /// The checkpoint restored.
    pub id: CheckpointId,
    /// Its header.
    pub header: Header,
    /// The chain applied, base first.
    pub chain: Vec<CheckpointId>,
    /// The host's position and counters.
    pub host: HostState,
    /// Every operator's state.
    pub operators: Vec<RestoredOperator>,
    /// Newer checkpoints that could not be restored, with the reason (fallback happened).
    pub skipped: Vec<String>,
    /// Whether it is the newest checkpoint of the store.
    pub is_latest: bool,
}

impl Restored {
    /// Where a new chain continues.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            id: self.id,
            base: self.chain[0],
            deltas: (self.chain.len() - 1) as u32,
            was_latest: self.is_latest && self.skipped.is_empty(),
        }
    }
}

/// Read and decode one checkpoint (no chain).
pub fn read_checkpoint(
    store: &dyn CheckpointStore,
    codec: &Codec,
    id: CheckpointId,
) -> Result<(Header, CheckpointData, usize), CheckpointError> {
    let bytes = store.get(id)?.ok_or_else(|| CheckpointError::NotFound {
        store: store.describe(),
        id,
    })?;
    let (h, d) = codec
        .decode(id, &bytes)
        .map_err(|damage| CheckpointError::Damaged {
            store: store.describe(),
            id,
            damage,
        })?;
    Ok((h, d, bytes.len()))
}

/// Restore checkpoint `id` by applying its chain.
pub fn load_chain(
    store: &dyn CheckpointStore,
    codec: &Codec,
    id: CheckpointId,
) -> Result<Restored, CheckpointError> {
    load_chain_part(store, codec, id, &|_| None, &mut DecodeStats::default())
}

/// Restore the key groups `select` asks for (per operator) of checkpoint `id`: from format 5
/// on, only the blocks that overlap them are decoded (counted in `stats`).
pub fn load_chain_part(
    store: &dyn CheckpointStore,
    codec: &Codec,
    id: CheckpointId,
    select: Select<'_>,
    stats: &mut DecodeStats,
) -> Result<Restored, CheckpointError> {
    let damaged = |damage| CheckpointError::Damaged {
        store: store.describe(),
        id,
        damage,
    };
    // Walk back to the base.
    let mut links: Vec<(Header, CheckpointData)> = Vec::new();
    let mut cur = id;
    loop {
        // One read per link: a store error on the newest is the caller's error, on a parent
        // it damages the chain.
        let loaded = match store.get(cur) {
            Ok(None) if cur == id => {
                return Err(CheckpointError::NotFound {
                    store: store.describe(),
                    id,
                });
            }
            Err(e) if cur == id => return Err(e.into()),
            Ok(Some(bytes)) => codec.decode_part(cur, &bytes, select, stats),
            Ok(None) => Err(Damage::MissingParent { missing: cur }),
            Err(e) => Err(Damage::BrokenChain(e.to_string())),
        };
        let (h, d) = match loaded {
            Ok(x) => x,
            Err(Damage::MissingParent { missing }) => return Err(damaged(Damage::MissingParent { missing })),
            Err(d) if cur == id => return Err(damaged(d)),
            Err(d) => {
                return Err(damaged(Damage::DamagedParent {
                    parent: cur,
                    problem: Box::new(d),
                }));
            }
        };
        if let Some((child, _)) = links.last()
            && child.base != h.base
        {
            return Err(damaged(Damage::BrokenChain(format!(
                "checkpoint {} has base {} but its parent {} has base {}",
                child.sequence, child.base, h.sequence, h.base
            ))));
        }
        let parent = h.parent;
        let kind = h.kind;
        links.push((h, d));
        match (kind, parent) {
            (Kind::Full, _) | (_, None) => break,
            (Kind::Delta, Some(p)) => {
                if p >= cur || links.len() > MAX_CHAIN {
                    return Err(damaged(Damage::BrokenChain(format!(
                        "checkpoint {cur} names parent {p}"
                    ))));
                }
                cur = p;
            }
        }
    }
    links.reverse();
    let chain: Vec<CheckpointId> = links.iter().map(|(h, _)| h.sequence).collect();
    let mut operators: Vec<RestoredOperator> = Vec::new();
    let mut host = HostState::default();
    let mut header = None;
    for (h, data) in links {
        for mut snap in data.operators {
            let first = operators.is_empty();
            let expired = if h.version >= 5 {
                Some(snap.expired)
            } else {
                take_legacy_expired(&mut snap)
            };
            let existing = operators.iter_mut().find(|o| o.name == snap.name);
            match existing {
                Some(op) => {
                    if op.key_groups != snap.key_groups {
                        return Err(damaged(Damage::BrokenChain(format!(
                            "checkpoint {} has {} key groups for operator {:?}, its parent {}",
                            h.sequence, snap.key_groups, snap.name, op.key_groups
                        ))));
                    }
                    op.state.apply(snap.state);
                    op.plugin_digest = snap.plugin_digest;
                    op.config = snap.config;
                    op.parallelism = snap.parallelism;
                    op.expired = expired.unwrap_or(op.expired);
                }
                None if h.kind == Kind::Full || first => {
                    snap.expired = expired.unwrap_or(0);
                    operators.push(RestoredOperator::from_snapshot(snap));
                }
                None => {
                    return Err(damaged(Damage::BrokenChain(format!(
                        "delta {} has operator {:?} that its base does not have",
                        h.sequence, snap.name
                    ))));
                }
            }
        }
        host = data.host;
        header = Some(h);
    }
    let header = header.ok_or_else(|| damaged(Damage::BrokenChain("empty chain".into())))?;
    Ok(Restored {
        id,
        header,
        chain,
        host,
        operators,
        skipped: Vec::new(),
        is_latest: false,
    })
}

/// Restore `at`, or the newest restorable checkpoint when `at` is `None`: if the newest is
/// damaged, the next older one is tried, and so on (each skipped one is logged and listed in
/// [`Restored::skipped`]). `Ok(None)` when the store holds no checkpoint.
pub fn restore(
    store: &dyn CheckpointStore,
    codec: &Codec,
    at: Option<CheckpointId>,
) -> Result<Option<Restored>, CheckpointError> {
    restore_part(store, codec, at, &|_| None, &mut DecodeStats::default())
}

/// [`restore`] of the key groups `select` asks for (see [`load_chain_part`]).
pub fn restore_part(
    store: &dyn CheckpointStore,
    codec: &Codec,
    at: Option<CheckpointId>,
    select: Select<'_>,
    stats: &mut DecodeStats,
) -> Result<Option<Restored>, CheckpointError> {
    let ids = store.list()?;
    let newest = ids.last().copied();
    if let Some(id) = at {
        let mut r = load_chain_part(store, codec, id, select, stats)?;
        r.is_latest = Some(id) == newest;
        return Ok(Some(r));
    }
    if ids.is_empty() {
        return Ok(None);
    }
    // The pointer names the newest committed checkpoint; anything newer was not committed.
    let latest = store.latest()?.unwrap_or(u64::MAX);
    let mut skipped = Vec::new();
    for &id in ids.iter().rev().filter(|&&id| id <= latest) {
        match load_chain_part(store, codec, id, select, stats) {
            Ok(mut r) => {
                if !skipped.is_empty() {
                    tracing::warn!(
                        "restored checkpoint {id} from {} instead of a newer one: {}",
                        store.describe(),
                        skipped.join("; ")
                    );
                }
                r.skipped = skipped;
                r.is_latest = Some(id) == newest;
                return Ok(Some(r));
            }
            Err(e) => {
                tracing::warn!("{e}; falling back to an older checkpoint");
                skipped.push(e.to_string());
            }
        }
    }
    if skipped.is_empty() {
        return Ok(None);
    }
    Err(CheckpointError::NoneValid {
        store: store.describe(),
        problems: skipped,
    })
}
