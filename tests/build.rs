//! Builds every crate under `plugins/` (the examples) and `tests/programs/` (the test fixtures)
//! for wasm32-wasip2 (profile `plugin`) with a nested cargo,
//! in its own target directory beside the outer one, so the tests never load a stale `.wasm`:
//! cargo re-runs this whenever a plugin, the SDK, the codec or the WIT changes. The tests find
//! the components through `CAIRN_PLUGIN_DIR` (see `plugin_dir`).
//!
//! A crate that is also an `rlib` (the examples the host's benches link natively) is built with
//! `cargo rustc --crate-type cdylib`: cargo does not link-time optimise a crate that has an
//! rlib among its crate types, and without LTO a plugin takes ~15% more instructions per event
//! (dedup: 29,471 against 25,273).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // Read at run time, not with env!(): cargo shares one compiled build script between
    // clones of the workspace in different directories that use the same target directory.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("..");
    for dir in ["plugins", "tests/programs", "guest-sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out: build beside <target>'s contents.
    let target = out
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-plugins"))
        .unwrap_or_else(|| out.join("wasm-plugins"));
    let mut crates = Vec::new();
    // Crates that are rlibs too: built one by one as cdylibs, so that LTO applies.
    let mut with_rlib = Vec::new();
    let dirs = ["plugins", "tests/programs"]
        .map(|d| std::fs::read_dir(root.join(d)).expect("plugins/ and tests/programs/ are readable"));
    for entry in dirs.into_iter().flatten() {
        let manifest = entry
            .expect("a plugins/ or tests/programs/ entry")
            .path()
            .join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Some(name) = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \"").and_then(|r| r.strip_suffix('"')))
        {
            if text.contains("\"rlib\"") {
                with_rlib.push(name.to_string());
            } else {
                crates.push(name.to_string());
            }
        }
    }
    crates.sort();
    with_rlib.sort();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root)
            .args(args)
            .args(["--quiet", "--profile", "plugin", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target);
        // What the outer cargo set for this build script must not leak into the plugins' build.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_TARGET",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(
            status.success(),
            "building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
        );
    };
    let mut build = vec!["build"];
    for c in &crates {
        build.extend(["-p", c.as_str()]);
    }
    run(&build);
    for c in &with_rlib {
        run(&["rustc", "-p", c.as_str(), "--crate-type", "cdylib"]);
    }
    crates.extend(with_rlib);
    let dir = target.join("wasm32-wasip2").join("plugin");
    // One name per crate, as `dist/plugins/<crate>.wasm` has them.
    let named = out.join("plugins");
    std::fs::create_dir_all(&named).expect("create the plugin directory");
    for c in &crates {
        let built = dir.join(format!("{}.wasm", c.replace('-', "_")));
        std::fs::copy(&built, named.join(format!("{c}.wasm")))
            .unwrap_or_else(|e| panic!("{} was not built: {e}", built.display()));
    }
    println!("cargo:rustc-env=CAIRN_PLUGIN_DIR={}", named.display());
}
