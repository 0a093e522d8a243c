//! Resuming with a plugin of another state version: a newer one migrates the checkpoint's
//! state before any event ([`crate::OperatorInstance::migrate_state`], each instance its own
//! key groups), an older one is refused. The migration is one transaction in memory; the job
//! then takes a full checkpoint with the new digest and version before it reads input, so a
//! failure or a kill during it leaves the old checkpoint as the newest.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::stage::Stage;
use crate::checkpoint::Restored;
use crate::store::CheckpointId;
use crate::{CallError, Migrated, OperatorBuilder};

/// How long a whole migration may take by default (`--migration-timeout`).
pub const DEFAULT_MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an operator's state could not be carried to its plugin's state version.
#[derive(Debug, Error)]
pub enum MigrationError {
    /// The plugin declares an older state version than the checkpoint's.
    #[error(
        "operator `{operator}`: checkpoint {checkpoint} holds state version {then}, and this plugin declares \
         version {now}, which is older; an older plugin cannot read newer state: run a plugin of state version \
         {then} or later, or restore a checkpoint or savepoint taken before the upgrade"
    )]
    Downgrade {
        /// The operator.
        operator: String,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The checkpoint's state version.
        then: u32,
        /// The plugin's.
        now: u32,
    },
    /// The plugin declares a newer state version but cannot migrate.
    #[error(
        "operator `{operator}`: checkpoint {checkpoint} holds state version {then} and this plugin declares \
         version {now}, but it exports no `migration` interface; rebuild it with a cairn SDK of WIT 0.2.5 or \
         later and implement its migrate function"
    )]
    Unsupported {
        /// The operator.
        operator: String,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The checkpoint's state version.
        then: u32,
        /// The plugin's.
        now: u32,
    },
    /// The migration failed; nothing was written.
    #[error(
        "operator `{operator}`: migrating checkpoint {checkpoint}'s state from version {then} to {now} failed; \
         checkpoint {checkpoint} is unchanged and the previous plugin still resumes from it: {source}"
    )]
    Failed {
        /// The operator.
        operator: String,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The checkpoint's state version.
        then: u32,
        /// The plugin's.
        now: u32,
        /// What failed.
        source: CallError,
    },
}

/// Whether restoring `restored` into `builders` migrates some operator's state.
pub(super) fn needed(builders: &[OperatorBuilder], restored: &Restored) -> bool {
    restored.operators.iter().any(|o| {
        builders
            .iter()
            .find(|b| b.name_or_plugin() == o.name)
            .is_some_and(|b| b.plugin_ref().state_version() > o.state_version)
    })
}

/// Refuse a state version the operator's plugin cannot take from checkpoint `checkpoint`
/// (`then`): an older one, or a newer one it cannot migrate to. Returns whether it migrates.
pub(super) fn check(
    b: &OperatorBuilder,
    checkpoint: CheckpointId,
    then: u32,
) -> Result<bool, MigrationError> {
    let plugin = b.plugin_ref();
    let now = plugin.state_version();
    let operator = b.name_or_plugin().to_string();
    if now < then {
        return Err(MigrationError::Downgrade {
            operator,
            checkpoint,
            then,
            now,
        });
    }
    if now > then && !plugin.can_migrate() {
        return Err(MigrationError::Unsupported {
            operator,
            checkpoint,
            then,
            now,
        });
    }
    Ok(now > then)
}

/// Migrate every instance of `stage` from state version `then` (checkpoint `checkpoint`, at
/// event time `watermark`), within `timeout` for all of them.
pub(super) fn run(
    stage: &mut Stage,
    checkpoint: CheckpointId,
    then: u32,
    watermark: Option<i64>,
    timeout: Duration,
) -> Result<(), MigrationError> {
    let t = Instant::now();
    let mut done = Migrated::default();
    let Some(first) = stage.instances_mut().first() else {
        return Ok(());
    };
    let (operator, now) = (first.name().to_string(), first.plugin().state_version());
    tracing::info!(
        "operator `{operator}`: migrating the state of checkpoint {checkpoint} from version {then} to {now}"
    );
    for inst in stage.instances_mut() {
        // Expired scopes are not handed over: expiry is judged at the checkpoint's event time.
        inst.set_watermark(watermark);
        let m = inst
            .migrate_state(then, t, timeout)
            .map_err(|source| MigrationError::Failed {
                operator: operator.clone(),
                checkpoint,
                then,
                now,
                source,
            })?;
        done.entries += m.entries;
        done.set += m.set;
        done.removed += m.removed;
        done.pages += m.pages;
    }
    tracing::info!(
        "operator `{operator}`: migrated the state of checkpoint {checkpoint} from version {then} to {now}: \
         {} entries in {} pages, {} rewritten, {} removed, in {:.1?}",
        done.entries,
        done.pages,
        done.set,
        done.removed,
        t.elapsed()
    );
    Ok(())
}
