//! A pipeline described in TOML: the operators in order, each with its plugin, configuration
//! and limits.
//!
//! ```toml
//! name = "sensors"            # job name (optional)
//! batch_size = 256            # optional
//!
//! [[operators]]
//! name = "dedup"              # optional; default: the plugin's file stem; must be unique
//! plugin = "../dist/plugins/dedup.wasm"   # relative to this file
//! config = { id_field = "id", within_ms = 60000 }
//! timeout = "5s"              # limits, all optional (defaults as on the command line)
//! memory_limit = "64MiB"
//!
//! [[operators]]
//! plugin = "../dist/plugins/counter.wasm"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::{Engine, EngineOptions, Limits, LoadError, OperatorBuilder, Plugin};

/// A problem with a pipeline file.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("could not read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid pipeline TOML.
    #[error("pipeline file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (with the line, for TOML errors).
        message: String,
    },
    /// A plugin could not be loaded.
    #[error("pipeline file {path}, operator `{operator}`: {source}")]
    Plugin {
        /// The file.
        path: String,
        /// The operator.
        operator: String,
        /// Why.
        source: LoadError,
    },
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// One operator of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    /// Name (unique in the pipeline); default: the plugin's file stem.
    pub name: Option<String>,
    /// The plugin, relative to the pipeline file.
    pub plugin: PathBuf,
    /// The configuration, any TOML value (passed to the operator as JSON).
    pub config: Option<toml::Value>,
    /// Call deadline, e.g. "10s".
    pub timeout: Option<String>,
    /// Fuel per call.
    pub fuel: Option<u64>,
    /// Linear memory cap, e.g. "256MiB".
    pub memory_limit: Option<String>,
    /// State quota: keys.
    pub max_keys: Option<u64>,
    /// State quota: bytes, e.g. "4GiB".
    pub max_state_bytes: Option<String>,
    /// State quota: one value, e.g. "16MiB".
    pub max_value_bytes: Option<String>,
}

/// A pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The job's name.
    pub name: Option<String>,
    /// Events per batch.
    pub batch_size: Option<usize>,
    /// The operators, in order.
    pub operators: Vec<OperatorSpec>,
    #[serde(skip)]
    dir: PathBuf,
    #[serde(skip)]
    path: String,
}

/// A byte size: a number with an optional unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB; powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 256MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl PipelineSpec {
    /// Read and check a pipeline file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut spec: PipelineSpec = toml::from_str(&text).map_err(|e| SpecError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        spec.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        spec.path = shown;
        if spec.operators.is_empty() {
            return Err(spec.invalid("it has no [[operators]]"));
        }
        let mut names = Vec::new();
        for op in &spec.operators {
            let name = spec.name_of(op);
            if names.contains(&name) {
                return Err(spec.invalid(&format!(
                    "two operators are named `{name}`; give each a unique `name` (state is kept per name)"
                )));
            }
            names.push(name);
            spec.limits_of(op)?;
        }
        Ok(spec)
    }

    fn invalid(&self, message: &str) -> SpecError {
        SpecError::Invalid {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    fn name_of(&self, op: &OperatorSpec) -> String {
        op.name.clone().unwrap_or_else(|| {
            op.plugin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "operator".into())
        })
    }

    fn limits_of(&self, op: &OperatorSpec) -> Result<Limits, SpecError> {
        let name = self.name_of(op);
        let bad = |field: &str, e: String| self.invalid(&format!("operator `{name}`, {field}: {e}"));
        let mut l = Limits::default();
        if let Some(t) = &op.timeout {
            l.timeout = humantime::parse_duration(t).map_err(|e| bad("timeout", e.to_string()))?;
            if l.timeout == Duration::ZERO {
                return Err(bad("timeout", "must be positive".into()));
            }
        }
        l.fuel = op.fuel;
        if let Some(m) = &op.memory_limit {
            l.memory_bytes = parse_size(m).map_err(|e| bad("memory_limit", e))? as usize;
        }
        if let Some(k) = op.max_keys {
            l.max_keys = k;
        }
        if let Some(b) = &op.max_state_bytes {
            l.max_state_bytes = parse_size(b).map_err(|e| bad("max_state_bytes", e))?;
        }
        if let Some(b) = &op.max_value_bytes {
            l.max_value_bytes = parse_size(b).map_err(|e| bad("max_value_bytes", e))?;
        }
        Ok(l)
    }

    /// Whether any operator asks for fuel (the engine must then count it).
    pub fn needs_fuel(&self) -> bool {
        self.operators.iter().any(|o| o.fuel.is_some())
    }

    /// An engine fit for this pipeline.
    pub fn engine(&self) -> Result<Engine, SpecError> {
        Ok(Engine::with_options(EngineOptions {
            fuel: self.needs_fuel(),
        })?)
    }

    /// Load every plugin and prepare the operators, in order.
    pub fn builders(&self, engine: &Engine) -> Result<Vec<OperatorBuilder>, SpecError> {
        self.operators
            .iter()
            .map(|op| {
                let name = self.name_of(op);
                let path = self.dir.join(&op.plugin);
                let plugin = Plugin::load(engine, &path).map_err(|source| SpecError::Plugin {
                    path: self.path.clone(),
                    operator: name.clone(),
                    source,
                })?;
                let config = match &op.config {
                    None => "{}".to_string(),
                    Some(v) => serde_json::to_string(v).map_err(|e| self.invalid(&e.to_string()))?,
                };
                Ok(plugin
                    .operator()
                    .name(name)
                    .config(config)
                    .limits(self.limits_of(op)?))
            })
            .collect()
    }
}
