//! The yardstick of the end-to-end bench: the `counter` operator's whole job as a plain native
//! Rust program — read JSON Lines, count per key in a hash map, write the same JSON Lines —
//! with plain serde_json, buffered I/O and one thread, so that Cairn's own parsing wins show
//! up as gains and not as a faster yardstick.
//!
//! `native-counter <input.jsonl> <output.jsonl>`

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct In {
    key: String,
    ts: i64,
    #[allow(dead_code)]
    value: IgnoredAny,
}

#[derive(Serialize)]
struct Count {
    count: u64,
}

#[derive(Serialize)]
struct Out<'a> {
    key: &'a str,
    ts: i64,
    value: Count,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: native-counter <input.jsonl> <output.jsonl>"
    );
    let input = BufReader::with_capacity(1 << 16, File::open(&args[1])?);
    let mut out = BufWriter::with_capacity(1 << 16, File::create(&args[2])?);
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e: In = serde_json::from_str(&line)?;
        let count = match counts.get_mut(&e.key) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                counts.insert(e.key.clone(), 1);
                1
            }
        };
        serde_json::to_writer(
            &mut out,
            &Out {
                key: &e.key,
                ts: e.ts,
                value: Count { count },
            },
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
