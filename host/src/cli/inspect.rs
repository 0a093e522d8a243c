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
    match &report.declared {
        Ok(d) => {
            let name = d.name.as_deref().unwrap_or("(not declared: the file stem)");
            let version = d
                .state_version
                .map_or("0 (not declared)".to_string(), |v| v.to_string());
            let migrates = if report.migrates { "yes" } else { "no" };
            println!("operator name: {name}");
            println!("state version: {version}");
            println!("migrates older state: {migrates}");
        }
        Err(e) => println!("declaration: unreadable: {e}"),
    }
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
        println!(
            "a plugin implements world `operator-core` (or `operator-timers`) of WIT cairn:operator@{} (or an older supported version); rebuild it:",
            cairn_codec::CONTRACT_VERSION
        );
        println!(
            "  Rust:            cairn_sdk::export!(YourOperator); then cargo build --target wasm32-wasip2 --release"
        );
        println!("  Python, JS, C:   cairn build <project>   (cairn new --lang python|js|c NAME makes one)");
        Ok(ExitCode::FAILURE)
    }
}
