//! What a restored checkpoint must match before a job resumes from it: the operators (by name,
//! in order), each plugin and its configuration (unless a change is accepted), and, for a JSON
//! Lines input, an input that can go on where the checkpoint left it.

use super::job_spec::{FINAL_WATERMARK, JobError, Mismatch};
use crate::OperatorBuilder;
use crate::checkpoint::{JsonlPosition, Restored};

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

pub(super) fn build_operators(
    builders: Vec<OperatorBuilder>,
    restored: Option<&mut Restored>,
    accept_change: bool,
) -> Result<Vec<crate::OperatorInstance>, JobError> {
    let Some(restored) = restored else {
        return builders
            .into_iter()
            .map(|b| b.build().map_err(JobError::from))
            .collect();
    };
    let names: Vec<String> = builders.iter().map(|b| b.name_or_plugin().to_string()).collect();
    let saved: Vec<String> = restored.operators.iter().map(|o| o.name.clone()).collect();
    if names != saved {
        return Err(Mismatch::Operators {
            checkpoint: restored.id,
            saved,
            now: names,
        }
        .into());
    }
    let mut ops = Vec::new();
    for (b, saved) in builders.into_iter().zip(restored.operators.iter_mut()) {
        let digest = b.plugin_ref().digest_hex();
        if !accept_change {
            if digest != saved.plugin_digest {
                return Err(Mismatch::Plugin {
                    operator: saved.name.clone(),
                    checkpoint: restored.id,
                    then: short(&saved.plugin_digest).to_string(),
                    now: short(&digest).to_string(),
                }
                .into());
            }
            if b.config_ref() != saved.config {
                return Err(Mismatch::Config {
                    operator: saved.name.clone(),
                    checkpoint: restored.id,
                    then: saved.config.clone(),
                    now: b.config_ref().to_string(),
                }
                .into());
            }
        }
        let state = std::mem::take(&mut saved.state);
        ops.push(b.build_with_state(state)?);
    }
    Ok(ops)
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
