//! The operator's key-value state, private to this operator instance and checkpointed by the
//! host. Every write belongs to the current batch: if the batch fails, the host discards it.
//!
//! **Scopes.** Every entry belongs to a scope: the key of a stream event, or the operator-wide
//! scope. While [`crate::Operator::on_event`] handles an event, the functions here work in that
//! event's key's scope (as Flink's keyed state does): `state::set("count", ..)` is the count
//! *of this key*. In `init` and `on_watermark` they work in the operator-wide scope; use
//! [`with_key`] / [`enter_key`] to reach a key's scope there, and [`with_operator`] for
//! operator-wide entries while handling an event. Keyed entries are split by key group across
//! an operator's parallel instances and move with their group when a job is rescaled;
//! operator-wide entries do not split: with parallelism above 1 a write to the operator-wide
//! scope is refused ([`StateError::Invalid`]), so keep state in the key's scope.
//!
//! Keys are strings, values bytes; [`get_as`] and [`set_as`] store any serde type as JSON,
//! which is also how `cairn checkpoints show` displays values.
//!
//! Compiled for a native target (unit tests of an operator), the same functions work on an
//! in-memory map private to the current thread, so operators can be tested without wasm.
//!
//! In a plugin, a call's writes are held back and sent to the host in one go when the call
//! (a batch, a watermark, `init`) succeeds, and keys named in [`prefetch`] are read in one go:
//! see the `state/wasm.rs` backend. The semantics are those of direct calls.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Why the host refused a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// A sandbox quota would be exceeded; the text names the limit and its value.
    QuotaExceeded(String),
    /// The key or value is not acceptable.
    Invalid(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::QuotaExceeded(m) => write!(f, "state quota exceeded: {m}"),
            StateError::Invalid(m) => write!(f, "invalid state access: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

pub(crate) mod bytes;
mod scope;

pub use scope::ScopeGuard;

/// Work in the scope of stream key `key` until the guard is dropped.
///
/// ```
/// use cairn_sdk::state;
/// # state::native::reset(Default::default());
/// {
///     let _in_a = state::enter_key("a");
///     state::set("count", b"1")?;
/// }
/// assert_eq!(state::with_key("a", || state::get("count")), Some(b"1".to_vec()));
/// assert_eq!(state::get("count"), None); // operator-wide: another entry
/// # Ok::<(), cairn_sdk::state::StateError>(())
/// ```
pub fn enter_key(key: &str) -> ScopeGuard {
    scope::enter(Some(key))
}

/// Work in the operator-wide scope until the guard is dropped.
pub fn enter_operator() -> ScopeGuard {
    scope::enter(None)
}

/// `f`, run in the scope of stream key `key`.
pub fn with_key<R>(key: &str, f: impl FnOnce() -> R) -> R {
    let _g = enter_key(key);
    f()
}

/// `f`, run in the operator-wide scope.
pub fn with_operator<R>(f: impl FnOnce() -> R) -> R {
    let _g = enter_operator();
    f()
}

/// The current scope: `Some(stream key)`, or `None` for the operator-wide scope.
pub fn current_scope() -> Option<String> {
    scope::current()
}

/// Forget entered scopes (an export call starts); used by [`crate::export!`].
#[doc(hidden)]
pub fn __reset_scope() {
    scope::reset()
}

/// Owned pairs → borrowed (scope, key) pairs in `scope`.
fn in_scope<'a>(scope: Option<&'a str>, keys: &'a [String]) -> Vec<(Option<&'a str>, &'a str)> {
    keys.iter().map(|k| (scope, k.as_str())).collect()
}

/// The value stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    scope::with_at(|at| backend::get(at, key))
}

/// `f` applied to the value stored under `key`, read where it lies (no copy of the bytes).
/// `f` must not use the state.
///
/// ```
/// use cairn_sdk::state;
/// # state::native::reset(Default::default());
/// state::set("n", b"12")?;
/// assert_eq!(state::get_with("n", |v| v.len()), Some(2));
/// # Ok::<(), cairn_sdk::state::StateError>(())
/// ```
pub fn get_with<R>(key: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    scope::with_at(|at| backend::get_with(at, key, f))
}

/// Read state now, with one call to the host, so that this batch's reads of it are answered
/// inside the plugin: `keys` in the scope of each of `scopes` (stream keys). Call it at the
/// start of [`crate::Operator::on_batch`]; an entry read but not prefetched is simply read from
/// the host. Natively (unit tests) it does nothing.
///
/// ```
/// use cairn_sdk::{state, Event};
/// # let batch: Vec<Event> = vec![Event::new("a", 1, b"1".to_vec())];
/// state::prefetch(batch.iter().map(|e| e.key.as_str()), &["count"]);
/// ```
pub fn prefetch<'a>(scopes: impl IntoIterator<Item = &'a str>, keys: &[&str]) {
    backend::prefetch_keyed(scopes, keys)
}

