//! Property: restoring (base + deltas) gives exactly the live state, for random sequences of
//! writes, removes, rolled-back batches and checkpoints, whatever the full-every setting.

use cairn::checkpoint::{CheckpointConfig, Checkpointer, Codec, HostState, OperatorPart, restore};
use cairn::state::StateHolder;
use cairn::store::{CheckpointStore, MemoryStore};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, Vec<u8>),
    Remove(u8),
    FailedBatch(Vec<(u8, Option<Vec<u8>>)>),
    Checkpoint,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(k, v)| Op::Set(k % 40, v)),
        3 => any::<u8>().prop_map(|k| Op::Remove(k % 40)),
        1 => proptest::collection::vec((any::<u8>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))), 1..6)
            .prop_map(|w| Op::FailedBatch(w.into_iter().map(|(k, v)| (k % 40, v)).collect())),
        2 => Just(Op::Checkpoint),
    ]
}

fn key(k: u8) -> String {
    format!("key/{k}")
}

fn part(state: &mut StateHolder) -> Vec<OperatorPart<'_>> {
    vec![OperatorPart::single("op", "00".into(), "{}", state)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn restore_equals_live_state(ops in proptest::collection::vec(op(), 1..120), full_every in 0u32..5) {
        let store = MemoryStore::new();
        let mut ck = Checkpointer::start(
            Box::new(store.clone()),
            Codec::plain(),
            CheckpointConfig { full_every, max_retained: 2 },
            None,
        ).unwrap();
        let mut live = StateHolder::new();
        let mut taken = 0u64;
        for op in ops {
            match op {
                Op::Set(k, v) => live.set(&key(k), v).unwrap(),
                Op::Remove(k) => { live.remove(&key(k)); }
                Op::FailedBatch(writes) => {
                    live.begin();
                    for (k, v) in writes {
                        match v {
                            Some(v) => live.set(&key(k), v).unwrap(),
                            None => { live.remove(&key(k)); }
                        }
                    }
                    live.rollback();
                }
                Op::Checkpoint => {
                    taken += 1;
                    let host = HostState { events_in: taken, ..HostState::default() };
                    ck.checkpoint_now(host, part(&mut live), None).unwrap();
                    let restored = restore(&store, &Codec::plain(), None).unwrap().unwrap();
                    let got: Vec<(String, Vec<u8>)> = restored.operators[0].state.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
                    let want: Vec<(String, Vec<u8>)> = live.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(restored.host.events_in, taken);
                    prop_assert_eq!(restored.operators[0].state.bytes(), live.bytes());
                    // Retention keeps at most the chains of the 2 newest.
                    prop_assert!(store.list().unwrap().len() <= 2 * (full_every as usize + 1));
                }
            }
        }
    }
}
