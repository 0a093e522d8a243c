//! [`OperatorState`]: what a state operation of an operator instance *means*, written once.
//!
//! Every binding of a guest's state calls (the WIT `state`, `packed-state`, `bulk-state`,
//! `pickled-state`, `timers` and `packed-timers` interfaces, `wasi:keyvalue`, the 0.1.x
//! functions) decodes its arguments, calls one method here and encodes the answer. Here, and
//! only here:
//!
//! * a (scope, key) pair becomes the scoped key it is stored under (`cairn_codec::scoped`);
//! * a keyed scope's key group is checked against the groups the instance owns
//!   ([`KeyGroups`]): reads, writes and timers of another instance's keys are refused, and so
//!   are writes to the operator-wide scope by one of several instances;
//! * state TTL applies (an expired scope reads as empty; a write first clears it and records
//!   its write time — see `ttl.rs`);
//! * quotas refuse writes, changes are tracked for the next checkpoint and undone when a batch
//!   fails (the [`StateHolder`] underneath);
//! * timers are entries under keys no guest can name (`cairn_codec::timers`).
//!
//! The reused buffers a state call needs (a scoped key, a TTL record's key, a copy of a packed
//! request) live here too, so no binding keeps one.

use cairn_codec::{scoped, timers};

use super::batch_times::BatchTimes;
use super::{KeyGroups, StateError, StateHolder, StateQuotas, Value};

/// Timers registered and not yet fired, and the `max-timers` quota (`packed-timers.usage`).
pub type TimerUsage = (u64, u64);

/// The state of one operator instance with every rule a state operation obeys.
#[derive(Debug, Default)]
pub struct OperatorState {
    pub(super) holder: StateHolder,
    /// State TTL in event-time ms; `None`: keyed scopes never expire.
    pub(super) ttl_ms: Option<i64>,
    /// The job's watermark as of the last batch.
    pub(super) watermark: Option<i64>,
    /// The groups this instance owns.
    groups: KeyGroups,
    /// Per stream key, the newest event time of the batch being processed (TTL stamps).
    pub(super) batch_times: BatchTimes,
    /// Whether the component can be told of timers (else registering one is refused).
    timers: bool,
    /// Entries expired by TTL in this instance's life.
    pub(super) expired: u64,
    /// Scratch: the scoped key of the operation.
    key: String,
    /// Scratch: a TTL record's key.
    pub(super) aux: String,
    /// Scratch: a packed request copied out of guest memory.
    scratch: Vec<u8>,
    /// Scratch: a call's string arguments (scope, key) copied out of guest memory.
    args: String,
}

impl OperatorState {
    /// The rules over `holder` (restored or new): its quotas, state TTL, the owned groups.
    pub fn new(mut holder: StateHolder, quotas: StateQuotas, ttl_ms: Option<i64>, groups: KeyGroups) -> Self {
        holder.set_quotas(quotas);
        Self {
            holder,
            ttl_ms,
            groups,
            ..Self::default()
        }
    }

    /// The entries, for checkpoints and inspection.
    pub fn holder(&self) -> &StateHolder {
        &self.holder
    }

    /// The entries, for a checkpoint's cut (taking the delta) and a restore.
    pub fn holder_mut(&mut self) -> &mut StateHolder {
        &mut self.holder
    }

    /// The key groups and the owned range.
    pub fn key_groups(&self) -> &KeyGroups {
        &self.groups
    }

    /// Let the component register timers (it exports a timer handler).
    pub fn enable_timers(&mut self, on: bool) {
        self.timers = on;
    }

    /// The watermark as of the last batch.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Set the watermark without expiring anything (a restore: it was reached before).
    pub fn set_watermark(&mut self, watermark: Option<i64>) {
        self.watermark = watermark;
    }

    /// Entries expired by state TTL in this instance's life.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    // ---- the batch -------------------------------------------------------------------

