//! The state backend inside a plugin: the host's `state` and `packed-state` interfaces behind
//! a per-call cache. Entries are named by (scope, key) as the operator names them; the scoped
//! key (`cairn_codec::scoped`) is only composed for the packed calls, straight into their
//! request buffers.
//!
//! During one export call (a batch, a watermark, `init`) writes are held back and sent to the
//! host in one `set-many-packed` call when the call succeeds; reads see them. Keys named in
//! [`prefetch`] are read with one `get-many-packed` call. Scopes, keys and values live in one
//! arena (a byte buffer) indexed by a hash table of entry numbers, so caching an entry
//! allocates nothing, and the arena and table keep their capacity from call to call. Most
//! lookups hash nothing: the entry found last and the next entry the prefetch asked for are
//! tried first, and where a scope frame's scope lives is remembered.
//!
//! Nothing about the semantics changes:
//!
//! * the host sees every written key's final value, and the call stays one transaction: if it
//!   fails, the cache is dropped and the host rolls back what it had been sent;
//! * a write is held back only when it cannot be refused: held-back keys count as new keys and
//!   held-back values at their full size against the quotas (from `usage`), and a write that
//!   might not fit first sends what is held back, then goes to the host alone and gets the
//!   host's exact answer; so does every operator-wide write (one of several instances may not
//!   write operator-wide state);
//! * `list_keys` (and what is built on it) first sends what is held back;
//! * timer registrations are held back too (0.2.4's `packed-timers`), as long as the
//!   timers the host has (from its `usage`) plus every registration held back or sent since
//!   stay below `max-timers`; `timers::delete` first sends what is held back.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use cairn_codec::state::{Answers, KeyList, TimerList, Writes};
use cairn_codec::{quota, scoped};

use super::StateError;
use super::bytes::same;
use super::scope::At;
use crate::__bindings::cairn::operator::packed_state as fast;
use crate::__bindings::cairn::operator::packed_timers;
use crate::__bindings::cairn::operator::state as host;
use crate::__bindings::cairn::operator::types::StateError as WitStateError;

fn convert(e: WitStateError) -> StateError {
    match e {
        WitStateError::QuotaExceeded(m) => StateError::QuotaExceeded(m),
        WitStateError::Invalid(m) => StateError::Invalid(m),
    }
}

/// Past this many arena bytes in one call, what is held back is sent and the cache restarts.
const ARENA_LIMIT: usize = 16 << 20;

#[derive(Debug, Clone, Copy)]
enum Val {
    Absent,
    At { off: u32, len: u32 },
}

/// An entry's scope: its stream key's bytes in the arena, or the operator-wide scope. Entries
/// of one scope added one after the other share the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ScopeRef {
    keyed: bool,
    off: u32,
    len: u32,
}

#[derive(Debug)]
struct Slot {
    hash: u64,
    scope: ScopeRef,
    key_off: u32,
    key_len: u32,
    /// The value as the operator sees it.
    val: Val,
    /// Written or removed here and not yet sent.
    pending: bool,
    /// Counted against `max-keys` since the last sync, or known to exist on the host.
    counted: bool,
    /// Bytes (scoped key + value) counted against `max-state-bytes` since the last sync.
    charged: u64,
    /// Where the entry was last in a prefetch's order, plus one (0: never): an entry found
    /// by its hash puts the prefetch's cursor back in step (an operator that skips a read
    /// the prefetch asked for goes on following it after the next one it makes).
    predicted_at: u32,
}

/// Where [`Cache::locate`] found an entry, or the hash to insert it under.
#[derive(Debug, Clone, Copy)]
enum Located {
    Found(u32),
    Missing { hash: u64 },
}

#[derive(Default)]
struct Cache {
    arena: Vec<u8>,
    slots: Vec<Slot>,
    /// Indices into `slots`, by `Slot::hash`.
    table: HashTable<u32>,
    /// The scope frame (`At::frame`, never 0) whose scope was found last, and where that
    /// scope's bytes are.
    frame_scope: Option<(u64, ScopeRef)>,
    /// The scope of the entry inserted last (the next entry is often in the same scope).
    last_inserted: Option<ScopeRef>,
    /// The entry found last (an event reads, then writes, the same entry).
    last_slot: Option<u32>,
    /// The entries the last prefetch asked for, in its order, and how far the operator's
    /// calls have followed it: the next call usually wants `predicted[cursor]`.
    predicted: Vec<u32>,
    cursor: usize,
    hasher: FxBuildHasher,
    pending: usize,
    /// Usage and quotas as of the last ask, plus everything held back and sent since: never
    /// less than the host's real usage.
    usage: Option<fast::StateUsage>,
    extra_keys: u64,
    extra_bytes: u64,
    /// Timer registrations held back, sent after the writes.
    timers: TimerList,
    /// Timers the host has and its `max-timers`, as of the last ask, plus every registration
    /// held back and sent since (each counted as a new timer): never less than the host's.
    timer_usage: Option<(u64, u64)>,
    extra_timers: u64,
    /// A held-back write the host refused after all: the call must fail.
    failed: Option<StateError>,
    /// This call goes straight to the host (a call too small for the cache to pay off).
    direct: bool,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with(|c| f(&mut c.borrow_mut()))
}

