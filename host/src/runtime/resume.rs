//! Restoring a job and what a restored checkpoint must match before the job resumes from it:
//! the key groups, the operators (matched by name, after renames; a new one starts empty, a
//! dropped one is refused unless allowed), each plugin and its configuration (unless a change
//! is accepted), the parallelism each operator can run with, and, for a JSON Lines input, an
//! input that can go on where the checkpoint left it. Operators are built here as
//! [`Stage`]s of their instances.

use std::ops::Range;

use super::job_spec::{FINAL_WATERMARK, JobError, Mismatch, ParallelismError};
use super::stage::Stage;
use crate::OperatorBuilder;
use crate::checkpoint::ranged::is_operator_wide;
use crate::checkpoint::restore::load_chain_part;
use crate::checkpoint::{Codec, DecodeStats, JsonlPosition, Restored, restore_part, savepoint};
use crate::state::{KeyGroups, MAX_KEY_GROUPS, StateHolder};
use crate::store::{CheckpointId, CheckpointStore};

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

/// The job's key groups: the checkpoint's (formats 1 to 4: 128), which `asked` must match,
/// or for a new job `asked` or 128.
pub(super) fn key_groups(asked: Option<u32>, restored: Option<&Restored>) -> Result<u32, JobError> {
    let recorded = restored.and_then(|r| r.operators.first().map(|o| (r.id, o.key_groups)));
    let g = match (asked, recorded) {
        (Some(now), Some((checkpoint, then))) if now != then => {
            return Err(Mismatch::KeyGroups {
                checkpoint,
                then,
                now,
            }
            .into());
        }
        (_, Some((_, then))) => then,
        (Some(now), None) => now,
        (None, None) => cairn_codec::scoped::DEFAULT_KEY_GROUPS,
    };
    if g == 0 || g > MAX_KEY_GROUPS {
        return Err(ParallelismError::KeyGroups(g).into());
    }
    Ok(g)
}

/// Refuse a parallelism an operator cannot run with in a job of `groups` key groups.
pub(super) fn check_parallelism(builders: &[OperatorBuilder], groups: u32) -> Result<(), JobError> {
    for b in builders {
        let n = b.parallelism_ref();
        if n == 1 {
            continue;
        }
        let operator = b.name_or_plugin().to_string();
        if let Some(why) = b.plugin_ref().single_instance_only() {
            return Err(ParallelismError::SingleInstance {
                operator,
                parallelism: n,
                why,
            }
            .into());
        }
        if n > groups {
            return Err(ParallelismError::TooMany {
                operator,
                parallelism: n,
                groups,
            }
            .into());
        }
    }
    Ok(())
}

/// Per operator, its instances' restored states (`None` at parallelism 1: the state is in the
/// restored operator).
pub(super) type InstanceStates = Vec<Option<Vec<StateHolder>>>;

