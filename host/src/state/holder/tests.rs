//! The state holder's tests: unit cases and a proptest against a model.
use super::*;

#[test]
fn keys_below_a_bound_are_listed_in_order_and_nothing_past_it() {
    let mut s = StateHolder::new();
    for k in ["!t/3", "!t/1", "!t/2", "!u/0", "a"] {
        s.set(k, Vec::new()).unwrap();
    }
    let listed = |below: &str, limit| s.list_keys_below("!t/", below, limit);
    assert_eq!(listed("!t/3", 10), vec![Key::from("!t/1"), Key::from("!t/2")]);
    assert_eq!(listed("!t/9", 2), vec![Key::from("!t/1"), Key::from("!t/2")]);
    assert_eq!(listed("~", 10).len(), 3);
    assert!(listed("!t/", 10).is_empty() && listed("!", 10).is_empty());
    assert_eq!(s.list_keys_below("", "b", 10).len(), 5);
}

#[test]
fn rollback_restores_values_and_dirty_sets() {
    let mut s = StateHolder::new();
    s.set("a", b"1".to_vec()).unwrap();
    s.set("b", b"2".to_vec()).unwrap();
    let _ = s.take_delta();
    s.remove("b");
    s.begin();
    s.set("a", b"10".to_vec()).unwrap();
    s.set("c", b"3".to_vec()).unwrap();
    s.set("b", b"20".to_vec()).unwrap();
    s.remove("a");
    s.rollback();
    assert_eq!(s.get("a"), Some(&b"1"[..]));
    assert_eq!(s.get("b"), None);
    assert_eq!(s.get("c"), None);
    assert_eq!(s.bytes(), 2);
    let d = s.take_delta();
    assert_eq!(d.sets, vec![]);
    assert_eq!(d.deletes, vec![Key::from("b")]);
}

#[test]
fn a_removed_key_leaves_the_map_at_once_and_the_delta_deletes_it() {
    let mut s = StateHolder::new();
    for i in 0..1000 {
        s.set(&format!("k{i}"), b"v".to_vec()).unwrap();
    }
    let mut replica = StateHolder::new();
    replica.apply(s.take_delta());
    for i in 0..1000 {
        assert!(s.remove(&format!("k{i}")));
    }
    assert_eq!(s.slots.len(), 0, "no tombstones");
    // One is written again: deleted, then set (the order `apply` follows).
    s.set("k7", b"w".to_vec()).unwrap();
    assert_eq!(s.dirty_len(), 1001);
    let d = s.take_delta();
    assert_eq!((d.sets.len(), d.deletes.len()), (1, 1000));
    assert!(d.deletes.contains(&Key::from("k7")));
    replica.apply(d);
    let all: Vec<(&str, &[u8])> = replica.iter().collect();
    assert_eq!(all, vec![("k7", &b"w"[..])]);
    // Removed again within one checkpoint's changes: the delete alone stays.
    s.remove("k7");
    s.set("k7", b"x".to_vec()).unwrap();
    s.remove("k7");
    let d = s.take_delta();
    assert_eq!((d.sets, d.deletes), (vec![], vec![Key::from("k7")]));
}

#[test]
fn table_order_is_a_permutation_by_bucket_position() {
    use std::hash::BuildHasher;
    let n = 70_000;
    let mut s = StateHolder::new();
    s.slots.reserve(n);
    let sets: Vec<(Key, Value)> = (0..n)
        .map(|i| {
            (
                Key::from(format!("k{i}").as_str()),
                Value::from(vec![i as u8; i % 3]),
            )
        })
        .collect();
    let (ordered, hashes) = s.in_table_order(sets.clone());
    let buckets = (s.slots.capacity() / 7 * 8).next_power_of_two();
    let pos: Vec<usize> = ordered
        .iter()
        .zip(&hashes)
        .map(|((k, _), &h)| {
            assert_eq!(h, s.slots.hasher().hash_one(k.as_str()), "{k:?}: its hash");
            h as usize & (buckets - 1)
        })
        .collect();
    // In runs of 1/4096 of the table, in order (within a run, any order).
    let run = |p: usize| p >> (buckets.trailing_zeros() - 12);
    assert!(
        pos.windows(2).all(|w| run(w[0]) <= run(w[1])),
        "runs out of order"
    );
    let (mut a, mut b) = (sets, ordered);
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert!(a == b, "not the same entries");
}

