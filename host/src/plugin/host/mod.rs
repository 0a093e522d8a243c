//! The host side of the interfaces plugins import (`state`, `packed-state`, `timers`, `log`), for every
//! supported version of `cairn:operator`, registered from one table ([`VERSIONS`]); and
//! `wasi:keyvalue` over the same state (`keyvalue`).
//!
//! Each version's functions are registered by hand rather than through generated traits: they
//! read keys and values straight out of the guest's memory ([`WasmStr`], [`WasmList`]) instead
//! of lifting them into fresh `String`s and `Vec`s. wasmtime checks every registered function's
//! type against a component's import when the component is linked, and a test compares the
//! table with the parsed WIT of every version, so a function missed or mistyped fails loudly.
//!
//! * 0.1.x (`v0_1`): state keys are plain strings, stored as they are.
//! * 0.2.x (`v0_2`): every entry has a scope; the host stores it under its scoped key
//!   (`cairn_codec::scoped`), from which the key group follows. 0.2.1 adds `bulk-state`
//!   (`bulk`), 0.2.2 `pickled-state` (`pickled`), 0.2.4 `packed-timers` (`timers`);
//!   components built for 0.2.0 to 0.2.3 link to the 0.2.4 functions by semver.

mod bulk;
pub(crate) mod keyvalue;
mod log;
mod pickled;
mod timers;
pub(crate) mod ttl;
mod v0_1;
mod v0_2;

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, LinkerInstance, Lower, ResourceTable, WasmStr};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::sandbox::Limiter;
use crate::state::{StateError, StateHolder, Value};

/// What a plugin's store holds: its WASI context (granting nothing), its limits and its state.
pub(crate) struct StoreData {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub state: StateHolder,
    pub plugin: Arc<str>,
    /// Reused buffer for a (scoped) key while the state is borrowed.
    pub key_buf: String,
    /// Reused buffer for a packed state call's entries.
    pub blob_buf: Vec<u8>,
    /// The call deadline in epoch ticks (the plugin's timeout).
    pub deadline_ticks: u64,
    /// The job's watermark as of the last batch (`timers.current-watermark`).
    pub watermark: Option<i64>,
    /// Whether the component exports `on-timers` (else `timers.register` is refused).
    pub timers_enabled: bool,
    /// State TTL in event-time ms (`ttl`); `None`: keyed scopes never expire.
    pub ttl_ms: Option<i64>,
    /// Reused buffer for TTL records.
    pub ttl_buf: String,
    /// State entries expired by TTL in this instance's life.
    pub expired_keys: u64,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub(crate) type Store<'a> = StoreContextMut<'a, StoreData>;

/// Registers one host function into its interface's linker instance under `name`.
pub(crate) type AddFn = fn(&mut LinkerInstance<'_, StoreData>, &'static str) -> wasmtime::Result<()>;

/// One function the host provides.
pub(crate) struct HostFunc {
    /// Its interface, e.g. `state`.
    pub interface: &'static str,
    /// Its name in the WIT, e.g. `get-many`.
    pub name: &'static str,
    /// How to register it.
    pub add: AddFn,
}

/// One supported package version and everything the host provides for it.
pub(crate) struct Version {
    /// The version registered; components importing an older compatible version (semver:
    /// 0.1.0 for 0.1.1) link to it too.
    pub version: &'static str,
    /// Interfaces that hold only types (registered empty).
    pub type_interfaces: &'static [&'static str],
    /// The functions.
    pub funcs: &'static [HostFunc],
}

/// Every supported version of `cairn:operator`, oldest first.
pub(crate) const VERSIONS: &[Version] = &[v0_1::VERSION, v0_2::VERSION];

/// Register every supported version's host functions.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    for v in VERSIONS {
        for iface in v.type_interfaces {
            linker.instance(&format!("cairn:operator/{iface}@{}", v.version))?;
        }
        let mut ifaces: Vec<&str> = v.funcs.iter().map(|f| f.interface).collect();
        ifaces.dedup();
        for iface in ifaces {
            let mut inst = linker.instance(&format!("cairn:operator/{iface}@{}", v.version))?;
            for f in v.funcs.iter().filter(|f| f.interface == iface) {
                (f.add)(&mut inst, f.name)?;
            }
        }
    }
    keyvalue::add_to_linker(linker)
}

/// The `state-error` variant of every version.
#[derive(ComponentType, Lower)]
#[component(variant)]
pub(crate) enum WitStateError {
    #[component(name = "quota-exceeded")]
    QuotaExceeded(String),
    #[component(name = "invalid")]
    Invalid(String),
}

impl From<StateError> for WitStateError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::QuotaExceeded { .. } => WitStateError::QuotaExceeded(e.to_string()),
        }
    }
}

/// The answer of `get-inline`: values of up to [`INLINE_ANSWER`] bytes travel in place.
#[derive(ComponentType, Lower)]
#[component(variant)]
pub(crate) enum Lookup {
    #[component(name = "absent")]
    Absent,
    #[component(name = "inline")]
    Inline((u32, u64, u64, u64)),
    #[component(name = "large")]
    Large(Arc<[u8]>),
}

/// The most bytes `get-inline` returns in place (three u64s).
const INLINE_ANSWER: usize = 24;

pub(crate) fn lookup(value: Option<&Value>) -> Lookup {
    match value {
        None => Lookup::Absent,
        Some(v) if v.len() <= INLINE_ANSWER => {
            let mut b = [0u8; INLINE_ANSWER];
            b[..v.len()].copy_from_slice(v);
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[i * 8..i * 8 + 8]);
                u64::from_le_bytes(w)
            };
            Lookup::Inline((v.len() as u32, word(0), word(1), word(2)))
        }
        Some(v) => Lookup::Large(v.to_shared()),
    }
}

/// The answer of `usage`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct Usage {
    keys: u64,
    bytes: u64,
    #[component(name = "max-keys")]
    max_keys: u64,
    #[component(name = "max-state-bytes")]
    max_state_bytes: u64,
    #[component(name = "max-value-bytes")]
    max_value_bytes: u64,
}

pub(crate) fn usage(state: &StateHolder) -> Usage {
    let q = state.quotas();
    Usage {
        keys: state.len() as u64,
        bytes: state.bytes(),
        max_keys: q.max_keys,
        max_state_bytes: q.max_state_bytes,
        max_value_bytes: q.max_value_bytes,
    }
}

/// Building the ordered key index (once per state, on the first listing) is the host's work:
/// not charged to the plugin's deadline, which starts over.
pub(crate) fn listing_done(store: &mut Store<'_>, had_index: bool) {
    if !had_index {
        let ticks = store.data().deadline_ticks;
        store.set_epoch_deadline(ticks);
    }
}

/// Read a guest string into `buf` (cleared first).
pub(crate) fn read_into(store: &Store<'_>, s: &WasmStr, buf: &mut String) -> wasmtime::Result<()> {
    buf.clear();
    buf.push_str(&s.to_str(store)?);
    Ok(())
}

#[cfg(test)]
mod drift;

/// A packed call's request bytes, copied out of guest memory into the store's reused buffer
/// (the state is changed while they are read); give the buffer back to `blob_buf` after.
fn request(store: &mut Store<'_>, list: &wasmtime::component::WasmList<u8>) -> Vec<u8> {
    let mut buf = std::mem::take(&mut store.data_mut().blob_buf);
    buf.clear();
    buf.extend_from_slice(list.as_le_slice(&*store));
    buf
}
