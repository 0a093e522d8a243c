//! [`OperatorInstance`]: one running operator — a plugin instance in its own wasmtime store,
//! with its state core ([`OperatorState`]) in the store's data. It owns the calls into the
//! guest: each is a transaction on the state (rolled back, and the instance replaced, when the
//! guest fails), passed the way the component takes it ([`ProcessPath`], [`TimerPath`],
//! decided once at load), under the plugin's deadline, fuel and memory limits. What a state
//! call *means* is the state core's; this file only sequences calls.

mod migrate;

use std::sync::Arc;

use cairn_codec::pickle;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};

use super::Event;
use super::batch::Batch;
use super::bindings::InstanceData;
use super::exports::{BulkEvent, Exports, ProcessPath, Timer, TimerPath};
use super::{CallError, Plugin, pyjson};
use crate::engine::Engine;
use crate::sandbox::{Limiter, Limits, no_authority_wasi};
use crate::state::{KeyGroups, OperatorState, StateHolder, StateQuotas};

pub use migrate::Migrated;

/// Builds an [`OperatorInstance`]: configuration, limits and a name.
#[derive(Debug, Clone)]
pub struct OperatorBuilder {
    plugin: Plugin,
    name: Option<String>,
    config: String,
    limits: Limits,
    parallelism: u32,
}

impl OperatorBuilder {
    pub(crate) fn new(plugin: Plugin) -> Self {
        Self {
            plugin,
            name: None,
            config: "{}".into(),
            limits: Limits::default(),
            parallelism: 1,
        }
    }

    /// How many instances a job runs of it, each owning a range of the key groups (default 1;
    /// see `runtime::Stage`).
    pub fn parallelism(mut self, n: u32) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// The parallelism asked for.
    pub fn parallelism_ref(&self) -> u32 {
        self.parallelism
    }

    /// The operator's configuration, a JSON text passed to its `init`.
    pub fn config(mut self, json: impl Into<String>) -> Self {
        self.config = json.into();
        self
    }

    /// The operator's limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The name used in logs, errors and checkpoints (default: the plugin's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The operator's name: the one given, or the plugin's.
    pub fn name_or_plugin(&self) -> &str {
        self.name.as_deref().unwrap_or(self.plugin.name())
    }

    /// The plugin.
    pub fn plugin_ref(&self) -> &Plugin {
        &self.plugin
    }

    /// The configuration text.
    pub fn config_ref(&self) -> &str {
        &self.config
    }

    /// The limits (each instance's).
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// Instantiate the plugin and call its `init` with the configuration.
    pub fn build(self) -> Result<OperatorInstance, CallError> {
        self.build_with_state(StateHolder::new())
    }

    /// Like [`OperatorBuilder::build`], starting from restored state.
    pub fn build_with_state(self, state: StateHolder) -> Result<OperatorInstance, CallError> {
        self.build_owning(state, KeyGroups::default())
    }

    /// Like [`OperatorBuilder::build_with_state`], for an instance that owns only the key
    /// groups `groups`: the state core refuses its reads, writes and timers of other keys.
    pub fn build_owning(self, state: StateHolder, groups: KeyGroups) -> Result<OperatorInstance, CallError> {
        let name: Arc<str> = self.name.as_deref().unwrap_or(self.plugin.name()).into();
        let ttl_ms = self
            .limits
            .state_ttl
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        let state = OperatorState::new(state, quotas(&self.limits), ttl_ms, groups);
        let (store, exports) = instantiate(&self.plugin, &name, &self.limits, state)?;
        let mut op = OperatorInstance {
            plugin: self.plugin,
            name,
            config: self.config,
            limits: self.limits,
            store,
            exports,
            live: true,
            fuel_consumed: 0,
        };
        op.init()?;
        Ok(op)
    }
}

/// The most timers passed to one `on-timers` call.
const TIMERS_PER_CALL: usize = 4096;