/// Restore a job: the newest restorable checkpoint (or `at`). Operators of parallelism 1 are
/// restored whole; each instance of an operator of parallelism N > 1 decodes only the blocks of
/// its own key groups, into `instances` (per operator: `None` at 1).
pub(super) fn restore_job(
    store: &dyn CheckpointStore,
    codec: &Codec,
    at: Option<CheckpointId>,
    savepoint: Option<&str>,
    builders: &[OperatorBuilder],
    (asked_groups, owned): (Option<u32>, Option<&Range<u32>>),
    renames: &[(String, String)],
) -> Result<Option<(Restored, InstanceStates)>, JobError> {
    // The chain of `id`, or the savepoint, decoded as far as `select` asks.
    let load =
        |id: CheckpointId, select: crate::checkpoint::ranged::Select<'_>| -> Result<Restored, JobError> {
            Ok(match savepoint {
                Some(name) => savepoint::load(store, codec, name, select, &mut DecodeStats::default())?,
                None => load_chain_part(store, codec, id, select, &mut DecodeStats::default())?,
            })
        };
    // An operator's name now, given its name in the checkpoint.
    let current = |saved: &str| -> String {
        renames
            .iter()
            .find(|(old, _)| old == saved)
            .map_or(saved, |(_, new)| new.as_str())
            .to_string()
    };
    let parallelism = |saved: &str| {
        let name = current(saved);
        builders
            .iter()
            .find(|b| b.name_or_plugin() == name)
            .map_or(1, OperatorBuilder::parallelism_ref)
    };
    // Nothing of a parallel operator yet: no range starts at u32::MAX.
    let nothing = || Some(u32::MAX..u32::MAX);
    let first = |name: &str| (parallelism(name) > 1).then(nothing).flatten();
    let restored = match savepoint {
        Some(_) => Some(load(0, &first)?),
        None => restore_part(store, codec, at, &first, &mut DecodeStats::default())?,
    };
    let Some(mut restored) = restored else {
        return Ok(None);
    };
    let saved: Vec<String> = restored.operators.iter().map(|o| o.name.clone()).collect();
    if let Some((old, _)) = renames.iter().find(|(old, _)| !saved.contains(old)) {
        return Err(Mismatch::Rename {
            old: old.clone(),
            checkpoint: restored.id,
            saved,
        }
        .into());
    }
    for op in &mut restored.operators {
        op.name = current(&op.name);
    }
    let groups = key_groups(asked_groups, Some(&restored))?;
    let id = restored.id;
    let mut instances = Vec::with_capacity(restored.operators.len());
    for op in &mut restored.operators {
        let n = parallelism(&op.name);
        if n == 1 {
            instances.push(None);
            continue;
        }
        if n > groups {
            return Err(ParallelismError::TooMany {
                operator: op.name.clone(),
                parallelism: n,
                groups,
            }
            .into());
        }
        let name = op.name.clone();
        let mut parts = Vec::with_capacity(n as usize);
        for i in 0..n {
            let range = instance_groups(&name, groups, owned, i, n)?.owned();
            let select = |o: &str| {
                if current(o) == name {
                    Some(range.clone())
                } else {
                    nothing()
                }
            };
            let mut r = load(id, &select)?;
            let op = r.operators.iter_mut().find(|o| o.name == name);
            parts.push(op.map(|o| std::mem::take(&mut o.state)).unwrap_or_default());
        }
        let wide = parts[0].iter().filter(|(k, _)| is_operator_wide(k)).count();
        if wide > 0 {
            return Err(ParallelismError::OperatorWide {
                operator: name,
                parallelism: n,
                checkpoint: id,
                entries: wide,
            }
            .into());
        }
        instances.push(Some(parts));
    }
    Ok(Some((restored, instances)))
}

/// The key groups instance `i` of `n` of `operator` owns: its share of the job's (`owned`,
/// a shard's; else all `groups`).
fn instance_groups(
    operator: &str,
    groups: u32,
    owned: Option<&Range<u32>>,
    i: u32,
    n: u32,
) -> Result<KeyGroups, JobError> {
    let within = owned.cloned().unwrap_or(0..groups);
    if within.start >= within.end || within.end > groups || n > within.end - within.start {
        return Err(ParallelismError::Owned {
            operator: operator.to_string(),
            owned: within,
            groups,
            parallelism: n,
        }
        .into());
    }
    KeyGroups::split(groups, within, i, n).map_err(|_| ParallelismError::KeyGroups(groups).into())
}

/// What a restore may waive (a changed plugin or configuration, dropped state), and how long a
/// migration of restored state may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResumeRules {
    /// A changed plugin.
    pub plugin: bool,
    /// A changed configuration.
    pub config: bool,
    /// State of operators the job no longer has.
    pub dropped: bool,
    /// How long a migration may take in all.
    pub migration_timeout: std::time::Duration,
}

impl Default for ResumeRules {
    fn default() -> Self {
        Self {
            plugin: false,
            config: false,
            dropped: false,
            migration_timeout: super::DEFAULT_MIGRATION_TIMEOUT,
        }
    }
}

