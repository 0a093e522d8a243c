use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin crate's name (lowercase letters, digits, `-` and `_`).
    name: String,
    /// Where to create it (a directory `<name>` is made inside).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Path of the cairn-sdk crate [default: the guest-sdk of the source tree this cairn was built from].
    #[arg(long)]
    sdk: Option<PathBuf>,
}

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

fn fill(template: &str, name: &str, sdk: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{sdk}}", sdk)
}

pub fn new(args: NewArgs) -> Result<ExitCode> {
    let name = &args.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?} is not a valid plugin name: use lowercase letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let sdk = match args.sdk {
        Some(p) => p,
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "cairn-sdk was not found at {}; pass --sdk <path to cairn's guest-sdk directory>",
            sdk.display()
        )
    })?;
    let root = args.dir.join(name);
    if root.exists() {
        bail!("{} already exists; choose another name or --dir", root.display());
    }
    let sdk_text = sdk.display().to_string();
    let files = [
        ("Cargo.toml", fill(CARGO_TOML, name, &sdk_text)),
        ("src/lib.rs", fill(LIB_RS, name, &sdk_text)),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        (".gitignore", "/target\n".to_string()),
    ];
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("could not create {}", root.display()))?;
    for (file, text) in files {
        let p = root.join(file);
        std::fs::write(&p, text).with_context(|| format!("could not write {}", p.display()))?;
    }
    println!("created plugin crate {}", root.display());
    println!("  test natively:   cd {} && cargo test", root.display());
    println!("  build the wasm:  cargo build --target wasm32-wasip2 --release");
    println!(
        "  run it:          cairn run --plugin target/wasm32-wasip2/release/{}.wasm --input events.jsonl --output - --config '{{\"field\": \"temp\"}}'",
        name.replace('-', "_")
    );
    Ok(ExitCode::SUCCESS)
}
