//! Who should own which shard, and what a worker does about it: rendezvous hashing over the
//! live workers ([`owner_of`]), one round of a worker's decisions ([`plan`]) from what it sees
//! of the leases, when a starting worker may take shards ([`Settle`]) and how long a failing
//! shard waits before it is started again ([`Backoff`]). Pure: the worker runs it against the
//! buckets, the tests against a simulated clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_codec::scoped::scope_hash;

/// The live worker that should own `shard`: the one with the highest rendezvous score. A
/// joining worker takes over only the shards whose highest score is now its own; a leaving
/// one's shards spread over the rest.
pub fn owner_of(shard: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by_key(|m| (scope_hash(&format!("{m}\u{0}{shard}")), m.as_str()))
        .map(String::as_str)
}

/// What a worker sees of one shard at the start of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No live lease.
    Free,
    /// Leased to `worker` (at revision `rev`).
    Held {
        /// The holder.
        worker: String,
        /// The key's revision now.
        rev: u64,
    },
    /// Its input ended and every output is committed.
    Done,
}

/// What a worker does with one shard this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take the free lease (expecting its key at this revision) and start the shard.
    Acquire {
        /// The shard.
        shard: u32,
    },
    /// Renew the lease it holds (expecting this revision).
    Renew {
        /// The shard.
        shard: u32,
        /// The revision expected.
        rev: u64,
    },
    /// Hand the shard over: stop it (a last checkpoint and commit), then delete the lease.
    Release {
        /// The shard.
        shard: u32,
        /// The revision expected.
        rev: u64,
    },
    /// The lease is someone else's (or gone): stop the shard at once, committing nothing.
    Drop {
        /// The shard.
        shard: u32,
    },
}

/// One round of worker `me`'s decisions: `seen` is every shard's lease, `running` the shards
/// it runs now, `members` the live workers (with `me`).
pub fn plan(me: &str, members: &[String], seen: &BTreeMap<u32, Seen>, running: &[u32]) -> Vec<Action> {
    let mut actions = Vec::new();
    for (&shard, s) in seen {
        let runs = running.contains(&shard);
        match s {
            Seen::Done => {
                if runs {
                    actions.push(Action::Drop { shard });
                }
            }
            Seen::Free => {
                if runs {
                    actions.push(Action::Drop { shard });
                } else if owner_of(shard, members) == Some(me) {
                    actions.push(Action::Acquire { shard });
                }
            }
            Seen::Held { worker, rev } if worker == me => {
                if !runs {
                    // A lease of an earlier life of this worker (same id): free it for the
                    // rightful owner rather than wait for it to expire.
                    actions.push(Action::Release { shard, rev: *rev });
                } else if owner_of(shard, members).is_some_and(|o| o != me) {
                    actions.push(Action::Release { shard, rev: *rev });
                } else {
                    actions.push(Action::Renew { shard, rev: *rev });
                }
            }
            Seen::Held { .. } => {
                if runs {
                    actions.push(Action::Drop { shard });
                }
            }
        }
    }
    actions
}

/// Whether a starting worker may take free shards: once it has seen the same live workers in
/// two rounds in a row. Workers started together then see one another before any of them
/// takes a shard: without it the first to look takes every shard and hands most of them over a
/// round later, each handover a last checkpoint and commit. Once settled, a worker stays so
/// (a worker that dies leaves shards that the others must take at once).
#[derive(Debug, Default)]
pub struct Settle {
    last: Option<Vec<String>>,
    settled: bool,
}

impl Settle {
    /// This round's live workers (sorted); whether free shards may be taken.
    pub fn observe(&mut self, members: &[String]) -> bool {
        if !self.settled {
            self.settled = self.last.as_deref() == Some(members);
            self.last = Some(members.to_vec());
        }
        self.settled
    }
}

/// The shards that failed on this worker and when each may be started again: after the n-th
/// failure in a row, `first · 2^(n-1)`, at most `max`. A shard that stopped any other way
/// (handed over, done, fenced) starts again at once.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failing: BTreeMap<u32, (u32, Instant)>,
}

impl Backoff {
    /// Waits from `first` doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            failing: BTreeMap::new(),
        }
    }

    /// `shard` failed at `now`: how long it waits before it may start again.
    pub fn failed(&mut self, shard: u32, now: Instant) -> Duration {
        let n = self.failing.get(&shard).map_or(0, |f| f.0) + 1;
        let wait = self.first.saturating_mul(1 << (n - 1).min(20)).min(self.max);
        self.failing.insert(shard, (n, now + wait));
        wait
    }

    /// `shard` stopped without failing (its failures no longer count).
    pub fn ended_well(&mut self, shard: u32) {
        self.failing.remove(&shard);
    }

    /// Whether `shard` may be started at `now`.
    pub fn may_start(&self, shard: u32, now: Instant) -> bool {
        self.failing.get(&shard).is_none_or(|&(_, at)| now >= at)
    }
}

