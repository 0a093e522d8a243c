use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};

use cairn_codec::declared::Declared;

use super::bindings::InstanceData;
use super::exports::{self, Contract, ExportIndices};
use super::{LoadError, OperatorBuilder, WORLD};
use crate::engine::{Engine, file_state};

/// Interfaces the host provides, besides WASI.
const PROVIDED_PREFIX: &str = "cairn:operator/";

/// What kind of WebAssembly binary a byte string holds, from its 8-byte preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preamble {
    /// `\0asm` version 1: a core module.
    CoreModule,
    /// `\0asm` with the component layer.
    Component,
    /// Not WebAssembly.
    NotWasm,
}

pub(crate) fn preamble(bytes: &[u8]) -> Preamble {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Preamble::NotWasm;
    }
    // Bytes 6..8 are the layer: 0 for core modules, 1 for components.
    match (bytes[6], bytes[7]) {
        (0, 0) => Preamble::CoreModule,
        (1, 0) => Preamble::Component,
        _ => Preamble::NotWasm,
    }
}

/// A loaded, compiled and checked plugin, ready to instantiate any number of operators.
/// Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub name: String,
    pub digest: [u8; 32],
    pub engine: Engine,
    pub pre: InstancePre<InstanceData>,
    /// Where its exports are.
    pub exports: ExportIndices,
    /// Whether it imports `wasi:keyvalue` (whose state is all operator-wide).
    pub keyvalue: bool,
    /// Its declared operator name and state version.
    pub declared: Declared,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("digest", &self.digest_hex())
            .finish()
    }
}

pub(crate) fn read_wasm(path: &Path) -> Result<Vec<u8>, LoadError> {
    let shown = path.display().to_string();
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NotFound { path: shown }
        } else {
            LoadError::Read { path: shown, source }
        }
    })
}

pub(crate) fn compile(engine: &Engine, shown: &str, bytes: &[u8]) -> Result<Component, LoadError> {
    compile_digested(engine, shown, bytes, &Sha256::digest(bytes).into())
}

/// [`compile`] with the SHA-256 of `bytes` given.
fn compile_digested(
    engine: &Engine,
    shown: &str,
    bytes: &[u8],
    digest: &[u8; 32],
) -> Result<Component, LoadError> {
    match preamble(bytes) {
        Preamble::NotWasm => return Err(LoadError::NotWasm { path: shown.into() }),
        Preamble::CoreModule => return Err(LoadError::CoreModule { path: shown.into() }),
        Preamble::Component => {}
    }
    engine
        .compile_component_digested(bytes, digest)
        .map(|(c, outcome)| {
            tracing::debug!(plugin = shown, ?outcome, "component ready");
            c
        })
        .map_err(|e| LoadError::Invalid {
            path: shown.into(),
            message: format!("{e:#}"),
        })
}

/// The component's exports, or every problem that keeps it from fitting a supported world
/// (missing or mistyped exports, imports the host does not provide).
pub(crate) fn world_problems(engine: &Engine, component: &Component) -> Result<ExportIndices, Vec<String>> {
    let found = exports::find(engine, component);
    let mut problems = found.as_ref().err().cloned().unwrap_or_default();
    for (name, _) in component.component_type().imports(engine.wasmtime()) {
        if !(name.starts_with(PROVIDED_PREFIX) || name.starts_with("wasi:")) {
            problems.push(format!("imports `{name}`, which Cairn does not provide"));
        }
    }
    match found {
        Ok(found) if problems.is_empty() => Ok(found),
        _ => Err(problems),
    }
}

/// The host's imports, built once per engine.
pub(crate) fn linker(engine: &Engine) -> Result<Arc<Linker<InstanceData>>, String> {
    /// Its own type, so the engine's memo cannot confuse it with another linker.
    struct HostLinker(Result<Arc<Linker<InstanceData>>, String>);
    engine
        .memo(|engine| {
            let build = || -> wasmtime::Result<Linker<InstanceData>> {
                let mut linker = Linker::new(engine.wasmtime());
                wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
                super::bindings::add_to_linker(&mut linker)?;
                Ok(linker)
            };
            HostLinker(build().map(Arc::new).map_err(|e| format!("{e:#}")))
        })
        .0
        .clone()
}

