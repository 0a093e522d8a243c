//! The golden vectors every language's SDK is tested against hold what serde_json (the Rust
//! SDK's JSON) writes.

#[test]
fn json_floats_are_what_serde_json_writes() {
    // The package's directory as cargo runs the test (a build shared between clones may have
    // been compiled in another one).
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/../golden/json-floats.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (bits, want) = line.split_once(' ').expect("<bits> <text>");
        let x = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
        assert_eq!(serde_json::to_string(&x).unwrap(), want, "{bits} ({x:e})");
        if x.is_finite() {
            let back: f64 = serde_json::from_str(want).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{want} reads back");
        }
        n += 1;
    }
    assert!(n > 300, "{n} vectors");
}
