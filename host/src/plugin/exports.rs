//! Where a component's exports are, by the version of `cairn:operator` it was built for, and
//! their typed handles once it is instantiated.
//!
//! * 0.1.x: `init`, `process`, `on-watermark` (and the optional `process-packed`) at world
//!   level.
//! * 0.2.x: the same functions in the exported interface `cairn:operator/operator@0.2.x`, and
//!   `process-packed` in the optional `cairn:operator/packed-operator@0.2.x`, `process-bulk` in
//!   the optional `cairn:operator/bulk-operator@0.2.x` (0.2.1), `process-pickled` in the
//!   optional `cairn:operator/pickled-operator@0.2.x` (0.2.2), `on-timers` in the optional
//!   `cairn:operator/timer-handler@0.2.x`, `on-timers-packed` in the optional
//!   `cairn:operator/packed-timer-handler@0.2.x` (0.2.3), `migrate` in the optional
//!   `cairn:operator/migration@0.2.x` (0.2.5). An interface is found at any 0.2
//!   minor version: a
//!   component built for 0.2.1 exports `...@0.2.1`.
//!
//! WIT has no optional exports: the host finds out here, at load time, which optional exports
//! a component has, so a capability added later never breaks an existing component.

use wasmtime::Store;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, ComponentType, Func, Instance, Lift, Lower,
    TypedFunc,
};

use super::Event;
use super::bindings::InstanceData;
use crate::engine::Engine;

/// The interface a 0.2 component exports its operator in.
pub const OPERATOR_INTERFACE: &str = "cairn:operator/operator@0.2.0";
/// The optional interface of the packed `process`.
pub const PACKED_INTERFACE: &str = "cairn:operator/packed-operator@0.2.0";
/// The optional export that takes and returns batches in the packed encoding.
pub const PACKED_EXPORT: &str = "process-packed";
/// The optional interface of the bulk `process` (0.2.1).
const BULK_INTERFACE: &str = "cairn:operator/bulk-operator@0.2.1";
/// The optional export that takes and returns batches as lists of tuples.
const BULK_EXPORT: &str = "process-bulk";
/// The optional interface of the pickled `process` (0.2.2).
const PICKLED_INTERFACE: &str = "cairn:operator/pickled-operator@0.2.2";
/// The optional export that takes and returns batches as pickles.
const PICKLED_EXPORT: &str = "process-pickled";
const REQUIRED: [&str; 3] = ["init", "process", "on-watermark"];
/// The optional interface of event-time timers that came due.
const TIMERS_INTERFACE: &str = "cairn:operator/timer-handler@0.2.0";
const TIMERS_EXPORT: &str = "on-timers";
/// The optional interface of the packed `on-timers` (0.2.3).
const PACKED_TIMERS_INTERFACE: &str = "cairn:operator/packed-timer-handler@0.2.3";
const PACKED_TIMERS_EXPORT: &str = "on-timers-packed";
/// The optional interface of state migration (0.2.5).
const MIGRATION_INTERFACE: &str = "cairn:operator/migration@0.2.5";
const MIGRATION_EXPORT: &str = "migrate";

/// One entry of state as `migrate` takes it.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub(crate) struct MigrationEntry {
    pub scope: Option<String>,
    pub key: String,
    pub value: Vec<u8>,
}

/// What `migrate` makes of one entry.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift)]
#[component(variant)]
pub enum Rewrite {
    /// Leave it.
    #[component(name = "keep")]
    Keep,
    /// Store these bytes instead.
    #[component(name = "set")]
    Set(Vec<u8>),
    /// Remove it.
    #[component(name = "remove")]
    Remove,
}

/// A timer that came due, as `on-timers` takes it.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub(crate) struct Timer {
    pub key: String,
    pub ts: i64,
}

/// Which contract a component was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `cairn:operator@0.1.x`: world-level exports, unscoped state.
    V0_1,
    /// `cairn:operator@0.2.x`: the `operator` interface, scoped state.
    V0_2,
}

impl Contract {
    /// The package version, as shown to users.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1",
            Contract::V0_2 => "0.2",
        }
    }
}

/// How a batch reaches the component, chosen once at load ([`ProcessPath::choose`]); `F` is
/// the export's index in the component, then its function in an instance.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProcessPath<F> {
    /// `process`: a list of events each way.
    Plain,
    /// `process-packed`: one buffer each way (cairn-sdk, the C SDK).
    Packed(F),
    /// `process-bulk`: lists of tuples (the JavaScript SDK).
    Bulk(F),
    /// `process-pickled`: one pickle each way (the Python SDK).
    Pickled(F),
}