impl Plugin {
    /// Load, compile and check the component at `path`. The plugin's name is the name it
    /// declares, else the file stem.
    ///
    /// With a component cache, an unchanged file loaded before is neither read nor hashed:
    /// its digest and declaration are remembered by its metadata and its compiled artifact
    /// mapped.
    pub fn load(engine: &Engine, path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let shown = path.display().to_string();
        let cache = engine.cache();
        let before = cache.and_then(|_| std::fs::metadata(path).ok());
        if let (Some(cache), Some(meta)) = (cache, &before)
            && let Some((digest, declared)) = cache.known_digest(meta)
            && let Ok(declared) = Declared::parse(&declared)
            && let Some(component) = cache.artifact(engine, &digest)
        {
            tracing::debug!(plugin = shown, "component ready (known file)");
            return Self::from_component(engine, &name, &shown, component, digest, declared);
        }
        let bytes = read_wasm(path)?;
        let plugin = Self::from_bytes(engine, &name, &shown, &bytes)?;
        if let (Some(cache), Some(before)) = (cache, before)
            && std::fs::metadata(path).is_ok_and(|after| file_state(&before) == file_state(&after))
        {
            let declared = plugin.inner.declared.encode();
            cache.remember_digest(&before, &plugin.inner.digest, declared.as_bytes());
        }
        Ok(plugin)
    }

    /// Compile and check a component from memory; `shown` names it in errors, `name` is its
    /// name unless it declares one.
    pub fn from_bytes(engine: &Engine, name: &str, shown: &str, bytes: &[u8]) -> Result<Self, LoadError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let declared = super::declared::read(shown, bytes)?;
        let component = compile_digested(engine, shown, bytes, &digest)?;
        Self::from_component(engine, name, shown, component, digest, declared)
    }

    /// Check a compiled component against the worlds and prepare its instantiation.
    fn from_component(
        engine: &Engine,
        name: &str,
        shown: &str,
        component: Component,
        digest: [u8; 32],
        declared: Declared,
    ) -> Result<Self, LoadError> {
        let mismatch = |problems| LoadError::WorldMismatch {
            path: shown.into(),
            world: WORLD,
            problems,
        };
        let exports = world_problems(engine, &component).map_err(mismatch)?;
        let linker = linker(engine).map_err(|e| LoadError::Invalid {
            path: shown.into(),
            message: format!("could not set up the host's imports: {e}"),
        })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| mismatch(vec![format!("{e:#}")]))?;
        let keyvalue = component
            .component_type()
            .imports(engine.wasmtime())
            .any(|(name, _)| name.starts_with("wasi:keyvalue/"));
        Ok(Self {
            inner: Arc::new(PluginInner {
                name: declared.name.clone().unwrap_or_else(|| name.to_string()),
                digest,
                engine: engine.clone(),
                pre,
                exports,
                keyvalue,
                declared,
            }),
        })
    }

    /// The version of the operator contract the plugin was built for.
    pub fn contract(&self) -> Contract {
        self.inner.exports.contract
    }

    /// Why the plugin can only run as one instance, if it can: its state is all operator-wide
    /// (a 0.1.x plugin, or one that keeps its state through `wasi:keyvalue`), and operator-wide
    /// state cannot be split by key group.
    pub fn single_instance_only(&self) -> Option<String> {
        if self.contract() == Contract::V0_1 {
            Some("it is a 0.1.x plugin, whose state is all operator-wide".into())
        } else if self.inner.keyvalue {
            Some("it keeps its state through wasi:keyvalue, which is all operator-wide".into())
        } else {
            None
        }
    }

    /// The plugin's name (the declared one, else the file stem): an operator's name unless
    /// the pipeline gives another; used in logs and errors.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the component declares: its operator name and state version.
    pub fn declared(&self) -> &Declared {
        &self.inner.declared
    }

    /// The version of the state layout it reads and writes (0 when it declares none).
    pub fn state_version(&self) -> u32 {
        self.inner.declared.version()
    }

    /// Whether it can migrate state of an older state version (it exports `migration`).
    pub fn can_migrate(&self) -> bool {
        self.inner.exports.migrate.is_some()
    }

    /// SHA-256 of the component's bytes; recorded in checkpoints.
    pub fn digest(&self) -> [u8; 32] {
        self.inner.digest
    }

    /// The digest as lowercase hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.inner.digest)
    }

    /// Start building an operator instance of this plugin.
    pub fn operator(&self) -> OperatorBuilder {
        OperatorBuilder::new(self.clone())
    }
}
