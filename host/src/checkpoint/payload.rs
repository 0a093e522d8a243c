//! The payload of a checkpoint (what bincode writes before compression), by format version.
//!
//! * **Version 4** (read; written before format 5's blocks by key-group range, `ranged.rs`): as version 3, the host state ending with the sink's record
//!   ([`super::model::SinkPosition`]).
//! * **Version 3** (read): as version 2, each key group's sets and deletes written as sorted
//!   blocks ([`super::block`]: keys in byte order with shared prefixes elided, then the values
//!   side by side), which LZ4 compresses further.
//! * **Version 2** (read): the host's source position is an opaque record of the source
//!   ([`SourcePosition`]), and each operator's entries are grouped by key group: one group per
//!   keyed scope's `cairn_codec::scoped::key_group` among the operator's `key_groups`, and one
//!   (`None`) for operator-wide entries and the plain keys of 0.1 plugins.
//! * **Version 1** (read): the JSONL position in fixed fields, one flat list of entries per
//!   operator. Decoded into the same in-memory [`CheckpointData`].

use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

use super::block;
use super::model::{CheckpointData, HostState, JsonlPosition, OperatorSnapshot};
use super::state_serde::DeltaIn;
use crate::state::{Key, StateDelta, Value};

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The key group of a stored key: its stream key's for keyed entries and timers, `None` for
/// operator-wide entries and unscoped (0.1) keys.
pub(super) fn group_of(key: &str, groups: u32) -> Option<u32> {
    if let Some((stream_key, _)) = cairn_codec::timers::parse(key) {
        return Some(cairn_codec::scoped::key_group(stream_key, groups));
    }
    if let Some(scope) = cairn_codec::expiry::scope_of(key) {
        return Some(cairn_codec::scoped::key_group(scope, groups));
    }
    match cairn_codec::scoped::split(key) {
        Ok((Some(scope), _)) => Some(cairn_codec::scoped::key_group(scope, groups)),
        _ => None,
    }
}

#[cfg(test)]
#[derive(Serialize)]
struct GroupOut {
    group: Option<u32>,
    #[serde(with = "serde_bytes")]
    sets: Vec<u8>,
    #[serde(with = "serde_bytes")]
    deletes: Vec<u8>,
}

#[cfg(test)]
#[derive(Serialize)]
struct OperatorOut<'a> {
    name: &'a str,
    partition: u32,
    plugin_digest: &'a str,
    config: &'a str,
    key_groups: u32,
    groups: Vec<GroupOut>,
}

#[cfg(test)]
#[derive(Serialize)]
struct PayloadOut<'a> {
    host: &'a HostState,
    operators: Vec<OperatorOut<'a>>,
}

#[cfg(test)]
/// One key group's part of a delta: its group, its sets, its deletes.
type Group = (Option<u32>, Vec<(Key, Value)>, Vec<Key>);

#[cfg(test)]
/// Split a delta by key group, groups in ascending order (operator-wide first), each keeping
/// the delta's order.
fn grouped(d: &StateDelta, groups: u32) -> Vec<Group> {
    type Parts = (Vec<(Key, Value)>, Vec<Key>);
    let mut by: std::collections::BTreeMap<Option<u32>, Parts> = Default::default();
    for (k, v) in &d.sets {
        by.entry(group_of(k, groups))
            .or_default()
            .0
            .push((k.clone(), v.clone()));
    }
    for k in &d.deletes {
        by.entry(group_of(k, groups)).or_default().1.push(k.clone());
    }
    by.into_iter().map(|(g, (s, r))| (g, s, r)).collect()
}