fn quotas(limits: &Limits) -> StateQuotas {
    StateQuotas {
        max_keys: limits.max_keys,
        max_state_bytes: limits.max_state_bytes,
        max_value_bytes: limits.max_value_bytes,
        max_timers: limits.max_timers,
    }
}

fn instantiate(
    plugin: &Plugin,
    name: &Arc<str>,
    limits: &Limits,
    state: OperatorState,
) -> Result<(Store<InstanceData>, Exports), CallError> {
    let engine = &plugin.inner.engine;
    let data = InstanceData {
        wasi: no_authority_wasi(name),
        table: ResourceTable::new(),
        limiter: Limiter::new(limits.memory_bytes, limits.table_elements),
        state,
        plugin: name.clone(),
        deadline_ticks: Engine::ticks_for(limits.timeout),
    };
    let mut store = Store::new(engine.wasmtime(), data);
    store.limiter(|d| &mut d.limiter);
    store.set_epoch_deadline(Engine::ticks_for(limits.timeout));
    if engine.options().fuel {
        let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
    }
    let instantiated = plugin
        .inner
        .pre
        .instantiate(&mut store)
        .and_then(|instance| plugin.inner.exports.bind(&mut store, &instance));
    match instantiated {
        Ok(exports) => {
            store.data_mut().state.enable_timers(exports.timers.enabled());
            Ok((store, exports))
        }
        Err(e) => {
            let mem = store.data().limiter.memory_denied;
            Err(if mem {
                CallError::Memory {
                    plugin: name.to_string(),
                    call: "instantiate",
                    limit: limits.memory_bytes,
                }
            } else {
                CallError::Instantiate {
                    plugin: name.to_string(),
                    message: format!("{e:#}"),
                }
            })
        }
    }
}

/// One running operator: a plugin instance in its own store, with its own state.
///
/// Every call is a transaction on the state: if the plugin traps, runs out of a limit or
/// returns an error, the call's writes are discarded and the instance is replaced by a fresh
/// one (re-initialised with the same configuration) before the next call.
pub struct OperatorInstance {
    plugin: Plugin,
    name: Arc<str>,
    config: String,
    limits: Limits,
    store: Store<InstanceData>,
    exports: Exports,
    live: bool,
    /// Fuel burnt by every call so far (counted only when the engine meters fuel).
    fuel_consumed: u64,
}

impl std::fmt::Debug for OperatorInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorInstance")
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .finish()
    }
}

impl OperatorInstance {
    /// Fuel consumed by every call so far, when the engine meters fuel (`None` otherwise).
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.plugin
            .inner
            .engine
            .options()
            .fuel
            .then_some(self.fuel_consumed)
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin it runs.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Its configuration text.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its state.
    pub fn state(&self) -> &StateHolder {
        self.store.data().state.holder()
    }

    /// The key groups of its job and the range it owns.
    pub fn key_groups(&self) -> &KeyGroups {
        self.store.data().state.key_groups()
    }

    /// Its name, configuration and state at once (a checkpoint cut reads the first two while
    /// it takes the state's changes).
    pub fn parts_mut(&mut self) -> (&str, &str, &mut StateHolder) {
        (&self.name, &self.config, self.store.data_mut().state.holder_mut())
    }

    fn init(&mut self) -> Result<(), CallError> {
        let config = std::mem::take(&mut self.config);
        let r = self.call("init", |x, s| x.init(s, &config));
        self.config = config;
        r.map(|_| ())
    }

    fn ensure_live(&mut self) -> Result<(), CallError> {
        if self.live {
            return Ok(());
        }
        // The state (with its watermark and counts) moves to the fresh instance.
        let state = std::mem::take(&mut self.store.data_mut().state);
        let (store, exports) = instantiate(&self.plugin, &self.name, &self.limits, state)?;
        self.store = store;
        self.exports = exports;
        self.live = true;
        self.init()
    }

