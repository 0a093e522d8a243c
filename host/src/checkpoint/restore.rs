//! Rebuilding state from a checkpoint: its chain from the full base through each delta.

use super::format::Header;
use super::manager::ResumePoint;
use super::{CheckpointData, CheckpointError, Codec, Damage, HostState, Kind};
use crate::state::StateHolder;
use crate::store::{CheckpointId, CheckpointStore};

/// Longest chain followed before giving up (guards against cycles in damaged stores).
const MAX_CHAIN: usize = 100_000;

/// One operator's restored state.
#[derive(Debug)]
pub struct RestoredOperator {
    /// Name within the job.
    pub name: String,
    /// Partition.
    pub partition: u32,
    /// Plugin digest (hex) at checkpoint time.
    pub plugin_digest: String,
    /// Configuration at checkpoint time.
    pub config: String,
    /// The state.
    pub state: StateHolder,
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
            Ok(Some(bytes)) => codec.decode(cur, &bytes),
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
        for snap in data.operators {
            let first = operators.is_empty();
            let existing = operators
                .iter_mut()
                .find(|o| o.name == snap.name && o.partition == snap.partition);
            match existing {
                Some(op) => {
                    op.state.apply(snap.state);
                    op.plugin_digest = snap.plugin_digest;
                    op.config = snap.config;
                }
                None if h.kind == Kind::Full || first => {
                    let mut state = StateHolder::new();
                    state.apply(snap.state);
                    operators.push(RestoredOperator {
                        name: snap.name,
                        partition: snap.partition,
                        plugin_digest: snap.plugin_digest,
                        config: snap.config,
                        state,
                    });
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
    let ids = store.list()?;
    let newest = ids.last().copied();
    if let Some(id) = at {
        let mut r = load_chain(store, codec, id)?;
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
        match load_chain(store, codec, id) {
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