#[test]
fn a_large_restore_in_table_order_holds_every_entry() {
    // Past 65,536 entries `apply` inserts in runs by bucket position.
    let n = 70_000;
    let entry = |i: usize, r: usize| {
        (
            Key::from(format!("k{i}").as_str()),
            Value::from(vec![r as u8; i % 30]),
        )
    };
    let mut s = StateHolder::new();
    s.apply(StateDelta {
        sets: (0..n).map(|i| entry(i, 1)).collect(),
        deletes: vec![],
    });
    s.apply(StateDelta {
        sets: (0..n)
            .step_by(7)
            .filter(|i| i % 11 != 0)
            .map(|i| entry(i, 2))
            .collect(),
        deletes: (0..n)
            .step_by(11)
            .map(|i| Key::from(format!("k{i}").as_str()))
            .collect(),
    });
    let mut bytes = 0;
    for i in 0..n {
        let want = (i % 11 != 0).then(|| vec![if i % 7 == 0 { 2 } else { 1 }; i % 30]);
        assert_eq!(s.get(&format!("k{i}")).map(<[u8]>::to_vec), want, "k{i}");
        bytes += want.map_or(0, |w| format!("k{i}").len() + w.len());
    }
    assert_eq!(
        (s.len(), s.bytes(), s.dirty_len()),
        (n - n.div_ceil(11), bytes as u64, 0)
    );
}

#[test]
fn quotas_refuse_without_changing_state() {
    let mut s = StateHolder::with_quotas(StateQuotas {
        max_keys: 2,
        max_state_bytes: 100,
        max_value_bytes: 10,
        max_timers: 1,
    });
    s.set("a", vec![0; 10]).unwrap();
    let e = s.set("b", vec![0; 11]).unwrap_err();
    assert!(e.to_string().contains("max-value-bytes = 10"), "{e}");
    s.set("b", vec![0; 1]).unwrap();
    let e = s.set("c", vec![]).unwrap_err();
    assert!(e.to_string().contains("max-keys = 2"), "{e}");
    assert_eq!(s.len(), 2);
    // Timers count against their own quota, not the keys' or bytes'.
    let t = |k: &str, ts| cairn_codec::timers::entry_key(k, ts);
    s.set(&t("a", 5), vec![]).unwrap();
    let e = s.set(&t("a", 6), vec![]).unwrap_err();
    assert!(e.to_string().contains("max-timers = 1"), "{e}");
    assert!(e.to_string().contains("\"a\" at 6"), "{e}");
    assert_eq!((s.len(), s.timers()), (2, 1));
    s.begin();
    s.remove(&t("a", 5));
    assert_eq!(s.timers(), 0);
    s.rollback();
    assert_eq!((s.len(), s.timers(), s.bytes()), (2, 1, 13));
}

#[test]
fn list_keys_pages_through_a_prefix() {
    let mut s = StateHolder::new();
    for k in ["w/1", "w/2", "w/3", "x/1", "v/9"] {
        s.set(k, vec![]).unwrap();
    }
    let keys = |s: &StateHolder, p, a, n| -> Vec<String> {
        s.list_keys(p, a, n).iter().map(|k| k.to_string()).collect()
    };
    assert_eq!(keys(&s, "w/", None, 2), vec!["w/1", "w/2"]);
    assert_eq!(keys(&s, "w/", Some("w/2"), 10), vec!["w/3"]);
    assert_eq!(keys(&s, "", Some("w/3"), 10), vec!["x/1"]);
    // The index, once built, follows writes, removals and rollbacks.
    s.remove("w/2");
    s.set("w/0", vec![]).unwrap();
    s.begin();
    s.set("w/5", vec![]).unwrap();
    s.remove("w/1");
    s.rollback();
    assert_eq!(keys(&s, "w/", None, 10), vec!["w/0", "w/1", "w/3"]);
}

