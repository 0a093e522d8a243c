//! The drift guard: the host's table of functions ([`super::VERSIONS`]) against the parsed WIT
//! of every supported version, and a component generated from each supported world against
//! the host's linker.

use std::collections::BTreeSet;
use std::path::PathBuf;

use wit_parser::{ManglingAndAbi, Resolve, WorldItem, WorldKey};

fn wit_dir(version: &str) -> PathBuf {
    // At run time: cargo may reuse a test binary built in another clone of the workspace.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../wit")
        .join(version)
}

/// Every supported package version with a WIT directory, and the table entry serving it.
const SUPPORTED: &[(&str, &str)] = &[
    ("0.1.0", "0.1.1"),
    ("0.1.1", "0.1.1"),
    ("0.2.0", "0.2.5"),
    ("0.2.1", "0.2.5"),
    ("0.2.2", "0.2.5"),
    ("0.2.3", "0.2.5"),
    ("0.2.4", "0.2.5"),
    ("0.2.5", "0.2.5"),
];

fn resolve(version: &str) -> (Resolve, wit_parser::PackageId) {
    let mut r = Resolve::default();
    let (pkg, _) = r.push_dir(wit_dir(version)).expect("the WIT parses");
    (r, pkg)
}

/// (interface, function) pairs a world imports from `cairn:operator`.
fn imported_funcs(r: &Resolve, world: wit_parser::WorldId) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (key, item) in &r.worlds[world].imports {
        let (WorldKey::Interface(id), WorldItem::Interface { .. }) = (key, item) else {
            continue;
        };
        let iface = &r.interfaces[*id];
        let name = iface.name.clone().expect("named interface");
        for f in iface.functions.keys() {
            out.insert((name.clone(), f.clone()));
        }
    }
    out
}

#[test]
fn the_table_matches_every_supported_wit() {
    for (version, served_by) in SUPPORTED {
        let table = super::VERSIONS
            .iter()
            .find(|v| v.version == *served_by)
            .expect("a table entry");
        let provided: BTreeSet<(String, String)> = table
            .funcs
            .iter()
            .map(|f| (f.interface.to_string(), f.name.to_string()))
            .collect();
        let (r, pkg) = resolve(version);
        let mut wanted_by_widest = BTreeSet::new();
        for (_, world) in &r.packages[pkg].worlds {
            let wanted = imported_funcs(&r, *world);
            let missing: Vec<_> = wanted.difference(&provided).collect();
            assert!(missing.is_empty(), "{version}: the host lacks {missing:?}");
            wanted_by_widest.extend(wanted);
        }
        if version == served_by {
            // The version the table is written for: nothing extra either.
            let extra: Vec<_> = provided.difference(&wanted_by_widest).collect();
            assert!(
                extra.is_empty(),
                "{version}: the host provides {extra:?}, which the WIT lacks"
            );
        }
    }
}

#[test]
fn a_component_of_every_supported_world_links() {
    let engine = crate::Engine::new().expect("engine");
    for (version, _) in SUPPORTED {
        let (r, pkg) = resolve(version);
        for (name, world) in &r.packages[pkg].worlds {
            let mut module = wit_component::dummy_module(
                &r,
                *world,
                ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
            );
            wit_component::embed_component_metadata(
                &mut module,
                &r,
                *world,
                wit_component::StringEncoding::UTF8,
                false,
            )
            .expect("metadata");
            let component = wit_component::ComponentEncoder::default()
                .module(&module)
                .expect("module")
                .validate(true)
                .encode()
                .expect("component");
            let plugin = crate::Plugin::from_bytes(&engine, name, &format!("{version} {name}"), &component);
            assert!(plugin.is_ok(), "{version} world {name}: {:?}", plugin.err());
        }
    }
}
