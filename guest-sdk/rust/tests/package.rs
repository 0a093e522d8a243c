//! cairn-sdk is packaged as a crate on its own: its WIT lives inside it (`wit/operator.wit`), a
//! copy of the repository's `wit/0.2.4`, which must not drift from it.

#[test]
fn the_crates_wit_is_the_repositorys_0_2_3() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let ours = std::fs::read_to_string(format!("{dir}/wit/operator.wit")).expect("the crate's WIT");
    let repo = std::fs::read_to_string(format!("{dir}/../../wit/0.2.4/operator.wit")).expect("wit/0.2.4");
    assert!(
        ours == repo,
        "guest-sdk/rust/wit/operator.wit differs from wit/0.2.4/operator.wit: copy it again"
    );
}
