//! cairn-sdk is packaged as a crate on its own: its WIT lives inside it (`wit/operator.wit`), a
//! copy of the repository's WIT at the current contract version, which must not drift from it.

use cairn_codec::CONTRACT_VERSION;

#[test]
fn the_crates_wit_is_the_repositorys_current_version() {
    // The package's directory as cargo runs the test (a build shared between clones may have
    // been compiled in another one).
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let ours = std::fs::read_to_string(format!("{dir}/wit/operator.wit")).expect("the crate's WIT");
    let repo = std::fs::read_to_string(format!("{dir}/../../wit/{CONTRACT_VERSION}/operator.wit"))
        .expect("the current version's WIT");
    assert!(
        ours == repo,
        "guest-sdk/rust/wit/operator.wit differs from wit/{CONTRACT_VERSION}/operator.wit: copy it again"
    );
    assert!(ours.contains(&format!("package cairn:operator@{CONTRACT_VERSION};")));
}
