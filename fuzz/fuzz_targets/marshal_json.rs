//! The marshal → JSON writer (`cairn::plugin::marshal_to_json`, what the host does with the
//! values a Python operator hands over with `out.emit_json`) on arbitrary bytes: an error or
//! JSON that parses, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut json = Vec::new();
    if cairn::plugin::marshal_to_json(data, &mut json).is_ok() {
        assert!(
            serde_json_check::from_slice::<serde::de::IgnoredAny>(&json).is_ok(),
            "{}",
            String::from_utf8_lossy(&json)
        );
    }
});
