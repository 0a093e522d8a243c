//! cairn-sdk is packaged as a crate on its own: its WIT lives inside it (`wit/operator.wit`), a
//! copy of the repository's WIT at the current contract version, which must not drift from it.

use cairn_codec::CONTRACT_VERSION;

#[test]
fn the_crates_wit_is_the_repositorys_current_version() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let ours = std::fs::read_to_string(format!("{dir}/wit/operator.wit")).expect("the crate's WIT");
    let repo = std::fs::read_to_string(format!("{dir}/../../wit/{CONTRACT_VERSION}/operator.wit"))
        .expect("the current version's WIT");
    assert!(
        ours == repo,
        "guest-sdk/rust/wit/operator.wit differs from wit/{CONTRACT_VERSION}/operator.wit: copy it again"
    );
    assert!(ours.contains(&format!("package cairn:operator@{CONTRACT_VERSION};")));
}