fn bytes_at(arena: &[u8], off: u32, len: u32) -> &[u8] {
    &arena[off as usize..off as usize + len as usize]
}

impl Cache {
    /// Forget the cached entries (call boundary). The usage estimate is kept: it only ever
    /// overstates the host's usage (writes are counted at their worst, and a rollback by the
    /// host only lowers the real figure), so it stays safe across calls and saves asking.
    fn reset(&mut self) {
        self.fold_usage();
        self.arena.clear();
        self.slots.clear();
        self.table.clear();
        self.frame_scope = None;
        self.last_inserted = None;
        self.last_slot = None;
        self.predicted.clear();
        self.cursor = 0;
        self.pending = 0;
        self.timers.clear();
        self.failed = None;
    }

    /// Count what was charged into the usage estimate.
    fn fold_usage(&mut self) {
        if let Some(u) = &mut self.usage {
            u.keys = u.keys.saturating_add(self.extra_keys);
            u.bytes = u.bytes.saturating_add(self.extra_bytes);
        }
        self.extra_keys = 0;
        self.extra_bytes = 0;
        if let Some((n, _)) = &mut self.timer_usage {
            *n = n.saturating_add(self.extra_timers);
        }
        self.extra_timers = 0;
    }

    fn scope_of(&self, r: ScopeRef) -> Option<&[u8]> {
        r.keyed.then(|| bytes_at(&self.arena, r.off, r.len))
    }

    fn is_scope(&self, r: ScopeRef, scope: Option<&str>) -> bool {
        match scope {
            None => !r.keyed,
            Some(k) => r.keyed && same(bytes_at(&self.arena, r.off, r.len), k.as_bytes()),
        }
    }

    fn hash(&self, scope: Option<&str>, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        match scope {
            Some(s) => {
                h.write(s.as_bytes());
                h.write_u8(0xff);
            }
            None => h.write_u8(0xfe),
        }
        h.write(key.as_bytes());
        h.finish()
    }

    /// Where `at`'s scope's bytes are, if already worked out for this frame.
    fn known_scope(&self, at: At<'_>) -> Option<ScopeRef> {
        match self.frame_scope {
            Some((frame, r)) if at.frame != 0 && frame == at.frame => Some(r),
            _ => None,
        }
    }

    /// Whether slot `i` is `key` in `at`'s scope (whose bytes are at `known`, if worked out).
    fn is_slot_at(&self, i: u32, known: Option<ScopeRef>, at: At<'_>, key: &str) -> bool {
        let s = &self.slots[i as usize];
        s.key_len as usize == key.len()
            && same(bytes_at(&self.arena, s.key_off, s.key_len), key.as_bytes())
            && (known == Some(s.scope) || self.is_scope(s.scope, at.scope))
    }

    /// The entry (`key` in `at`'s scope) if cached, without hashing when it is the entry found
    /// last or the next one the prefetch predicted; else the hash to insert it under.
    fn locate(&mut self, at: At<'_>, key: &str) -> Located {
        let known = self.known_scope(at);
        // In a frame seen before, the entry found last is the likely one (a read, then a
        // write); in a new frame, the next one the prefetch asked for.
        if known.is_some()
            && let Some(i) = self.last_slot
            && self.is_slot_at(i, known, at, key)
        {
            return Located::Found(i);
        }
        if let Some(&i) = self.predicted.get(self.cursor)
            && self.is_slot_at(i, known, at, key)
        {
            self.cursor += 1;
            self.last_slot = Some(i);
            self.remember(at, i);
            return Located::Found(i);
        }
        if known.is_none()
            && let Some(i) = self.last_slot
            && self.is_slot_at(i, known, at, key)
        {
            self.remember(at, i);
            return Located::Found(i);
        }
        self.lookup(at, key)
    }

