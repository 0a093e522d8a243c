//! Format 5's payload: an index, then every operator's entries in blocks by key-group range,
//! each block compressed (and, in an encrypted store, sealed) on its own — so that an instance
//! that owns a range of key groups decodes the index and the blocks that overlap its range,
//! and nothing else, whatever parallelism the checkpoint was taken at.
//!
//! ```text
//! after the 80-byte header (`format.rs`):
//!   4     length L of the stored index (u32, little-endian)
//!   L     the index: bincode of `Index`, LZ4-compressed; when encrypted, AES-256-GCM with the
//!         header's nonce and the header as associated data (so the index is authenticated)
//!   …     the blocks, one after another, where the index says: each is the sets block and
//!         the deletes block of `block.rs` (a u32 length before the sets), LZ4-compressed;
//!         when encrypted, a fresh 12-byte nonce then AES-256-GCM with associated data
//!         "CAIRNBLK" ‖ checkpoint id ‖ operator ordinal ‖ first group ‖ end group, so a block
//!         cannot be moved to another checkpoint, operator or range
//! ```
//!
//! An operator's keyed entries are split into blocks of [`span`] consecutive key groups, about
//! [`BLOCK_BYTES`] each and at most [`MAX_BLOCKS`] (only non-empty blocks are written); operator-wide entries (and the
//! plain keys of 0.1 plugins) have a block of their own, given to the instance whose range
//! starts at group 0. The header's raw length is the index's; an unencrypted checkpoint keeps
//! its trailing CRC32 over the whole payload.

use std::ops::Range;

use aes_gcm::Aes256Gcm;
use serde::{Deserialize, Serialize};

use super::Damage;
use super::block;
use super::compression::Compression;
use super::crypto::{fresh_nonce, open, seal_with};
use super::model::{CheckpointData, HostState, OperatorSnapshot};
use super::payload::group_of;
use crate::state::{Key, StateDelta, Value};
use crate::store::CheckpointId;

/// The most blocks an operator's keyed entries are split into.
pub const MAX_BLOCKS: u32 = 64;

/// About how many bytes (keys and values, before compression) a block holds: fewer, larger
/// blocks compress better (a window's state of 620 KB stored 65% more in 64 blocks than in
/// one, 22% more in 8), more, smaller ones let an instance skip more of what it does not own.
pub const BLOCK_BYTES: u64 = 256 << 10;

/// Key groups per block for `bytes` of entries in a job of `groups` key groups: a power of two
/// (so that the ranges of a power-of-two number of instances start and end on block
/// boundaries), as small as gives blocks of about [`BLOCK_BYTES`], at most `groups`, and at
/// least `groups / MAX_BLOCKS`.
pub fn span(groups: u32, bytes: u64) -> u32 {
    let wanted = bytes.div_ceil(BLOCK_BYTES).clamp(1, u64::from(MAX_BLOCKS)) as u32;
    groups
        .div_ceil(wanted)
        .max(1)
        .next_power_of_two()
        .min(groups.max(1))
}

/// Where one block is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// The key groups `[start, end)` of its keyed entries; `None`: the operator-wide entries.
    pub groups: Option<(u32, u32)>,
    /// Offset in the blocks area (after the index).
    pub offset: u64,
    /// Stored length (compressed, with nonce and tag when encrypted).
    pub stored_len: u64,
    /// Length before compression.
    pub raw_len: u64,
    /// Keys set.
    pub sets: u64,
    /// Keys removed.
    pub deletes: u64,
}

/// One operator in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorIndex {
    /// The operator's name within the job.
    pub name: String,
    /// SHA-256 of its plugin, hex.
    pub plugin_digest: String,
    /// Its configuration text.
    pub config: String,
    /// The job's key groups.
    pub key_groups: u32,
    /// How many instances the cut was taken from.
    pub parallelism: u32,
    /// Entries expired by state TTL over the operator's life, all instances summed.
    pub expired: u64,
    /// Its blocks, operator-wide first, then by key group.
    pub blocks: Vec<BlockRef>,
    /// The state version its plugin declared (format 6; 0 before): not in `Index`'s bincode,
    /// but in the list after it, so that format 5's indexes read as they are.
    #[serde(skip)]
    pub state_version: u32,
}

#[derive(Serialize, Deserialize)]
struct Index {
    host: HostState,
    operators: Vec<OperatorIndex>,
}

/// What a decode of part of a checkpoint decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Blocks decompressed and decoded.
    pub blocks: u64,
    /// Their bytes before compression.
    pub raw_bytes: u64,
    /// Blocks the checkpoints hold in all.
    pub blocks_total: u64,
    /// Their bytes before compression, in all.
    pub raw_bytes_total: u64,
    /// The indexes' bytes before compression.
    pub index_bytes: u64,
}

