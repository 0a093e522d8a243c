//! The operator's key-value state, private to this operator instance and checkpointed by the
//! host. Every write belongs to the current batch: if the batch fails, the host discards it.
//!
//! Keys are strings, values bytes; [`get_as`] and [`set_as`] store any serde type as JSON,
//! which is also how `cairn checkpoints show` displays values.
//!
//! Compiled for a native target (unit tests of an operator), the same functions work on an
//! in-memory map private to the current thread, so operators can be tested without wasm.
//!
//! Within one `process` or `on-watermark` call, writes are buffered (reads see them) and
//! sent to the host in bulk (when the call ends, every 1024 writes, and before a listing).
//! The host sees all of them within the same call, so a failed batch is still rolled back as
//! a whole. One consequence: a quota refusal (`StateError::QuotaExceeded`) may be reported by a
//! later call than the `set` that caused it, or fail the batch when it ends.

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

/// The value stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    backend::get(key)
}

/// Store `value` under `key`.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    backend::set(key, value)
}

/// Delete `key`; returns whether it existed.
pub fn remove(key: &str) -> bool {
    backend::remove(key)
}

/// Whether `key` holds a value.
pub fn exists(key: &str) -> bool {
    backend::exists(key)
}

/// Up to `limit` keys starting with `prefix`, in byte order, strictly after `start_after`.
pub fn list_keys(prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
    backend::list_keys(prefix, start_after, limit)
}

/// The values of many keys at once (one call to the host), in the same order.
pub fn get_many(keys: &[String]) -> Vec<Option<Vec<u8>>> {
    backend::get_many(keys)
}

/// Store many entries at once (one call to the host); stops at the first refusal.
pub fn set_many(entries: &[(String, Vec<u8>)]) -> Result<(), StateError> {
    backend::set_many(entries)
}

/// Remove many keys at once (one call to the host); returns how many existed.
pub fn remove_many(keys: &[String]) -> u32 {
    backend::remove_many(keys)
}

/// Load the values of `keys` from the host in one call, so that the `get`s that follow in
/// this batch are served from the SDK's batch buffer. A pure optimisation: results are the
/// same without it.
pub fn prefetch(keys: &[String]) {
    let _ = backend::get_many(keys);
}

#[doc(hidden)]
pub mod __batch {
    //! Used by the SDK's runtime around each host call.
    pub use super::backend::{abandon, begin, end, take_failure};
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

/// The value under `key` decoded from JSON.
pub fn get_as<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match get(key) {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::msg(format_args!(
                "state key {key:?} does not hold the expected JSON: {e}"
            ))
        }),
    }
}

/// Store `value` under `key` as JSON.
pub fn set_as<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value)?;
    set(key, &bytes)?;
    Ok(())
}

#[cfg(target_arch = "wasm32")]
mod backend {
    //! Calls into the host, with a per-batch buffer: inside `process` and `on-watermark`,
    //! prefetched values are cached and writes are collected, then sent in bulk (`set-many`, `remove-many`) when
    //! the call ends, when the buffer holds `FLUSH_AT` writes, or before a key listing. The
    //! host still sees every write inside the same call, so its transaction (rollback on
    //! failure) and dirty tracking are unchanged; a quota refusal surfaces at the flush and
    //! fails the batch.

    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::StateError;
    use crate::__bindings::cairn::operator::state as host;
    use crate::__bindings::cairn::operator::types::StateError as WitStateError;

    const FLUSH_AT: usize = 1024;

    #[derive(Default)]
    struct Buffer {
        /// Pending writes: `Some` = set, `None` = remove.
        writes: HashMap<String, Option<Vec<u8>>>,
        /// What the host holds, for keys prefetched or flushed this call.
        reads: HashMap<String, Option<Vec<u8>>>,
    }

    thread_local! {
        static BUF: RefCell<Option<Buffer>> = const { RefCell::new(None) };
    }

    fn convert(e: WitStateError) -> StateError {
        match e {
            WitStateError::QuotaExceeded(m) => StateError::QuotaExceeded(m),
            WitStateError::Invalid(m) => StateError::Invalid(m),
        }
    }

    /// Start buffering (the SDK's runtime calls this when a host call begins).
    pub fn begin() {
        BUF.with(|b| *b.borrow_mut() = Some(Buffer::default()));
        FAILED.with(|f| *f.borrow_mut() = None);
    }

    /// Send pending writes and stop buffering.
    pub fn end() -> Result<(), StateError> {
        let r = flush();
        BUF.with(|b| *b.borrow_mut() = None);
        r
    }

    /// Drop the buffer without sending (the call failed; the host rolls back anyway).
    pub fn abandon() {
        BUF.with(|b| *b.borrow_mut() = None);
    }

