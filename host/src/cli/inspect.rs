use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cairn::Engine;
use cairn::plugin::{WasmKind, inspect as inspect_file};
use clap::Args;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The .wasm file to inspect.
    file: PathBuf,
}

pub fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let engine = Engine::new()?.with_cache(super::component_cache());
    let report = inspect_file(&engine, &args.file)?;
    let kind = match report.kind {
        WasmKind::Component => "component",
        WasmKind::CoreModule => "core module",
    };
    println!("{}: {kind}", args.file.display());
    println!("imports:");
    for i in &report.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &report.exports {
        println!("  {e}");
    }
    if report.problems.is_empty() {
        println!("fits world {}: yes", report.world);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("fits world {}: no", report.world);
        for p in &report.problems {
            println!("  - {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