/// Which key groups of each operator to decode: `None` for all of them. Operator-wide
/// entries go with a range that starts at group 0.
pub type Select<'a> = &'a dyn Fn(&str) -> Option<Range<u32>>;

/// Whether stored `key` is operator-wide (or a 0.1 plugin's plain key): in no key group.
pub fn is_operator_wide(key: &str) -> bool {
    group_of(key, 1).is_none()
}

/// Keep the entries of `state` whose key group is in `range` (operator-wide ones when it
/// starts at 0).
pub fn keep_range(state: &mut StateDelta, groups: u32, range: &Range<u32>) {
    let keep = |k: &str| match group_of(k, groups) {
        Some(g) => range.contains(&g),
        None => range.start == 0,
    };
    state.sets.retain(|(k, _)| keep(k));
    state.deletes.retain(|k| keep(k));
}

/// An encoded payload before the header: the compressed index (to be sealed by the caller
/// with the header as associated data) and the blocks.
pub(super) struct Encoded {
    pub index_raw_len: usize,
    pub index: Vec<u8>,
    pub blocks: Vec<u8>,
}

fn block_aad(id: CheckpointId, operator: usize, groups: Option<(u32, u32)>) -> [u8; 28] {
    let (lo, hi) = groups.unwrap_or((u32::MAX, u32::MAX));
    let mut aad = [0u8; 28];
    aad[..8].copy_from_slice(b"CAIRNBLK");
    aad[8..16].copy_from_slice(&id.to_le_bytes());
    aad[16..20].copy_from_slice(&(operator as u32).to_le_bytes());
    aad[20..24].copy_from_slice(&lo.to_le_bytes());
    aad[24..28].copy_from_slice(&hi.to_le_bytes());
    aad
}

/// One operator's entries split by block: operator-wide first, then by range.
/// One block's entries: its range (`None`: operator-wide), sets and deletes.
type BlockEntries = (Option<(u32, u32)>, Vec<(Key, Value)>, Vec<Key>);

fn split(o: &OperatorSnapshot) -> Vec<BlockEntries> {
    type Parts = (Vec<(Key, Value)>, Vec<Key>);
    let g = o.key_groups.max(1);
    let bytes = o
        .state
        .sets
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum::<u64>()
        + o.state.deletes.iter().map(|k| k.len() as u64).sum::<u64>();
    let span = span(g, bytes);
    let block_of = |k: &str| group_of(k, g).map(|x| x / span);
    let mut by: std::collections::BTreeMap<Option<u32>, Parts> = Default::default();
    for (k, v) in &o.state.sets {
        by.entry(block_of(k)).or_default().0.push((k.clone(), v.clone()));
    }
    for k in &o.state.deletes {
        by.entry(block_of(k)).or_default().1.push(k.clone());
    }
    by.into_iter()
        .map(|(b, (s, d))| (b.map(|b| (b * span, ((b + 1) * span).min(g))), s, d))
        .collect()
}