#[cfg(test)]
/// Encode `data` as a version-4 payload (written before format 5; tests write it still).
pub fn encode(data: &CheckpointData) -> Result<Vec<u8>, String> {
    let split: Vec<Vec<Group>> = data
        .operators
        .iter()
        .map(|o| grouped(&o.state, o.key_groups))
        .collect();
    let operators = data
        .operators
        .iter()
        .zip(&split)
        .map(|(o, groups)| OperatorOut {
            name: &o.name,
            partition: 0,
            plugin_digest: &o.plugin_digest,
            config: &o.config,
            key_groups: o.key_groups,
            groups: groups
                .iter()
                .map(|(g, sets, deletes)| GroupOut {
                    group: *g,
                    sets: block::encode_sets(sets),
                    deletes: block::encode_deletes(deletes),
                })
                .collect(),
        })
        .collect();
    bincode::serde::encode_to_vec(
        PayloadOut {
            host: &data.host,
            operators,
        },
        config(),
    )
    .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct GroupIn {
    /// Part of the layout; the groups of a checkpoint are merged on reading.
    #[allow(dead_code)]
    group: Option<u32>,
    delta: DeltaIn,
}

#[derive(Deserialize)]
struct GroupIn3<'a> {
    group: Option<u32>,
    #[serde(borrow)]
    sets: &'a [u8],
    #[serde(borrow)]
    deletes: &'a [u8],
}

/// An operator of versions 2 and 3, whose key groups (`G`) differ in layout.
#[derive(Deserialize)]
struct OperatorIn<G> {
    name: String,
    /// Always 0 (never used).
    #[allow(dead_code)]
    partition: u32,
    plugin_digest: String,
    config: String,
    key_groups: u32,
    groups: Vec<G>,
}

#[derive(Deserialize)]
struct PayloadIn<G, H = HostState> {
    host: H,
    operators: Vec<OperatorIn<G>>,
}

/// The host state of versions 2 and 3: no sink record (their sinks were JSON Lines files).
#[derive(Deserialize)]
struct HostV3 {
    job: String,
    source: super::model::SourcePosition,
    output_len: u64,
    dead_letter_len: u64,
    events_in: u64,
    events_out: u64,
    batches: u64,
    watermark: Option<i64>,
}

impl From<HostV3> for HostState {
    fn from(h: HostV3) -> Self {
        HostState {
            job: h.job,
            source: h.source,
            output_len: h.output_len,
            dead_letter_len: h.dead_letter_len,
            events_in: h.events_in,
            events_out: h.events_out,
            batches: h.batches,
            watermark: h.watermark,
            sink: Default::default(),
        }
    }
}

impl<G> PayloadIn<G, HostV3> {
    fn upgraded(self) -> PayloadIn<G> {
        PayloadIn {
            host: self.host.into(),
            operators: self.operators,
        }
    }
}

impl<G> PayloadIn<G> {
    /// The checkpoint, each operator's groups turned into its state by `state_of(name, groups)`.
    fn into_data(
        self,
        mut state_of: impl FnMut(&str, Vec<G>) -> Result<StateDelta, String>,
    ) -> Result<CheckpointData, String> {
        let mut operators = Vec::with_capacity(self.operators.len());
        for o in self.operators {
            let state = state_of(&o.name, o.groups)?;
            operators.push(OperatorSnapshot {
                name: o.name,
                plugin_digest: o.plugin_digest,
                config: o.config,
                key_groups: o.key_groups,
                parallelism: 1,
                expired: 0,
                state_version: 0,
                state,
            });
        }
        Ok(CheckpointData {
            host: self.host,
            operators,
        })
    }
}

/// Version 1's host state: the JSONL position in fixed fields.
#[derive(Deserialize)]
struct HostV1 {
    job: String,
    input: String,
    input_offset: u64,
    input_line: u64,
    output_len: u64,
    dead_letter_len: u64,
    events_in: u64,
    events_out: u64,
    batches: u64,
    watermark: Option<i64>,
}

#[derive(Deserialize)]
struct OperatorV1 {
    name: String,
    /// Always 0 (never used).
    #[allow(dead_code)]
    partition: u32,
    plugin_digest: String,
    config: String,
    state: DeltaIn,
}

#[derive(Deserialize)]
struct PayloadV1 {
    host: HostV1,
    operators: Vec<OperatorV1>,
}