impl<F> ProcessPath<F> {
    /// The preference among what a component exports: pickled, bulk, packed, plain.
    fn choose(packed: Option<F>, bulk: Option<F>, pickled: Option<F>) -> Self {
        match (pickled, bulk, packed) {
            (Some(f), _, _) => ProcessPath::Pickled(f),
            (None, Some(f), _) => ProcessPath::Bulk(f),
            (None, None, Some(f)) => ProcessPath::Packed(f),
            (None, None, None) => ProcessPath::Plain,
        }
    }
}

/// How timers that came due reach the component, chosen once at load ([`TimerPath::choose`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimerPath<F> {
    /// It exports no timer handler: it may not register timers.
    None,
    /// `on-timers`: a list of timers.
    Plain(F),
    /// `on-timers-packed`: one buffer each way (preferred).
    Packed(F),
}

impl<F> TimerPath<F> {
    fn choose(plain: Option<F>, packed: Option<F>) -> Self {
        match (packed, plain) {
            (Some(f), _) => TimerPath::Packed(f),
            (None, Some(f)) => TimerPath::Plain(f),
            (None, None) => TimerPath::None,
        }
    }

    /// Whether timers can fire (and so be registered).
    pub fn enabled(&self) -> bool {
        !matches!(self, TimerPath::None)
    }

    fn bind(self, f: impl FnOnce(F) -> wasmtime::Result<Func>) -> wasmtime::Result<TimerPath<Func>> {
        Ok(match self {
            TimerPath::None => TimerPath::None,
            TimerPath::Plain(ix) => TimerPath::Plain(f(ix)?),
            TimerPath::Packed(ix) => TimerPath::Packed(f(ix)?),
        })
    }
}

/// The exports found in a component.
#[derive(Debug, Clone)]
pub(crate) struct ExportIndices {
    pub contract: Contract,
    init: ComponentExportIndex,
    process: ComponentExportIndex,
    on_watermark: ComponentExportIndex,
    path: ProcessPath<ComponentExportIndex>,
    timers: TimerPath<ComponentExportIndex>,
    /// `migration.migrate`, if exported (0.2.5).
    pub migrate: Option<ComponentExportIndex>,
}

/// The name under which `component` exports `interface` (`pkg/name@0.2.0` as written here) at
/// any patch or minor version of the same 0.x line (`@0.2.1` too), as semver allows.
fn exported_as(engine: &wasmtime::Engine, component: &Component, interface: &str) -> Option<String> {
    let (base, version) = interface.rsplit_once('@')?;
    let line = version.rsplit_once('.').map_or(version, |(l, _)| l);
    let ty = component.component_type();
    ty.exports(engine).find_map(|(name, _)| {
        let (b, v) = name.rsplit_once('@')?;
        let l = v.rsplit_once('.').map_or(v, |(l, _)| l);
        (b == base && l == line).then(|| name.to_string())
    })
}

/// Whether `f` is `func(list<u8>) -> result<list<u8>, string>`.
fn packed_signature(f: &ComponentFunc) -> bool {
    let bytes = |t: &Type| matches!(t, Type::List(l) if l.ty() == Type::U8);
    let params: Vec<Type> = f.params().map(|(_, t)| t).collect();
    let results: Vec<Type> = f.results().collect();
    matches!(params.as_slice(), [p] if bytes(p))
        && matches!(results.as_slice(), [Type::Result(r)]
            if r.ok().as_ref().is_some_and(bytes) && matches!(r.err(), Some(Type::String)))
}

/// The function `func` of the optional exported interface `iface` (its exported name): `None`
/// when the component does not export the interface; a problem when it does but without
/// `func`.
fn optional_func(
    e: &wasmtime::Engine,
    component: &Component,
    iface: &str,
    func: &str,
    problems: &mut Vec<String>,
) -> Option<ComponentExportIndex> {
    match component.component_type().get_export(e, iface).map(|x| x.ty) {
        Some(ComponentItem::ComponentInstance(inst)) => {
            let scope = component.get_export_index(None, iface);
            match inst.get_export(e, func).map(|x| x.ty) {
                Some(ComponentItem::ComponentFunc(_)) => component.get_export_index(scope.as_ref(), func),
                _ => {
                    problems.push(format!("`{iface}` does not export the function `{func}`"));
                    None
                }
            }
        }
        Some(_) => {
            problems.push(format!("export `{iface}` is not an interface"));
            None
        }
        None => None,
    }
}

