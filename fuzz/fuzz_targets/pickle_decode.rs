//! The pickle reader (`cairn_codec::pickle`) on arbitrary bytes, in the three shapes the host
//! reads from a Python guest — `process-pickled`'s emitted events `(key, ts, value)` (a
//! marshalled value then written as JSON), `get-entries-pickled`'s names `(scope, key)` and
//! `write-entries-pickled`'s writes `(scope, key, value)`: every read returns an error or a
//! value, never panics; writes that decode are written again by the host's writer and read
//! back the same.

#![no_main]

use cairn_codec::pickle::{Decoder, EventValue, Writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut d) = Decoder::new(data, "the emitted events") {
        let mut json = Vec::new();
        while let Ok(true) = d.next_item() {
            if d.str().is_err() || d.int().is_err() {
                break;
            }
            match d.event_value() {
                Ok(EventValue::Marshalled(m)) => {
                    json.clear();
                    if cairn::plugin::marshal_to_json(m, &mut json).is_ok() {
                        assert!(serde_json_check::from_slice::<serde::de::IgnoredAny>(&json).is_ok());
                    }
                }
                Ok(EventValue::Raw(_)) => {}
                Err(_) => break,
            }
            if d.end_tuple(3).is_err() {
                break;
            }
        }
    }
    if let Ok(mut d) = Decoder::new(data, "the entries' names") {
        while let Ok(true) = d.next_item() {
            if d.opt_str().is_err() || d.str().is_err() || d.end_tuple(2).is_err() {
                break;
            }
        }
    }
    let writes = |bytes: &[u8]| -> Option<Vec<(Option<String>, String, Option<Vec<u8>>)>> {
        let mut d = Decoder::new(bytes, "the writes").ok()?;
        let mut out = Vec::new();
        while d.next_item().ok()? {
            let w = (
                d.opt_str().ok()?.map(str::to_string),
                d.str().ok()?.to_string(),
                d.opt_bytes().ok()?.map(<[u8]>::to_vec),
            );
            d.end_tuple(3).ok()?;
            out.push(w);
        }
        Some(out)
    };
    if let Some(ws) = writes(data) {
        let mut w = Writer::new(data.len());
        for (scope, key, value) in &ws {
            match scope {
                Some(s) => w.str(s),
                None => w.none(),
            }
            w.str(key);
            w.opt_bytes(value.as_deref());
            w.tuple(3);
        }
        assert_eq!(writes(&w.finish()), Some(ws));
    }
});