/// One operator's key groups' sets and deletes as one delta. Most checkpoints have one group
/// (or one large one): it is moved, not copied.
/// Sets blocks of at least this many bytes in all are decoded on two threads.
const PARALLEL_BYTES: usize = 1 << 20;

#[cfg(test)]
thread_local! {
    /// A test's own threshold for [`decode_groups`] on this thread.
    static TEST_PARALLEL_BYTES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn parallel_bytes() -> usize {
    #[cfg(test)]
    if let Some(n) = TEST_PARALLEL_BYTES.with(|c| c.get()) {
        return n;
    }
    PARALLEL_BYTES
}

/// Version 3's key groups of operator `name` as one delta: decoded in order, and — when
/// there is much to decode (a restore of a large state) — in two halves at once, the first
/// here and the second on a scoped thread. Errors are reported as the first damaged group's.
fn decode_groups(name: &str, groups: &[GroupIn3<'_>]) -> Result<StateDelta, String> {
    let decode = |part: &[GroupIn3<'_>], reserve: usize| -> Result<StateDelta, String> {
        let mut d = StateDelta::default();
        d.sets.reserve(reserve);
        for g in part {
            let at = |what: &str, e: String| format!("operator {name} key group {:?}: {what}: {e}", g.group);
            block::decode_sets_into(g.sets, &mut d.sets).map_err(|e| at("sets", e))?;
            d.deletes
                .extend(block::decode_deletes(g.deletes).map_err(|e| at("deletes", e))?);
        }
        Ok(d)
    };
    let count = |part: &[GroupIn3<'_>]| part.iter().map(|g| block::set_count(g.sets)).sum::<usize>();
    let bytes: usize = groups.iter().map(|g| g.sets.len()).sum();
    if bytes < parallel_bytes() || groups.len() < 2 {
        return decode(groups, count(groups));
    }
    // Split where half the bytes are behind.
    let mut behind = 0;
    let mid = groups
        .iter()
        .position(|g| {
            behind += g.sets.len();
            behind * 2 >= bytes
        })
        .map_or(groups.len() - 1, |i| (i + 1).min(groups.len() - 1));
    let (first, second) = groups.split_at(mid);
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| decode(second, 0));
        (decode(first, count(groups)), b.join())
    });
    let mut a = a?;
    let b = b.map_err(|_| "the thread decoding the second half of the key groups panicked".to_string())??;
    a.sets.extend(b.sets);
    a.deletes.extend(b.deletes);
    Ok(a)
}

fn merge(parts: impl IntoIterator<Item = (Vec<(Key, Value)>, Vec<Key>)>) -> StateDelta {
    let mut state = StateDelta::default();
    for (sets, deletes) in parts {
        if state.sets.is_empty() {
            state.sets = sets;
        } else {
            state.sets.extend(sets);
        }
        if state.deletes.is_empty() {
            state.deletes = deletes;
        } else {
            state.deletes.extend(deletes);
        }
    }
    state
}

fn decode_all<'a, T: Deserialize<'a>>(raw: &'a [u8]) -> Result<T, String> {
    // Borrowing decode: keys and values are copied once, from `raw` into their final form
    // (version 3's blocks are not copied at all before they are read).
    let (data, used): (T, usize) =
        bincode::serde::borrow_decode_from_slice(raw, config()).map_err(|e| e.to_string())?;
    if used != raw.len() {
        return Err(format!("{} trailing bytes", raw.len() - used));
    }
    Ok(data)
}