/// Like [`prefetch`], for entries that differ from scope to scope: each `(stream key, key)`
/// pair, best in the order the operator will read them (reads that follow the prefetch's
/// order are found without hashing). For example, a batch's events each reading an entry
/// named after something in its value, or timers each reading the entry of its own time.
///
/// ```
/// use cairn_sdk::{state, Event};
/// # let batch: Vec<Event> = vec![Event::new("a", 1, b"1".to_vec())];
/// let names: Vec<String> = batch.iter().map(|e| format!("at/{}", e.ts)).collect();
/// state::prefetch_entries(batch.iter().zip(&names).map(|(e, n)| (e.key.as_str(), n.as_str())));
/// ```
pub fn prefetch_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) {
    backend::prefetch_entries(entries)
}

/// An export call begins (used by [`crate::export!`]; see [`__end_call`]). `direct`: the call
/// is too small for holding writes back to pay off (a batch of a few events).
#[doc(hidden)]
pub fn __begin_call(direct: bool) {
    crate::timers::backend::forget_watermark();
    backend::begin_call(direct)
}

/// An export call ended well: send the writes held back during it (used by [`crate::export!`]).
#[doc(hidden)]
pub fn __end_call() -> Result<(), StateError> {
    backend::end_call()
}

/// Store `value` under `key`.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    scope::with_at(|at| backend::set(at, key, value))
}

/// Delete `key`; returns whether it existed.
pub fn remove(key: &str) -> bool {
    scope::with_at(|at| backend::remove(at, key))
}

/// Delete `key` without asking whether it existed: in a plugin, held back and sent with the
/// call's writes, where [`remove`] must ask the host unless the entry was read in this call.
/// For removals whose answer the operator does not need (forgetting what a timer says is
/// expired).
pub fn discard(key: &str) {
    scope::with_at(|at| backend::discard(at, key))
}

/// Whether `key` holds a value.
pub fn exists(key: &str) -> bool {
    scope::with_at(|at| backend::exists(at, key))
}

/// Up to `limit` keys starting with `prefix`, in byte order, strictly after `start_after`.
pub fn list_keys(prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
    scope::with_current(|s| backend::list_keys(s, prefix, start_after, limit))
}

/// The values of many keys at once (one call to the host), in the same order.
pub fn get_many(keys: &[String]) -> Vec<Option<Vec<u8>>> {
    scope::with_current(|s| backend::get_many(&in_scope(s, keys)))
}

/// Store many entries at once (one call to the host); stops at the first refusal.
pub fn set_many(entries: &[(String, Vec<u8>)]) -> Result<(), StateError> {
    scope::with_current(|s| {
        let entries: Vec<(Option<&str>, &str, &[u8])> = entries
            .iter()
            .map(|(k, v)| (s, k.as_str(), v.as_slice()))
            .collect();
        backend::set_many(&entries)
    })
}

/// The values of `key` in the scopes of many stream keys at once (one call to the host):
/// `(stream key, key)` pairs, answers in the same order.
pub fn get_many_keyed(entries: &[(&str, &str)]) -> Vec<Option<Vec<u8>>> {
    let keys: Vec<(Option<&str>, &str)> = entries.iter().map(|&(scope, k)| (Some(scope), k)).collect();
    backend::get_many(&keys)
}

/// Store entries in the scopes of many stream keys at once (one call to the host):
/// `(stream key, key, value)`; stops at the first refusal.
pub fn set_many_keyed(entries: &[(&str, &str, &[u8])]) -> Result<(), StateError> {
    let entries: Vec<(Option<&str>, &str, &[u8])> =
        entries.iter().map(|&(scope, k, v)| (Some(scope), k, v)).collect();
    backend::set_many(&entries)
}

/// Remove many keys at once (one call to the host); returns how many existed.
pub fn remove_many(keys: &[String]) -> u32 {
    scope::with_current(|s| backend::remove_many(&in_scope(s, keys)))
}