    /// Process one batch; returns the events the operator emitted.
    pub fn process(&mut self, batch: &[Event]) -> Result<Vec<Event>, CallError> {
        self.ensure_live()?;
        if let ProcessPath::Plain = self.exports.path {
            let state = &mut self.store.data_mut().state;
            state.batch_began(batch.iter().map(|e| (e.key.as_str(), e.ts)));
            let out = self.call("process", |x, s| x.process(s, batch));
            self.store.data_mut().state.batch_ended();
            return out;
        }
        let batch = Batch::from_events(batch).map_err(|e| CallError::Input {
            plugin: self.name.to_string(),
            message: e.to_string(),
        })?;
        Ok(self.process_batch(&batch)?.to_events())
    }

    /// Process one batch in the packed form: with a plugin that exports `process-packed`
    /// (every cairn-sdk plugin), the batch crosses as one buffer each way and no event is
    /// allocated on its own.
    pub fn process_batch(&mut self, batch: &Batch) -> Result<Batch, CallError> {
        self.ensure_live()?;
        self.store
            .data_mut()
            .state
            .batch_began(batch.iter().map(|e| (e.key, e.ts)));
        let out = self.pass_batch(batch);
        self.store.data_mut().state.batch_ended();
        out
    }

    /// The batch to the guest the way it takes it.
    fn pass_batch(&mut self, batch: &Batch) -> Result<Batch, CallError> {
        match self.exports.path {
            ProcessPath::Pickled(f) => self.process_pickled(f, batch),
            ProcessPath::Bulk(f) => {
                let events: Vec<BulkEvent<'_>> = batch.iter().map(|e| (e.key, e.ts, e.value)).collect();
                let out = self.call("process", |_, s| Exports::process_bulk(f, s, &events))?;
                let mut emitted =
                    Batch::with_capacity(out.iter().map(|(k, _, v)| k.len() + v.len() + 16).sum());
                for (key, ts, value) in &out {
                    emitted.push(key, *ts, value).map_err(|e| CallError::Guest {
                        plugin: self.name.to_string(),
                        call: "process",
                        message: e.to_string(),
                    })?;
                }
                Ok(emitted)
            }
            ProcessPath::Packed(f) => self.call("process", |_, s| {
                let out = Exports::bytes_call(f, s, batch.as_bytes())?;
                Ok(out.and_then(|bytes| {
                    Batch::from_guest(bytes).map_err(|e| format!("returned a malformed packed batch: {e}"))
                }))
            }),
            ProcessPath::Plain => {
                let events = batch.to_events();
                let out = self.call("process", |x, s| x.process(s, &events))?;
                self.to_batch(&out)
            }
        }
    }

    /// The batch through `process-pickled` (CPython guests): one pickle each way.
    fn process_pickled(&mut self, f: wasmtime::component::Func, batch: &Batch) -> Result<Batch, CallError> {
        let mut w = pickle::Writer::new(batch.as_bytes().len() + 8 * batch.len());
        for e in batch.iter() {
            w.str(e.key);
            w.int(e.ts);
            w.bytes(e.value);
            w.tuple(3);
        }
        let input = w.finish();
        self.call("process", |_, s| {
            let out = Exports::bytes_call(f, s, &input)?;
            Ok(out.and_then(|bytes| {
                unpickle_events(&bytes).map_err(|e| format!("returned a malformed pickled batch: {e}"))
            }))
        })
    }

    fn to_batch(&self, events: &[Event]) -> Result<Batch, CallError> {
        Batch::from_events(events).map_err(|e| CallError::Guest {
            plugin: self.name.to_string(),
            call: "process",
            message: e.to_string(),
        })
    }