/// What `overwrite_clone` relies on: a changed slot's entry in the change list is its key
/// and a clone of its value (the same allocation when shared).
fn assert_change_list_mirrors_slots(s: &StateHolder) {
    if !s.track {
        assert!(s.changed.entries().is_empty());
        return;
    }
    // Every entry not free is a changed slot's or a removal, each slot's its own.
    let entries = s.changed.entries();
    let mut free: Vec<u32> = s.changed.free().to_vec();
    free.sort_unstable();
    free.dedup();
    assert_eq!(free.len(), s.changed.free().len(), "a place freed twice");
    assert!(free.last().is_none_or(|&f| (f as usize) < entries.len()));
    let is_free = |i: usize| free.binary_search(&(i as u32)).is_ok();
    let mut changed_slots = 0;
    for (k, slot) in &s.slots {
        if slot.epoch >= s.gen_start {
            changed_slots += 1;
            let pos = (slot.pos & POS) as usize;
            assert!(!is_free(pos), "{k:?}: its place is free");
            assert_eq!(&entries[pos].0, k);
            let copy = &entries[pos].1;
            assert_eq!(copy.as_ref(), Some(&slot.value), "{k:?}");
            if let (Some(a), b) = (copy, &slot.value)
                && a.len() > crate::state::value::INLINE_VALUE_BYTES
            {
                assert_eq!(a.as_ptr(), b.as_ptr(), "{k:?}: one shared allocation");
            }
        }
    }
    // An entry with a value is a changed slot's; one without is a removal, of a key that has
    // no slot since or a new one whose removal needs no entry of its own.
    let with_value = (0..entries.len())
        .filter(|&i| !is_free(i) && entries[i].1.is_some())
        .count();
    assert_eq!(
        changed_slots, with_value,
        "an entry with a value but no changed slot"
    );
    for (i, (k, v)) in entries.iter().enumerate() {
        if !is_free(i)
            && v.is_none()
            && let Some(slot) = s.slots.get(k)
        {
            assert!(slot.epoch >= s.gen_start && slot.pos & ABSENT != 0, "{k:?}");
            assert_ne!((slot.pos & POS) as usize, i, "{k:?}");
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8),
    SetIfAbsent(u8, u8),
    Remove(u8),
    Begin,
    Commit,
    Rollback,
    Checkpoint,
    List(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::Set(k, v)),
        1 => (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::SetIfAbsent(k, v)),
        2 => (0u8..12).prop_map(Op::Remove),
        1 => Just(Op::Begin),
        1 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Checkpoint),
        1 => (0u8..3).prop_map(Op::List),
    ]
}

fn key_of(k: u8) -> String {
    // `!c/…` keys are host entries (their own ordered index); keys from 8 on are too long to
    // be kept in place (shared).
    let long = if k >= 8 {
        "-".repeat(super::super::key::INLINE_KEY_BYTES)
    } else {
        String::new()
    };
    format!("{}/{k:02}{long}", ["a", "b", "!c"][k as usize % 3])
}

