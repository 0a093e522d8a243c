//! The `window` operator's whole job as a plain native program (the end-to-end bench's
//! yardstick): windows in a hash map, their closing times in an ordered set, the watermark
//! moved after every batch of `batch` events as `cairn run` moves it, so that the output is
//! byte-identical to Cairn's.
//!
//! `native-window <input.jsonl> <output.jsonl> <batch> <config json>`

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};

use cairn_sdk::stats::{Stats, Summary, number_at};
use cairn_tests::native::{LineBatches, Watermark};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Settings {
    field: String,
    size_ms: i64,
    slide_ms: Option<i64>,
    #[serde(default)]
    out_of_order_ms: i64,
    #[serde(default)]
    allowed_lateness_ms: i64,
}

#[derive(Deserialize)]
struct In {
    key: String,
    ts: i64,
    value: serde_json::Value,
}

#[derive(Serialize)]
struct Emitted<'a> {
    start: i64,
    end: i64,
    #[serde(flatten)]
    summary: &'a Summary,
}

#[derive(Serialize)]
struct Out<'a> {
    key: &'a str,
    ts: i64,
    value: Emitted<'a>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 5,
        "usage: native-window <input> <output> <batch> <config>"
    );
    let batch: usize = args[3].parse()?;
    let s: Settings = serde_json::from_str(&args[4])?;
    let (size, slide, ooo, lateness) = (
        s.size_ms,
        s.slide_ms.unwrap_or(s.size_ms),
        s.out_of_order_ms,
        s.allowed_lateness_ms,
    );
    let mut out = BufWriter::with_capacity(1 << 16, File::create(&args[2])?);
    let mut windows: HashMap<(String, i64), Stats> = HashMap::new();
    let mut closing: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut watermark = Watermark::default();
    for lines in LineBatches::open(&args[1], batch)? {
        let mut max: Option<i64> = None;
        for line in lines? {
            let e: In = serde_json::from_str(&line)?;
            max = max.max(Some(e.ts));
            if let Some(x) = number_at(&e.value, &s.field) {
                let wm = watermark.get().map(|w| w - ooo);
                let mut start = e.ts.div_euclid(slide) * slide;
                while start > e.ts - size {
                    let end = start + size;
                    if wm.is_none_or(|w| end + lateness > w) {
                        let w = windows.entry((e.key.clone(), start)).or_default();
                        if w.count == 0 {
                            closing.insert((end + lateness + ooo, e.key.clone()));
                        }
                        w.add(x);
                    }
                    start -= slide;
                }
            }
        }
        if let Some(w) = watermark.after_batch(max) {
            close(&mut out, &mut windows, &mut closing, w, (size, lateness, ooo))?;
        }
    }
    // The end of the input ends event time (as `cairn run` does): every window closes.
    close(
        &mut out,
        &mut windows,
        &mut closing,
        i64::MAX,
        (size, lateness, ooo),
    )?;
    out.flush()?;
    Ok(())
}

/// Emit (and forget) every window whose closing time is at or before the watermark `w`, in
/// (closing time, key) order, as the plugin's timers fire.
fn close(
    out: &mut impl Write,
    windows: &mut HashMap<(String, i64), Stats>,
    closing: &mut BTreeSet<(i64, String)>,
    w: i64,
    (size, lateness, ooo): (i64, i64, i64),
) -> anyhow::Result<()> {
    while closing.first().is_some_and(|(t, _)| *t <= w) {
        let (t, key) = closing.pop_first().expect("checked");
        let end = t - lateness - ooo;
        let start = end - size;
        if let Some(stats) = windows.remove(&(key.clone(), start)) {
            let summary = stats.summary();
            let value = Emitted {
                start,
                end,
                summary: &summary,
            };
            serde_json::to_writer(
                &mut *out,
                &Out {
                    key: &key,
                    ts: end - 1,
                    value,
                },
            )?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
