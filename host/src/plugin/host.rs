//! The host side of the `state` and `log` interfaces, and the data each store carries.
//!
//! The state functions are registered by hand rather than through the generated trait: they
//! read keys and values straight out of the guest's memory ([`WasmStr`], [`WasmList`]) instead
//! of lifting them into fresh `String`s and `Vec`s. `get-inline` returns values of up to 24
//! bytes in place (no allocation call back into the guest); longer values are lowered straight
//! from their shared buffer. A get is then one UTF-8 check and one hash lookup; a set adds the
//! copy that stores the value (in place up to 22 bytes, otherwise one allocation). The bulk
//! calls (`get-many-packed`, `set-many-packed`) take one buffer each way.

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, Lower, ResourceTable, WasmList, WasmStr};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::batch::Reader;
use super::bindings::cairn::operator::{log, types};
use crate::sandbox::Limiter;
use crate::state::{Key, StateError, StateHolder, Value};

/// What a plugin's store holds: its WASI context (granting nothing), its limits and its state.
pub(crate) struct StoreData {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub state: StateHolder,
    pub plugin: Arc<str>,
    /// Reused buffer for a key while the state is borrowed mutably.
    pub key_buf: String,
    /// Reused buffer for a packed state call's entries.
    pub blob_buf: Vec<u8>,
    /// The call deadline in epoch ticks (the plugin's timeout).
    pub deadline_ticks: u64,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreData {}

fn to_wit(e: StateError) -> types::StateError {
    match e {
        StateError::QuotaExceeded { .. } => types::StateError::QuotaExceeded(e.to_string()),
    }
}

type Store<'a> = StoreContextMut<'a, StoreData>;

/// Run `f` on the state with `key` copied out of guest memory into the reused key buffer.
fn with_key<R>(
    store: &mut Store<'_>,
    key: &WasmStr,
    f: impl FnOnce(&mut StateHolder, &str) -> R,
) -> wasmtime::Result<R> {
    let mut buf = std::mem::take(&mut store.data_mut().key_buf);
    buf.clear();
    buf.push_str(&key.to_str(&*store)?);
    let data = store.data_mut();
    let r = f(&mut data.state, &buf);
    data.key_buf = buf;
    Ok(r)
}

/// Store one entry: the value is copied once, out of guest memory into its shared slot.
fn set_one(
    store: &mut Store<'_>,
    key: &WasmStr,
    value: &WasmList<u8>,
) -> wasmtime::Result<Result<(), StateError>> {
    let value = Value::from(value.as_le_slice(&*store));
    with_key(store, key, |state, k| state.set(k, value))
}

/// The answer of `get-inline`: values of up to [`INLINE`] bytes travel in place.
#[derive(ComponentType, Lower)]
#[component(variant)]
enum Lookup {
    #[component(name = "absent")]
    Absent,
    #[component(name = "inline")]
    Inline((u32, u64, u64, u64)),
    #[component(name = "large")]
    Large(Arc<[u8]>),
}

const INLINE: usize = 24;

/// The answer of `usage`.
#[derive(ComponentType, Lower)]
#[component(record)]
struct Usage {
    keys: u64,
    bytes: u64,
    #[component(name = "max-keys")]
    max_keys: u64,
    #[component(name = "max-state-bytes")]
    max_state_bytes: u64,
    #[component(name = "max-value-bytes")]
    max_value_bytes: u64,
}

fn lookup(value: Option<&Value>) -> Lookup {
    match value {
        None => Lookup::Absent,
        Some(v) if v.len() <= INLINE => {
            let mut b = [0u8; INLINE];
            b[..v.len()].copy_from_slice(v);
            let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            Lookup::Inline((v.len() as u32, word(0), word(1), word(2)))
        }
        Some(v) => Lookup::Large(v.to_shared()),
    }
}

fn get_one(store: &Store<'_>, key: &WasmStr) -> wasmtime::Result<Option<Arc<[u8]>>> {
    let k = key.to_str(store)?;
    Ok(store.data().state.get_value(&k).map(Value::to_shared))
}

/// `get-many-packed`: keys read in place from guest memory, answers appended to one buffer.
fn get_many_packed(store: &Store<'_>, keys: &WasmList<u8>) -> wasmtime::Result<Vec<u8>> {
    let mut r = Reader::new(keys.as_le_slice(store));
    let state = &store.data().state;
    let count = r.u32("the key count").map_err(malformed)? as usize;
    let mut out = Vec::with_capacity(count.min(1 << 20) * 16);
    for _ in 0..count {
        let key = r.str("a key").map_err(malformed)?;
        match state.get(key) {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    if !r.done() {
        return Err(malformed("bytes after the last key".into()));
    }
    Ok(out)
}

/// `set-many-packed`: the entries are copied out of guest memory once (into a reused buffer),
/// then stored one by one.
fn set_many_packed(
    store: &mut Store<'_>,
    entries: &WasmList<u8>,
) -> wasmtime::Result<Result<(), StateError>> {
    let mut buf = std::mem::take(&mut store.data_mut().blob_buf);
    buf.clear();
    buf.extend_from_slice(entries.as_le_slice(&*store));
    let state = &mut store.data_mut().state;
    let result = (|| {
        let mut r = Reader::new(&buf);
        let count = r.u32("the entry count").map_err(malformed)?;
        for _ in 0..count {
            let key = r.str("a key").map_err(malformed)?;
            let value = r.bytes("a value").map_err(malformed)?;
            if let Err(e) = state.set(key, Value::new(value)) {
                return Ok(Err(e));
            }
        }
        if !r.done() {
            return Err(malformed("bytes after the last entry".into()));
        }
        Ok(Ok(()))
    })();
    store.data_mut().blob_buf = buf;
    result
}

fn malformed(what: String) -> wasmtime::Error {
    wasmtime::Error::msg(format!("malformed packed state call: {what}"))
}

/// Register the `state` interface.
pub(crate) fn add_state_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    let mut i = linker.instance("cairn:operator/state@0.1.1")?;
    i.func_wrap("get", |store: Store<'_>, (key,): (WasmStr,)| {
        Ok((get_one(&store, &key)?,))
    })?;
    i.func_wrap("get-inline", |store: Store<'_>, (key,): (WasmStr,)| {
        let k = key.to_str(&store)?;
        Ok((lookup(store.data().state.get_value(&k)),))
    })?;
    i.func_wrap(
        "set",
        |mut store: Store<'_>, (key, value): (WasmStr, WasmList<u8>)| {
            Ok((set_one(&mut store, &key, &value)?.map_err(to_wit),))
        },
    )?;
    i.func_wrap("remove", |mut store: Store<'_>, (key,): (WasmStr,)| {
        Ok((with_key(&mut store, &key, |s, k| s.remove(k))?,))
    })?;
    i.func_wrap("exists", |store: Store<'_>, (key,): (WasmStr,)| {
        let k = key.to_str(&store)?;
        Ok((store.data().state.exists(&k),))
    })?;
    i.func_wrap(
        "list-keys",
        |mut store: Store<'_>, (prefix, after, limit): (WasmStr, Option<WasmStr>, u32)| {
            let had_index = store.data().state.has_ordered_index();
            let keys: Vec<Key> = {
                let prefix = prefix.to_str(&store)?;
                let after = after.as_ref().map(|a| a.to_str(&store)).transpose()?;
                store
                    .data()
                    .state
                    .list_keys(&prefix, after.as_deref(), limit as usize)
            };
            if !had_index {
                // Building the index is the host's work (once per state): not charged to the
                // plugin's deadline, which starts over.
                let ticks = store.data().deadline_ticks;
                store.set_epoch_deadline(ticks);
            }
            Ok((keys,))
        },
    )?;
    i.func_wrap(
        "get-many",
        |mut store: Store<'_>, (keys,): (WasmList<WasmStr>,)| {
            let mut out = Vec::with_capacity(keys.len());
            for n in 0..keys.len() {
                let key = keys.get(&mut store, n).expect("index in range")?;
                out.push(get_one(&store, &key)?);
            }
            Ok((out,))
        },
    )?;
    i.func_wrap(
        "set-many",
        |mut store: Store<'_>, (entries,): (WasmList<(WasmStr, WasmList<u8>)>,)| {
            for n in 0..entries.len() {
                let (key, value) = entries.get(&mut store, n).expect("index in range")?;
                if let Err(e) = set_one(&mut store, &key, &value)? {
                    return Ok((Err(to_wit(e)),));
                }
            }
            Ok((Ok(()),))
        },
    )?;
    i.func_wrap(
        "remove-many",
        |mut store: Store<'_>, (keys,): (WasmList<WasmStr>,)| {
            let mut removed = 0u32;
            for n in 0..keys.len() {
                let key = keys.get(&mut store, n).expect("index in range")?;
                removed += u32::from(with_key(&mut store, &key, |s, k| s.remove(k))?);
            }
            Ok((removed,))
        },
    )?;
    i.func_wrap("usage", |store: Store<'_>, (): ()| {
        let s = &store.data().state;
        let q = s.quotas();
        Ok((Usage {
            keys: s.len() as u64,
            bytes: s.bytes(),
            max_keys: q.max_keys,
            max_state_bytes: q.max_state_bytes,
            max_value_bytes: q.max_value_bytes,
        },))
    })?;
    i.func_wrap("get-many-packed", |store: Store<'_>, (keys,): (WasmList<u8>,)| {
        Ok((get_many_packed(&store, &keys)?,))
    })?;
    i.func_wrap(
        "set-many-packed",
        |mut store: Store<'_>, (entries,): (WasmList<u8>,)| {
            Ok((set_many_packed(&mut store, &entries)?.map_err(to_wit),))
        },
    )?;
    Ok(())
}

impl log::Host for StoreData {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "cairn::guest", plugin, "{message}"),
        }
    }
}
