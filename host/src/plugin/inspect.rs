use std::path::Path;

use super::load::{Preamble, compile, preamble, read_wasm, world_problems};
use super::{LoadError, WORLD};
use crate::engine::Engine;

/// What kind of WebAssembly a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A component (what Cairn runs).
    Component,
    /// A core module.
    CoreModule,
}

/// What a WebAssembly file imports and exports, and whether it fits Cairn's world.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Component or core module.
    pub kind: WasmKind,
    /// Import names.
    pub imports: Vec<String>,
    /// Export names.
    pub exports: Vec<String>,
    /// Why it does not fit the `operator` world; empty when it fits.
    pub problems: Vec<String>,
    /// The world it fits (by the contract version it was built for), or the current one.
    pub world: &'static str,
    /// Its declared operator name and state version (a component's `cairn-operator` section).
    pub declared: Result<super::Declared, String>,
    /// Whether it can migrate older state (it exports `migration`).
    pub migrates: bool,
}

/// Inspect the file at `path`. Fails only when it cannot be read or is not valid WebAssembly.
pub fn inspect(engine: &Engine, path: &Path) -> Result<Inspection, LoadError> {
    let bytes = read_wasm(path)?;
    let shown = path.display().to_string();
    match preamble(&bytes) {
        Preamble::NotWasm => Err(LoadError::NotWasm { path: shown }),
        Preamble::CoreModule => {
            let module =
                wasmtime::Module::new(engine.wasmtime(), &bytes).map_err(|e| LoadError::Invalid {
                    path: shown.clone(),
                    message: format!("{e:#}"),
                })?;
            Ok(Inspection {
                kind: WasmKind::CoreModule,
                imports: module
                    .imports()
                    .map(|i| format!("{}::{}", i.module(), i.name()))
                    .collect(),
                exports: module.exports().map(|e| e.name().to_string()).collect(),
                problems: vec!["a core module, not a component; build with --target wasm32-wasip2".into()],
                world: WORLD,
                declared: Ok(Default::default()),
                migrates: false,
            })
        }
        Preamble::Component => {
            let component = compile(engine, &shown, &bytes)?;
            let ty = component.component_type();
            let found = world_problems(engine, &component);
            let world = match &found {
                Ok(e) if e.contract == super::Contract::V0_1 => "cairn:operator/operator@0.1.1",
                _ => WORLD,
            };
            let migrates = found.as_ref().is_ok_and(|e| e.migrate.is_some());
            let mut problems = found.err().unwrap_or_default();
            let declared = super::declared::read(&shown, &bytes).map_err(|e| e.to_string());
            if problems.is_empty()
                && let Err(e) = crate::plugin::Plugin::from_bytes(engine, "inspect", &shown, &bytes)
            {
                problems.push(e.to_string());
            }
            Ok(Inspection {
                kind: WasmKind::Component,
                imports: ty
                    .imports(engine.wasmtime())
                    .map(|(n, _)| n.to_string())
                    .collect(),
                exports: ty
                    .exports(engine.wasmtime())
                    .map(|(n, _)| n.to_string())
                    .collect(),
                problems,
                world,
                declared,
                migrates,
            })
        }
    }
}
