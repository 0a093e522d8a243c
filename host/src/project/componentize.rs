//! What C operators need beyond clang, done in-process with the crates the usual tools are made
//! of: the bindings `wit-bindgen c` would write (crate `wit-bindgen-c`, from this host's WIT) and
//! `componentize`, which turns clang's core module into a component as `wasm-tools component
//! new` does (crate `wit-component`). So building a C operator needs no `cargo install`.
//!
//! A build step `["{cairn}", "componentize", CORE, "--adapt", "NAME=FILE", "-o", OUT]` runs
//! [`componentize`] in this process; `cairn componentize` is the same from the command line.

use std::path::{Path, PathBuf};

use super::{ProjectError, io};

/// The world C operators are built against (the SDK's packed speed path).
pub const C_WORLD: &str = "operator-packed";

/// The program name a build step uses for this host's built-in commands.
pub const BUILTIN: &str = "{cairn}";

/// `cairn componentize`: make a component of a core module whose component-type metadata was
/// linked in (the bindings' `*_component_type.o`).
#[derive(Debug, Clone, clap::Args)]
pub struct ComponentizeArgs {
    /// The core WebAssembly module (clang's output).
    pub core: PathBuf,
    /// An adapter for an imported core module, as NAME=FILE (for C:
    /// `wasi_snapshot_preview1=.cairn/wasi_snapshot_preview1.reactor.wasm`, which `cairn build`
    /// writes; libc's stdio imports WASI preview1).
    #[arg(long = "adapt", value_name = "NAME=FILE", value_parser = parse_adapter)]
    pub adapters: Vec<(String, PathBuf)>,
    /// Where to write the component.
    #[arg(long, short)]
    pub out: PathBuf,
}

fn parse_adapter(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_string(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "{s:?} is not NAME=FILE (e.g. wasi_snapshot_preview1=.cairn/wasi_snapshot_preview1.reactor.wasm)"
        )),
    }
}

/// A built-in step, `{cairn} componentize ...`, parsed; the step's words after `{cairn}`.
pub(crate) fn run_builtin(step: &[String], manifest: &Path) -> Result<(), ProjectError> {
    #[derive(clap::Parser)]
    #[command(name = "{cairn}", no_binary_name = true)]
    enum Builtin {
        Componentize(ComponentizeArgs),
    }
    let parsed = <Builtin as clap::Parser>::try_parse_from(step).map_err(|e| ProjectError::BadManifest {
        path: manifest.to_path_buf(),
        message: format!(
            "build step `{{cairn}} {}`: {}",
            step.join(" "),
            e.render().to_string().trim()
        ),
    })?;
    match parsed {
        Builtin::Componentize(args) => componentize(&args),
    }
}

/// Make the component: read the core module and the adapters, encode, validate, write.
pub fn componentize(args: &ComponentizeArgs) -> Result<(), ProjectError> {
    let core = std::fs::read(&args.core).map_err(io("reading", &args.core))?;
    let fail = |e: anyhow::Error| ProjectError::Componentize {
        core: args.core.clone(),
        message: format!("{e:#}"),
    };
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.validate(true).module(&core).map_err(fail)?;
    for (name, file) in &args.adapters {
        let bytes = std::fs::read(file).map_err(io("reading", file))?;
        encoder.adapter(name, &bytes).map_err(fail)?;
    }
    let component = encoder.encode().map_err(fail)?;
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::write(&args.out, component).map_err(io("writing", &args.out))
}

/// Write the C bindings of `world` in `wit` into `dir` (as `wit-bindgen c WIT --world WORLD
/// --out-dir DIR` would: `<world>.c`, `<world>.h`, `<world>_component_type.o`).
pub fn write_c_bindings(wit: &str, world: &str, dir: &Path) -> Result<(), ProjectError> {
    let fail = |e: anyhow::Error| ProjectError::Bindings {
        world: world.to_string(),
        message: format!("{e:#}"),
    };
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("operator.wit", wit).map_err(fail)?;
    let world_id = resolve.select_world(&[package], Some(world)).map_err(fail)?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world_id, &mut files)
        .map_err(fail)?;
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    for (name, bytes) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io("writing", &path))?;
    }
    Ok(())
}
