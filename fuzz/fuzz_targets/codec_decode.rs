//! The wire codec on arbitrary bytes: every decoder returns an error or a value, never panics,
//! and whatever decodes re-encodes to the same bytes.

#![no_main]

use cairn_codec::batch::{self, EventRef};
use cairn_codec::state::{KeyList, Writes, read_keys, read_plain_keys, read_writes};
use cairn_codec::scoped;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = batch::decode(data) {
        let again = batch::encode(events.iter().map(|e| EventRef { key: e.key, ts: e.ts, value: e.value }));
        assert_eq!(again, data);
        assert_eq!(batch::validate(data).ok(), Some(events.len() as u32));
    }
    if let Ok(writes) = read_writes(data) {
        let mut w = Writes::new();
        for x in &writes {
            let scope = x.scope.map(str::as_bytes);
            match x.value {
                Some(v) => w.set(scope, x.key.as_bytes(), v),
                None => w.remove(scope, x.key.as_bytes()),
            }
        }
        assert_eq!(w.as_bytes(), data);
    }
    let mut req = KeyList::new();
    if read_keys::<()>(data, |scope, key| {
        req.push(scope.map(str::as_bytes), key.as_bytes());
        Ok(())
    })
    .is_ok()
    {
        assert_eq!(req.as_bytes(), data);
    }
    let _ = read_plain_keys::<()>(data, |k| {
        let _ = scoped::split(k);
        Ok(())
    });
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok((scope, key)) = scoped::split(text)
    {
        assert_eq!(scoped::compose(scope, key), text);
    }
});