/// Find the exports of `component`, or name every problem that keeps it from fitting.
pub(crate) fn find(engine: &Engine, component: &Component) -> Result<ExportIndices, Vec<String>> {
    let ty = component.component_type();
    let e = engine.wasmtime();
    let named = |iface: &str| exported_as(e, component, iface).unwrap_or_else(|| iface.to_string());
    let operator_interface = named(OPERATOR_INTERFACE);
    let (contract, scope, scope_ty) = match ty.get_export(e, &operator_interface).map(|x| x.ty) {
        Some(ComponentItem::ComponentInstance(inst)) => {
            let ix = component.get_export_index(None, &operator_interface);
            (Contract::V0_2, ix, Some(inst))
        }
        Some(_) => return Err(vec![format!("export `{OPERATOR_INTERFACE}` is not an interface")]),
        None => (Contract::V0_1, None, None),
    };
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for name in REQUIRED {
        let item = match &scope_ty {
            Some(inst) => inst.get_export(e, name).map(|x| x.ty),
            None => ty.get_export(e, name).map(|x| x.ty),
        };
        match item {
            Some(ComponentItem::ComponentFunc(_)) => {
                found.push(component.get_export_index(scope.as_ref(), name));
            }
            Some(_) => problems.push(format!("export `{name}` is not a function")),
            None if contract == Contract::V0_1 && name == "init" => problems.push(format!(
                "missing export `{OPERATOR_INTERFACE}` (0.2) or `init` (0.1)"
            )),
            None => problems.push(format!("missing export `{name}`")),
        }
    }
    let (packed_scope, packed_item) = match contract {
        Contract::V0_1 => (None, ty.get_export(e, PACKED_EXPORT).map(|x| x.ty)),
        Contract::V0_2 => match ty.get_export(e, &named(PACKED_INTERFACE)).map(|x| x.ty) {
            Some(ComponentItem::ComponentInstance(inst)) => (
                component.get_export_index(None, named(PACKED_INTERFACE)),
                inst.get_export(e, PACKED_EXPORT).map(|x| x.ty),
            ),
            _ => (None, None),
        },
    };
    let packed = match packed_item {
        None => None,
        Some(ComponentItem::ComponentFunc(f)) if packed_signature(&f) => {
            component.get_export_index(packed_scope.as_ref(), PACKED_EXPORT)
        }
        Some(_) => {
            problems.push(format!(
                "export `{PACKED_EXPORT}` is not `func(batch: list<u8>) -> result<list<u8>, string>`"
            ));
            None
        }
    };
    let optional = |iface: &str, func: &str, problems: &mut Vec<String>| match contract {
        Contract::V0_1 => None,
        Contract::V0_2 => optional_func(e, component, &named(iface), func, problems),
    };
    let bulk = optional(BULK_INTERFACE, BULK_EXPORT, &mut problems);
    let pickled = optional(PICKLED_INTERFACE, PICKLED_EXPORT, &mut problems);
    let timers = optional(TIMERS_INTERFACE, TIMERS_EXPORT, &mut problems);
    let packed_timers = optional(PACKED_TIMERS_INTERFACE, PACKED_TIMERS_EXPORT, &mut problems);
    let migrate = optional(MIGRATION_INTERFACE, MIGRATION_EXPORT, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    match found.as_slice() {
        [Some(init), Some(process), Some(on_watermark)] => Ok(ExportIndices {
            contract,
            init: *init,
            process: *process,
            on_watermark: *on_watermark,
            path: ProcessPath::choose(packed, bulk, pickled),
            timers: TimerPath::choose(timers, packed_timers),
            migrate,
        }),
        _ => Err(vec!["an export could not be located".into()]),
    }
}

type InitP<'a> = (&'a str,);
type InitR = (Result<(), String>,);
type ProcessP<'a> = (&'a [Event],);
type EventsR = (Result<Vec<Event>, String>,);
type WatermarkP = (i64,);
type PackedP<'a> = (&'a [u8],);
type PackedR = (Result<Vec<u8>, String>,);
type TimersP<'a> = (&'a [Timer],);
type MigrateP<'a> = (u32, &'a [MigrationEntry]);
type MigrateR = (Result<Vec<Rewrite>, String>,);
/// An event as `process-bulk` takes it.
pub(crate) type BulkEvent<'a> = (&'a str, i64, &'a [u8]);
type BulkP<'a> = (&'a [BulkEvent<'a>],);
/// The events `process-bulk` returns, or its error.
pub(crate) type BulkOut = Result<Vec<(String, i64, Vec<u8>)>, String>;
type BulkR = (BulkOut,);

/// The exports of one instance, their types checked when bound.
pub(crate) struct Exports {
    init: Func,
    process: Func,
    on_watermark: Func,
    /// How batches are passed.
    pub path: ProcessPath<Func>,
    /// How timers are passed.
    pub timers: TimerPath<Func>,
    /// `migrate`, if exported.
    pub migrate: Option<Func>,
}

/// The function at `ix`, checked to be of the type the host calls it with (`P` -> `R`).
fn checked<P, R>(
    store: &mut Store<InstanceData>,
    instance: &Instance,
    ix: ComponentExportIndex,
) -> wasmtime::Result<Func>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let f = instance
        .get_func(&mut *store, ix)
        .ok_or_else(|| wasmtime::Error::msg("an export is not a function"))?;
    f.typed::<P, R>(&*store)?;
    Ok(f)
}