    /// [`Cache::locate`] by the hash alone (a prefetch names entries not yet read).
    fn lookup(&mut self, at: At<'_>, key: &str) -> Located {
        let hash = self.hash(at.scope, key);
        let found = {
            let (arena, slots) = (&self.arena, &self.slots);
            self.table
                .find(hash, |&i| {
                    let s = &slots[i as usize];
                    s.hash == hash
                        && same(bytes_at(arena, s.key_off, s.key_len), key.as_bytes())
                        && match at.scope {
                            None => !s.scope.keyed,
                            Some(k) => {
                                s.scope.keyed && same(bytes_at(arena, s.scope.off, s.scope.len), k.as_bytes())
                            }
                        }
                })
                .copied()
        };
        match found {
            Some(i) => {
                let p = self.slots[i as usize].predicted_at as usize;
                if p > 0 && self.predicted.get(p - 1) == Some(&i) {
                    self.cursor = p;
                }
                self.last_slot = Some(i);
                self.remember(at, i);
                Located::Found(i)
            }
            None => Located::Missing { hash },
        }
    }

    /// Remember where slot `i`'s scope is as `at`'s frame's.
    fn remember(&mut self, at: At<'_>, i: u32) {
        if at.frame != 0 {
            self.frame_scope = Some((at.frame, self.slots[i as usize].scope));
        }
    }

    fn store(&mut self, bytes: &[u8]) -> (u32, u32) {
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(bytes);
        (off, bytes.len() as u32)
    }

