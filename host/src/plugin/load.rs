use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, Linker, types::ComponentItem};

use super::bindings::OperatorPre;
use super::bindings::cairn::operator::{log, types};
use super::host::StoreData;
use super::{LoadError, OperatorBuilder, WORLD};
use crate::engine::Engine;

/// The exports the `operator` world requires.
const REQUIRED_EXPORTS: [&str; 3] = ["init", "process", "on-watermark"];
/// Interfaces the host provides, besides WASI.
/// The optional export that takes and returns batches in the packed encoding.
pub(crate) const PACKED_EXPORT: &str = "process-packed";
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
    pub pre: OperatorPre<StoreData>,
    /// The optional `process-packed` export.
    pub packed: Option<ComponentExportIndex>,
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
    match preamble(bytes) {
        Preamble::NotWasm => return Err(LoadError::NotWasm { path: shown.into() }),
        Preamble::CoreModule => return Err(LoadError::CoreModule { path: shown.into() }),
        Preamble::Component => {}
    }
    engine
        .compile_component(bytes)
        .map(|(c, outcome)| {
            tracing::debug!(plugin = shown, ?outcome, "component ready");
            c
        })
        .map_err(|e| LoadError::Invalid {
            path: shown.into(),
            message: format!("{e:#}"),
        })
}

/// Whether `f` is `func(list<u8>) -> result<list<u8>, string>`.
fn packed_signature(f: &wasmtime::component::types::ComponentFunc) -> bool {
    use wasmtime::component::types::Type;
    let bytes = |t: &Type| matches!(t, Type::List(l) if l.ty() == Type::U8);
    let params: Vec<Type> = f.params().map(|(_, t)| t).collect();
    let results: Vec<Type> = f.results().collect();
    matches!(params.as_slice(), [p] if bytes(p))
        && matches!(results.as_slice(), [Type::Result(r)]
            if r.ok().as_ref().is_some_and(bytes) && matches!(r.err(), Some(Type::String)))
}

/// Problems that keep `component` from fitting the world, named one by one.
pub(crate) fn world_problems(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    for name in REQUIRED_EXPORTS {
        match ty.get_export(engine.wasmtime(), name).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(_)) => {}
            Some(_) => problems.push(format!("export `{name}` is not a function")),
            None => problems.push(format!("missing export `{name}`")),
        }
    }
    match ty.get_export(engine.wasmtime(), PACKED_EXPORT).map(|e| e.ty) {
        None => {}
        Some(ComponentItem::ComponentFunc(f)) if packed_signature(&f) => {}
        Some(_) => problems.push(format!(
            "export `{PACKED_EXPORT}` is not `func(batch: list<u8>) -> result<list<u8>, string>`"
        )),
    }
    for (name, _) in ty.imports(engine.wasmtime()) {
        if !(name.starts_with(PROVIDED_PREFIX) || name.starts_with("wasi:")) {
            problems.push(format!("imports `{name}`, which Cairn does not provide"));
        }
    }
    problems
}

pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine.wasmtime());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    types::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |d| d)?;
    log::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |d| d)?;
    super::host::add_state_to_linker(&mut linker)?;
    Ok(linker)
}

impl Plugin {
    /// Load, compile and check the component at `path`. The plugin's name is the file stem.
    pub fn load(engine: &Engine, path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let bytes = read_wasm(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        Self::from_bytes(engine, &name, &path.display().to_string(), &bytes)
    }

    /// Compile and check a component from memory; `shown` names it in errors.
    pub fn from_bytes(engine: &Engine, name: &str, shown: &str, bytes: &[u8]) -> Result<Self, LoadError> {
        let component = compile(engine, shown, bytes)?;
        let problems = world_problems(engine, &component);
        let mismatch = |problems| LoadError::WorldMismatch {
            path: shown.into(),
            world: WORLD,
            problems,
        };
        if !problems.is_empty() {
            return Err(mismatch(problems));
        }
        let linker = linker(engine).map_err(|e| LoadError::Invalid {
            path: shown.into(),
            message: format!("could not set up the host's imports: {e:#}"),
        })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| mismatch(vec![format!("{e:#}")]))?;
        let pre = OperatorPre::new(pre).map_err(|e| mismatch(vec![format!("{e:#}")]))?;
        let packed = component.get_export_index(None, PACKED_EXPORT);
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        Ok(Self {
            inner: Arc::new(PluginInner {
                name: name.to_string(),
                digest,
                engine: engine.clone(),
                pre,
                packed,
            }),
        })
    }

    /// The plugin's name (file stem), used in logs and errors.
    pub fn name(&self) -> &str {
        &self.inner.name
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