/// Decode a payload of format `version` (1 to 4).
pub fn decode(version: u16, raw: &[u8]) -> Result<CheckpointData, String> {
    match version {
        4 => {
            decode_all::<PayloadIn<GroupIn3<'_>>>(raw)?.into_data(|name, groups| decode_groups(name, &groups))
        }
        3 => decode_all::<PayloadIn<GroupIn3<'_>, HostV3>>(raw)?
            .upgraded()
            .into_data(|name, groups| decode_groups(name, &groups)),
        // The payload is checksummed or authenticated: the groups are taken as written.
        2 => decode_all::<PayloadIn<GroupIn, HostV3>>(raw)?
            .upgraded()
            .into_data(|_, groups| Ok(merge(groups.into_iter().map(|g| (g.delta.sets, g.delta.deletes))))),
        1 => {
            let p: PayloadV1 = decode_all(raw)?;
            let h = p.host;
            Ok(CheckpointData {
                // Version 1 is version 3's host state with the JSONL position in fixed fields.
                host: HostV3 {
                    job: h.job,
                    source: JsonlPosition {
                        input: h.input,
                        offset: h.input_offset,
                        line: h.input_line,
                        // Version 1 did not record it (and its operators did not depend on it).
                        batch_size: None,
                    }
                    .to_source(),
                    output_len: h.output_len,
                    dead_letter_len: h.dead_letter_len,
                    events_in: h.events_in,
                    events_out: h.events_out,
                    batches: h.batches,
                    watermark: h.watermark,
                }
                .into(),
                operators: p
                    .operators
                    .into_iter()
                    .map(|o| OperatorSnapshot {
                        name: o.name,
                        plugin_digest: o.plugin_digest,
                        config: o.config,
                        key_groups: cairn_codec::scoped::DEFAULT_KEY_GROUPS,
                        parallelism: 1,
                        expired: 0,
                        state_version: 0,
                        state: StateDelta {
                            sets: o.state.sets,
                            deletes: o.state.deletes,
                        },
                    })
                    .collect(),
            })
        }
        v => Err(format!("no payload layout for format version {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::OperatorSnapshot;

    fn data(keys: usize) -> CheckpointData {
        let mut state = StateDelta::default();
        for i in 0..keys {
            let key = format!("{}:sensor-{i}/count", format!("sensor-{i}").len());
            let value = format!(
                "{{\"count\":{},\"sum\":{}.5, \"pad\":\"{}\"}}",
                i % 977,
                i * 3,
                "x".repeat(i % 40)
            );
            state
                .sets
                .push((Key::from(key.as_str()), Value::from(value.into_bytes())));
        }
        state.deletes = (0..keys / 10)
            .map(|i| Key::from(format!("8:gone-{i}/x").as_str()))
            .collect();
        CheckpointData {
            host: HostState::default(),
            operators: vec![OperatorSnapshot {
                name: "op".into(),
                plugin_digest: "d".into(),
                config: "{}".into(),
                key_groups: cairn_codec::scoped::DEFAULT_KEY_GROUPS,
                parallelism: 1,
                expired: 0,
                state_version: 0,
                state,
            }],
        }
    }

    fn decode_with(threshold: usize, raw: &[u8]) -> Result<CheckpointData, String> {
        TEST_PARALLEL_BYTES.with(|c| c.set(Some(threshold)));
        let r = decode(4, raw);
        TEST_PARALLEL_BYTES.with(|c| c.set(None));
        r
    }

    #[test]
    fn two_threads_decode_what_one_does_damage_included() {
        let d = data(60_000);
        let raw = encode(&d).unwrap();
        assert!(
            raw.len() > 2 * PARALLEL_BYTES,
            "{} bytes: large enough to split",
            raw.len()
        );
        let one = decode_with(usize::MAX, &raw).unwrap();
        let two = decode_with(0, &raw).unwrap();
        assert_eq!(one, two);
        let sorted = |d: &CheckpointData| {
            let mut s = d.operators[0].state.sets.clone();
            s.sort_by(|a, b| a.0.cmp(&b.0));
            s
        };
        assert_eq!(sorted(&two), sorted(&d));
        // Damage anywhere (the second half included) reads as the same error either way.
        for at in (0..raw.len()).step_by(raw.len() / 97) {
            let mut bad = raw.clone();
            bad[at] ^= 0x5a;
            assert_eq!(decode_with(usize::MAX, &bad), decode_with(0, &bad), "byte {at}");
        }
    }
}