    /// A batch begins: keyed writes during it are stamped (TTL) with the newest event time of
    /// their stream key among `events` (or the watermark, if later). Costs nothing without TTL.
    pub fn batch_began<'a>(&mut self, events: impl Iterator<Item = (&'a str, i64)>) {
        if self.ttl_ms.is_some() {
            self.batch_times.fill(events);
        }
    }

    /// The batch's calls are over: later writes (timers, `on-watermark`) take the watermark.
    pub fn batch_ended(&mut self) {
        self.batch_times.clear();
    }

    /// Open a transaction (see [`StateHolder::begin`]).
    pub fn begin(&mut self) {
        self.holder.begin();
    }

    /// Keep the transaction's writes.
    pub fn commit(&mut self) {
        self.holder.commit();
    }

    /// Undo the transaction's writes.
    pub fn rollback(&mut self) {
        self.holder.rollback();
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.holder.in_transaction()
    }

    // ---- scoped entries (0.2.x, wasi:keyvalue) -----------------------------------------

    /// Compose the scoped key of (`scope`, `key`) in the scratch buffer, after checking that
    /// the scope's group is owned.
    #[inline]
    fn compose(&mut self, what: &'static str, scope: Option<&str>, key: &str) -> Result<(), StateError> {
        match scope {
            Some(s) => self.groups.check(what, s, || key.to_string())?,
            None if what == "write" => self.groups.check_operator_wide(|| key.to_string())?,
            None => {}
        }
        self.key.clear();
        scoped::compose_into(&mut self.key, scope, key);
        Ok(())
    }

    /// The value of `key` in `scope` (absent when the scope expired).
    pub fn get(&mut self, scope: Option<&str>, key: &str) -> Result<Option<&Value>, StateError> {
        self.compose("read", scope, key)?;
        if self.expired_scope(scope) {
            return Ok(None);
        }
        Ok(self.holder.get_value(&self.key))
    }

    /// Whether `key` in `scope` holds a value.
    pub fn exists(&mut self, scope: Option<&str>, key: &str) -> Result<bool, StateError> {
        Ok(self.get(scope, key)?.is_some())
    }

    /// Store `value` under `key` in `scope`, subject to the quotas; records the scope's write
    /// for TTL first (which clears it if it expired).
    pub fn set(&mut self, scope: Option<&str>, key: &str, value: Value) -> Result<(), StateError> {
        self.compose("write", scope, key)?;
        self.touch(scope)?;
        self.holder.set(&self.key, value)
    }

    /// Remove `key` from `scope`; whether it held a value.
    pub fn remove(&mut self, scope: Option<&str>, key: &str) -> Result<bool, StateError> {
        self.compose("write", scope, key)?;
        // A removal that cannot be recorded for TTL (a quota) still removes.
        let _ = self.touch(scope);
        Ok(self.holder.remove(&self.key))
    }

    /// Up to `limit` keys of `scope` that start with `prefix`, after `after` (a key of the
    /// scope), in order, without the scope's prefix; none when the scope expired.
    pub fn list_keys(
        &mut self,
        scope: Option<&str>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        self.compose("read", scope, prefix)?;
        if self.expired_scope(scope) {
            return Ok(Vec::new());
        }
        let n = self.key.len() - prefix.len();
        let after = after.map(|a| format!("{}{a}", &self.key[..n]));
        Ok(self
            .holder
            .list_keys(&self.key, after.as_deref(), limit)
            .iter()
            .map(|k| k[n..].to_string())
            .collect())
    }

    // ---- migration ---------------------------------------------------------------------

    /// The scoped keys a state migration hands the guest, in order: every keyed and
    /// operator-wide entry, never the host's own records (timers, TTL stamps) nor the entries
    /// of an expired scope. Taken once, before the migration writes anything, so that what it
    /// writes is not handed to it again.
    pub fn migration_keys(&mut self) -> Vec<String> {
        let all: Vec<String> = self
            .holder
            .iter()
            .filter(|(k, _)| scoped::check(k).is_ok())
            .map(|(k, _)| k.to_string())
            .collect();
        let mut keys = Vec::with_capacity(all.len());
        // Keys of one scope are adjacent: its expiry is looked up once.
        let mut last: Option<(Option<String>, bool)> = None;
        for k in all {
            let scope = scoped::split(&k).ok().and_then(|(s, _)| s).map(str::to_string);
            let expired = match &last {
                Some((s, e)) if *s == scope => *e,
                _ => {
                    let e = self.expired_scope(scope.as_deref());
                    last = Some((scope, e));
                    e
                }
            };
            if !expired {
                keys.push(k);
            }
        }
        keys
    }

    /// The value of stored (scoped) key `scoped`, as [`OperatorState::migration_keys`] lists.
    pub fn migration_value(&self, scoped: &str) -> Option<&Value> {
        self.holder.get_value(scoped)
    }

    /// A migration's rewrite of the entry (`scope`, `key`): `Some` stores the value (subject to
    /// the quotas), `None` removes it. A rewrite is not a write in event time: the scope's TTL
    /// stamp stays as it was.
    pub fn rewrite(
        &mut self,
        scope: Option<&str>,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), StateError> {
        self.compose("write", scope, key)?;
        match value {
            Some(v) => self.holder.set(&self.key, v),
            None => {
                self.holder.remove(&self.key);
                Ok(())
            }
        }
    }

    // ---- plain entries (0.1.x: keys stored as they are, all operator-wide) -------------

    /// The value under the plain key `key`.
    pub fn get_plain(&self, key: &str) -> Option<&Value> {
        self.holder.get_value(key)
    }

    /// Store `value` under the plain key `key`, subject to the quotas.
    pub fn set_plain(&mut self, key: &str, value: Value) -> Result<(), StateError> {
        self.holder.set(key, value)
    }

    /// Remove the plain key `key`; whether it held a value.
    pub fn remove_plain(&mut self, key: &str) -> bool {
        self.holder.remove(key)
    }

    /// Up to `limit` plain keys starting with `prefix`, after `after`, in order.
    pub fn list_plain(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        self.holder
            .list_keys(prefix, after, limit)
            .iter()
            .map(|k| k.to_string())
            .collect()
    }

    // ---- timers ----------------------------------------------------------------------

    /// Compose the entry of the timer of stream key `key` at `ts`, after checking its group.
    fn timer_entry(&mut self, key: &str, ts: i64) -> Result<(), StateError> {
        self.groups.check("timer", key, || format!("(timer at {ts})"))?;
        self.key.clear();
        timers::entry_key_into(&mut self.key, key, ts);
        Ok(())
    }

    /// Register the timer of stream key `key` at event time `ts` (again: no change).
    pub fn register_timer(&mut self, key: &str, ts: i64) -> Result<(), StateError> {
        if !self.timers {
            return Err(StateError::NoTimerHandler);
        }
        self.timer_entry(key, ts)?;
        self.holder.set_if_absent(&self.key, Value::new(&[]))
    }

    /// Delete the timer of `key` at `ts`; whether it was registered.
    pub fn delete_timer(&mut self, key: &str, ts: i64) -> Result<bool, StateError> {
        self.timer_entry(key, ts)?;
        Ok(self.holder.remove(&self.key))
    }

    /// Timers registered and not fired, and the quota.
    pub fn timer_usage(&self) -> TimerUsage {
        (self.holder.timers() as u64, self.holder.quotas().max_timers)
    }

    /// Take up to `limit` timers with `ts <= watermark` in (ts, key) order, giving each to
    /// `fired` as (stream key, ts); how many. A timer fires once: it is removed now (and back
    /// if the batch rolls back).
    pub fn take_due_timers(
        &mut self,
        watermark: i64,
        limit: usize,
        mut fired: impl FnMut(&str, i64),
    ) -> usize {
        if self.holder.timers() == 0 {
            return 0;
        }
        let bound = timers::after_ts(watermark);
        let entries = self.holder.list_keys_below(timers::PREFIX, &bound, limit);
        let mut n = 0;
        for entry in &entries {
            if let Some((key, ts)) = timers::parse(entry) {
                fired(key, ts);
                n += 1;
            }
            // Removed by the entry listed: its key is not built again.
            self.holder.remove(entry);
        }
        n
    }

    // ---- usage and scratch -----------------------------------------------------------

    /// Keys, bytes and the quotas (`usage`).
    pub fn usage(&self) -> (u64, u64, StateQuotas) {
        (
            self.holder.len() as u64,
            self.holder.bytes(),
            self.holder.quotas(),
        )
    }

    /// Whether listing keys is cheap (the ordered index is built); the first listing builds it.
    pub fn has_ordered_index(&self) -> bool {
        self.holder.has_ordered_index()
    }

    /// The reused buffer for a packed request copied out of guest memory (so that the state
    /// can change while it is read); give it back with [`OperatorState::put_scratch`].
    pub fn take_scratch(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf
    }

    /// Give back the buffer of [`OperatorState::take_scratch`].
    pub fn put_scratch(&mut self, buf: Vec<u8>) {
        self.scratch = buf;
    }

    /// The reused buffer for a call's string arguments copied out of guest memory; give it
    /// back with [`OperatorState::put_args`].
    pub fn take_args(&mut self) -> String {
        let mut buf = std::mem::take(&mut self.args);
        buf.clear();
        buf
    }

    /// Give back the buffer of [`OperatorState::take_args`].
    pub fn put_args(&mut self, buf: String) {
        self.args = buf;
    }
}
