//! Test fixture: the `counter` operator written directly against the 0.1.1 world as it was
//! released (`wit/0.1.1/operator.wit`), using its speed paths as cairn-sdk 0.1 did: batches
//! through `process-packed`, reads through `get-inline`, one `set-many-packed` per batch.
//! Newer hosts must keep running it. Output matches the `counter` example: `{"count":n}` per
//! event; its state is the count under the plain event key, as 0.1 plugins kept it.

wit_bindgen::generate!({
    path: "../../../wit/0.1.1",
    world: "operator",
});

use std::collections::HashMap;

use cairn::operator::state;

struct Counter;

fn read(key: &str) -> Result<u64, String> {
    let text = match state::get_inline(key) {
        state::Lookup::Absent => return Ok(0),
        state::Lookup::Inline((len, a, b, c)) => {
            let mut bytes = [0u8; 24];
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..16].copy_from_slice(&b.to_le_bytes());
            bytes[16..].copy_from_slice(&c.to_le_bytes());
            bytes[..(len as usize).min(24)].to_vec()
        }
        state::Lookup::Large(v) => v,
    };
    std::str::from_utf8(&text)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("state of {key:?} is not a count"))
}

/// Count `events` (key, ts) and return the output events and the new counts.
fn count<'a>(events: impl Iterator<Item = (&'a str, i64)>) -> Result<Vec<(String, i64, Vec<u8>)>, String> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for (key, ts) in events {
        let n = match counts.get(key) {
            Some(n) => n + 1,
            None => read(key)? + 1,
        };
        counts.insert(key.to_string(), n);
        out.push((key.to_string(), ts, format!("{{\"count\":{n}}}").into_bytes()));
    }
    // 0.1.1's set-many-packed: a u32 count, then per entry the key and the value.
    let mut req = (counts.len() as u32).to_le_bytes().to_vec();
    for (k, n) in &counts {
        cairn_codec::put(&mut req, k.as_bytes());
        cairn_codec::put(&mut req, n.to_string().as_bytes());
    }
    state::set_many_packed(&req).map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

impl Guest for Counter {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Result<Vec<Event>, String> {
        let out = count(batch.iter().map(|e| (e.key.as_str(), e.ts)))?;
        Ok(out
            .into_iter()
            .map(|(key, ts, value)| Event { key, ts, value })
            .collect())
    }

    fn process_packed(batch: Vec<u8>) -> Result<Vec<u8>, String> {
        let events = cairn_codec::batch::decode(&batch).map_err(|e| e.to_string())?;
        let out = count(events.iter().map(|e| (e.key, e.ts)))?;
        Ok(cairn_codec::batch::encode(out.iter().map(|(key, ts, value)| {
            cairn_codec::batch::EventRef { key, ts: *ts, value }
        })))
    }

    fn on_watermark(_watermark: i64) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

export!(Counter);
