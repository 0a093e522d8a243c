//! Tests of format 5's blocks: what an instance decodes, and moved blocks.
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
            state_version: 3,
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
                let share = stats.raw_bytes_total * u64::from(range.end - range.start) / u64::from(groups);
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
fn a_large_state_decodes_on_two_threads_as_on_one() {
    // ~3 MB of entries: more than PARALLEL_BYTES, in several blocks.
    let d = data(80_000, 128);
    for codec in [
        Codec::plain(),
        Codec::encrypted(&EncryptionKey::from_bytes([8; 32])),
    ] {
        let bytes = codec.encode(full(3), 0, &d).unwrap();
        let layout = codec.layout(3, &bytes).unwrap().unwrap();
        let raw: u64 = layout[0].blocks.iter().map(|b| b.raw_len).sum();
        assert!(raw > PARALLEL_BYTES && layout[0].blocks.len() > 2, "{raw} bytes");
        let (_, back) = codec.decode(3, &bytes).unwrap();
        assert_eq!(
            sorted(back.operators[0].state.clone()),
            sorted(d.operators[0].state.clone())
        );
        // Damage in the last block (decoded by the second thread) is reported.
        let stored: usize = layout[0].blocks.iter().map(|b| b.stored_len as usize).sum();
        let last = layout[0].blocks.last().unwrap();
        let mut bad = bytes.clone();
        let at = bytes.len() - stored + last.offset as usize + last.stored_len as usize / 2;
        bad[at] ^= 0x40;
        if codec.is_encrypted() {
            assert!(matches!(
                codec.decode(3, &bad),
                Err(crate::checkpoint::Damage::BlockDecrypt(_))
            ));
        } else {
            assert!(codec.decode(3, &bad).is_err());
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
