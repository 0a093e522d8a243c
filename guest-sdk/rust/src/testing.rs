//! Run an operator natively, without building wasm: feed events and watermarks, check what it
//! emits and what it keeps in state. State is the in-memory map of [`crate::state`] (private to
//! the test's thread), and each call is a transaction like in the host: if the operator
//! returns an error, the call's state writes are undone.
//!
//! ```
//! use cairn_sdk::testing::Harness;
//! use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState};
//!
//! struct Sum;
//! impl Operator for Sum {
//!     fn init(_: &Config) -> Result<Self, Error> { Ok(Sum) }
//!     fn on_event(&mut self, e: Event, out: &mut Output) -> Result<(), Error> {
//!         let x: f64 = e.value_json()?;
//!         // In the scope of `e.key`: this key's total.
//!         let total = ValueState::<f64>::new("total").update(|t| t.unwrap_or(0.0) + x)?;
//!         out.emit_json(e.key, e.ts, &total)
//!     }
//! }
//!
//! let mut h = Harness::<Sum>::new("{}")?;
//! h.send("a", 1, 2.5)?;
//! let out = h.send("a", 2, 1.0)?;
//! assert_eq!(out[0].value_json::<f64>()?, 3.5);
//! assert_eq!(h.keyed_json("a", "total"), Some(serde_json::json!(3.5)));
//! # Ok::<(), cairn_sdk::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Config, Error, Event, Operator, Output, state};

/// An operator under test with its own (thread-local) state.
pub struct Harness<O: Operator> {
    op: O,
    config: String,
}

impl<O: Operator> Harness<O> {
    /// Start with empty state and `config` (JSON text).
    pub fn new(config: &str) -> Result<Self, Error> {
        Self::with_state(config, BTreeMap::new())
    }

    /// Start with the given state (e.g. what a previous harness left, to test restarts).
    pub fn with_state(config: &str, entries: BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        state::native::reset(entries);
        crate::timers::backend::set_watermark(None);
        let op = O::init(&Config::new(config))?;
        Ok(Self {
            op,
            config: config.to_string(),
        })
    }

    /// Simulate a restart: a fresh operator from the same configuration, same state (timers
    /// included) and watermark.
    pub fn restart(self) -> Result<Self, Error> {
        let entries = state::native::snapshot();
        let watermark = crate::timers::watermark();
        let h = Self::with_state(&self.config, entries)?;
        crate::timers::backend::set_watermark(watermark);
        Ok(h)
    }

    fn transaction(
        &mut self,
        f: impl FnOnce(&mut O, &mut Output) -> Result<(), Error>,
    ) -> Result<Vec<Event>, Error> {
        let before = state::native::snapshot();
        state::__reset_scope();
        let mut out = Output::new();
        match f(&mut self.op, &mut out) {
            Ok(()) => Ok(out.take()),
            Err(e) => {
                state::native::reset(before);
                Err(e)
            }
        }
    }

    /// Migrate the state as the host does when this operator resumes state of the older state
    /// version `from_version`: every entry (not the timers) to [`Operator::migrate`], in its
    /// scope, and its rewrite applied; one transaction. Returns the rewrites, in key order.
    pub fn migrate(&mut self, from_version: u32) -> Result<Vec<crate::migration::Rewrite>, Error> {
        use crate::migration::{Entry, Rewrite};
        let entries: Vec<Entry> = state::native::snapshot()
            .into_iter()
            .filter_map(|(k, value)| {
                let (scope, key) = cairn_codec::scoped::split(&k).ok()?;
                Some(Entry {
                    scope: scope.map(str::to_string),
                    key: key.to_string(),
                    value,
                })
            })
            .collect();
        let mut rewrites = Vec::with_capacity(entries.len());
        self.transaction(|op, _| {
            for e in &entries {
                let _scope = match &e.scope {
                    Some(k) => state::enter_key(k),
                    None => state::enter_operator(),
                };
                let r = op.migrate(from_version, e)?;
                match &r {
                    Rewrite::Keep => {}
                    Rewrite::Set(v) => state::set(&e.key, v)?,
                    Rewrite::Remove => {
                        state::remove(&e.key);
                    }
                }
                rewrites.push(r);
            }
            Ok(())
        })?;
        Ok(rewrites)
    }

    /// Process a batch of events; returns what the operator emitted.
    pub fn batch(&mut self, events: Vec<Event>) -> Result<Vec<Event>, Error> {
        self.transaction(|op, out| op.on_batch(events, out))
    }

    /// Process one event whose value is `value` as JSON.
    pub fn send<T: Serialize>(&mut self, key: &str, ts: i64, value: T) -> Result<Vec<Event>, Error> {
        let e = Event::json(key, ts, &value)?;
        self.batch(vec![e])
    }

    /// Advance event time to `watermark` as the host does: the timers with `ts <= watermark`
    /// fire ([`Operator::before_timers`] with each call's worth, then [`Operator::on_timer`],
    /// in (ts, key) order, each in its key's scope, including
    /// timers registered meanwhile at a time already reached), then
    /// [`Operator::on_watermark`]; one transaction. Returns what the operator emitted.
    pub fn watermark(&mut self, watermark: i64) -> Result<Vec<Event>, Error> {
        let before = crate::timers::backend::watermark();
        crate::timers::backend::set_watermark(Some(watermark));
        let r = self.transaction(|op, out| {
            loop {
                let due = crate::timers::backend::take_due(watermark, 4096);
                if due.is_empty() {
                    break;
                }
                let due: Vec<Event> = due
                    .into_iter()
                    .map(|(key, ts)| Event::new(key, ts, Vec::new()))
                    .collect();
                crate::operator::fire_timers(op, &due, out)?;
            }
            op.on_watermark(watermark, out)
        });
        if r.is_err() {
            crate::timers::backend::set_watermark(before);
        }
        r
    }

    /// A batch as `cairn run` feeds it: the events, then the watermark advanced to their
    /// highest `ts` if that is beyond the current one ([`Harness::watermark`]). Returns
    /// everything emitted, in order.
    pub fn feed(&mut self, events: Vec<Event>) -> Result<Vec<Event>, Error> {
        let max = events.iter().map(|e| e.ts).max();
        let mut out = self.batch(events)?;
        if let Some(m) = max
            && crate::timers::watermark().is_none_or(|w| m > w)
        {
            out.extend(self.watermark(m)?);
        }
        Ok(out)
    }

    /// The current watermark (as [`crate::timers::watermark`] answers the operator).
    pub fn current_watermark(&self) -> Option<i64> {
        crate::timers::watermark()
    }

    /// The whole state.
    pub fn state(&self) -> BTreeMap<String, Vec<u8>> {
        state::native::snapshot()
    }

    /// The operator-wide entry `key` as JSON, if it is JSON.
    pub fn state_json(&self, key: &str) -> Option<serde_json::Value> {
        state::with_operator(|| state::get(key)).and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// The entry `key` of stream key `scope`'s scope, decoded from JSON.
    pub fn keyed_json(&self, scope: &str, key: &str) -> Option<serde_json::Value> {
        state::with_key(scope, || state::get(key)).and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// The operator-wide entry `key` decoded as `T`.
    pub fn state_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        state::with_operator(|| state::get_as(key))
    }

    /// The operator itself.
    pub fn operator(&mut self) -> &mut O {
        &mut self.op
    }
}

/// The values of `events` decoded as JSON (for compact assertions).
pub fn values(events: &[Event]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|e| serde_json::from_slice(&e.value).unwrap_or(serde_json::Value::Null))
        .collect()
}
