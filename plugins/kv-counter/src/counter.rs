//! The counter over wasi:keyvalue, shared by kv-counter (0.2.0-draft2) and kv-counter-draft
//! (0.2.0-draft): each crate generates its bindings, then includes this.

use crate::exports::cairn::operator::operator::{Event, Guest};
use crate::wasi::keyvalue::{atomics, store};

pub struct KvCounter;

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
