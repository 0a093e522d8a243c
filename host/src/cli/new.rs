use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn::project::{self, Lang};
use clap::Args;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin crate's name (lowercase letters, digits, `-` and `_`).
    name: String,
    /// Where to create it (a directory `<name>` is made inside).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The operator's language.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Path of the cairn-sdk crate (Rust only) [default: the guest-sdk/rust of the source tree this cairn was built from when it exists, else cairn-sdk from crates.io at this cairn's version].
    #[arg(long)]
    sdk: Option<PathBuf>,
}

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

fn fill(template: &str, name: &str, sdk_dep: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{sdk_dep}}", sdk_dep)
}

/// The cairn-sdk dependency of a new crate: the given path, else the source tree's SDK when
/// this cairn runs from a checkout, else the package of this cairn's version.
fn sdk_dependency(sdk: Option<PathBuf>) -> Result<String> {
    let (path, given) = match sdk {
        Some(p) => (p, true),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/rust"),
            false,
        ),
    };
    match path.canonicalize() {
        Ok(p) => Ok(format!("{{ path = {:?} }}", p.display().to_string())),
        Err(_) if !given => Ok(format!("\"{}\"", env!("CARGO_PKG_VERSION"))),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cairn-sdk was not found at {}; pass --sdk <path to cairn's guest-sdk/rust directory>, or leave --sdk out to use cairn-sdk {} from crates.io",
                path.display(),
                env!("CARGO_PKG_VERSION")
            )
        }),
    }
}

pub fn new(args: NewArgs) -> Result<ExitCode> {
    let name = &args.name;
    if args.lang != Lang::Rust {
        let root = project::scaffold(args.lang, name, &args.dir)?;
        let manifest = project::Manifest::read(&root)?;
        println!("created {} operator {}", args.lang, root.display());
        println!("  build it:  cairn build {}", root.display());
        println!(
            "  run it:    cairn run --plugin {} --input events.jsonl --output -",
            root.join(manifest.output()).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !project::valid_name(name) {
        bail!(
            "{name:?} is not a valid plugin name: use lowercase letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let sdk_dep = sdk_dependency(args.sdk)?;
    let root = args.dir.join(name);
    if root.exists() {
        bail!("{} already exists; choose another name or --dir", root.display());
    }
    let files = [
        ("Cargo.toml", fill(CARGO_TOML, name, &sdk_dep)),
        ("src/lib.rs", fill(LIB_RS, name, &sdk_dep)),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        (".gitignore", "/target\n/.cairn\n".to_string()),
        ("cairn.toml", Lang::Rust.template(name).remove(0).1),
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
