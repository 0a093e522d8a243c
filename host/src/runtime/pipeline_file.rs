//! A pipeline described in TOML: the operators in order, each with its plugin, configuration
//! and limits.
//!
//! ```toml
//! name = "sensors"            # job name (optional)
//! batch_size = 1024           # optional
//! key_groups = 128            # optional; fixed when the job first starts
//! parallelism = 1             # optional; each operator's default
//!
//! [[operators]]
//! name = "dedup"              # optional; default: the plugin's file stem; must be unique
//! plugin = "../dist/plugins/dedup.wasm"   # relative to this file
//! config = { id_field = "id", within_ms = 60000 }
//! parallelism = 2             # optional: instances, each owning a range of key groups
//! timeout = "5s"              # limits (`Limits`), all optional, defaults as on the command line
//! memory_limit = "64MiB"
//!
//! [[operators]]
//! plugin = "../dist/plugins/counter.wasm"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::sandbox::ByteSize;
use crate::{Engine, EngineOptions, Limits, LoadError, OperatorBuilder, Plugin};

/// A problem with a pipeline file.
#[derive(Debug, Error)]
pub enum PipelineFileError {
    /// The file could not be read.
    #[error("could not read pipeline file {path}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid pipeline TOML.
    #[error("{path} is invalid: {message}")]
    Invalid {
        /// Where the pipeline came from: `pipeline file <path>`, or the command line.
        path: String,
        /// What is wrong (with the line, for TOML errors).
        message: String,
    },
    /// A plugin could not be loaded.
    #[error("{path}, operator `{operator}`")]
    Plugin {
        /// Where the pipeline came from: `pipeline file <path>`, or the command line.
        path: String,
        /// The operator.
        operator: String,
        /// Why.
        source: LoadError,
    },
    /// The plugin of a one-operator pipeline (`cairn run --plugin`) could not be loaded.
    #[error(transparent)]
    Load(LoadError),
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// One operator of a pipeline file: its plugin, its configuration and its [`Limits`], whose
/// fields sit beside `plugin` and `config` in the TOML section.
#[derive(Debug, Clone)]
pub struct OperatorEntry {
    /// Name (unique in the pipeline); default: the plugin's file stem.
    pub name: Option<String>,
    /// The plugin, relative to the pipeline file.
    pub plugin: PathBuf,
    /// The configuration, passed to the operator as JSON text.
    pub config: Option<serde_json::Value>,
    /// The limits (defaults for the fields not given).
    pub limits: Limits,
    /// Instances (default: the pipeline's `parallelism`, else 1).
    pub parallelism: Option<u32>,
}

impl<'de> Deserialize<'de> for OperatorEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let name = match table.remove("name") {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => return Err(D::Error::custom("`name` must be a string")),
        };
        let plugin = match table.remove("plugin") {
            Some(toml::Value::String(s)) => PathBuf::from(s),
            Some(_) => return Err(D::Error::custom("`plugin` must be a string (a path)")),
            None => return Err(D::Error::missing_field("plugin")),
        };
        let parallelism = match table.remove("parallelism") {
            None => None,
            Some(toml::Value::Integer(n)) if (1..=i64::from(crate::state::MAX_KEY_GROUPS)).contains(&n) => {
                Some(n as u32)
            }
            Some(_) => {
                return Err(D::Error::custom(
                    "`parallelism` must be a whole number from 1 to 32768",
                ));
            }
        };
        let config = table
            .remove("config")
            .map(serde_json::Value::deserialize)
            .transpose()
            .map_err(|e| D::Error::custom(format!("`config`: {e}")))?;
        // Everything else is a limit; an unknown field is named with the accepted ones.
        let shown = name.clone().unwrap_or_else(|| {
            plugin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let limits = Limits::deserialize(toml::Value::Table(table)).map_err(|e| {
            let e = e.to_string().replace('\n', " ");
            D::Error::custom(format!(
                "operator `{shown}`: {} (an operator takes `name`, `plugin`, `config`, `parallelism` and the limits)",
                e.trim()
            ))
        })?;
        Ok(Self {
            name,
            plugin,
            config,
            limits,
            parallelism,
        })
    }
}

/// A pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// The job's name.
    pub name: Option<String>,
    /// Events per batch.
    pub batch_size: Option<usize>,
    /// Bytes of one input line (default: the command line's).
    pub max_line_bytes: Option<ByteSize>,
    /// Bytes of one event key (default: the command line's).
    pub max_key_bytes: Option<ByteSize>,
    /// Key groups of a new job (default 128; a restored job keeps its checkpoint's).
    pub key_groups: Option<u32>,
    /// Instances of each operator that does not say (default 1).
    pub parallelism: Option<u32>,
    /// The operators, in order.
    pub operators: Vec<OperatorEntry>,
    #[serde(skip)]
    dir: PathBuf,
    #[serde(skip)]
    path: String,
    /// Made by [`PipelineFile::single`], not read from a file.
    #[serde(skip)]
    single: bool,
}

