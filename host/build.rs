//! Link the `cairn` binary with packed relative relocations (`DT_RELR`) on GNU/Linux: the
//! table of pointers the loader fixes up at start shrinks from ~2 MB to a few KB
//! (docs/development.md#binary-size). The linker (binutils ≥ 2.38, lld ≥ 15) uses them only
//! when the C library it links against can read them (glibc ≥ 2.36); older linkers warn and
//! link as before.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
