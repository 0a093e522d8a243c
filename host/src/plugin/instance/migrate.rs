//! State migration of one instance: the host walks every entry of the instance's state in
//! pages and hands each to the component's `migration.migrate` with the old state version,
//! then applies the rewrites through the state core. The whole walk is one transaction.

use std::time::{Duration, Instant};

use super::OperatorInstance;
use crate::plugin::CallError;
use crate::plugin::exports::{Exports, MigrationEntry, Rewrite};
use crate::state::Value;

/// The most entries handed to one `migrate` call.
pub const PAGE_ENTRIES: usize = 1000;
/// The most value bytes handed to one `migrate` call (an entry larger than this goes alone),
/// so that a migration is not limited by the guest's memory.
pub const PAGE_BYTES: usize = 1 << 20;

/// What a migration of one instance did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Entries handed to the guest.
    pub entries: u64,
    /// Entries it rewrote.
    pub set: u64,
    /// Entries it removed.
    pub removed: u64,
    /// `migrate` calls.
    pub pages: u64,
}

impl OperatorInstance {
    /// Migrate this instance's state from state version `from_version`: every entry the state
    /// core lists for a migration ([`crate::state::OperatorState::migration_keys`]), in pages
    /// of at most [`PAGE_ENTRIES`] entries and [`PAGE_BYTES`] bytes, rewritten as `migrate`
    /// answers. One transaction: on any failure (an error, a trap, a limit, a refused rewrite,
    /// the migration's time running out) the state is as it was and the error says why. The
    /// migration (of every instance) began at `started` and may take `timeout` in all
    /// (`--migration-timeout`); each call runs under the plugin's limits, its time limit cut to
    /// what is left of that.
    pub fn migrate_state(
        &mut self,
        from_version: u32,
        started: Instant,
        timeout: Duration,
    ) -> Result<Migrated, CallError> {
        self.ensure_live()?;
        if self.exports.migrate.is_none() {
            return Err(self.migration_error(
                "the plugin exports no `migration` interface (build it with a cairn SDK of WIT 0.2.5 or later)"
                    .into(),
            ));
        }
        self.begin_batch();
        let result = self.walk(from_version, started + timeout, timeout);
        if result.is_ok() {
            self.commit_batch();
        } else if self.store.data().state.in_transaction() {
            // A failed call rolled back already; a refused rewrite has not.
            self.rollback_batch();
        }
        result
    }

    /// The migration, which must end by `deadline` (`total` after it began).
    fn walk(&mut self, from_version: u32, deadline: Instant, total: Duration) -> Result<Migrated, CallError> {
        let out_of_time = |name: &str| CallError::Timeout {
            plugin: name.to_string(),
            call: "migrate",
            timeout: total,
        };
        let keys = self.store.data_mut().state.migration_keys();
        let mut done = Migrated::default();
        let mut rest = &keys[..];
        let timeout = self.limits.timeout;
        while !rest.is_empty() {
            let mut page = Vec::new();
            let mut bytes = 0usize;
            let mut taken = 0;
            for k in rest {
                if page.len() == PAGE_ENTRIES || (bytes >= PAGE_BYTES && !page.is_empty()) {
                    break;
                }
                taken += 1;
                let state = &self.store.data().state;
                // Removed by an earlier page's calls: nothing to hand over.
                let Some(value) = state.migration_value(k) else {
                    continue;
                };
                let Ok((scope, key)) = cairn_codec::scoped::split(k) else {
                    continue;
                };
                bytes += value.len() + k.len();
                page.push(MigrationEntry {
                    scope: scope.map(str::to_string),
                    key: key.to_string(),
                    value: value.to_vec(),
                });
            }
            rest = &rest[taken..];
            if page.is_empty() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(out_of_time(&self.name));
            }
            // The call's limit is what is left of the migration's when that is less: a call
            // stopped at that limit ran out of the migration's time (whichever clock tick
            // stopped it, a little before or after `deadline`).
            let cut = left < timeout;
            self.limits.timeout = timeout.min(left).max(Duration::from_millis(1));
            let f = self.exports.migrate.expect("checked above");
            let answer = self.call("migrate", |_, s| Exports::migrate(f, s, from_version, &page));
            self.limits.timeout = timeout;
            let rewrites = match answer {
                Ok(r) => r,
                Err(CallError::Timeout { .. }) if cut || Instant::now() >= deadline => {
                    return Err(out_of_time(&self.name));
                }
                Err(e) => return Err(e),
            };
            if rewrites.len() != page.len() {
                return Err(self.migration_error(format!(
                    "`migrate` returned {} rewrites for a page of {} entries (one per entry, in order)",
                    rewrites.len(),
                    page.len()
                )));
            }
            done.pages += 1;
            done.entries += page.len() as u64;
            for (entry, rewrite) in page.into_iter().zip(rewrites) {
                let value = match rewrite {
                    Rewrite::Keep => continue,
                    Rewrite::Set(v) => {
                        done.set += 1;
                        Some(Value::from(v))
                    }
                    Rewrite::Remove => {
                        done.removed += 1;
                        None
                    }
                };
                let state = &mut self.store.data_mut().state;
                if let Err(e) = state.rewrite(entry.scope.as_deref(), &entry.key, value) {
                    return Err(self.migration_error(format!(
                        "the rewrite of key {:?} in scope {:?} was refused: {e}",
                        entry.key, entry.scope
                    )));
                }
            }
        }
        Ok(done)
    }

    fn migration_error(&self, message: String) -> CallError {
        CallError::Guest {
            plugin: self.name.to_string(),
            call: "migrate",
            message,
        }
    }
}
