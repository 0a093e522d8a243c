//! The host side of the interfaces plugins import (`state`, `packed-state`, `bulk-state`,
//! `pickled-state`, `timers`, `packed-timers`, `log`), for every supported version of
//! `cairn:operator`, registered from one table ([`VERSIONS`]); and `wasi:keyvalue` over the
//! same state (`keyvalue`).
//!
//! Every binding is an adapter: it decodes the guest's arguments, calls the state core
//! ([`OperatorState`]) and encodes the answer. No binding composes a scoped key, reads a TTL
//! record, applies a quota or checks a key group: those rules live in the core. A refusal is
//! answered as the interface can say it: `state-error` where the function returns one, and
//! otherwise by failing the call ([`refused`]), which rolls the batch back.
//!
//! Functions are registered by hand rather than through generated traits: they read keys and
//! values straight out of the guest's memory ([`WasmStr`], [`WasmList`]) instead of lifting
//! them into fresh `String`s and `Vec`s. wasmtime checks every registered function's type
//! against a component's import when the component is linked, and a test (`drift`) compares
//! the table with the parsed WIT of every version, so a function missed or mistyped fails
//! loudly.
//!
//! * 0.1.x (`v0_1`): state keys are plain strings, stored as they are.
//! * 0.2.x (`v0_2`): every entry has a scope. 0.2.1 adds `bulk-state` (`bulk`), 0.2.2
//!   `pickled-state` (`pickled`), 0.2.4 `packed-timers` (`timers`); components built for an
//!   older 0.2 link to the current functions by semver.

mod bulk;
pub(crate) mod keyvalue;
mod log;
mod pickled;
mod timers;
mod v0_1;
mod v0_2;

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, LinkerInstance, Lower, ResourceTable, WasmList, WasmStr};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::sandbox::Limiter;
use crate::state::{OperatorState, StateError, Value};

/// What a plugin instance's wasmtime store holds: its WASI context (granting nothing), its
/// limits, its state (the core every binding calls) and its name for logs.
pub(crate) struct InstanceData {
    /// The WASI context: no files, no network, no environment, no clock.
    pub wasi: WasiCtx,
    /// Resources handed to the guest (`wasi:keyvalue` handles).
    pub table: ResourceTable,
    /// Memory and table growth caps.
    pub limiter: Limiter,
    /// The operator's state and its rules.
    pub state: OperatorState,
    /// The operator's name, for the guest's log lines.
    pub plugin: Arc<str>,
    /// The call deadline in epoch ticks (the plugin's timeout).
    pub deadline_ticks: u64,
}

impl WasiView for InstanceData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a host function is handed: the instance's store, borrowed for the call.
pub(crate) type Ctx<'a> = StoreContextMut<'a, InstanceData>;

/// Registers one host function into its interface's linker instance under `name`.
pub(crate) type AddFn = fn(&mut LinkerInstance<'_, InstanceData>, &'static str) -> wasmtime::Result<()>;

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
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceData>) -> wasmtime::Result<()> {
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
            StateError::NotOwned { .. } | StateError::OperatorWide { .. } | StateError::NoTimerHandler => {
                WitStateError::Invalid(e.to_string())
            }
        }
    }
}

/// A refusal of a function that has no error to answer with: the call fails (the batch is
/// rolled back) with the core's message.
pub(crate) fn refused(e: StateError) -> wasmtime::Error {
    wasmtime::Error::msg(e.to_string())
}

/// A packed request the codec could not read: `state-error.invalid`, never a trap.
pub(crate) fn malformed(what: &str, e: impl std::fmt::Display) -> WitStateError {
    WitStateError::Invalid(format!("malformed {what} call: {e}"))
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

pub(crate) fn usage(state: &OperatorState) -> Usage {
    let (keys, bytes, q) = state.usage();
    Usage {
        keys,
        bytes,
        max_keys: q.max_keys,
        max_state_bytes: q.max_state_bytes,
        max_value_bytes: q.max_value_bytes,
    }
}

/// Run a listing: building the ordered key index (once per state, on the first listing) is
/// the host's work, not charged to the plugin's deadline, which starts over.
pub(crate) fn listing<T>(ctx: &mut Ctx<'_>, f: impl FnOnce(&mut OperatorState) -> T) -> T {
    let had_index = ctx.data().state.has_ordered_index();
    let r = f(&mut ctx.data_mut().state);
    if !had_index {
        let ticks = ctx.data().deadline_ticks;
        ctx.set_epoch_deadline(ticks);
    }
    r
}

/// A scope as the 0.2 `state` functions take it (`none`: operator-wide).
pub(crate) type Scope = Option<WasmStr>;

/// Copy `scope` and `key` out of guest memory (into the state's argument buffer, as checked
/// UTF-8) and run `f` on the state with them.
pub(crate) fn with_scoped<T>(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    key: &WasmStr,
    f: impl FnOnce(&mut OperatorState, Option<&str>, &str) -> T,
) -> wasmtime::Result<T> {
    let mut buf = ctx.data_mut().state.take_args();
    let scope_end = match scope {
        None => None,
        Some(s) => {
            buf.push_str(&s.to_str(&*ctx)?);
            Some(buf.len())
        }
    };
    buf.push_str(&key.to_str(&*ctx)?);
    let state = &mut ctx.data_mut().state;
    let r = match scope_end {
        None => f(state, None, &buf),
        Some(n) => f(state, Some(&buf[..n]), &buf[n..]),
    };
    state.put_args(buf);
    Ok(r)
}

/// Lift the elements of a guest list one at a time (the store is needed between them) and give
/// each to `f`, until it answers `Some` (an early answer, e.g. a refusal) or the list ends.
pub(crate) fn each<T, R>(
    ctx: &mut Ctx<'_>,
    list: &WasmList<T>,
    mut f: impl FnMut(&mut Ctx<'_>, T) -> wasmtime::Result<Option<R>>,
) -> wasmtime::Result<Option<R>>
where
    T: wasmtime::component::Lift,
{
    for n in 0..list.len() {
        let Some(item) = list.get(&mut *ctx, n) else {
            break;
        };
        if let Some(early) = f(ctx, item?)? {
            return Ok(Some(early));
        }
    }
    Ok(None)
}

/// Copy a packed request out of guest memory (into the state's scratch buffer: the state
/// changes while it is read) and run `f` on the state with it.
pub(crate) fn with_request<T>(
    ctx: &mut Ctx<'_>,
    list: &WasmList<u8>,
    f: impl FnOnce(&mut OperatorState, &[u8]) -> T,
) -> T {
    let mut buf = ctx.data_mut().state.take_scratch();
    buf.extend_from_slice(list.as_le_slice(&*ctx));
    let state = &mut ctx.data_mut().state;
    let r = f(state, &buf);
    state.put_scratch(buf);
    r
}

#[cfg(test)]
mod drift;