/// `actions` without the acquisitions this round must not make: every one until the worker
/// has settled, and those of shards waiting after failures.
pub fn allowed(actions: Vec<Action>, settled: bool, backoff: &Backoff, now: Instant) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| match a {
            Action::Acquire { shard } => settled && backoff.may_start(*shard, now),
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("w{i}")).collect()
    }

    #[test]
    fn rendezvous_spreads_and_moves_little() {
        let three = names(3);
        let four = names(4);
        let mut per = BTreeMap::new();
        let mut moved = 0;
        for shard in 0..64 {
            let a = owner_of(shard, &three).unwrap();
            let b = owner_of(shard, &four).unwrap();
            *per.entry(b).or_insert(0) += 1;
            if a != b {
                assert_eq!(b, "w3", "a shard moved between old workers");
                moved += 1;
            }
        }
        assert!(per.values().all(|&n| n >= 8), "unbalanced: {per:?}");
        assert!((8..=24).contains(&moved), "{moved} of 64 moved to the new worker");
    }

    #[test]
    fn a_worker_settles_once_it_sees_the_same_workers_twice() {
        let mut s = Settle::default();
        assert!(!s.observe(&names(1)), "the first round never takes shards");
        assert!(!s.observe(&names(2)), "another worker appeared");
        assert!(s.observe(&names(2)));
        assert!(s.observe(&names(3)), "settled stays settled");
    }

    #[test]
    fn workers_started_together_hand_nothing_over() {
        // Three workers register one after the other, a round apart at most: each takes only
        // its own shards, so no lease is ever released to another.
        let all = names(3);
        let mut settle: Vec<Settle> = (0..3).map(|_| Settle::default()).collect();
        let mut held: BTreeMap<u32, String> = BTreeMap::new();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let now = Instant::now();
        for round in 0..4 {
            let members: Vec<String> = all[..(round + 1).min(3)].to_vec();
            for (i, me) in members.clone().iter().enumerate() {
                let seen: BTreeMap<u32, Seen> = (0..16)
                    .map(|s| {
                        let seen = held.get(&s).map_or(Seen::Free, |w| Seen::Held {
                            worker: w.clone(),
                            rev: 1,
                        });
                        (s, seen)
                    })
                    .collect();
                let running: Vec<u32> = held.iter().filter(|(_, w)| *w == me).map(|(s, _)| *s).collect();
                let settled = settle[i].observe(&members);
                for a in allowed(plan(me, &members, &seen, &running), settled, &backoff, now) {
                    match a {
                        Action::Acquire { shard } => {
                            held.insert(shard, me.clone());
                        }
                        Action::Release { shard, .. } => panic!("{me} handed shard {shard} over"),
                        _ => {}
                    }
                }
            }
        }
        assert_eq!(held.len(), 16, "every shard is taken: {held:?}");
        for (s, w) in &held {
            assert_eq!(Some(w.as_str()), owner_of(*s, &all));
        }
    }

    #[test]
    fn a_failing_shard_waits_longer_each_time() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert!(b.may_start(3, t0));
        assert_eq!(b.failed(3, t0), Duration::from_secs(1));
        assert!(!b.may_start(3, t0) && b.may_start(3, t0 + Duration::from_secs(1)));
        assert!(b.may_start(4, t0), "other shards are not held back");
        assert_eq!(b.failed(3, t0), Duration::from_secs(2));
        assert_eq!(b.failed(3, t0), Duration::from_secs(4));
        assert_eq!(b.failed(3, t0), Duration::from_secs(5), "at most max");
        let acquire = vec![Action::Acquire { shard: 3 }, Action::Drop { shard: 4 }];
        assert_eq!(
            allowed(acquire.clone(), true, &b, t0),
            vec![Action::Drop { shard: 4 }]
        );
        b.ended_well(3);
        assert_eq!(allowed(acquire.clone(), true, &b, t0), acquire);
        assert_eq!(allowed(acquire, false, &b, t0), vec![Action::Drop { shard: 4 }]);
    }

    /// A simulated coordinator: leases with a TTL on a simulated clock, written by revision
    /// compare-and-swap, and per shard a commit subject whose commits are fenced by the
    /// sequence the committer read when it took the shard (or last committed).
    struct Sim {
        now: u64,
        rev: u64,
        leases: BTreeMap<u32, (String, u64, u64)>, // worker, rev, expires
        commits: BTreeMap<u32, Vec<(String, u64)>>, // worker, epoch
    }

    /// A simulated worker: its shards (epoch, fence = commits seen), paused until a time.
    struct W {
        name: String,
        running: BTreeMap<u32, (u64, usize)>,
        paused_until: u64,
        alive: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn no_two_owners_commit_at_one_epoch_and_every_commit_extends_the_last(
            seed in any::<u64>(),
            steps in 200usize..600,
        ) {
            let shards = 8u32;
            let ttl = 5u64;
            let mut rng = seed | 1;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut sim = Sim { now: 0, rev: 0, leases: BTreeMap::new(), commits: BTreeMap::new() };
            let mut ws: Vec<W> = (0..3)
                .map(|i| W { name: format!("w{i}"), running: BTreeMap::new(), paused_until: 0, alive: true })
                .collect();
            let mut fenced = 0;
            for _ in 0..steps {
                sim.now += 1;
                sim.leases.retain(|_, l| l.2 > sim.now);
                match next(20) {
                    0 => { let i = next(ws.len() as u64) as usize; ws[i].paused_until = sim.now + ttl * 2; }
                    1 => { let i = next(ws.len() as u64) as usize; ws[i].alive = false; ws[i].running.clear(); }
                    2 => { let i = next(ws.len() as u64) as usize; ws[i].alive = true; }
                    3 if ws.len() < 5 => ws.push(W { name: format!("w{}", ws.len()), running: BTreeMap::new(), paused_until: 0, alive: true }),
                    _ => {}
                }
                let members: Vec<String> = ws.iter().filter(|w| w.alive && w.paused_until <= sim.now).map(|w| w.name.clone()).collect();
                for w in ws.iter_mut().filter(|w| w.alive && w.paused_until <= sim.now) {
                    // Commit first (a worker back from a pause commits before it looks).
                    for (&shard, (epoch, fence)) in w.running.iter_mut() {
                        let log = sim.commits.entry(shard).or_default();
                        if *fence == log.len() {
                            log.push((w.name.clone(), *epoch));
                            *fence += 1;
                        } else {
                            fenced += 1;
                            *epoch = 0; // fenced: dropped below
                        }
                    }
                    w.running.retain(|_, (e, _)| *e != 0);
                    let seen: BTreeMap<u32, Seen> = (0..shards)
                        .map(|s| (s, match sim.leases.get(&s) {
                            Some((o, rev, _)) => Seen::Held { worker: o.clone(), rev: *rev },
                            None => Seen::Free,
                        }))
                        .collect();
                    let running: Vec<u32> = w.running.keys().copied().collect();
                    for a in plan(&w.name, &members, &seen, &running) {
                        match a {
                            Action::Acquire { shard } if !sim.leases.contains_key(&shard) => {
                                sim.rev += 1;
                                sim.leases.insert(shard, (w.name.clone(), sim.rev, sim.now + ttl));
                                let fence = sim.commits.get(&shard).map_or(0, Vec::len);
                                w.running.insert(shard, (sim.rev, fence));
                            }
                            Action::Renew { shard, rev } => match sim.leases.get_mut(&shard) {
                                Some(l) if l.1 == rev => { sim.rev += 1; l.1 = sim.rev; l.2 = sim.now + ttl; }
                                _ => { w.running.remove(&shard); }
                            },
                            Action::Release { shard, rev } => {
                                if sim.leases.get(&shard).is_some_and(|l| l.1 == rev) {
                                    sim.leases.remove(&shard);
                                }
                                w.running.remove(&shard);
                            }
                            Action::Drop { shard } => { w.running.remove(&shard); }
                            Action::Acquire { .. } => {}
                        }
                    }
                }
            }
            // Each epoch committed by one worker only; epochs never go back on a shard.
            for log in sim.commits.values() {
                let mut by_epoch: BTreeMap<u64, &str> = BTreeMap::new();
                let mut last = 0;
                for (w, e) in log {
                    prop_assert!(by_epoch.insert(*e, w).is_none_or(|o| o == w), "two owners at epoch {}", e);
                    prop_assert!(*e >= last, "epoch went back from {} to {}", last, e);
                    last = *e;
                }
            }
            let _ = fenced;
        }
    }
}