proptest::proptest! {
    /// The holder against a plain ordered map: same contents, sizes and key listings after
    /// any mix of writes, removals, commits and rollbacks; and a replica that applies only
    /// the deltas always equals the live state at the checkpoint.
    #[test]
    fn behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 1..200), near_wrap: bool, tracked in proptest::bool::weighted(0.8)) {
        use std::collections::{BTreeMap, BTreeSet};
        let mut s = StateHolder::new();
        if !tracked {
            s.untrack();
        }
        // The state at the last checkpoint.
        let mut base: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if near_wrap {
            // The epoch counter wraps within the run: slots are renumbered, changes kept.
            s.last_epoch = u32::MAX - 30;
            s.gen_start = s.last_epoch;
        }
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        type Saved = (BTreeMap<String, Vec<u8>>, BTreeSet<String>);
        let mut saved: Option<Saved> = None;
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut replica = StateHolder::new();
        for op in ops {
            match op {
                Op::Set(k, v) => {
                    // Short values live in place, long ones (> 22 bytes) are shared.
                    let value = vec![v; if v % 3 == 0 { 30 + v as usize % 5 } else { v as usize % 4 }];
                    s.set(&key_of(k), value.clone()).unwrap();
                    model.insert(key_of(k), value);
                    touched.insert(key_of(k));
                }
                Op::SetIfAbsent(k, v) => {
                    let value = vec![v; v as usize % 4];
                    s.set_if_absent(&key_of(k), value.clone()).unwrap();
                    if let std::collections::btree_map::Entry::Vacant(e) = model.entry(key_of(k)) {
                        e.insert(value);
                        touched.insert(key_of(k));
                    }
                }
                Op::Remove(k) => {
                    let existed = model.remove(&key_of(k)).is_some();
                    if existed {
                        touched.insert(key_of(k));
                    }
                    proptest::prop_assert_eq!(s.remove(&key_of(k)), existed);
                }
                Op::Begin => {
                    if saved.is_none() {
                        saved = Some((model.clone(), touched.clone()));
                    }
                    s.begin();
                }
                Op::Commit => {
                    saved = None;
                    s.commit();
                }
                Op::Rollback => {
                    if let Some((m, t)) = saved.take() {
                        model = m;
                        touched = t;
                    }
                    s.rollback();
                }
                Op::Checkpoint => {
                    if saved.is_none() && tracked {
                        let dirty = s.dirty_len();
                        // Keys that came and went since the last checkpoint are not in it.
                        let want: Vec<String> = std::mem::take(&mut touched)
                            .into_iter()
                            .filter(|k| base.contains_key(k) || model.contains_key(k))
                            .collect();
                        let d = s.take_delta();
                        proptest::prop_assert_eq!(d.sets.len() + d.deletes.len(), dirty);
                        // Each key once among the sets and once among the deletes; one in
                        // both was in the checkpoint before (removed, then written again).
                        let sets: BTreeSet<String> = d.sets.iter().map(|(k, _)| k.to_string()).collect();
                        let deletes: BTreeSet<String> = d.deletes.iter().map(|k| k.to_string()).collect();
                        proptest::prop_assert_eq!((sets.len(), deletes.len()), (d.sets.len(), d.deletes.len()));
                        for k in sets.intersection(&deletes) {
                            proptest::prop_assert!(base.contains_key(k), "{:?} deleted and set, not in the checkpoint", k);
                        }
                        let keys: Vec<String> = sets.union(&deletes).cloned().collect();
                        proptest::prop_assert_eq!(keys, want);
                        base = model.clone();
                        replica.apply(d);
                        proptest::prop_assert_eq!(s.dirty_len(), 0);
                        let r: Vec<(String, Vec<u8>)> =
                            replica.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
                        let m: Vec<(String, Vec<u8>)> = model.clone().into_iter().collect();
                        proptest::prop_assert_eq!(r, m);
                        proptest::prop_assert_eq!(replica.bytes(), s.bytes());
                    }
                }
                Op::List(p) => {
                    let prefix = ["a/", "b/", "!c/"][p as usize];
                    let got: Vec<String> = s.list_keys(prefix, None, 100).iter().map(|k| k.to_string()).collect();
                    let want: Vec<String> = model.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
                    proptest::prop_assert_eq!(got, want);
                }
            }
            assert_change_list_mirrors_slots(&s);
            // A removed key leaves no slot.
            proptest::prop_assert_eq!(s.slots.len(), model.len());
            if !tracked {
                proptest::prop_assert_eq!(s.dirty_len(), 0);
            }
            let got: Vec<(String, Vec<u8>)> = s.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
            let want: Vec<(String, Vec<u8>)> = model.clone().into_iter().collect();
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(s.len(), model.len());
            let bytes: usize = model.iter().map(|(k, v)| k.len() + v.len()).sum();
            proptest::prop_assert_eq!(s.bytes(), bytes as u64);
        }
    }
}
