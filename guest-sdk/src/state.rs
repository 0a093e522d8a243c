//! The operator's key-value state, private to this operator instance and checkpointed by the
//! host. Every write belongs to the current batch: if the batch fails, the host discards it.
//!
//! **Scopes.** Every entry belongs to a scope: the key of a stream event, or the operator-wide
//! scope. While [`crate::Operator::on_event`] handles an event, the functions here work in that
//! event's key's scope (as Flink's keyed state does): `state::set("count", ..)` is the count
//! *of this key*. In `init` and `on_watermark` they work in the operator-wide scope; use
//! [`with_key`] / [`enter_key`] to reach a key's scope there, and [`with_operator`] for
//! operator-wide entries while handling an event. Keyed entries are split by key group when a
//! job is rescaled; operator-wide entries are copied to every instance, so keep them small.
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

/// `f` with the scoped key of `key` in the current scope (in a reused buffer).
fn scoped<R>(key: &str, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            scope::scoped_into(&mut b, key);
            f(&b)
        }
        Err(_) => {
            let mut own = String::new();
            scope::scoped_into(&mut own, key);
            f(&own)
        }
    })
}

/// The value stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    scoped(key, backend::get)
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

/// An export call begins (used by [`crate::export!`]; see [`__end_call`]). `direct`: the call
/// is too small for holding writes back to pay off (a batch of a few events).
#[doc(hidden)]
pub fn __begin_call(direct: bool) {
    backend::begin_call(direct)
}

/// An export call ended well: send the writes held back during it (used by [`crate::export!`]).
#[doc(hidden)]
pub fn __end_call() -> Result<(), StateError> {
    backend::end_call()
}

/// Store `value` under `key`.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    scoped(key, |k| backend::set(k, value))
}

/// Delete `key`; returns whether it existed.
pub fn remove(key: &str) -> bool {
    scoped(key, backend::remove)
}

/// Whether `key` holds a value.
pub fn exists(key: &str) -> bool {
    scoped(key, backend::exists)
}

/// Up to `limit` keys starting with `prefix`, in byte order, strictly after `start_after`.
pub fn list_keys(prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
    let mut full_prefix = String::new();
    scope::scoped_into(&mut full_prefix, prefix);
    let n = full_prefix.len() - prefix.len();
    let after = start_after.map(|a| {
        let mut s = String::new();
        scope::scoped_into(&mut s, a);
        s
    });
    backend::list_keys(&full_prefix, after.as_deref(), limit)
        .into_iter()
        .map(|mut k| k.split_off(n))
        .collect()
}

fn all_scoped(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let mut s = String::new();
            scope::scoped_into(&mut s, k);
            s
        })
        .collect()
}

/// The values of many keys at once (one call to the host), in the same order.
pub fn get_many(keys: &[String]) -> Vec<Option<Vec<u8>>> {
    backend::get_many(&all_scoped(keys))
}

/// Store many entries at once (one call to the host); stops at the first refusal.
pub fn set_many(entries: &[(String, Vec<u8>)]) -> Result<(), StateError> {
    let entries: Vec<(String, &[u8])> = entries
        .iter()
        .map(|(k, v)| {
            let mut s = String::new();
            scope::scoped_into(&mut s, k);
            (s, v.as_slice())
        })
        .collect();
    backend::set_many(&entries)
}

/// The values of `key` in the scopes of many stream keys at once (one call to the host):
/// `(stream key, key)` pairs, answers in the same order.
pub fn get_many_keyed(entries: &[(&str, &str)]) -> Vec<Option<Vec<u8>>> {
    let keys: Vec<String> = entries
        .iter()
        .map(|(scope, k)| cairn_codec::scoped::compose(Some(scope), k))
        .collect();
    backend::get_many(&keys)
}

/// Store entries in the scopes of many stream keys at once (one call to the host):
/// `(stream key, key, value)`; stops at the first refusal.
pub fn set_many_keyed(entries: &[(&str, &str, &[u8])]) -> Result<(), StateError> {
    let entries: Vec<(String, &[u8])> = entries
        .iter()
        .map(|(scope, k, v)| (cairn_codec::scoped::compose(Some(scope), k), *v))
        .collect();
    backend::set_many(&entries)
}

/// Remove many keys at once (one call to the host); returns how many existed.
pub fn remove_many(keys: &[String]) -> u32 {
    backend::remove_many(&all_scoped(keys))
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
    scoped(key, |k| {
        backend::get_with(k, |bytes| serde_json::from_slice(bytes))
    })
    .transpose()
    .map_err(|e| {
        Error::msg(format_args!(
            "state key {key:?} does not hold the expected JSON: {e}"
        ))
    })
}

/// Store `value` under `key` as JSON.
pub fn set_as<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    thread_local! {
        // Reused for every write, so encoding allocates nothing once warm.
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut b) => {
            b.clear();
            serde_json::to_writer(&mut *b, value)?;
            set(key, &b)?;
            Ok(())
        }
        // Only when a `Serialize` impl itself writes state.
        Err(_) => {
            set(key, &serde_json::to_vec(value)?)?;
            Ok(())
        }
    })
}

/// The key under which the host stores `key` of `scope` (`None`: operator-wide), as
/// checkpoints and `cairn checkpoints show` display it.
pub fn scoped_key(scope: Option<&str>, key: &str) -> String {
    cairn_codec::scoped::compose(scope, key)
}

#[cfg(target_arch = "wasm32")]
#[path = "state/wasm.rs"]
mod backend;

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use super::StateError;

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

    pub fn begin_call(_direct: bool) {}
    pub fn end_call() -> Result<(), StateError> {
        Ok(())
    }
    pub fn prefetch_keyed<'a>(scopes: impl IntoIterator<Item = &'a str>, keys: &[&str]) {
        let _ = (scopes.into_iter().count(), keys);
    }
    pub fn get(key: &str) -> Option<Vec<u8>> {
        MAP.with(|m| m.borrow().get(key).cloned())
    }
    /// `f` must not touch the state (it runs while the map is borrowed).
    pub fn get_with<R>(key: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        MAP.with(|m| m.borrow().get(key).map(|v| f(v)))
    }
    pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
        MAP.with(|m| m.borrow_mut().insert(key.to_string(), value.to_vec()));
        Ok(())
    }
    pub fn remove(key: &str) -> bool {
        MAP.with(|m| m.borrow_mut().remove(key).is_some())
    }
    pub fn exists(key: &str) -> bool {
        MAP.with(|m| m.borrow().contains_key(key))
    }
    pub fn get_many(keys: &[String]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|k| get(k)).collect()
    }
    pub fn set_many(entries: &[(String, &[u8])]) -> Result<(), StateError> {
        for (k, v) in entries {
            set(k, v)?;
        }
        Ok(())
    }
    pub fn remove_many(keys: &[String]) -> u32 {
        keys.iter().filter(|k| remove(k)).count() as u32
    }
    pub fn list_keys(prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
        MAP.with(|m| {
            let m = m.borrow();
            let lower = match start_after {
                Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
                _ => Bound::Included(prefix.to_string()),
            };
            m.range((lower, Bound::Unbounded))
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(prefix))
                .take(limit as usize)
                .cloned()
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
}