    /// Send pending writes to the host.
    pub fn flush() -> Result<(), StateError> {
        let writes = BUF.with(|b| b.borrow_mut().as_mut().map(|buf| std::mem::take(&mut buf.writes)));
        let Some(writes) = writes else { return Ok(()) };
        if writes.is_empty() {
            return Ok(());
        }
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for (k, v) in &writes {
            match v {
                Some(v) => sets.push((k.clone(), v.clone())),
                None => removes.push(k.clone()),
            }
        }
        if !removes.is_empty() {
            host::remove_many(&removes);
        }
        let r = if sets.is_empty() {
            Ok(())
        } else {
            host::set_many(&sets).map_err(convert)
        };
        // What was written is now what the host holds.
        BUF.with(|b| {
            if let Some(buf) = b.borrow_mut().as_mut() {
                buf.reads.extend(writes);
            }
        });
        r
    }

    /// `Some(answer)` when the buffer knows the key's value.
    fn known(key: &str) -> Option<Option<Vec<u8>>> {
        BUF.with(|b| {
            let b = b.borrow();
            let buf = b.as_ref()?;
            buf.writes.get(key).or_else(|| buf.reads.get(key)).cloned()
        })
    }

    fn buffering() -> bool {
        BUF.with(|b| b.borrow().is_some())
    }

    fn remember(key: &str, value: &Option<Vec<u8>>) {
        BUF.with(|b| {
            if let Some(buf) = b.borrow_mut().as_mut() {
                buf.reads.insert(key.to_string(), value.clone());
            }
        })
    }

    fn write(key: &str, value: Option<Vec<u8>>) -> Result<(), StateError> {
        let full = BUF.with(|b| {
            let mut b = b.borrow_mut();
            let buf = b.as_mut()?;
            buf.writes.insert(key.to_string(), value);
            Some(buf.writes.len() >= FLUSH_AT)
        });
        if full == Some(true) { flush() } else { Ok(()) }
    }

    pub fn get(key: &str) -> Option<Vec<u8>> {
        if let Some(v) = known(key) {
            return v;
        }
        // Not cached: a single read is cheaper without keeping a copy (prefetch fills the cache).
        host::get(key)
    }
    pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
        if buffering() {
            return write(key, Some(value.to_vec()));
        }
        host::set(key, value).map_err(convert)
    }
    pub fn remove(key: &str) -> bool {
        if !buffering() {
            return host::remove(key);
        }
        let existed = exists(key);
        // Buffered removes cannot be refused.
        let _ = write(key, None);
        existed
    }
    pub fn exists(key: &str) -> bool {
        match known(key) {
            Some(v) => v.is_some(),
            None => host::exists(key),
        }
    }
    pub fn list_keys(prefix: &str, start_after: Option<&str>, limit: u32) -> Vec<String> {
        // The host must see pending writes before it lists. A refused write is remembered by
        // the host's transaction failing later; report it at the end of the call.
        if let Err(e) = flush() {
            FAILED.with(|f| *f.borrow_mut() = Some(e));
        }
        host::list_keys(prefix, start_after, limit)
    }
    pub fn get_many(keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let mut out: Vec<Option<Option<Vec<u8>>>> = keys.iter().map(|k| known(k)).collect();
        let missing: Vec<String> = keys
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !missing.is_empty() {
            let fetched = host::get_many(&missing);
            let mut it = missing.iter().zip(fetched);
            for slot in out.iter_mut().filter(|v| v.is_none()) {
                if let Some((k, v)) = it.next() {
                    remember(k, &v);
                    *slot = Some(v);
                }
            }
        }
        out.into_iter().map(|v| v.unwrap_or(None)).collect()
    }
    pub fn set_many(entries: &[(String, Vec<u8>)]) -> Result<(), StateError> {
        if !buffering() {
            return host::set_many(entries).map_err(convert);
        }
        for (k, v) in entries {
            write(k, Some(v.clone()))?;
        }
        Ok(())
    }
    pub fn remove_many(keys: &[String]) -> u32 {
        if !buffering() {
            return host::remove_many(keys);
        }
        keys.iter().filter(|k| remove(k)).count() as u32
    }

    thread_local! {
        /// A flush refused during a listing, reported when the call ends.
        static FAILED: RefCell<Option<StateError>> = const { RefCell::new(None) };
    }

    /// A refusal that happened during a listing's flush, if any.
    pub fn take_failure() -> Option<StateError> {
        FAILED.with(|f| f.borrow_mut().take())
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use super::StateError;

    thread_local! {
        static MAP: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn begin() {}
    pub fn end() -> Result<(), StateError> {
        Ok(())
    }
    pub fn abandon() {}
    pub fn take_failure() -> Option<StateError> {
        None
    }

    /// Replace the native state (used by the testing harness).
    pub fn reset(entries: BTreeMap<String, Vec<u8>>) {
        MAP.with(|m| *m.borrow_mut() = entries);
    }

    /// A copy of the native state.
    pub fn snapshot() -> BTreeMap<String, Vec<u8>> {
        MAP.with(|m| m.borrow().clone())
    }

    pub fn get(key: &str) -> Option<Vec<u8>> {
        MAP.with(|m| m.borrow().get(key).cloned())
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
    pub fn set_many(entries: &[(String, Vec<u8>)]) -> Result<(), StateError> {
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

/// Access to the in-memory state used when an operator runs natively (unit tests).
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
