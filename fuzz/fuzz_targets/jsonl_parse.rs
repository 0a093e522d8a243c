//! Arbitrary bytes as an input line: parsing returns an event or an error, never panics; an
//! event it returns encodes to one valid JSON line.
#![no_main]

use cairn::runtime::{encode_event, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = parse_line(data, 1) {
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        // Valid JSON grammar (numbers beyond f64 are legal JSON and pass through verbatim).
        #[derive(serde::Deserialize)]
        struct Line {
            key: String,
            #[allow(dead_code)]
            value: serde::de::IgnoredAny,
        }
        let line: Line = serde_json_check::from_slice(&out).expect("valid JSON");
        assert_eq!(line.key, event.key);
    }
});
