//! The state processor's import: JSON Lines as [`super::export`] writes them, turned back into an
//! operator's state and written as a full checkpoint — into an empty store (a job that starts
//! with that state, reading its input from the start), or over the newest checkpoint of a job
//! (that operator's state replaced or added, everything else kept).

use std::io::BufRead;

use base64::Engine as _;
use serde_json::Value;

use super::codec::Placement;
use super::{CheckpointData, CheckpointError, Codec, HostState, Kind, OperatorSnapshot, restore};
use crate::state::{StateHolder, Value as Bytes};
use crate::store::{CheckpointId, CheckpointStore};

/// What an imported operator is, besides its entries (each `None`: the export's header says).
#[derive(Debug, Clone, Default)]
pub struct ImportTarget {
    /// The operator's name in the job.
    pub operator: String,
    /// SHA-256 of its plugin, hex.
    pub plugin_digest: Option<String>,
    /// The state version its plugin declares (else the export's header's, else the newest
    /// checkpoint's, else 0).
    pub state_version: Option<u32>,
    /// Its configuration text.
    pub config: Option<String>,
    /// The job's name (a new job).
    pub job: String,
    /// Add to (replace in) the newest checkpoint instead of needing an empty store.
    pub into_latest: bool,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not an entry.
    #[error("line {line}: {message}")]
    Line {
        /// Its number (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The input could not be read.
    #[error("reading the input: {0}")]
    Read(#[from] std::io::Error),
    /// The store holds checkpoints and no job was named to add to.
    #[error(
        "{store} already holds checkpoints (the newest is {latest}); pass --into-latest to replace operator \
         {operator:?}'s state in it, or import into an empty store"
    )]
    NotEmpty {
        /// The store.
        store: String,
        /// Its newest checkpoint.
        latest: CheckpointId,
        /// The operator.
        operator: String,
    },
    /// Neither the command nor the export says what the operator is.
    #[error(
        "the input has no header line naming operator {0:?}'s plugin and configuration: pass --plugin (and --config)"
    )]
    Unknown(String),
    /// Reading or writing checkpoints failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// An export's header and entries.
struct Parsed {
    header: Option<Value>,
    state: StateHolder,
}

fn value_of(v: &Value, line: usize) -> Result<Vec<u8>, ImportError> {
    let bad = |message: String| ImportError::Line { line, message };
    match (v.get("value"), v.get("value_b64")) {
        (Some(_), Some(_)) => Err(bad("both `value` and `value_b64`".into())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(
                b.as_str()
                    .ok_or_else(|| bad("`value_b64` is not a string".into()))?,
            )
            .map_err(|e| bad(format!("`value_b64`: {e}"))),
        (Some(_), None) => Err(bad("`value` must be read raw".into())),
        (None, None) => Err(bad("an entry without `value` or `value_b64`".into())),
    }
}

/// The stored bytes of a line's `"value"`: its text exactly as written.
fn raw_value(text: &str, line: usize) -> Result<Option<Vec<u8>>, ImportError> {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        value: Option<&'a serde_json::value::RawValue>,
    }
    let r: Raw<'_> = serde_json::from_str(text).map_err(|e| ImportError::Line {
        line,
        message: e.to_string(),
    })?;
    Ok(r.value.map(|v| v.get().as_bytes().to_vec()))
}

fn parse(input: &mut dyn BufRead) -> Result<Parsed, ImportError> {
    let mut header = None;
    let mut state = StateHolder::new();
    for (i, text) in input.lines().enumerate() {
        let (n, text) = (i + 1, text?);
        if text.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ImportError::Line { line: n, message };
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let str_of = |k: &str| v.get(k).and_then(Value::as_str);
        let stored = if v.get("operator").is_some() {
            if n != 1 {
                return Err(bad("a header line after the first".into()));
            }
            header = Some(v);
            continue;
        } else if let Some(ts) = v.get("timer") {
            let ts = ts
                .as_i64()
                .ok_or_else(|| bad("`timer` is not an integer".into()))?;
            let scope = str_of("scope").ok_or_else(|| bad("a timer without its `scope`".into()))?;
            state
                .set(&cairn_codec::timers::entry_key(scope, ts), Bytes::from(&b""[..]))
                .map_err(|e| bad(e.to_string()))?;
            continue;
        } else if let Some(k) = str_of("host") {
            if !k.starts_with('!') || cairn_codec::timers::is_timer(k) {
                return Err(bad(format!("{k:?} is not a host record")));
            }
            k.to_string()
        } else if let Some(k) = str_of("plain") {
            k.to_string()
        } else if let Some(k) = str_of("key") {
            let scope = match v.get("scope") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err(bad("`scope` is neither a string nor null".into())),
            };
            cairn_codec::scoped::compose(scope, k)
        } else {
            return Err(bad("not an entry: no `key`, `timer`, `host` or `plain`".into()));
        };
        let bytes = match raw_value(&text, n)? {
            Some(raw) if v.get("value_b64").is_none() => raw,
            _ => value_of(&v, n)?,
        };
        state
            .set(&stored, Bytes::from(bytes))
            .map_err(|e| bad(e.to_string()))?;
    }
    state.clear_changes();
    Ok(Parsed { header, state })
}