impl ExportIndices {
    /// The exports of `instance`, each checked against the type the host calls it with.
    pub fn bind(&self, store: &mut Store<InstanceData>, instance: &Instance) -> wasmtime::Result<Exports> {
        let init = checked::<InitP<'_>, InitR>(store, instance, self.init)?;
        let process = checked::<ProcessP<'_>, EventsR>(store, instance, self.process)?;
        let on_watermark = checked::<WatermarkP, EventsR>(store, instance, self.on_watermark)?;
        let path = match self.path {
            ProcessPath::Plain => ProcessPath::Plain,
            ProcessPath::Packed(ix) => {
                ProcessPath::Packed(checked::<PackedP<'_>, PackedR>(store, instance, ix)?)
            }
            ProcessPath::Bulk(ix) => ProcessPath::Bulk(checked::<BulkP<'_>, BulkR>(store, instance, ix)?),
            ProcessPath::Pickled(ix) => {
                ProcessPath::Pickled(checked::<PackedP<'_>, PackedR>(store, instance, ix)?)
            }
        };
        let timers = match self.timers {
            TimerPath::Plain(ix) => {
                TimerPath::Plain(ix).bind(|ix| checked::<TimersP<'_>, EventsR>(store, instance, ix))?
            }
            other => other.bind(|ix| checked::<PackedP<'_>, PackedR>(store, instance, ix))?,
        };
        let migrate = self
            .migrate
            .map(|ix| checked::<MigrateP<'_>, MigrateR>(store, instance, ix))
            .transpose()?;
        Ok(Exports {
            init,
            process,
            on_watermark,
            path,
            timers,
            migrate,
        })
    }
}

// SAFETY (every `new_unchecked` below): `bind` checked each function's type against exactly
// these parameter and result types with `Func::typed`, as generated bindings do; the handles
// are only used with the store they were bound in, and each `Func` is passed only to the
// call of its own kind (the variant of `ProcessPath`/`TimerPath` it came in).
impl Exports {
    pub fn init(
        &self,
        store: &mut Store<InstanceData>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        let f = unsafe { TypedFunc::<InitP<'_>, InitR>::new_unchecked(self.init) };
        Ok(f.call(store, (config,))?.0)
    }

    pub fn process(
        &self,
        store: &mut Store<InstanceData>,
        batch: &[Event],
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        let f = unsafe { TypedFunc::<ProcessP<'_>, EventsR>::new_unchecked(self.process) };
        Ok(f.call(store, (batch,))?.0)
    }

    pub fn on_watermark(
        &self,
        store: &mut Store<InstanceData>,
        watermark: i64,
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        let f = unsafe { TypedFunc::<WatermarkP, EventsR>::new_unchecked(self.on_watermark) };
        Ok(f.call(store, (watermark,))?.0)
    }

    /// `on-timers` (the function of [`TimerPath::Plain`]).
    pub fn on_timers(
        func: Func,
        store: &mut Store<InstanceData>,
        fired: &[Timer],
    ) -> wasmtime::Result<Result<Vec<Event>, String>> {
        let f = unsafe { TypedFunc::<TimersP<'_>, EventsR>::new_unchecked(func) };
        f.call(store, (fired,)).map(|r| r.0)
    }

    /// `process-bulk` (the function of [`ProcessPath::Bulk`]).
    pub fn process_bulk(
        func: Func,
        store: &mut Store<InstanceData>,
        batch: &[BulkEvent<'_>],
    ) -> wasmtime::Result<BulkOut> {
        let f = unsafe { TypedFunc::<BulkP<'_>, BulkR>::new_unchecked(func) };
        f.call(store, (batch,)).map(|r| r.0)
    }

    /// `migrate` (the function of [`Exports::migrate`]).
    pub fn migrate(
        func: Func,
        store: &mut Store<InstanceData>,
        from_version: u32,
        page: &[MigrationEntry],
    ) -> wasmtime::Result<Result<Vec<Rewrite>, String>> {
        let f = unsafe { TypedFunc::<MigrateP<'_>, MigrateR>::new_unchecked(func) };
        f.call(store, (from_version, page)).map(|r| r.0)
    }

    /// A call of type `func(list<u8>) -> result<list<u8>, string>`: `process-packed`,
    /// `process-pickled`, `on-timers-packed` (checked in `bind`).
    pub fn bytes_call(
        func: Func,
        store: &mut Store<InstanceData>,
        batch: &[u8],
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let f = unsafe { TypedFunc::<PackedP<'_>, PackedR>::new_unchecked(func) };
        f.call(store, (batch,)).map(|r| r.0)
    }
}
