//! The `dedup` operator's whole job as a plain native program (the end-to-end bench's
//! yardstick): the ids seen in a hash map, forgotten when the watermark (moved after every batch
//! of `batch` events, as `cairn run` moves it) passes them by more than `within_ms`, so that
//! the output is byte-identical to Cairn's.
//!
//! `native-dedup <input.jsonl> <output.jsonl> <batch> <config json>`

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};

use cairn_sdk::stats::value_at;
use cairn_tests::native::{LineBatches, Watermark};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Settings {
    id_field: String,
    within_ms: i64,
}

#[derive(Deserialize)]
struct In<'a> {
    key: String,
    ts: i64,
    #[serde(borrow)]
    value: &'a RawValue,
}

#[derive(Serialize)]
struct Out<'a> {
    key: &'a str,
    ts: i64,
    value: &'a RawValue,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 5,
        "usage: native-dedup <input> <output> <batch> <config>"
    );
    let batch: usize = args[3].parse()?;
    let s: Settings = serde_json::from_str(&args[4])?;
    let mut out = BufWriter::with_capacity(1 << 16, File::create(&args[2])?);
    let mut seen: HashMap<(String, String), i64> = HashMap::new();
    // When to forget: (time, key) -> the ids kept at time - within - 1.
    let mut forget: BTreeMap<(i64, String), Vec<String>> = BTreeMap::new();
    let mut watermark = Watermark::default();
    for lines in LineBatches::open(&args[1], batch)? {
        let mut max: Option<i64> = None;
        for line in lines? {
            let e: In = serde_json::from_str(&line)?;
            max = max.max(Some(e.ts));
            let value: serde_json::Value = serde_json::from_str(e.value.get())?;
            let keep = match value_at(&value, &s.id_field) {
                None => true,
                Some(id) => {
                    let id = id.to_string();
                    match seen.get(&(e.key.clone(), id.clone())) {
                        Some(t) if (e.ts - t).abs() <= s.within_ms => false,
                        _ => {
                            seen.insert((e.key.clone(), id.clone()), e.ts);
                            forget
                                .entry((e.ts + s.within_ms + 1, e.key.clone()))
                                .or_default()
                                .push(id);
                            true
                        }
                    }
                }
            };
            if keep {
                serde_json::to_writer(
                    &mut out,
                    &Out {
                        key: &e.key,
                        ts: e.ts,
                        value: e.value,
                    },
                )?;
                out.write_all(b"\n")?;
            }
        }
        let Some(w) = watermark.after_batch(max) else {
            continue;
        };
        while forget.first_key_value().is_some_and(|((t, _), _)| *t <= w) {
            let ((t, key), ids) = forget.pop_first().expect("checked");
            for id in ids {
                let k = (key.clone(), id);
                if seen.get(&k) == Some(&(t - s.within_ms - 1)) {
                    seen.remove(&k);
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