/// Encode `data` for checkpoint `id`: blocks compressed with `compression` and, with a
/// cipher, sealed.
pub(super) fn encode(
    data: &CheckpointData,
    id: CheckpointId,
    compression: Compression,
    cipher: Option<&Aes256Gcm>,
) -> Result<Encoded, String> {
    let mut blocks = Vec::new();
    let mut operators = Vec::with_capacity(data.operators.len());
    for (ordinal, o) in data.operators.iter().enumerate() {
        let mut refs = Vec::new();
        for (groups, sets, deletes) in split(o) {
            let sets_block = block::encode_sets(&sets);
            let deletes_block = block::encode_deletes(&deletes);
            let mut raw = Vec::with_capacity(4 + sets_block.len() + deletes_block.len());
            raw.extend_from_slice(&(sets_block.len() as u32).to_le_bytes());
            raw.extend_from_slice(&sets_block);
            raw.extend_from_slice(&deletes_block);
            let compressed = compression.compress(&raw)?;
            let offset = blocks.len() as u64;
            match cipher {
                None => blocks.extend_from_slice(&compressed),
                Some(c) => {
                    let nonce = fresh_nonce()?;
                    blocks.extend_from_slice(&nonce);
                    blocks.extend_from_slice(&seal_with(
                        c,
                        &nonce,
                        &block_aad(id, ordinal, groups),
                        &compressed,
                    )?);
                }
            }
            refs.push(BlockRef {
                groups,
                offset,
                stored_len: blocks.len() as u64 - offset,
                raw_len: raw.len() as u64,
                sets: block::set_count(&sets_block) as u64,
                deletes: block::delete_count(&deletes_block) as u64,
            });
        }
        operators.push(OperatorIndex {
            name: o.name.clone(),
            plugin_digest: o.plugin_digest.clone(),
            config: o.config.clone(),
            key_groups: o.key_groups,
            parallelism: o.parallelism,
            expired: o.expired,
            blocks: refs,
            state_version: o.state_version,
        });
    }
    let versions: Vec<u32> = operators.iter().map(|o| o.state_version).collect();
    let mut index = bincode::serde::encode_to_vec(
        Index {
            host: data.host.clone(),
            operators,
        },
        bincode::config::standard(),
    )
    .map_err(|e| e.to_string())?;
    // Format 6: the operators' state versions after the index.
    bincode::serde::encode_into_std_write(&versions, &mut index, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    Ok(Encoded {
        index_raw_len: index.len(),
        index: compression.compress(&index)?,
        blocks,
    })
}

/// The operators' index of a checkpoint of format `version` (5 or later): `index` is the
/// decompressed index (from format 6 followed by the operators' state versions).
pub(super) fn read_index(version: u16, index: &[u8]) -> Result<(HostState, Vec<OperatorIndex>), String> {
    let config = bincode::config::standard();
    let (mut i, mut used): (Index, usize) =
        bincode::serde::decode_from_slice(index, config).map_err(|e| format!("index: {e}"))?;
    if version >= 6 {
        let (versions, n): (Vec<u32>, usize) = bincode::serde::decode_from_slice(&index[used..], config)
            .map_err(|e| format!("index's state versions: {e}"))?;
        if versions.len() != i.operators.len() {
            return Err(format!(
                "index: {} state versions for {} operators",
                versions.len(),
                i.operators.len()
            ));
        }
        for (o, v) in i.operators.iter_mut().zip(versions) {
            o.state_version = v;
        }
        used += n;
    }
    if used != index.len() {
        return Err(format!("index: {} trailing bytes", index.len() - used));
    }
    Ok((i.host, i.operators))
}

fn overlaps(b: &BlockRef, want: &Option<Range<u32>>) -> bool {
    match (want, b.groups) {
        (None, _) => true,
        (Some(r), None) => r.start == 0,
        (Some(r), Some((lo, hi))) => lo < r.end && r.start < hi,
    }
}

/// Blocks of at least this many bytes in all (before compression) are decoded on two threads.
const PARALLEL_BYTES: u64 = 1 << 20;

/// One block's entries, appended to `into`.
fn decode_block(
    name: &str,
    ordinal: usize,
    b: &BlockRef,
    area: &[u8],
    id: CheckpointId,
    cipher: Option<&Aes256Gcm>,
    into: &mut StateDelta,
) -> Result<(), Damage> {
    let at = |e: String| Damage::Decode(format!("operator {name} {}: {e}", shown(b.groups)));
    let stored = usize::try_from(b.offset)
        .ok()
        .zip(usize::try_from(b.stored_len).ok())
        .and_then(|(off, len)| area.get(off..off.checked_add(len)?))
        .ok_or_else(|| {
            at(format!(
                "bytes {}+{} lie outside the payload",
                b.offset, b.stored_len
            ))
        })?;
    let opened;
    let compressed = match cipher {
        None => stored,
        Some(c) => {
            if stored.len() < 12 {
                return Err(at("shorter than its nonce".into()));
            }
            let nonce: [u8; 12] = stored[..12].try_into().expect("12 bytes");
            opened = open(c, &nonce, &block_aad(id, ordinal, b.groups), &stored[12..])
                .ok_or_else(|| Damage::BlockDecrypt(format!("operator {name} {}", shown(b.groups))))?;
            &opened[..]
        }
    };
    if b.raw_len > (compressed.len() as u64).saturating_mul(256) + 64 {
        return Err(at(format!(
            "{} raw bytes are impossible for {}",
            b.raw_len,
            compressed.len()
        )));
    }
    let raw = lz4_flex::block::decompress(compressed, b.raw_len as usize).map_err(|e| at(e.to_string()))?;
    if raw.len() as u64 != b.raw_len || raw.len() < 4 {
        return Err(at(format!(
            "{} bytes after decompression, the index says {}",
            raw.len(),
            b.raw_len
        )));
    }
    let sets_len = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes")) as usize;
    let rest = &raw[4..];
    if sets_len > rest.len() {
        return Err(at(format!("a sets block of {sets_len} bytes in {}", rest.len())));
    }
    let from = into.sets.len();
    block::decode_sets_into(&rest[..sets_len], &mut into.sets).map_err(|e| at(format!("sets: {e}")))?;
    let deletes = block::decode_deletes(&rest[sets_len..]).map_err(|e| at(format!("deletes: {e}")))?;
    if (into.sets.len() - from) as u64 != b.sets || deletes.len() as u64 != b.deletes {
        return Err(at("holds other counts than the index says".into()));
    }
    into.deletes.extend(deletes);
    Ok(())
}

/// The blocks `wanted` of operator `name`, in order; when there is much to decode (a restore
/// of a large state), the second half on a scoped thread. An error is the first damaged
/// block's.
fn decode_blocks(
    name: &str,
    ordinal: usize,
    wanted: &[&BlockRef],
    area: &[u8],
    id: CheckpointId,
    cipher: Option<&Aes256Gcm>,
) -> Result<StateDelta, Damage> {
    let decode = |part: &[&BlockRef]| -> Result<StateDelta, Damage> {
        let mut d = StateDelta::default();
        d.sets.reserve(part.iter().map(|b| b.sets as usize).sum());
        for b in part {
            decode_block(name, ordinal, b, area, id, cipher, &mut d)?;
        }
        Ok(d)
    };
    let bytes: u64 = wanted.iter().map(|b| b.raw_len).sum();
    if bytes < PARALLEL_BYTES || wanted.len() < 2 {
        return decode(wanted);
    }
    let mut behind = 0;
    let mid = wanted
        .iter()
        .position(|b| {
            behind += b.raw_len;
            behind * 2 >= bytes
        })
        .map_or(wanted.len() - 1, |i| (i + 1).min(wanted.len() - 1));
    let (first, second) = wanted.split_at(mid);
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| decode(second));
        (decode(first), b.join())
    });
    let mut a = a?;
    let b = b.map_err(|_| {
        Damage::Decode(format!(
            "operator {name}: the thread decoding half its blocks panicked"
        ))
    })??;
    a.sets.extend(b.sets);
    a.deletes.extend(b.deletes);
    Ok(a)
}