impl PipelineFile {
    /// Read and check a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PipelineFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &dir, &format!("pipeline file {shown}"))
    }

    /// Read and check a pipeline's TOML text (`shown` says where it came from in errors);
    /// plugins are found relative to `dir`.
    pub fn parse(text: &str, dir: &Path, shown: &str) -> Result<Self, PipelineFileError> {
        let mut spec: PipelineFile = toml::from_str(text).map_err(|e| PipelineFileError::Invalid {
            path: shown.to_string(),
            message: e.to_string(),
        })?;
        spec.dir = dir.to_path_buf();
        spec.path = shown.to_string();
        if spec.operators.is_empty() {
            return Err(spec.invalid("it has no [[operators]]"));
        }
        if spec.parallelism == Some(0) {
            return Err(spec.invalid("`parallelism` must be at least 1"));
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

    fn invalid(&self, message: &str) -> PipelineFileError {
        PipelineFileError::Invalid {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    fn name_of(&self, op: &OperatorEntry) -> String {
        op.name.clone().unwrap_or_else(|| {
            op.plugin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "operator".into())
        })
    }

    fn limits_of(&self, op: &OperatorEntry) -> Result<Limits, PipelineFileError> {
        op.limits
            .check()
            .map_err(|e| self.invalid(&format!("operator `{}`, {e}", self.name_of(op))))?;
        Ok(op.limits.clone())
    }

    /// Whether any operator asks for fuel (the engine must then count it).
    fn needs_fuel(&self) -> bool {
        self.operators.iter().any(|o| o.limits.fuel.is_some())
    }

    /// A pipeline of one operator (what `cairn run --plugin` runs): the plugin at `plugin`,
    /// with a JSON configuration and limits.
    pub fn single(
        plugin: PathBuf,
        config: serde_json::Value,
        limits: Limits,
    ) -> Result<Self, PipelineFileError> {
        let spec = Self {
            name: None,
            batch_size: None,
            max_line_bytes: None,
            max_key_bytes: None,
            key_groups: None,
            parallelism: None,
            operators: vec![OperatorEntry {
                name: None,
                plugin,
                config: Some(config),
                limits,
                parallelism: None,
            }],
            dir: PathBuf::new(),
            path: "the command line (--plugin and its flags)".into(),
            single: true,
        };
        spec.limits_of(&spec.operators[0])?;
        Ok(spec)
    }

    /// An engine fit for this pipeline.
    pub fn engine(&self) -> Result<Engine, PipelineFileError> {
        Ok(Engine::with_options(EngineOptions {
            fuel: self.needs_fuel(),
        })?)
    }

    /// Load every plugin and prepare the operators, in order. An operator the file does not
    /// name is named by its plugin (the name it declares, else its file's stem).
    pub fn builders(&self, engine: &Engine) -> Result<Vec<OperatorBuilder>, PipelineFileError> {
        let builders = self
            .operators
            .iter()
            .map(|op| {
                let name = self.name_of(op);
                let path = self.dir.join(&op.plugin);
                let plugin = Plugin::load(engine, &path).map_err(|source| match self.single {
                    true => PipelineFileError::Load(source),
                    false => PipelineFileError::Plugin {
                        path: self.path.clone(),
                        operator: name.clone(),
                        source,
                    },
                })?;
                let config = match &op.config {
                    None => "{}".to_string(),
                    Some(v) => v.to_string(),
                };
                let b = plugin.operator();
                let b = match &op.name {
                    Some(n) => b.name(n.clone()),
                    None => b,
                };
                Ok(b.config(config)
                    .limits(self.limits_of(op)?)
                    .parallelism(op.parallelism.or(self.parallelism).unwrap_or(1)))
            })
            .collect::<Result<Vec<_>, PipelineFileError>>()?;
        let mut names: Vec<&str> = Vec::new();
        for b in &builders {
            let name = b.name_or_plugin();
            if names.contains(&name) {
                return Err(self.invalid(&format!(
                    "two operators are named `{name}` (their plugins declare it); give each a unique `name` \
                     (state is kept per name)"
                )));
            }
            names.push(name);
        }
        Ok(builders)
    }
}
