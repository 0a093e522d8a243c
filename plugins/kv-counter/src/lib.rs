//! `kv-counter`: the counter (`{"count": n}` per event, n counting the events of its key so
//! far) written against `wasi:keyvalue` alone, as a component built for Spin would keep its
//! state: `atomics::increment` on bucket `default`, one entry per stream key. Its output is
//! byte-identical to the `counter` plugin's.

wit_bindgen::generate!({
    world: "cairn:kv-counter/kv-counter",
    path: ["../../wit/0.2.0", "../../wit/deps/keyvalue-0.2.0-draft2", "wit"],
    generate_all,
});

use exports::cairn::operator::operator::{Event, Guest};
use wasi::keyvalue::{atomics, store};

struct KvCounter;

impl Guest for KvCounter {
    fn init(_config: String) -> Result<(), String> {
        // Opening another bucket is refused; `default` is the operator's state.
        if store::open("other").is_ok() {
            return Err("bucket `other` should not exist".into());
        }
        store::open("default").map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    fn process(batch: Vec<Event>) -> Result<Vec<Event>, String> {
        let bucket = store::open("default").map_err(|e| format!("{e:?}"))?;
        let mut out = Vec::with_capacity(batch.len());
        for e in batch {
            let n = atomics::increment(&bucket, &e.key, 1).map_err(|e| format!("increment: {e:?}"))?;
            out.push(Event {
                value: format!("{{\"count\":{n}}}").into_bytes(),
                key: e.key,
                ts: e.ts,
            });
        }
        Ok(out)
    }

    fn on_watermark(_watermark: i64) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

export!(KvCounter);
