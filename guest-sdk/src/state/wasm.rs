//! The state backend inside a plugin: the host's `state` and `packed-state` interfaces behind
//! a per-call cache. Keys here are scoped keys (`cairn_codec::scoped`).
//!
//! During one export call (a batch, a watermark, `init`) writes are held back and sent to the
//! host in one `set-many-packed` call when the call succeeds; reads see them. Keys named in
//! [`prefetch`] are read with one `get-many-packed` call. Keys and values live in one arena
//! (a byte buffer) indexed by a hash table of offsets, so caching an entry allocates nothing,
//! and the arena and table keep their capacity from call to call.
//!
//! Nothing about the semantics changes:
//!
//! * the host sees every written key's final value, and the call stays one transaction: if it
//!   fails, the cache is dropped and the host rolls back what it had been sent;
//! * a write is held back only when it cannot be refused: held-back keys count as new keys and
//!   held-back values at their full size against the quotas (from `usage`), and a write that
//!   might not fit first sends what is held back, then goes to the host alone and gets the
//!   host's exact answer;
//! * `list_keys` (and what is built on it) first sends what is held back.

use std::cell::RefCell;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use cairn_codec::state::{Answers, KeyList, Writes};
use cairn_codec::{quota, scoped};

use super::StateError;
use crate::__bindings::cairn::operator::packed_state as fast;
use crate::__bindings::cairn::operator::state as host;
use crate::__bindings::cairn::operator::types::StateError as WitStateError;

/// A scoped key built by this SDK, as (scope, key) for the calls that take them apart.
fn split(scoped_key: &str) -> (Option<&str>, &str) {
    scoped::split(scoped_key).unwrap_or((None, scoped_key))
}

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

#[derive(Debug)]
struct Slot {
    hash: u64,
    key_off: u32,
    key_len: u32,
    /// The value as the operator sees it.
    val: Val,
    /// Written or removed here and not yet sent.
    pending: bool,
    /// Counted against `max-keys` since the last sync, or known to exist on the host.
    counted: bool,
    /// Bytes (key + value) counted against `max-state-bytes` since the last sync.
    charged: u64,
}

