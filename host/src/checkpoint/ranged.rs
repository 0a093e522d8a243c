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
        });
    }
    let index = bincode::serde::encode_to_vec(
        Index {
            host: data.host.clone(),
            operators,
        },
        bincode::config::standard(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Encoded {
        index_raw_len: index.len(),
        index: compression.compress(&index)?,
        blocks,
    })
}

/// The operators' index of a checkpoint: `index` is the decompressed index.
pub(super) fn read_index(index: &[u8]) -> Result<(HostState, Vec<OperatorIndex>), String> {
    let (i, used): (Index, usize) = bincode::serde::decode_from_slice(index, bincode::config::standard())
        .map_err(|e| format!("index: {e}"))?;
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
        let mut state = StateDelta::default();
        let mut partial = false;
        for b in &o.blocks {
            stats.blocks_total += 1;
            stats.raw_bytes_total += b.raw_len;
            if !overlaps(b, &want) {
                continue;
            }
            let at = |e: String| Damage::Decode(format!("operator {} {}: {e}", o.name, shown(b.groups)));
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
                    opened = open(c, &nonce, &block_aad(id, ordinal, b.groups), &stored[12..]).ok_or_else(
                        || Damage::BlockDecrypt(format!("operator {} {}", o.name, shown(b.groups))),
                    )?;
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
            let raw =
                lz4_flex::block::decompress(compressed, b.raw_len as usize).map_err(|e| at(e.to_string()))?;
            if raw.len() as u64 != b.raw_len || raw.len() < 4 {
                return Err(at(format!(
                    "{} bytes after decompression, the index says {}",
                    raw.len(),
                    b.raw_len
                )));
            }
            stats.blocks += 1;
            stats.raw_bytes += b.raw_len;
            partial |= matches!((&want, b.groups), (Some(r), Some((lo, hi))) if lo < r.start || hi > r.end);
            let sets_len = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes")) as usize;
            let rest = &raw[4..];
            if sets_len > rest.len() {
                return Err(at(format!("a sets block of {sets_len} bytes in {}", rest.len())));
            }
            let from = state.sets.len();
            block::decode_sets_into(&rest[..sets_len], &mut state.sets)
                .map_err(|e| at(format!("sets: {e}")))?;
            let deletes =
                block::decode_deletes(&rest[sets_len..]).map_err(|e| at(format!("deletes: {e}")))?;
            if (state.sets.len() - from) as u64 != b.sets || deletes.len() as u64 != b.deletes {
                return Err(at("holds other counts than the index says".into()));
            }
            state.deletes.extend(deletes);
        }
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
mod tests {
    use super::*;
    use crate::checkpoint::codec::Placement;
    use crate::checkpoint::{Codec, EncryptionKey, Kind};
    use crate::state::KeyGroups;

    /// An operator of `keys` keyed entries (and two operator-wide ones).
    fn data(keys: usize, groups: u32) -> CheckpointData {
        let mut state = StateDelta::default();
        for i in 0..keys {
            let scoped = cairn_codec::scoped::compose(Some(&format!("sensor-{i}")), "count");
            let value = format!("{{\"count\":{}}}", i % 977);
            state
                .sets
                .push((Key::from(scoped.as_str()), Value::from(value.into_bytes())));
        }
        for k in ["late", "total"] {
            let scoped = cairn_codec::scoped::compose(None, k);
            state
                .sets
                .push((Key::from(scoped.as_str()), Value::from(&b"1"[..])));
        }
        CheckpointData {
            host: HostState::default(),
            operators: vec![OperatorSnapshot {
                name: "op".into(),
                plugin_digest: "d".into(),
                config: "{}".into(),
                key_groups: groups,
                parallelism: 4,
                expired: 7,
                state,
            }],
        }
    }

    fn full(id: u64) -> Placement {
        Placement {
            id,
            kind: Kind::Full,
            base: id,
            parent: None,
        }
    }

    fn sorted(mut s: StateDelta) -> Vec<(Key, Value)> {
        s.sets.sort_by(|a, b| a.0.cmp(&b.0));
        s.sets
    }

    #[test]
    fn an_instance_decodes_the_index_and_only_the_blocks_of_its_own_groups() {
        let key = EncryptionKey::from_bytes([5; 32]);
        for codec in [Codec::plain(), Codec::encrypted(&key)] {
            for (groups, n) in [(128, 4), (128, 3), (1000, 7)] {
                let d = data(20_000, groups);
                let bytes = codec.encode(full(3), 0, &d).unwrap();
                let mut union = Vec::new();
                for i in 0..n {
                    let range = KeyGroups::for_instance(groups, i, n).unwrap().owned();
                    let mut stats = DecodeStats::default();
                    let (_, part) = codec
                        .decode_part(3, &bytes, &|_| Some(range.clone()), &mut stats)
                        .unwrap();
                    let op = &part.operators[0];
                    assert_eq!((op.parallelism, op.expired, op.key_groups), (4, 7, groups));
                    // Exactly its entries: its groups' keyed ones, the operator-wide ones with 0.
                    for (k, _) in &op.state.sets {
                        match group_of(k, groups) {
                            Some(g) => assert!(range.contains(&g), "{k} in group {g}, not in {range:?}"),
                            None => assert_eq!(range.start, 0, "{k}"),
                        }
                    }
                    // Its share of the blocks' bytes and at most one block more (the blocks at
                    // the ends of its range, where another instance's groups begin, are decoded
                    // whole; when the range is not aligned to blocks, two such blocks).
                    let largest = codec.layout(3, &bytes).unwrap().unwrap()[0]
                        .blocks
                        .iter()
                        .map(|b| b.raw_len)
                        .max()
                        .unwrap();
                    let share =
                        stats.raw_bytes_total * u64::from(range.end - range.start) / u64::from(groups);
                    // With a power of two of both, a range is whole blocks or inside one block
                    // (spans are powers of two): at most one block beyond the share. Otherwise
                    // a block at each end may be another instance's in part.
                    let ends = if groups.is_power_of_two() && n.is_power_of_two() {
                        1
                    } else {
                        2
                    };
                    assert!(
                        stats.raw_bytes <= share + ends * largest,
                        "instance {i} of {n} ({groups} groups) decoded {} bytes; share {share}, block {largest}",
                        stats.raw_bytes
                    );
                    assert!(stats.blocks < stats.blocks_total, "{stats:?}");
                    union.extend(op.state.sets.iter().cloned());
                }
                let mut whole = StateDelta {
                    sets: union,
                    deletes: Vec::new(),
                };
                whole.sets.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(
                    whole.sets,
                    sorted(d.operators[0].state.clone()),
                    "{groups} groups, {n} instances"
                );
            }
        }
    }

    #[test]
    fn a_block_moved_between_operators_or_checkpoints_does_not_authenticate() {
        let codec = Codec::encrypted(&EncryptionKey::from_bytes([6; 32]));
        // Two operators with the same entries: their blocks have the same ranges and lengths.
        let mut d = data(40_000, 128);
        let mut twin = d.operators[0].clone();
        twin.name = "twin".into();
        d.operators.push(twin);
        let a = codec.encode(full(3), 0, &d).unwrap();
        let layout = codec.layout(3, &a).unwrap().unwrap();
        let (ours, theirs) = (&layout[0].blocks, &layout[1].blocks);
        assert!(ours.len() >= 4, "{} blocks", ours.len());
        let stored: usize = layout
            .iter()
            .flat_map(|o| &o.blocks)
            .map(|b| b.stored_len as usize)
            .sum();
        let area = a.len() - stored;
        let at = |b: &BlockRef| area + b.offset as usize;
        // Operator 0's block 1 swapped with the twin's: the index still fits, the blocks not.
        let (x, y) = (&ours[1], &theirs[1]);
        assert_eq!((x.groups, x.stored_len), (y.groups, y.stored_len));
        let len = x.stored_len as usize;
        let mut swapped = a.clone();
        swapped[at(x)..at(x) + len].copy_from_slice(&a[at(y)..at(y) + len]);
        swapped[at(y)..at(y) + len].copy_from_slice(&a[at(x)..at(x) + len]);
        assert!(codec.decode(3, &swapped).is_err());
        assert!(codec.verify(3, &swapped).is_err());
        // The same block from checkpoint 4 (same entries) in checkpoint 3.
        let b = codec.encode(full(4), 0, &d).unwrap();
        let b_layout = codec.layout(4, &b).unwrap().unwrap();
        let b_stored: usize = b_layout
            .iter()
            .flat_map(|o| &o.blocks)
            .map(|b| b.stored_len as usize)
            .sum();
        let from = b.len() - b_stored + b_layout[0].blocks[1].offset as usize;
        assert_eq!(b_layout[0].blocks[1].stored_len, x.stored_len);
        let mut moved = a.clone();
        moved[at(x)..at(x) + len].copy_from_slice(&b[from..from + len]);
        assert!(codec.decode(3, &moved).is_err());
        assert!(codec.verify(3, &moved).is_err());
        assert!(codec.verify(3, &a).is_ok());
        // An instance of groups the moved block does not hold does not notice it.
        let away = ours
            .iter()
            .find(|b| b.groups.is_some_and(|(lo, _)| lo >= 64))
            .unwrap()
            .groups
            .unwrap();
        assert!(x.groups.is_some_and(|(_, hi)| hi <= away.0));
        let only = |_: &str| Some(away.0..128);
        assert!(
            codec
                .decode_part(3, &moved, &only, &mut DecodeStats::default())
                .is_ok()
        );
    }
}
