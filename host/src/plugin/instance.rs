use std::sync::Arc;

use cairn_codec::pickle;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};

use super::Event;
use super::batch::Batch;
use super::exports::{BulkEvent, Exports, Timer};
use super::host::StoreData;
use super::{CallError, Plugin, pyjson};
use crate::engine::Engine;
use crate::sandbox::{Limiter, Limits, no_authority_wasi};
use crate::state::{Key, StateHolder, StateQuotas};

/// Builds an [`OperatorInstance`]: configuration, limits and a name.
#[derive(Debug, Clone)]
pub struct OperatorBuilder {
    plugin: Plugin,
    name: Option<String>,
    config: String,
    limits: Limits,
}

impl OperatorBuilder {
    pub(crate) fn new(plugin: Plugin) -> Self {
        Self {
            plugin,
            name: None,
            config: "{}".into(),
            limits: Limits::default(),
        }
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

    /// Instantiate the plugin and call its `init` with the configuration.
    pub fn build(self) -> Result<OperatorInstance, CallError> {
        self.build_with_state(StateHolder::new())
    }

    /// Like [`OperatorBuilder::build`], starting from restored state.
    pub fn build_with_state(self, mut state: StateHolder) -> Result<OperatorInstance, CallError> {
        let name: Arc<str> = self.name.as_deref().unwrap_or(self.plugin.name()).into();
        state.set_quotas(quotas(&self.limits));
        let (store, exports) = instantiate(&self.plugin, &name, &self.limits, state, None)?;
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
    state: StateHolder,
    watermark: Option<i64>,
) -> Result<(Store<StoreData>, Exports), CallError> {
    let engine = &plugin.inner.engine;
    let data = StoreData {
        wasi: no_authority_wasi(name),
        table: ResourceTable::new(),
        limiter: Limiter::new(limits.memory_bytes, limits.table_elements),
        state,
        plugin: name.clone(),
        key_buf: String::new(),
        blob_buf: Vec::new(),
        deadline_ticks: Engine::ticks_for(limits.timeout),
        watermark,
        timers_enabled: false,
        ttl_ms: limits
            .state_ttl
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        ttl_buf: String::new(),
        expired_keys: 0,
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
            store.data_mut().timers_enabled = exports.has_timers();
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
    store: Store<StoreData>,
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
        &self.store.data().state
    }

    /// Its name, configuration and state at once (a checkpoint cut reads the first two while
    /// it takes the state's changes).
    pub fn parts_mut(&mut self) -> (&str, &str, &mut StateHolder) {
        (&self.name, &self.config, &mut self.store.data_mut().state)
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
        let state = std::mem::take(&mut self.store.data_mut().state);
        let watermark = self.store.data().watermark;
        let expired = self.store.data().expired_keys;
        let (store, exports) = instantiate(&self.plugin, &self.name, &self.limits, state, watermark)?;
        self.store = store;
        self.store.data_mut().expired_keys = expired;
        self.exports = exports;
        self.live = true;
        self.init()
    }

    /// Process one batch; returns the events the operator emitted.
    pub fn process(&mut self, batch: &[Event]) -> Result<Vec<Event>, CallError> {
        if !self.exports.has_packed() && !self.exports.has_bulk() && !self.exports.has_pickled() {
            self.ensure_live()?;
            return self.call("process", |x, s| x.process(s, batch));
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
        if self.exports.has_pickled() {
            return self.process_pickled(batch);
        }
        if self.exports.has_bulk() {
            let events: Vec<BulkEvent<'_>> = batch.iter().map(|e| (e.key, e.ts, e.value)).collect();
            let out = self.call("process", |x, s| {
                x.process_bulk(s, &events)
                    .unwrap_or_else(|| Ok(Err("no process-bulk".into())))
            })?;
            let mut emitted = Batch::with_capacity(out.iter().map(|(k, _, v)| k.len() + v.len() + 16).sum());
            for (key, ts, value) in &out {
                emitted.push(key, *ts, value).map_err(|e| CallError::Guest {
                    plugin: self.name.to_string(),
                    call: "process",
                    message: e.to_string(),
                })?;
            }
            return Ok(emitted);
        }
        if !self.exports.has_packed() {
            let events = batch.to_events();
            let out = self.call("process", |x, s| x.process(s, &events))?;
            return self.to_batch(&out);
        }
        self.call("process", |x, s| {
            let out = x
                .process_packed(s, batch.as_bytes())
                .unwrap_or_else(|| Ok(Err("no process-packed".into())))?;
            Ok(out.and_then(|bytes| {
                Batch::from_guest(bytes).map_err(|e| format!("returned a malformed packed batch: {e}"))
            }))
        })
    }

    /// The batch through `process-pickled` (CPython guests): one pickle each way.
    fn process_pickled(&mut self, batch: &Batch) -> Result<Batch, CallError> {
        let mut w = pickle::Writer::new(batch.as_bytes().len() + 8 * batch.len());
        for e in batch.iter() {
            w.str(e.key);
            w.int(e.ts);
            w.bytes(e.value);
            w.tuple(3);
        }
        let input = w.finish();
        self.call("process", |x, s| {
            let out = x
                .process_pickled(s, &input)
                .unwrap_or_else(|| Ok(Err("no process-pickled".into())))?;
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
        let data = self.store.data_mut();
        let old = data.watermark.replace(watermark);
        // One transaction for expiry, the timers and the watermark, unless a batch's is open.
        let owned = !data.state.in_transaction();
        data.state.begin();
        let expired = super::host::ttl::advance(data, old, watermark).map_err(|e| CallError::Guest {
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
        self.store.data().expired_keys
    }

    /// The job's watermark as this operator knows it (`timers.current-watermark`).
    pub fn watermark(&self) -> Option<i64> {
        self.store.data().watermark
    }

    /// Set the watermark without telling the operator (a restore: it saw it before).
    pub fn set_watermark(&mut self, watermark: Option<i64>) {
        self.store.data_mut().watermark = watermark;
    }

    /// Fire every timer with `ts <= watermark`, in calls of at most [`TIMERS_PER_CALL`]:
    /// through `on-timers-packed` when the component exports it (the timers in one buffer,
    /// the emitted events in another), else `on-timers`.
    fn fire_timers(&mut self, watermark: i64) -> Result<Batch, CallError> {
        let mut out = Batch::new();
        if !self.exports.has_timers() || self.store.data().state.timers() == 0 {
            return Ok(out);
        }
        let bound = cairn_codec::timers::after_ts(watermark);
        loop {
            let entries =
                self.store
                    .data()
                    .state
                    .list_keys_below(cairn_codec::timers::PREFIX, &bound, TIMERS_PER_CALL);
            let due: Vec<(&Key, &str, i64)> = entries
                .iter()
                .filter_map(|k| {
                    let (key, ts) = cairn_codec::timers::parse(k)?;
                    Some((k, key, ts))
                })
                .collect();
            if due.is_empty() {
                return Ok(out);
            }
            // A timer fires once: it is gone before its call (and back if the batch fails).
            // (Removed by the entry listed: its key is not built again.)
            let state = &mut self.store.data_mut().state;
            for (k, _, _) in &due {
                state.remove(k);
            }
            if self.exports.has_packed_timers() {
                let mut fired = Batch::with_capacity(due.iter().map(|(_, key, _)| key.len() + 16).sum());
                for (_, key, ts) in &due {
                    fired.push(key, *ts, &[]).map_err(|e| CallError::Guest {
                        plugin: self.name.to_string(),
                        call: "on-timers",
                        message: e.to_string(),
                    })?;
                }
                out.append(&self.call("on-timers", |x, s| {
                    let emitted = x
                        .on_timers_packed(s, fired.as_bytes())
                        .unwrap_or_else(|| Ok(Err("no on-timers-packed".into())))?;
                    Ok(emitted.and_then(|bytes| {
                        Batch::from_guest(bytes)
                            .map_err(|e| format!("returned a malformed packed batch: {e}"))
                    }))
                })?);
            } else {
                let fired: Vec<Timer> = due
                    .iter()
                    .map(|(_, key, ts)| Timer {
                        key: key.to_string(),
                        ts: *ts,
                    })
                    .collect();
                let emitted = self.call("on-timers", |x, s| {
                    x.on_timers(s, &fired).unwrap_or_else(|| Ok(Ok(Vec::new())))
                })?;
                out.append(&self.to_batch(&emitted)?);
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
        f: impl FnOnce(&Exports, &mut Store<StoreData>) -> wasmtime::Result<Result<T, String>>,
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