/// Import the entries of `input` for `target` into `store`; the id of the checkpoint written.
pub fn import(
    store: &mut dyn CheckpointStore,
    codec: &Codec,
    target: &ImportTarget,
    input: &mut dyn BufRead,
) -> Result<CheckpointId, ImportError> {
    let parsed = parse(input)?;
    let from_header = |k: &str| parsed.header.as_ref().and_then(|h| h.get(k).cloned());
    let ids = store.list().map_err(CheckpointError::from)?;
    let latest = match (ids.last(), target.into_latest) {
        (Some(&latest), false) => {
            return Err(ImportError::NotEmpty {
                store: store.describe(),
                latest,
                operator: target.operator.clone(),
            });
        }
        (Some(_), true) => restore(store, codec, None)?,
        (None, _) => None,
    };
    let previous = latest
        .as_ref()
        .and_then(|r| r.operators.iter().find(|o| o.name == target.operator));
    let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_string));
    let plugin_digest = target
        .plugin_digest
        .clone()
        .or_else(|| text(from_header("plugin_digest")))
        .or_else(|| previous.map(|p| p.plugin_digest.clone()))
        .ok_or_else(|| ImportError::Unknown(target.operator.clone()))?;
    let config = target
        .config
        .clone()
        .or_else(|| text(from_header("config")))
        .or_else(|| previous.map(|p| p.config.clone()))
        .unwrap_or_else(|| "{}".into());
    let key_groups = latest
        .as_ref()
        .and_then(|r| r.operators.first().map(|o| o.key_groups))
        .or_else(|| {
            from_header("key_groups")
                .and_then(|v| v.as_u64())
                .map(|g| g as u32)
        })
        .unwrap_or(cairn_codec::scoped::DEFAULT_KEY_GROUPS);
    let snapshot = OperatorSnapshot {
        name: target.operator.clone(),
        plugin_digest,
        config,
        key_groups,
        parallelism: from_header("parallelism")
            .and_then(|v| v.as_u64())
            .map_or(1, |p| p as u32),
        expired: from_header("expired").and_then(|v| v.as_u64()).unwrap_or(0),
        state_version: target
            .state_version
            .or_else(|| {
                from_header("state_version")
                    .and_then(|v| v.as_u64())
                    .and_then(|v| u32::try_from(v).ok())
            })
            .or_else(|| previous.map(|p| p.state_version))
            .unwrap_or(0),
        state: parsed.state.snapshot(),
    };
    let (host, mut operators) = match &latest {
        Some(r) => (
            r.host.clone(),
            r.operators
                .iter()
                .map(super::RestoredOperator::to_snapshot)
                .collect::<Vec<_>>(),
        ),
        None => (
            HostState {
                job: target.job.clone(),
                ..HostState::default()
            },
            Vec::new(),
        ),
    };
    match operators.iter_mut().find(|o| o.name == target.operator) {
        Some(o) => *o = snapshot,
        None => operators.push(snapshot),
    }
    let id = ids.last().map_or(1, |l| l + 1);
    let at = Placement {
        id,
        kind: Kind::Full,
        base: id,
        parent: None,
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let bytes = codec
        .encode(at, created, &CheckpointData { host, operators })
        .map_err(|message| CheckpointError::Encode { id, message })?;
    store.commit(id, &bytes, &[]).map_err(CheckpointError::from)?;
    Ok(id)
}