#[derive(Default)]
struct Cache {
    arena: Vec<u8>,
    table: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    pending: usize,
    /// Usage and quotas as of the last ask, plus everything held back and sent since: never
    /// less than the host's real usage.
    usage: Option<fast::StateUsage>,
    extra_keys: u64,
    extra_bytes: u64,
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
        self.table.clear();
        self.pending = 0;
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
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key.as_bytes())
    }

    fn find(&self, hash: u64, key: &str) -> Option<&Slot> {
        let arena = &self.arena;
        self.table.find(hash, |s| {
            s.hash == hash && bytes_at(arena, s.key_off, s.key_len) == key.as_bytes()
        })
    }

    fn find_mut(&mut self, hash: u64, key: &str) -> Option<&mut Slot> {
        let arena = &self.arena;
        self.table.find_mut(hash, |s| {
            s.hash == hash && bytes_at(arena, s.key_off, s.key_len) == key.as_bytes()
        })
    }

    fn store(&mut self, bytes: &[u8]) -> (u32, u32) {
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(bytes);
        (off, bytes.len() as u32)
    }

    fn insert(&mut self, hash: u64, key: &str, val: Val, pending: bool, counted: bool, charged: u64) {
        let (key_off, key_len) = self.store(key.as_bytes());
        self.table.insert_unique(
            hash,
            Slot {
                hash,
                key_off,
                key_len,
                val,
                pending,
                counted,
                charged,
            },
            |s| s.hash,
        );
        if pending {
            self.pending += 1;
        }
    }

    /// Send the held-back writes to the host.
    fn flush(&mut self) -> Result<(), StateError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.fold_usage();
        if self.pending == 0 {
            return Ok(());
        }
        let mut writes = Writes::new();
        for s in self.table.iter_mut() {
            if s.pending {
                s.pending = false;
                let key = bytes_at(&self.arena, s.key_off, s.key_len);
                match s.val {
                    Val::At { off, len } => writes.set(key, bytes_at(&self.arena, off, len)),
                    Val::Absent => writes.remove(key),
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

    /// Add `key` to a prefetch request unless the cache already knows it.
    fn want(&mut self, key: &str, req: &mut KeyList, wanted: &mut Vec<(u64, u32)>) {
        let h = self.hash(key);
        if self.find(h, key).is_none() {
            wanted.push((h, self.arena.len() as u32));
            req.push(key);
            self.insert(h, key, Val::Absent, false, false, 0);
        }
    }

    /// Read the keys of a prefetch request in one host call into the cache.
    fn fetch(&mut self, req: KeyList, wanted: Vec<(u64, u32)>) {
        if wanted.is_empty() {
            return;
        }
        let answer = match fast::get_many_packed(req.as_bytes()) {
            Ok(a) => a,
            Err(e) => {
                // Only a malformed request is refused: not cached, and the call fails.
                for (h, key_off) in wanted {
                    if let Ok(slot) = self.table.find_entry(h, |s| s.key_off == key_off) {
                        slot.remove();
                    }
                }
                self.failed = Some(convert(e));
                return;
            }
        };
        let mut answers = Answers::new(&answer);
        for (h, key_off) in wanted {
            let Ok(Some(v)) = answers.next_answer() else {
                continue;
            };
            let (off, len) = self.store(v);
            let slot = self
                .table
                .find_mut(h, |s| s.key_off == key_off)
                .expect("the slot inserted above");
            slot.val = Val::At { off, len };
            slot.counted = true;
        }
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StateError> {
        let u = *self.usage.get_or_insert_with(fast::usage);
        let h = self.hash(key);
        let (new_key, charged) = self
            .find(h, key)
            .map_or((1, 0), |s| (u64::from(!s.counted), s.charged));
        let need = (key.len() + value.len()) as u64;
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
        if !fits || self.arena.len() > ARENA_LIMIT {
            // It might be refused (or the cache is large): send what is held back, then let
            // the host answer this write itself.
            self.flush()?;
            if self.arena.len() > ARENA_LIMIT {
                self.reset();
            }
            // Ask afresh next time: this write changes the usage by an amount not counted.
            self.usage = None;
            let (scope, k) = split(key);
            host::set(scope, k, value).map_err(convert)?;
            let (off, len) = self.store(value);
            match self.find_mut(h, key) {
                Some(s) => {
                    s.val = Val::At { off, len };
                    s.counted = true;
                }
                None => self.insert(h, key, Val::At { off, len }, false, true, 0),
            }
            return Ok(());
        }
        self.extra_keys += new_key;
        self.extra_bytes += extra;
        let (off, len) = self.store(value);
        let val = Val::At { off, len };
        match self.find_mut(h, key) {
            Some(s) => {
                s.val = val;
                s.counted = true;
                s.charged = s.charged.max(need);
                if !s.pending {
                    s.pending = true;
                    self.pending += 1;
                }
            }
            None => self.insert(h, key, val, true, true, need),
        }
        Ok(())
    }

    fn remove(&mut self, key: &str) -> bool {
        let h = self.hash(key);
        match self.find_mut(h, key) {
            Some(s) => {
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
            None => {
                let (scope, k) = split(key);
                let existed = host::remove(scope, k);
                self.insert(h, key, Val::Absent, false, false, 0);
                existed
            }
        }
    }
}

/// An export call starts: nothing cached by an earlier call is trusted (the host may have
/// rolled a batch back or restored the state since). `direct`: skip the cache for this call.
pub fn begin_call(direct: bool) {
    with_cache(|c| {
        c.reset();
        c.direct = direct;
    });
}

/// The export call succeeded: send what is held back. An error fails the call.
pub fn end_call() -> Result<(), StateError> {
    with_cache(|c| {
        let r = c.flush();
        c.reset();
        r
    })
}

/// Prefetch `keys` in the scope of each of `scopes`; the scoped keys are built in one reused
/// buffer.
pub fn prefetch_keyed<'a>(scopes: impl IntoIterator<Item = &'a str>, keys: &[&str]) {
    with_cache(|c| {
        if c.direct {
            return;
        }
        let mut buf = String::new();
        let mut req = KeyList::new();
        let mut wanted: Vec<(u64, u32)> = Vec::new();
        for s in scopes {
            for k in keys {
                buf.clear();
                scoped::compose_into(&mut buf, Some(s), k);
                c.want(&buf, &mut req, &mut wanted);
            }
        }
        c.fetch(req, wanted);
    })
}

pub fn get(key: &str) -> Option<Vec<u8>> {
    get_with(key, <[u8]>::to_vec)
}

/// `f` applied to the value, read in place (in the cache, or in the host's inline answer).
/// `f` must not use the state: it may run while the cache is borrowed.
pub fn get_with<R>(key: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut f = Some(f);
    let cached = CACHE.with(|c| {
        let c = c.borrow();
        let h = c.hash(key);
        c.find(h, key).map(|s| match s.val {
            Val::Absent => None,
            Val::At { off, len } => Some((f.take().expect("f unused"))(bytes_at(&c.arena, off, len))),
        })
    });
    match cached {
        Some(answer) => answer,
        None => {
            let (scope, k) = split(key);
            get_with_lookup(fast::get_inline(scope, k), f.take().expect("f unused"))
        }
    }
}

fn get_with_lookup<R>(lookup: fast::Lookup, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    match lookup {
        fast::Lookup::Absent => None,
        fast::Lookup::Inline((len, a, b, c)) => {
            let mut bytes = [0u8; 24];
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..16].copy_from_slice(&b.to_le_bytes());
            bytes[16..].copy_from_slice(&c.to_le_bytes());
            Some(f(&bytes[..(len as usize).min(24)]))
        }
        fast::Lookup::Large(v) => Some(f(&v)),
    }
}

pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    with_cache(|c| {
        if c.direct {
            // The usage estimate does not count direct writes: ask afresh next time.
            c.usage = None;
            let (scope, k) = split(key);
            host::set(scope, k, value).map_err(convert)
        } else {
            c.set(key, value)
        }
    })
}

pub fn remove(key: &str) -> bool {
    with_cache(|c| {
        if c.direct {
            let (scope, k) = split(key);
            host::remove(scope, k)
        } else {
            c.remove(key)
        }
    })
}

pub fn exists(key: &str) -> bool {
    let known = with_cache(|c| {
        let h = c.hash(key);
        c.find(h, key).map(|s| matches!(s.val, Val::At { .. }))
    });
    known.unwrap_or_else(|| {
        let (scope, k) = split(key);
        host::exists(scope, k)
    })
}

pub fn list_keys(prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
    // The host lists what it has: send what is held back first. A failure (a refusal the
    // cache ruled out) is kept and fails the call when it ends.
    let _ = with_cache(Cache::flush);
    let (scope, p) = split(prefix);
    let after = start_after.map(|a| split(a).1);
    let head = &prefix[..prefix.len() - p.len()];
    host::list_keys(scope, p, after, limit)
        .into_iter()
        .map(|k| {
            let mut s = String::with_capacity(head.len() + k.len());
            s.push_str(head);
            s.push_str(&k);
            s
        })
        .collect()
}

pub fn get_many(keys: &[String]) -> Vec<Option<Vec<u8>>> {
    // Cached keys (held-back writes included) from the cache, the rest in one host call.
    let mut out: Vec<Option<Option<Vec<u8>>>> = Vec::with_capacity(keys.len());
    let mut req = KeyList::new();
    with_cache(|c| {
        for k in keys {
            let h = c.hash(k);
            match c.find(h, k) {
                Some(s) => out.push(Some(match s.val {
                    Val::Absent => None,
                    Val::At { off, len } => Some(bytes_at(&c.arena, off, len).to_vec()),
                })),
                None => {
                    out.push(None);
                    req.push(k);
                }
            }
        }
    });
    if req.is_empty() {
        return out.into_iter().map(Option::unwrap_or_default).collect();
    }
    let answer = match fast::get_many_packed(req.as_bytes()) {
        Ok(a) => a,
        Err(e) => {
            // Only a malformed request is refused: answer nothing and fail the call.
            with_cache(|c| c.failed = Some(convert(e)));
            Vec::new()
        }
    };
    let mut fetched = Answers::new(&answer);
    out.into_iter()
        .map(|v| v.unwrap_or_else(|| fetched.next_answer().ok().flatten().map(<[u8]>::to_vec)))
        .collect()
}

pub fn set_many(entries: &[(String, &[u8])]) -> Result<(), StateError> {
    // One call already: send what is held back, forget the cache (these writes supersede it)
    // and let the host answer the bulk write exactly.
    with_cache(|c| {
        let r = c.flush();
        c.reset();
        // The bulk write changes the usage by an amount not counted.
        c.usage = None;
        if let Err(e) = r {
            c.failed = Some(e.clone());
            return Err(e);
        }
        Ok(())
    })?;
    let mut req = Writes::new();
    for (k, v) in entries {
        req.set(k.as_bytes(), v);
    }
    fast::write_many_packed(req.as_bytes()).map_err(convert)
}

pub fn remove_many(keys: &[String]) -> u32 {
    with_cache(|c| {
        if c.direct {
            keys.iter()
                .filter(|k| {
                    let (scope, k) = split(k);
                    host::remove(scope, k)
                })
                .count() as u32
        } else {
            keys.iter().filter(|k| c.remove(k)).count() as u32
        }
    })
}