/// Build every operator's instances: instance `i` of `N` owns the key groups
/// `KeyGroups::for_instance(groups, i, N)`. A restored operator — matched by name, whatever
/// its place in the pipeline — starts from its checkpoint's state (its configuration checked
/// unchanged unless waived; its plugin too, unless the plugin declares a state version: then
/// the same version resumes, a newer one migrates the state, an older one is refused); an
/// operator the checkpoint does not hold starts empty; the state of an operator the job no
/// longer has is refused unless waived.
pub(super) fn build_stages(
    builders: Vec<OperatorBuilder>,
    restored: Option<(&mut Restored, InstanceStates)>,
    groups: u32,
    owned: Option<&Range<u32>>,
    rules: ResumeRules,
) -> Result<Vec<Stage>, JobError> {
    let build = |b: OperatorBuilder, mut states: Vec<StateHolder>, expired: u64| -> Result<Stage, JobError> {
        let n = b.parallelism_ref();
        states.resize_with(n as usize, StateHolder::new);
        let mut instances = Vec::with_capacity(n as usize);
        for (i, state) in states.into_iter().enumerate() {
            let owned = instance_groups(b.name_or_plugin(), groups, owned, i as u32, n)?;
            let limits = super::stage::instance_limits(b.limits_ref(), i as u32, n);
            instances.push(b.clone().limits(limits).build_owning(state, owned)?);
        }
        if n > 1 {
            let memory = b.limits_ref().memory_bytes as u64;
            tracing::info!(
                "operator `{}`: {n} instances over {groups} key groups, each with its own memory limit of {} MiB ({} MiB in all)",
                b.name_or_plugin(),
                memory >> 20,
                (memory * u64::from(n)) >> 20
            );
        }
        Ok(Stage::new(instances, groups, expired))
    };
    let Some((restored, mut instances)) = restored else {
        return builders.into_iter().map(|b| build(b, Vec::new(), 0)).collect();
    };
    let names: Vec<String> = builders.iter().map(|b| b.name_or_plugin().to_string()).collect();
    let dropped: Vec<String> = restored
        .operators
        .iter()
        .map(|o| o.name.clone())
        .filter(|n| !names.contains(n))
        .collect();
    if !dropped.is_empty() {
        if !rules.dropped {
            return Err(Mismatch::Dropped {
                checkpoint: restored.id,
                dropped,
                now: names,
            }
            .into());
        }
        tracing::warn!(
            "checkpoint {}: leaving the state of operators {dropped:?} behind (--allow-dropped-state)",
            restored.id
        );
    }
    let mut stages = Vec::new();
    for b in builders {
        let name = b.name_or_plugin().to_string();
        let Some(at) = restored.operators.iter().position(|o| o.name == name) else {
            tracing::info!(
                "operator `{name}` is not in checkpoint {}: it starts with empty state",
                restored.id
            );
            stages.push(build(b, Vec::new(), 0)?);
            continue;
        };
        let saved = &mut restored.operators[at];
        let migrate = super::migrate::check(&b, restored.id, saved.state_version)?;
        let digest = b.plugin_ref().digest_hex();
        let declared = b.plugin_ref().declared().state_version.is_some();
        if digest != saved.plugin_digest && declared && !migrate {
            tracing::info!(
                "operator `{name}`: the plugin changed since checkpoint {} ({}… then, {}… now) and declares the \
                 same state version {}; resuming with it",
                restored.id,
                short(&saved.plugin_digest),
                short(&digest),
                saved.state_version
            );
        } else if digest != saved.plugin_digest && !migrate {
            if !rules.plugin {
                return Err(Mismatch::Plugin {
                    operator: name,
                    checkpoint: restored.id,
                    then: short(&saved.plugin_digest).to_string(),
                    now: short(&digest).to_string(),
                }
                .into());
            }
            tracing::info!(
                "operator `{name}`: the plugin changed since checkpoint {} ({}… then, {}… now); resuming with it",
                restored.id,
                short(&saved.plugin_digest),
                short(&digest)
            );
        }
        if b.config_ref() != saved.config && !rules.config {
            return Err(Mismatch::Config {
                operator: name,
                checkpoint: restored.id,
                then: saved.config.clone(),
                now: b.config_ref().to_string(),
            }
            .into());
        }
        let states = instances[at]
            .take()
            .unwrap_or_else(|| vec![std::mem::take(&mut saved.state)]);
        let mut stage = build(b, states, saved.expired)?;
        if migrate {
            let watermark = restored.host.watermark;
            super::migrate::run(
                &mut stage,
                restored.id,
                saved.state_version,
                watermark,
                rules.migration_timeout,
            )?;
        }
        stages.push(stage);
    }
    Ok(stages)
}

/// Refuse to resume a JSON Lines input that cannot continue where the checkpoint left it.
pub(super) fn check_jsonl_resume(r: &Restored, at: &JsonlPosition, input: &str) -> Result<(), JobError> {
    if at.input != input {
        tracing::warn!(
            "checkpoint {} was taken reading {:?}; now reading {:?} from byte {}",
            r.id,
            at.input,
            input,
            at.offset
        );
    }
    if r.host.watermark == Some(FINAL_WATERMARK)
        && let Ok(meta) = std::fs::metadata(input)
        && meta.is_file()
        && meta.len() > at.offset
    {
        return Err(Mismatch::Closed {
            checkpoint: r.id,
            input: input.to_string(),
            offset: at.offset,
            len: meta.len(),
        }
        .into());
    }
    Ok(())
}