/// Every key starting with `prefix`, in byte order (pages through the host in chunks).
pub fn keys_with_prefix(prefix: &str) -> Vec<String> {
    const PAGE: u32 = 1024;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list_keys(prefix, after.as_deref(), PAGE);
        let done = page.len() < PAGE as usize;
        after = page.last().cloned();
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// A time index: entries `<prefix><ordered ts>/<tail>` (see [`crate::key::ordered_i64`]), for
/// things that expire. Removes, in time order, every entry whose time is below `horizon` and
/// calls `expired(tail)` for each (to remove what the entry stands for). Returns how many.
///
/// ```
/// use cairn_sdk::{key, state};
/// # state::native::reset(Default::default());
/// state::set(&format!("exp/{}/a", key::ordered_i64(5)), b"")?;
/// state::set(&format!("exp/{}/b", key::ordered_i64(50)), b"")?;
/// let mut gone = Vec::new();
/// assert_eq!(state::expire_before("exp/", 10, |tail| gone.push(tail.to_string()))?, 1);
/// assert_eq!(gone, vec!["a"]);
/// # Ok::<(), cairn_sdk::Error>(())
/// ```
pub fn expire_before(prefix: &str, horizon: i64, mut expired: impl FnMut(&str)) -> Result<u64, Error> {
    const PAGE: u32 = 64;
    let mut n = 0;
    loop {
        let page = list_keys(prefix, None, PAGE);
        for idx in &page {
            let rest = &idx[prefix.len()..];
            let (t, tail) = rest
                .split_once('/')
                .ok_or_else(|| Error::msg(format_args!("malformed time index key {idx:?}")))?;
            let t = crate::key::parse_ordered_i64(t)
                .ok_or_else(|| Error::msg(format_args!("malformed time in index key {idx:?}")))?;
            if t >= horizon {
                return Ok(n);
            }
            expired(tail);
            remove(idx);
            n += 1;
        }
        if page.len() < PAGE as usize {
            return Ok(n);
        }
    }
}

/// The value under `key` decoded from JSON.
pub fn get_as<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    // Decoded where it lies (in place for small values): no copy of the bytes.
    scope::with_at(|at| backend::get_with(at, key, |bytes| serde_json::from_slice(bytes)))
        .transpose()
        .map_err(|e| {
            Error::msg(format_args!(
                "state key {key:?} does not hold the expected JSON: {e}"
            ))
        })
}

/// `f` given an empty byte buffer that is reused from call to call, so that encoding a value
/// allocates nothing once warm (a fresh one when `f` itself nests a call, through a `Serialize`
/// impl that writes state).
fn with_buf<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut b) => {
            b.clear();
            f(&mut b)
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Store `value` under `key` as JSON.
pub fn set_as<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    with_buf(|b| {
        serde_json::to_writer(&mut *b, value)?;
        set(key, b)?;
        Ok(())
    })
}

/// Append `item` to the JSON array stored under `key` (a new key holds `[item]`) without
/// decoding the elements already there: the stored text gains `,<item>` before its `]`. The
/// bytes are those `set_as` would write for the whole list, so either may read or write it.
///
/// ```
/// use cairn_sdk::state;
/// # state::native::reset(Default::default());
/// state::push_as("ids", "a")?;
/// state::push_as("ids", "b")?;
/// assert_eq!(state::get_as::<Vec<String>>("ids")?, Some(vec!["a".into(), "b".into()]));
/// # Ok::<(), cairn_sdk::Error>(())
/// ```
pub fn push_as<T: Serialize + ?Sized>(key: &str, item: &T) -> Result<(), Error> {
    with_buf(|list| {
        let found = get_with(key, |old| {
            let text = old.trim_ascii();
            let (Some(b'['), Some(b']')) = (text.first(), text.last()) else {
                return false;
            };
            list.extend_from_slice(&text[..text.len() - 1]);
            if !text[1..text.len() - 1].trim_ascii().is_empty() {
                list.push(b',');
            }
            true
        });
        match found {
            None => list.push(b'['),
            Some(true) => {}
            Some(false) => {
                return Err(Error::msg(format_args!(
                    "state key {key:?} does not hold a JSON array, so an item cannot be appended to it"
                )));
            }
        }
        serde_json::to_writer(&mut *list, item)?;
        list.push(b']');
        set(key, list)?;
        Ok(())
    })
}

/// The key under which the host stores `key` of `scope` (`None`: operator-wide), as
/// checkpoints and `cairn checkpoints show` display it.
pub fn scoped_key(scope: Option<&str>, key: &str) -> String {
    cairn_codec::scoped::compose(scope, key)
}

