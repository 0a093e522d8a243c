use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project's directory (holding cairn.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Write the component here instead of cairn.toml's `output`.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn build(args: BuildArgs) -> Result<ExitCode> {
    let built = cairn::project::build(&args.dir, args.out.as_deref())?;
    eprintln!("built {}", built.display());
    println!("{}", built.display());
    Ok(ExitCode::SUCCESS)
}
