use std::collections::BTreeMap;

use cairn_sdk::testing::{Harness, values};
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn ev(k: &str, ts: i64) -> Event {
    Event::json(k, ts, &json!({})).unwrap()
}

fn emitted(out: &[Event]) -> Vec<(String, i64, i64, i64, u64)> {
    out.iter()
        .zip(values(out))
        .map(|(e, v)| {
            (
                e.key.clone(),
                e.ts,
                v["start"].as_i64().unwrap(),
                v["end"].as_i64().unwrap(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn sessions_close_a_gap_after_their_last_event() {
    let mut h = Harness::<Sessions>::new(r#"{"gap_ms": 10}"#).unwrap();
    assert!(
        h.feed(vec![ev("a", 0), ev("a", 5), ev("b", 7)])
            .unwrap()
            .is_empty()
    );
    assert!(
        h.feed(vec![ev("a", 15)]).unwrap().is_empty(),
        "15 - 5 <= 10: same session"
    );
    // Watermark 26 closes a's session [0, 15] (at 15 + 10 + 1) and b's [7, 7] (at 18).
    let out = h.feed(vec![ev("c", 26)]).unwrap();
    assert_eq!(
        emitted(&out),
        vec![("b".into(), 17, 7, 7, 1), ("a".into(), 25, 0, 15, 3)]
    );
    // An event whose session would have closed already is dropped and counted.
    assert!(h.feed(vec![ev("a", 3)]).unwrap().is_empty());
    assert_eq!(h.keyed_json("a", "late"), Some(json!(1)));
    // c's session is still open; the rest is gone.
    let out = h.watermark(100).unwrap();
    assert_eq!(emitted(&out), vec![("c".into(), 36, 26, 26, 1)]);
    assert_eq!(
        h.state().len(),
        1,
        "only the late counter is left: {:?}",
        h.state()
    );
}

#[test]
fn an_out_of_order_event_merges_two_sessions() {
    let mut h = Harness::<Sessions>::new(r#"{"gap_ms": 10}"#).unwrap();
    // No watermark yet (the host moves it after a batch): [0,0] and [20,20] are both open.
    h.batch(vec![ev("k", 0), ev("k", 20)]).unwrap();
    // 10 is within 10 of both: one session [0,20] of 3 events.
    h.batch(vec![ev("k", 10)]).unwrap();
    let out = h.watermark(1000).unwrap();
    assert_eq!(emitted(&out), vec![("k".into(), 30, 0, 20, 3)]);
}

#[test]
fn open_sessions_and_their_timers_survive_a_restart() {
    let mut h = Harness::<Sessions>::new(r#"{"gap_ms": 10}"#).unwrap();
    h.feed(vec![ev("k", 1)]).unwrap();
    let mut h = h.restart().unwrap();
    assert_eq!(h.current_watermark(), Some(1));
    let out = h.feed(vec![ev("z", 50)]).unwrap();
    assert_eq!(emitted(&out), vec![("k".into(), 11, 1, 1, 1)]);
}

/// (start, end, count).
type Interval = (i64, i64, u64);

/// The rules, written plainly: per key a list of (start, end, count) intervals.
#[derive(Default)]
struct Model {
    gap: i64,
    watermark: Option<i64>,
    open: BTreeMap<String, Vec<Interval>>,
    late: BTreeMap<String, u64>,
}

impl Model {
    fn event(&mut self, k: &str, ts: i64) {
        if self.watermark.is_some_and(|w| ts + self.gap < w) {
            *self.late.entry(k.to_string()).or_default() += 1;
            return;
        }
        let list = self.open.entry(k.to_string()).or_default();
        let gap = self.gap;
        let (near, far): (Vec<Interval>, Vec<Interval>) = list
            .iter()
            .partition(|&&(s, e, _)| s - gap <= ts && ts <= e + gap);
        let start = near.iter().map(|x| x.0).chain([ts]).min().unwrap();
        let end = near.iter().map(|x| x.1).chain([ts]).max().unwrap();
        let count = near.iter().map(|x| x.2).sum::<u64>() + 1;
        let mut next = far;
        next.push((start, end, count));
        *list = next;
    }

    fn advance(&mut self, w: i64) -> Vec<(String, i64, i64, i64, u64)> {
        if self.watermark.is_some_and(|cur| w <= cur) {
            return Vec::new();
        }
        self.watermark = Some(w);
        let mut due = Vec::new();
        for (k, list) in &mut self.open {
            list.retain(|&(s, e, n)| {
                let closes = e + self.gap + 1;
                if closes <= w {
                    due.push((closes, k.clone(), s, e, n));
                    false
                } else {
                    true
                }
            });
        }
        due.sort();
        due.into_iter()
            .map(|(closes, k, s, e, n)| (k, closes - 1, s, e, n))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random keys and times, in order (`disorder` 0) and out of order, in random batches:
    /// the operator emits what the model does, in the same order.
    #[test]
    fn matches_the_model(
        gap in 0i64..20,
        disorder in prop_oneof![Just(0i64), 1i64..40],
        steps in proptest::collection::vec((0usize..3, 0i64..15), 1..120),
        batch_sizes in proptest::collection::vec(1usize..8, 1..40),
    ) {
        let mut t = 0i64;
        let events: Vec<(String, i64)> = steps
            .iter()
            .enumerate()
            .map(|(i, &(k, dt))| {
                t += dt;
                let jitter = if disorder == 0 { 0 } else { (i as i64 * 7919) % (disorder + 1) };
                (["a", "b", "c"][k].to_string(), t - jitter)
            })
            .collect();
        let mut h = Harness::<Sessions>::new(&format!(r#"{{"gap_ms": {gap}}}"#)).unwrap();
        let mut m = Model { gap, ..Model::default() };
        let mut got = Vec::new();
        let mut want = Vec::new();
        let mut rest = &events[..];
        let mut sizes = batch_sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            got.extend(emitted(&h.feed(batch.iter().map(|(k, ts)| ev(k, *ts)).collect()).unwrap()));
            for (k, ts) in batch {
                m.event(k, *ts);
            }
            if let Some(max) = batch.iter().map(|e| e.1).max() {
                want.extend(m.advance(max));
            }
        }
        got.extend(emitted(&h.watermark(i64::MAX / 2).unwrap()));
        want.extend(m.advance(i64::MAX / 2));
        prop_assert_eq!(got, want);
        for (k, n) in &m.late {
            prop_assert_eq!(h.keyed_json(k, "late").and_then(|v| v.as_u64()), Some(*n), "late events of {}", k);
        }
        let left: Vec<String> = h.state().into_keys().filter(|k| !k.ends_with("late")).collect();
        prop_assert!(left.is_empty(), "state left behind: {:?}", left);
    }
}