    /// Where to keep `at`'s scope for a new entry: shared with the frame's or the entry
    /// inserted last when they are the same scope.
    fn scope_ref(&mut self, at: At<'_>) -> ScopeRef {
        if let Some(r) = self.known_scope(at) {
            return r;
        }
        if let Some(r) = self.last_inserted
            && self.is_scope(r, at.scope)
        {
            return r;
        }
        let r = match at.scope {
            None => ScopeRef {
                keyed: false,
                off: 0,
                len: 0,
            },
            Some(k) => {
                let (off, len) = self.store(k.as_bytes());
                ScopeRef {
                    keyed: true,
                    off,
                    len,
                }
            }
        };
        if at.frame != 0 {
            self.frame_scope = Some((at.frame, r));
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        hash: u64,
        at: At<'_>,
        key: &str,
        val: Val,
        pending: bool,
        counted: bool,
        charged: u64,
    ) -> u32 {
        let scope = self.scope_ref(at);
        self.last_inserted = Some(scope);
        let (key_off, key_len) = self.store(key.as_bytes());
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            hash,
            scope,
            key_off,
            key_len,
            val,
            pending,
            counted,
            charged,
            predicted_at: 0,
        });
        let slots = &self.slots;
        self.table.insert_unique(hash, i, |&j| slots[j as usize].hash);
        if pending {
            self.pending += 1;
        }
        self.last_slot = Some(i);
        i
    }

    /// Send the held-back writes to the host.
    fn flush(&mut self) -> Result<(), StateError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.fold_usage();
        self.flush_writes()?;
        if !self.timers.is_empty() {
            let r = packed_timers::register_packed(self.timers.as_bytes());
            self.timers.clear();
            if let Err(e) = r {
                let e = convert(e);
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    fn flush_writes(&mut self) -> Result<(), StateError> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut writes = Writes::new();
        for s in self.slots.iter_mut() {
            if s.pending {
                s.pending = false;
                let scope = s
                    .scope
                    .keyed
                    .then(|| bytes_at(&self.arena, s.scope.off, s.scope.len));
                let key = bytes_at(&self.arena, s.key_off, s.key_len);
                match s.val {
                    Val::At { off, len } => writes.set(scope, key, bytes_at(&self.arena, off, len)),
                    Val::Absent => writes.remove(scope, key),
                }
            }
            s.charged = 0;
            s.counted = matches!(s.val, Val::At { .. });
        }
        self.pending = 0;
        if let Err(e) = fast::write_many_packed(writes.as_bytes()) {
            let e = convert(e);
            self.failed = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Add `key` of `at`'s scope to a prefetch request unless the cache already knows it;
    /// either way it is the next entry predicted.
    fn want(&mut self, at: At<'_>, key: &str, req: &mut KeyList, wanted: &mut Vec<u32>) {
        let i = match self.lookup(at, key) {
            Located::Found(i) => i,
            Located::Missing { hash } => {
                let i = self.insert(hash, at, key, Val::Absent, false, false, 0);
                let scope = self.slots[i as usize].scope;
                req.push(self.scope_of(scope), key.as_bytes());
                wanted.push(i);
                i
            }
        };
        self.predicted.push(i);
        self.slots[i as usize].predicted_at = self.predicted.len() as u32;
    }

    /// Read the keys of a prefetch request in one host call into the cache.
    fn fetch(&mut self, req: KeyList, wanted: Vec<u32>) {
        self.last_slot = None;
        self.cursor = 0;
        if wanted.is_empty() {
            return;
        }
        let answer = match fast::get_many_packed(req.as_bytes()) {
            Ok(a) => a,
            Err(e) => {
                // Only a malformed request is refused: not cached (the slots stay behind,
                // unreachable and never sent), and the call fails.
                for i in wanted {
                    let h = self.slots[i as usize].hash;
                    if let Ok(slot) = self.table.find_entry(h, |&j| j == i) {
                        slot.remove();
                    }
                }
                self.predicted.clear();
                self.failed = Some(convert(e));
                return;
            }
        };
        let mut answers = Answers::new(&answer);
        for i in wanted {
            let Ok(Some(v)) = answers.next_answer() else {
                continue;
            };
            let (off, len) = self.store(v);
            let slot = &mut self.slots[i as usize];
            slot.val = Val::At { off, len };
            slot.counted = true;
        }
    }

    fn set(&mut self, at: At<'_>, key: &str, value: &[u8]) -> Result<(), StateError> {
        let scope = at.scope;
        let u = *self.usage.get_or_insert_with(fast::usage);
        let found = self.locate(at, key);
        let (new_key, charged) = match found {
            Located::Found(i) => {
                let s = &self.slots[i as usize];
                (u64::from(!s.counted), s.charged)
            }
            Located::Missing { .. } => (1, 0),
        };
        let need = (scoped::scoped_len(scope.map(str::as_bytes), key.as_bytes()) + value.len()) as u64;
        let extra = need.saturating_sub(charged);
        // The host's own rule, on usage that never understates the host's.
        let q = quota::Quotas {
            max_keys: u.max_keys,
            max_state_bytes: u.max_state_bytes,
            max_value_bytes: u.max_value_bytes,
        };
        let bytes = u.bytes.saturating_add(self.extra_bytes);
        let fits = quota::check(
            &q,
            value.len() as u64,
            new_key == 1,
            u.keys.saturating_add(self.extra_keys),
            bytes,
            bytes.saturating_add(extra),
        )
        .is_ok();
        // An operator-wide write is refused by an instance that is one of several (such state
        // cannot be split by key group): it is never held back, so the refusal is its answer.
        if !fits || scope.is_none() || self.arena.len() > ARENA_LIMIT {
            // It might be refused (or the cache is large): send what is held back, then let
            // the host answer this write itself.
            self.flush()?;
            if self.arena.len() > ARENA_LIMIT {
                self.reset();
            }
            // Ask afresh next time: this write changes the usage by an amount not counted.
            self.usage = None;
            host::set(scope, key, value).map_err(convert)?;
            // The cache may have restarted: look the entry up afresh.
            let found = self.locate(at, key);
            let (off, len) = self.store(value);
            match found {
                Located::Found(i) => {
                    let s = &mut self.slots[i as usize];
                    s.val = Val::At { off, len };
                    s.counted = true;
                }
                Located::Missing { hash } => {
                    self.insert(hash, at, key, Val::At { off, len }, false, true, 0);
                }
            }
            return Ok(());
        }
        self.extra_keys += new_key;
        self.extra_bytes += extra;
        let (off, len) = self.store(value);
        let val = Val::At { off, len };
        match found {
            Located::Found(i) => {
                let s = &mut self.slots[i as usize];
                s.val = val;
                s.counted = true;
                s.charged = s.charged.max(need);
                if !s.pending {
                    s.pending = true;
                    self.pending += 1;
                }
            }
            Located::Missing { hash } => {
                self.insert(hash, at, key, val, true, true, need);
            }
        }
        Ok(())
    }

    /// Remove `key`; whether it existed. An entry the cache does not know is removed on the
    /// host at once when `answer` asks whether it existed, else held back too (the host's
    /// removal of an absent entry changes nothing) and `false` returned.
    fn remove(&mut self, at: At<'_>, key: &str, answer: bool) -> bool {
        match self.locate(at, key) {
            Located::Found(i) => {
                let s = &mut self.slots[i as usize];
                let existed = matches!(s.val, Val::At { .. });
                if existed {
                    s.val = Val::Absent;
                    if !s.pending {
                        s.pending = true;
                        self.pending += 1;
                    }
                }
                existed
            }
            Located::Missing { hash } => {
                let existed = answer && host::remove(at.scope, key);
                self.insert(hash, at, key, Val::Absent, !answer, false, 0);
                existed
            }
        }
    }
}

// The calls `state` makes, built on the cache above.
#[path = "wasm_calls.rs"]
mod calls;
pub use calls::*;
