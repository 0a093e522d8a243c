//! What to do about an error, in terms of this binary's flags: the library's errors carry the
//! facts (which limit, which store, which checkpoint), the hint names the flag.

use cairn::CallError;
use cairn::checkpoint::{CheckpointError, KeyError, KeyKind, OpenError};
use cairn::runtime::{JobError, MigrationError, Mismatch, ParallelismError, RunError};

/// A hint for the first error in `e`'s chain that has one.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(for_cause)
}

/// The hint for one error; wrappers that are `#[error(transparent)]` (and so hide their inner
/// error from the chain) are opened here.
fn for_cause(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(j) = cause.downcast_ref::<JobError>() {
        return match j {
            JobError::Run(r) => for_cause(r),
            JobError::Checkpoint(c) => for_cause(c),
            JobError::Operator(c) => for_cause(c),
            JobError::Mismatch(m) => for_cause(m),
            JobError::Savepoint(_) => {
                Some("`cairn checkpoints list --store …` lists the store's savepoints and checkpoints".into())
            }
            JobError::Migration(m) => Some(match m {
                MigrationError::Failed {
                    source: CallError::Timeout { .. },
                    ..
                } => "raise --migration-timeout (the whole migration) or --timeout (each call of it)".into(),
                MigrationError::Failed { source, .. } => {
                    return call(source).map(|_| {
                        "fix the plugin's migrate function and run again; meanwhile the previous plugin resumes from \
                         the checkpoint"
                            .into()
                    });
                }
                MigrationError::Downgrade { .. } => {
                    "run the newer plugin, or --restore-from a checkpoint or savepoint taken before the upgrade".into()
                }
                MigrationError::Unsupported { .. } => {
                    "implement the plugin's migrate function (Operator::migrate in Rust, `migrate` in Python)".into()
                }
            }),
            JobError::Parallelism(p) => Some(match p {
                ParallelismError::KeyGroups(_) => "pass --key-groups from 1 to 32768".into(),
                _ => {
                    "pass --parallelism 1 (or `parallelism = 1` for the operator in the pipeline file)".into()
                }
            }),
        };
    }
    if let Some(r) = cause.downcast_ref::<RunError>() {
        return match r {
            RunError::Operator(c) => for_cause(c),
            _ => None,
        };
    }
    if let Some(OpenError::Key(k)) = cause.downcast_ref::<OpenError>() {
        return for_cause(k);
    }
    {
        if let Some(c) = cause.downcast_ref::<CallError>() {
            return call(c);
        }
        if let Some(k) = cause.downcast_ref::<KeyError>() {
            return key(k);
        }
        if let Some(m) = cause.downcast_ref::<Mismatch>() {
            return Some(match m {
                Mismatch::Dropped { dropped, .. } => format!(
                    "pass --allow-dropped-state to resume without the state of {}, or --rename-operator OLD=NEW if an \
                     operator was renamed",
                    dropped.join(", ")
                ),
                Mismatch::Rename { .. } => "name an operator of the checkpoint in --rename-operator OLD=NEW \
                                            (`cairn checkpoints show latest --store …` lists them)"
                    .into(),
                Mismatch::Source { .. } => "use a new --store for this input".into(),
                Mismatch::Closed { .. } => {
                    "run an input that grows with --keep-open; for this one, use a new --store to start over, \
                     or --restore-from an earlier checkpoint"
                        .into()
                }
                Mismatch::KeyGroups { then, .. } => {
                    format!("leave --key-groups out (or pass --key-groups {then}), or use a new --store to start over")
                }
                Mismatch::BatchSize { then, .. } => {
                    format!(
                        "resume with --batch-size {then} (or batch_size = {then} in the pipeline file), or use a new --store to start over"
                    )
                }
                Mismatch::Plugin { .. } => {
                    "pass --accept-plugin-change to resume with it anyway, or use a new --store to start over"
                        .into()
                }
                Mismatch::Config { .. } => {
                    "pass --accept-config-change to resume with it anyway, or use a new --store to start over"
                        .into()
                }
            });
        }
        if let Some(c) = cause.downcast_ref::<CheckpointError>() {
            return checkpoint(c);
        }
        None
    }
}

fn call(c: &CallError) -> Option<String> {
    Some(match c {
        CallError::Timeout { .. } => "raise --timeout (or `timeout` in the pipeline file)".into(),
        CallError::OutOfFuel { .. } => "raise --fuel (or `fuel` in the pipeline file)".into(),
        CallError::Memory { .. } => "raise --memory-limit (or `memory_limit` in the pipeline file)".into(),
        CallError::Guest { .. } | CallError::Trap { .. } => {
            "fix the plugin or its input, or pass --on-error skip --dead-letter <file> to set failing events aside"
                .into()
        }
        _ => return None,
    })
}

fn key(k: &KeyError) -> Option<String> {
    Some(match k {
        KeyError::NeedsKey(_) => {
            "pass its key with --encryption-key-env <VAR> or --passphrase-env <VAR>".into()
        }
        KeyError::WrongKind {
            was: KeyKind::Raw, ..
        } => "pass the key with --encryption-key-env <VAR>".into(),
        KeyError::WrongKind {
            was: KeyKind::Passphrase,
            ..
        } => "pass the passphrase with --passphrase-env <VAR>".into(),
        KeyError::WrongKey(_) => {
            "check the variable named by --encryption-key-env or --passphrase-env".into()
        }
        _ => return None,
    })
}

fn checkpoint(c: &CheckpointError) -> Option<String> {
    Some(match c {
        CheckpointError::NotFound { store, .. } => {
            format!("`cairn checkpoints list --store {store}` shows the checkpoints there")
        }
        CheckpointError::Store(cairn::store::StoreError::Conflict { store, .. }) => {
            format!(
                "stop the other `cairn run` with --store {store}, or give this job its own --store \
                 (another prefix); `cairn checkpoints list --store {store}` shows what the other job committed"
            )
        }
        CheckpointError::Damaged { store, .. } => {
            format!(
                "`cairn checkpoints verify --store {store}` checks them all; --restore-from <id> picks another"
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_get_their_flag() {
        let e = anyhow::Error::new(CallError::OutOfFuel {
            plugin: "p".into(),
            call: "process",
            fuel: 5,
        });
        assert!(hint(&e).is_some_and(|h| h.contains("--fuel")));
        let e = anyhow::Error::new(OpenError::Key(KeyError::NeedsKey("file:x".into())))
            .context("opening the store");
        assert!(hint(&e).is_some_and(|h| h.contains("--encryption-key-env")));
        assert!(hint(&anyhow::anyhow!("plain")).is_none());
        let e = anyhow::Error::new(JobError::Checkpoint(CheckpointError::Store(
            cairn::store::StoreError::Conflict {
                store: "s3://b/p".into(),
                message: "refused".into(),
            },
        )));
        assert!(hint(&e).is_some_and(|h| h.contains("--store s3://b/p") && h.contains("own --store")));
    }
}
