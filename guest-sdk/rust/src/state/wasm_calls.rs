//! The plugin backend's calls (what `state` calls): each through the per-call cache of
//! `state/wasm.rs`, or straight to the host.

use super::*;
use crate::__bindings::cairn::operator::timers as timers_host;

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

/// Prefetch `keys` in the scope of each of `scopes`.
pub fn prefetch_keyed<'a>(scopes: impl IntoIterator<Item = &'a str>, keys: &[&str]) {
    prefetch_entries(scopes.into_iter().flat_map(|s| keys.iter().map(move |&k| (s, k))));
}

/// Prefetch each (scope, key) entry, in order (the order the operator will read them in).
pub fn prefetch_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) {
    with_cache(|c| {
        if c.direct {
            return;
        }
        let mut req = KeyList::new();
        let mut wanted: Vec<u32> = Vec::new();
        c.predicted.clear();
        c.cursor = 0;
        // Each run of one scope as a frame of its own, so that its keys share its bytes. The
        // frame numbers are the same in every prefetch: forget which scope an earlier one's
        // frame had, or a second prefetch in one call (`before_timers` reads one per closing
        // time) would file its first scope's entries under the earlier scope's bytes.
        c.frame_scope = None;
        let mut frame = u64::MAX;
        let mut last: Option<&str> = None;
        for (scope, key) in entries {
            if last.is_some_and(|l| !std::ptr::eq(l, scope) && !same(l.as_bytes(), scope.as_bytes())) {
                frame -= 1;
            }
            last = Some(scope);
            let at = At {
                scope: Some(scope),
                frame,
            };
            c.want(at, key, &mut req, &mut wanted);
        }
        c.fetch(req, wanted);
    })
}

pub fn get(at: At<'_>, key: &str) -> Option<Vec<u8>> {
    get_with(at, key, <[u8]>::to_vec)
}

/// `f` applied to the value, read in place (in the cache, or in the host's inline answer).
/// `f` must not use the state: it may run while the cache is borrowed.
///
/// The host's answer to a read the cache could not answer is cached too (while the arena has
/// room), so that a write or removal of the same entry later in the call — a window read, then
/// updated or closed — is held back instead of going to the host on its own.
pub fn get_with<R>(at: At<'_>, key: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut f = Some(f);
    let cached = with_cache(|c| {
        if c.direct {
            return None;
        }
        let i = match c.locate(at, key) {
            Located::Found(i) => i,
            Located::Missing { .. } if c.arena.len() > ARENA_LIMIT => return None,
            Located::Missing { hash } => {
                let val = match fast::get_inline(at.scope, key) {
                    fast::Lookup::Absent => Val::Absent,
                    lookup => {
                        let (off, len) = get_with_lookup(lookup, |v| c.store(v)).expect("present");
                        Val::At { off, len }
                    }
                };
                let counted = matches!(val, Val::At { .. });
                c.insert(hash, at, key, val, false, counted, 0)
            }
        };
        Some(match c.slots[i as usize].val {
            Val::Absent => None,
            Val::At { off, len } => Some((f.take().expect("f unused"))(bytes_at(&c.arena, off, len))),
        })
    });
    match cached {
        Some(answer) => answer,
        None => get_with_lookup(fast::get_inline(at.scope, key), f.take().expect("f unused")),
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

pub fn set(at: At<'_>, key: &str, value: &[u8]) -> Result<(), StateError> {
    with_cache(|c| {
        if c.direct {
            // The usage estimate does not count direct writes: ask afresh next time.
            c.usage = None;
            host::set(at.scope, key, value).map_err(convert)
        } else {
            c.set(at, key, value)
        }
    })
}

pub fn remove(at: At<'_>, key: &str) -> bool {
    with_cache(|c| {
        if c.direct {
            host::remove(at.scope, key)
        } else {
            c.remove(at, key, true)
        }
    })
}

pub fn discard(at: At<'_>, key: &str) {
    with_cache(|c| {
        if c.direct {
            host::remove(at.scope, key);
        } else {
            c.remove(at, key, false);
        }
    })
}

pub fn exists(at: At<'_>, key: &str) -> bool {
    let known = with_cache(|c| {
        if c.direct {
            return None;
        }
        match c.locate(at, key) {
            Located::Found(i) => Some(matches!(c.slots[i as usize].val, Val::At { .. })),
            Located::Missing { .. } => None,
        }
    });
    known.unwrap_or_else(|| host::exists(at.scope, key))
}

/// Keys of `scope` starting with `prefix`, strictly after `start_after` (without the scope).
pub fn list_keys(scope: Option<&str>, prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
    // The host lists what it has: send what is held back first. A failure (a refusal the
    // cache ruled out) is kept and fails the call when it ends.
    let _ = with_cache(Cache::flush);
    host::list_keys(scope, prefix, start_after, limit)
}

pub fn get_many(keys: &[(Option<&str>, &str)]) -> Vec<Option<Vec<u8>>> {
    // Cached keys (held-back writes included) from the cache, the rest in one host call.
    let mut out: Vec<Option<Option<Vec<u8>>>> = Vec::with_capacity(keys.len());
    let mut req = KeyList::new();
    with_cache(|c| {
        for &(scope, k) in keys {
            match c.locate(At { scope, frame: 0 }, k) {
                Located::Found(i) => out.push(Some(match c.slots[i as usize].val {
                    Val::Absent => None,
                    Val::At { off, len } => Some(bytes_at(&c.arena, off, len).to_vec()),
                })),
                Located::Missing { .. } => {
                    out.push(None);
                    req.push(scope.map(str::as_bytes), k.as_bytes());
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

pub fn set_many(entries: &[(Option<&str>, &str, &[u8])]) -> Result<(), StateError> {
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
    for &(scope, k, v) in entries {
        req.set(scope.map(str::as_bytes), k.as_bytes(), v);
    }
    fast::write_many_packed(req.as_bytes()).map_err(convert)
}

pub fn remove_many(keys: &[(Option<&str>, &str)]) -> u32 {
    with_cache(|c| {
        if c.direct {
            keys.iter().filter(|&&(s, k)| host::remove(s, k)).count() as u32
        } else {
            keys.iter()
                .filter(|&&(scope, k)| c.remove(At { scope, frame: 0 }, k, true))
                .count() as u32
        }
    })
}

/// Register the timer (`key`, `ts`): held back while it cannot be refused (see the module
/// documentation), else sent now, after what is held back.
pub fn register_timer(key: &str, ts: i64) -> Result<(), StateError> {
    with_cache(|c| {
        if !c.direct {
            let (n, max) = *c.timer_usage.get_or_insert_with(packed_timers::usage);
            if n.saturating_add(c.extra_timers) < max {
                c.extra_timers += 1;
                c.timers.push(key.as_bytes(), ts);
                return Ok(());
            }
            c.flush()?;
            // Ask afresh next time: timers may have fired since the last ask.
            c.timer_usage = None;
        }
        timers_host::register(key, ts).map_err(convert)
    })
}

/// Delete the timer (`key`, `ts`), after sending what is held back; whether there was one.
pub fn delete_timer(key: &str, ts: i64) -> bool {
    // A failure (a refusal the cache ruled out) is kept and fails the call when it ends.
    let _ = with_cache(Cache::flush);
    timers_host::delete(key, ts)
}