#[cfg(target_arch = "wasm32")]
#[path = "state/wasm.rs"]
pub(crate) mod backend;

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use super::StateError;
    use super::scope::At;

    thread_local! {
        static MAP: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// Replace the native state (used by the testing harness).
    pub fn reset(entries: BTreeMap<String, Vec<u8>>) {
        MAP.with(|m| *m.borrow_mut() = entries);
    }

    /// A copy of the native state.
    pub fn snapshot() -> BTreeMap<String, Vec<u8>> {
        MAP.with(|m| m.borrow().clone())
    }

    fn scoped(scope: Option<&str>, key: &str) -> String {
        cairn_codec::scoped::compose(scope, key)
    }

    pub fn begin_call(_direct: bool) {}
    pub fn end_call() -> Result<(), StateError> {
        Ok(())
    }
    pub fn prefetch_keyed<'a>(scopes: impl IntoIterator<Item = &'a str>, keys: &[&str]) {
        let _ = (scopes.into_iter().count(), keys);
    }
    pub fn prefetch_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let _ = entries.into_iter().count();
    }
    pub fn insert_raw(key: String, value: Vec<u8>) {
        MAP.with(|m| m.borrow_mut().insert(key, value));
    }
    pub fn remove_raw(key: &str) -> bool {
        MAP.with(|m| m.borrow_mut().remove(key).is_some())
    }
    fn get_in(scope: Option<&str>, key: &str) -> Option<Vec<u8>> {
        MAP.with(|m| m.borrow().get(&scoped(scope, key)).cloned())
    }
    fn set_in(scope: Option<&str>, key: &str, value: &[u8]) {
        MAP.with(|m| m.borrow_mut().insert(scoped(scope, key), value.to_vec()));
    }
    fn remove_in(scope: Option<&str>, key: &str) -> bool {
        MAP.with(|m| m.borrow_mut().remove(&scoped(scope, key)).is_some())
    }
    pub fn get(at: At<'_>, key: &str) -> Option<Vec<u8>> {
        get_in(at.scope, key)
    }
    /// `f` must not touch the state (it runs while the map is borrowed).
    pub fn get_with<R>(at: At<'_>, key: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        MAP.with(|m| m.borrow().get(&scoped(at.scope, key)).map(|v| f(v)))
    }
    pub fn set(at: At<'_>, key: &str, value: &[u8]) -> Result<(), StateError> {
        set_in(at.scope, key, value);
        Ok(())
    }
    pub fn remove(at: At<'_>, key: &str) -> bool {
        remove_in(at.scope, key)
    }
    pub fn discard(at: At<'_>, key: &str) {
        remove_in(at.scope, key);
    }
    pub fn exists(at: At<'_>, key: &str) -> bool {
        MAP.with(|m| m.borrow().contains_key(&scoped(at.scope, key)))
    }
    pub fn get_many(keys: &[(Option<&str>, &str)]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|&(s, k)| get_in(s, k)).collect()
    }
    pub fn set_many(entries: &[(Option<&str>, &str, &[u8])]) -> Result<(), StateError> {
        for &(s, k, v) in entries {
            set_in(s, k, v);
        }
        Ok(())
    }
    pub fn remove_many(keys: &[(Option<&str>, &str)]) -> u32 {
        keys.iter().filter(|&&(s, k)| remove_in(s, k)).count() as u32
    }
    /// Keys of `scope` starting with `prefix`, strictly after `start_after`, without the scope.
    pub fn list_keys(
        scope: Option<&str>,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Vec<String> {
        let head = scoped(scope, "");
        let prefix = scoped(scope, prefix);
        MAP.with(|m| {
            let m = m.borrow();
            let lower = match start_after.map(|a| scoped(scope, a)) {
                Some(after) if after >= prefix => Bound::Excluded(after),
                _ => Bound::Included(prefix.clone()),
            };
            m.range((lower, Bound::Unbounded))
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .take(limit as usize)
                .map(|k| k[head.len()..].to_string())
                .collect()
        })
    }
}

/// Access to the in-memory state used when an operator runs natively (unit tests). Its keys
/// are scoped keys, as the host stores them: `<len>:<scope>/<key>` or `*/<key>` (see
/// [`scoped_key`]).
#[cfg(not(target_arch = "wasm32"))]
pub mod native {
    use std::collections::BTreeMap;

    /// Replace this thread's state with `entries`.
    pub fn reset(entries: BTreeMap<String, Vec<u8>>) {
        super::backend::reset(entries)
    }

    /// A copy of this thread's state.
    pub fn snapshot() -> BTreeMap<String, Vec<u8>> {
        super::backend::snapshot()
    }

    /// Store a raw (already scoped) entry.
    pub(crate) fn insert(key: String, value: Vec<u8>) {
        super::backend::insert_raw(key, value)
    }

    /// Remove a raw entry; whether it was there.
    pub(crate) fn take(key: &str) -> bool {
        super::backend::remove_raw(key)
    }
}