/// Decode the blocks `select` asks for from `area` (the blocks after the index).
pub(super) fn decode(
    host: HostState,
    operators: Vec<OperatorIndex>,
    area: &[u8],
    id: CheckpointId,
    cipher: Option<&Aes256Gcm>,
    select: Select<'_>,
    stats: &mut DecodeStats,
) -> Result<CheckpointData, Damage> {
    let mut out = Vec::with_capacity(operators.len());
    for (ordinal, o) in operators.into_iter().enumerate() {
        let want = select(&o.name);
        let mut wanted = Vec::new();
        let mut partial = false;
        for b in &o.blocks {
            stats.blocks_total += 1;
            stats.raw_bytes_total += b.raw_len;
            if !overlaps(b, &want) {
                continue;
            }
            stats.blocks += 1;
            stats.raw_bytes += b.raw_len;
            partial |= matches!((&want, b.groups), (Some(r), Some((lo, hi))) if lo < r.start || hi > r.end);
            wanted.push(b);
        }
        let mut state = decode_blocks(&o.name, ordinal, &wanted, area, id, cipher)?;
        if let Some(r) = &want
            && partial
        {
            keep_range(&mut state, o.key_groups, r);
        }
        out.push(OperatorSnapshot {
            name: o.name,
            plugin_digest: o.plugin_digest,
            config: o.config,
            key_groups: o.key_groups,
            parallelism: o.parallelism,
            expired: o.expired,
            state_version: o.state_version,
            state,
        });
    }
    Ok(CheckpointData { host, operators: out })
}

/// How a block is named in errors.
fn shown(groups: Option<(u32, u32)>) -> String {
    match groups {
        Some((lo, hi)) => format!("block of key groups {lo}..{hi}"),
        None => "operator-wide block".into(),
    }
}

/// Authenticate every block of an encrypted checkpoint (no decompression).
pub(super) fn authenticate(
    operators: &[OperatorIndex],
    area: &[u8],
    id: CheckpointId,
    cipher: &Aes256Gcm,
) -> Result<(), Damage> {
    for (ordinal, o) in operators.iter().enumerate() {
        for b in &o.blocks {
            let stored = usize::try_from(b.offset)
                .ok()
                .zip(usize::try_from(b.stored_len).ok())
                .and_then(|(off, len)| area.get(off..off.checked_add(len)?))
                .filter(|s| s.len() >= 12)
                .ok_or_else(|| {
                    Damage::Decode(format!(
                        "operator {} {} lies outside the payload",
                        o.name,
                        shown(b.groups)
                    ))
                })?;
            let nonce: [u8; 12] = stored[..12].try_into().expect("12 bytes");
            open(cipher, &nonce, &block_aad(id, ordinal, b.groups), &stored[12..])
                .ok_or_else(|| Damage::BlockDecrypt(format!("operator {} {}", o.name, shown(b.groups))))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ranged_tests.rs"]
mod tests;
