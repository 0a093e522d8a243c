use std::process::ExitCode;

use anyhow::Result;

pub use cairn::project::ComponentizeArgs;

/// `cairn componentize`: what `cairn build` does as a C project's last step.
pub fn componentize(args: ComponentizeArgs) -> Result<ExitCode> {
    cairn::project::componentize(&args)?;
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
