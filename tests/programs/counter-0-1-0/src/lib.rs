//! Test fixture: the `counter` operator written directly against the 0.1.0 world as it was
//! released (`wit/0.1.0/operator.wit` is a verbatim copy). Newer hosts must keep
//! running it: through `process` (it has no `process-packed`) and the 0.1.0 state functions.
//! Output matches the `counter` example: `{"count":n}` per event.

wit_bindgen::generate!({
    path: "../../../wit/0.1.0",
    world: "operator",
});

use cairn::operator::state;

struct Counter;

impl Guest for Counter {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Result<Vec<Event>, String> {
        let mut out = Vec::with_capacity(batch.len());
        for e in batch {
            let count = match state::get(&e.key) {
                Some(v) => std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| format!("state of {:?} is not a count", e.key))?,
                None => 0,
            } + 1;
            state::set(&e.key, count.to_string().as_bytes()).map_err(|e| format!("{e:?}"))?;
            out.push(Event {
                key: e.key,
                ts: e.ts,
                value: format!("{{\"count\":{count}}}").into_bytes(),
            });
        }
        Ok(out)
    }

    fn on_watermark(_watermark: i64) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

export!(Counter);