    /// Tell the operator event time reached `watermark`: its timers with `ts <= watermark`
    /// fire first (`on-timers`, in (ts, key) order, including timers registered meanwhile at a
    /// time already reached), then `on-watermark`. Returns the events emitted, in that order.
    pub fn on_watermark_batch(&mut self, watermark: i64) -> Result<Batch, CallError> {
        self.ensure_live()?;
        let state = &mut self.store.data_mut().state;
        // One transaction for expiry, the timers and the watermark, unless a batch's is open.
        let owned = !state.in_transaction();
        state.begin();
        let expired = state.advance_watermark(watermark).map_err(|e| CallError::Guest {
            plugin: self.name.to_string(),
            call: "on-watermark",
            message: format!("state TTL clean-up: {e}"),
        });
        let result = expired
            .and_then(|_| self.fire_timers(watermark))
            .and_then(|mut out| {
                let emitted = self.call("on-watermark", |x, s| x.on_watermark(s, watermark))?;
                out.append(&self.to_batch(&emitted)?);
                Ok(out)
            });
        if owned {
            // A failed call rolled back already; a failed clean-up has not.
            let state = &mut self.store.data_mut().state;
            if result.is_ok() {
                state.commit();
            } else {
                state.rollback();
            }
        }
        result
    }

    /// [`OperatorInstance::on_watermark_batch`], with the emitted events as a list.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<Vec<Event>, CallError> {
        Ok(self.on_watermark_batch(watermark)?.to_events())
    }

    /// State entries expired by state TTL since this operator was built.
    pub fn expired_keys(&self) -> u64 {
        self.store.data().state.expired()
    }

    /// The job's watermark as this operator knows it (`timers.current-watermark`).
    pub fn watermark(&self) -> Option<i64> {
        self.store.data().state.watermark()
    }

    /// Set the watermark without telling the operator (a restore: it saw it before).
    pub fn set_watermark(&mut self, watermark: Option<i64>) {
        self.store.data_mut().state.set_watermark(watermark);
    }

    /// Fire every timer with `ts <= watermark`, in calls of at most [`TIMERS_PER_CALL`]:
    /// through `on-timers-packed` when the component exports it (the timers in one buffer,
    /// the emitted events in another), else `on-timers`.
    fn fire_timers(&mut self, watermark: i64) -> Result<Batch, CallError> {
        let mut out = Batch::new();
        let mut too_large = None;
        loop {
            match self.exports.timers {
                TimerPath::None => return Ok(out),
                TimerPath::Packed(f) => {
                    // Room for the timers due (a stream key of ~16 bytes each, as a guess).
                    let pending = self.store.data().state.timer_usage().0 as usize;
                    let mut fired = Batch::with_capacity(pending.min(TIMERS_PER_CALL) * 32);
                    let n =
                        self.store
                            .data_mut()
                            .state
                            .take_due_timers(watermark, TIMERS_PER_CALL, |key, ts| {
                                if let Err(e) = fired.push(key, ts, &[]) {
                                    too_large.get_or_insert(e);
                                }
                            });
                    if let Some(e) = too_large.take() {
                        return Err(CallError::Guest {
                            plugin: self.name.to_string(),
                            call: "on-timers",
                            message: e.to_string(),
                        });
                    }
                    if n == 0 {
                        return Ok(out);
                    }
                    out.append(&self.call("on-timers", |_, s| {
                        let emitted = Exports::bytes_call(f, s, fired.as_bytes())?;
                        Ok(emitted.and_then(|bytes| {
                            Batch::from_guest(bytes)
                                .map_err(|e| format!("returned a malformed packed batch: {e}"))
                        }))
                    })?);
                }
                TimerPath::Plain(f) => {
                    let mut fired = Vec::new();
                    self.store
                        .data_mut()
                        .state
                        .take_due_timers(watermark, TIMERS_PER_CALL, |key, ts| {
                            fired.push(Timer {
                                key: key.to_string(),
                                ts,
                            })
                        });
                    if fired.is_empty() {
                        return Ok(out);
                    }
                    let emitted = self.call("on-timers", |_, s| Exports::on_timers(f, s, &fired))?;
                    out.append(&self.to_batch(&emitted)?);
                }
            }
        }
    }

    /// Open a batch transaction spanning several calls (e.g. `process` then `on-watermark`):
    /// the calls then neither commit nor roll back on their own; a failing call still rolls
    /// back everything since this point.
    pub fn begin_batch(&mut self) {
        self.store.data_mut().state.begin();
    }

    /// Keep the writes since [`OperatorInstance::begin_batch`].
    pub fn commit_batch(&mut self) {
        self.store.data_mut().state.commit();
    }

    /// Discard the writes since [`OperatorInstance::begin_batch`] (e.g. because a later
    /// operator of the pipeline failed).
    pub fn rollback_batch(&mut self) {
        self.store.data_mut().state.rollback();
    }

    fn call<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&Exports, &mut Store<InstanceData>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, CallError> {
        self.store
            .set_epoch_deadline(Engine::ticks_for(self.limits.timeout));
        let fuel = self.plugin.inner.engine.options().fuel;
        let budget = self.limits.fuel.unwrap_or(u64::MAX);
        if fuel {
            let _ = self.store.set_fuel(budget);
        }
        let owned = {
            let data = self.store.data_mut();
            data.limiter.reset();
            let outer = data.state.in_transaction();
            data.state.begin();
            !outer
        };
        let result = f(&self.exports, &mut self.store);
        if fuel {
            let left = self.store.get_fuel().unwrap_or(0);
            self.fuel_consumed = self.fuel_consumed.saturating_add(budget.saturating_sub(left));
        }
        match result {
            Ok(Ok(out)) => {
                if owned {
                    self.store.data_mut().state.commit();
                }
                Ok(out)
            }
            Ok(Err(message)) => {
                self.fail();
                Err(CallError::Guest {
                    plugin: self.name.to_string(),
                    call,
                    message,
                })
            }
            Err(err) => {
                self.fail();
                Err(self.classify(call, err))
            }
        }
    }

    fn fail(&mut self) {
        self.store.data_mut().state.rollback();
        self.live = false;
    }

    fn classify(&self, call: &'static str, err: wasmtime::Error) -> CallError {
        let plugin = self.name.to_string();
        let data = self.store.data();
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Timeout {
                plugin,
                call,
                timeout: self.limits.timeout,
            },
            Some(Trap::OutOfFuel) => CallError::OutOfFuel {
                plugin,
                call,
                fuel: self.limits.fuel.unwrap_or(u64::MAX),
            },
            _ if data.limiter.memory_denied || data.limiter.table_denied => CallError::Memory {
                plugin,
                call,
                limit: self.limits.memory_bytes,
            },
            _ => CallError::Trap {
                plugin,
                call,
                message: format!("{err:?}"),
            },
        }
    }
}

/// The emitted events of `process-pickled`: a pickled list of `(key, ts, value)` tuples, the
/// value bytes as they are, or a marshalled Python value (`out.emit_json`) written here as JSON.
fn unpickle_events(bytes: &[u8]) -> Result<Batch, String> {
    let malformed = |e: cairn_codec::Malformed| e.to_string();
    let mut d = pickle::Decoder::new(bytes, "the emitted events").map_err(malformed)?;
    let mut out = Batch::with_capacity(bytes.len());
    let mut json = Vec::new();
    let mut n = 0usize;
    while d.next_item().map_err(malformed)? {
        let (key, ts, value) = (
            d.str().map_err(malformed)?,
            d.int().map_err(malformed)?,
            d.event_value().map_err(malformed)?,
        );
        d.end_tuple(3).map_err(malformed)?;
        let value = match value {
            pickle::EventValue::Raw(b) => b,
            pickle::EventValue::Marshalled(m) => {
                json.clear();
                pyjson::write(m, &mut json).map_err(|e| format!("emitted event {n} (key {key:?}): {e}"))?;
                &json[..]
            }
        };
        out.push(key, ts, value).map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(out)
}
