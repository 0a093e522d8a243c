//! State TTL in event time through the host: the counter with `--state-ttl` against a plain
//! model over random inputs; expired state is gone from checkpoints; SIGKILLs change nothing.

use std::collections::HashMap;
use std::fs;

use anyhow::Result;
use cairn_tests::{plugin, run_args, run_ok, sigkill_exactly_once, strs};
use serde_json::Value;

use crate::operators::{Rng, serial};

/// `(key, ts)` events: `keys` keys, ts rising by 0..`step` with jumps now and then.
fn events(n: usize, keys: u64, step: u64, seed: u64) -> Vec<(String, i64)> {
    let mut r = Rng(seed);
    let mut ts = 0i64;
    (0..n)
        .map(|_| {
            ts += r.below(step) as i64;
            if r.below(50) == 0 {
                ts += r.below(20 * step) as i64;
            }
            let jitter = r.below(step) as i64;
            (format!("k{}", r.below(keys)), ts - jitter)
        })
        .collect()
}

fn jsonl(events: &[(String, i64)]) -> String {
    events
        .iter()
        .map(|(k, ts)| format!("{{\"key\":\"{k}\",\"ts\":{ts},\"value\":1}}\n"))
        .collect()
}

/// The counter with TTL, written plainly: a key's count starts over when the watermark in force
/// (the highest ts of the batches before) is `ttl` past its last write's stamp; a write is
/// stamped with the newest ts of its key in the batch, or the watermark if later, and a stamp
/// never moves back.
fn model(events: &[(String, i64)], batch: usize, ttl: i64) -> Vec<u64> {
    model_with_stamps(events, batch, ttl).0
}

/// [`model`], and each key's last write stamp at the end.
fn model_with_stamps(events: &[(String, i64)], batch: usize, ttl: i64) -> (Vec<u64>, HashMap<&str, i64>) {
    let mut count: HashMap<&str, u64> = HashMap::new();
    let mut written: HashMap<&str, i64> = HashMap::new();
    let mut wm: Option<i64> = None;
    let mut out = Vec::new();
    for chunk in events.chunks(batch) {
        let mut newest: HashMap<&str, i64> = HashMap::new();
        for (k, ts) in chunk {
            let t = newest.entry(k).or_insert(*ts);
            *t = (*t).max(*ts);
        }
        for (k, _) in chunk {
            let expired = matches!((written.get(k.as_str()), wm), (Some(w), Some(m)) if m >= w + ttl);
            let c = count.entry(k).or_insert(0);
            if expired {
                *c = 0;
            }
            *c += 1;
            out.push(*c);
            let stamp = wm.map_or(newest[k.as_str()], |m| m.max(newest[k.as_str()]));
            let w = written.entry(k).or_insert(stamp);
            *w = if expired { stamp } else { (*w).max(stamp) };
        }
        let max = chunk.iter().map(|e| e.1).max();
        if max > wm {
            wm = max;
        }
    }
    (out, written)
}

fn counts(output: &str) -> Result<Vec<u64>> {
    output
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok(v["value"]["count"].as_u64().unwrap_or_default())
        })
        .collect()
}

#[test]
fn the_counter_with_a_ttl_matches_the_model_and_expired_state_leaves_checkpoints() -> Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    for (seed, batch, ttl) in [(3, 16, 200), (5, 100, 50), (9, 1, 1000)] {
        let evs = events(5_000, 40, 10, seed);
        let input = dir.path().join(format!("in-{seed}.jsonl"));
        let output = dir.path().join(format!("out-{seed}.jsonl"));
        fs::write(&input, jsonl(&evs))?;
        let store = format!("file:{}", dir.path().join(format!("ck-{seed}")).display());
        let (b, t) = (batch.to_string(), format!("{ttl}ms"));
        run_ok(&strs(&run_args(
            &plugin("counter"),
            &input,
            &output,
            &[
                "--batch-size",
                &b,
                "--state-ttl",
                &t,
                "--store",
                &store,
                "--keep-open",
            ],
        )))?;
        let got = counts(&fs::read_to_string(&output)?)?;
        let want = model(&evs, batch, ttl);
        let restarts = want.iter().zip(&evs).filter(|(c, _)| **c == 1).count();
        assert!(
            restarts > 40 + 20,
            "seed {seed}: too few expiries to mean something ({restarts})"
        );
        assert_eq!(got, want, "seed {seed}, batch {batch}, ttl {ttl}");
        // The last checkpoint holds only keys written within the TTL of the last watermark.
        let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
        let text = String::from_utf8_lossy(&show.stdout);
        let doc: Value = serde_json::from_str(&text)?;
        let expired = doc["operators"][0]["expired_keys"].as_u64().unwrap_or_default();
        let max = evs.iter().map(|e| e.1).max().unwrap_or_default();
        let (_, stamps) = model_with_stamps(&evs, batch, ttl);
        let mut live_keys = 0;
        for (k, stamp) in stamps {
            let live = max < stamp + ttl;
            let entry = format!("\"{}:{k}/count\"", k.len());
            assert_eq!(text.contains(&entry), live, "seed {seed}: key {k} (live: {live})");
            live_keys += usize::from(live);
        }
        // Every count that started over, and every key not live at the end, lost one entry
        // (its count) to expiry: as many expiries as counts started minus keys alive.
        assert_eq!(
            expired,
            (restarts - live_keys) as u64,
            "seed {seed}: expired keys in the checkpoint"
        );
        // Without --keep-open the input's end ends event time: every count expires.
        let closed = format!("file:{}", dir.path().join(format!("closed-{seed}")).display());
        let closed_out = dir.path().join(format!("closed-out-{seed}.jsonl"));
        run_ok(&strs(&run_args(
            &plugin("counter"),
            &input,
            &closed_out,
            &["--batch-size", &b, "--state-ttl", &t, "--store", &closed],
        )))?;
        assert_eq!(
            fs::read(&closed_out)?,
            fs::read(&output)?,
            "the counts are the same"
        );
        let show = run_ok(&["checkpoints", "show", "latest", "--store", &closed, "--json"])?;
        let doc: Value = serde_json::from_slice(&show.stdout)?;
        assert_eq!(doc["host"]["watermark"], i64::MAX);
        assert!(
            !String::from_utf8_lossy(&show.stdout).contains("/count\""),
            "seed {seed}: no count outlives the end of event time"
        );
        assert_eq!(
            doc["operators"][0]["expired_keys"].as_u64(),
            Some(restarts as u64)
        );
    }
    Ok(())
}

/// Short variant; the long form: `CAIRN_KILLS=200 cargo test --release -p cairn --test all ttl::`.
#[test]
fn a_ttl_counter_killed_mid_stream_gives_identical_output() -> Result<()> {
    let _serial = serial();
    let kills = cairn_tests::kills(12);
    // Enough input for every kill to land before the run ends.
    let evs = events(150_000.max(kills * 2_000), 2_000, 10, 77);
    let counter = plugin("counter");
    let op = [
        "--plugin",
        counter.to_str().unwrap_or_default(),
        "--state-ttl",
        "300ms",
        "--batch-size",
        "128",
    ];
    let reference = sigkill_exactly_once(
        &op,
        &jsonl(&evs),
        &["--checkpoint-every", "5000"],
        kills,
        kills / 3,
    )?;
    assert_eq!(
        counts(&reference)?,
        model(&evs, 128, 300),
        "the uninterrupted run itself is wrong"
    );
    Ok(())
}

/// A gap in event time: keys written in the first batch after it are stamped with their own
/// event time, not with the watermark of the batch before (which is the gap's start, and would
/// expire them at once).
#[test]
fn keys_written_just_after_a_gap_in_event_time_outlive_it() -> Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    const T: i64 = 1_700_000_000_000;
    let mut evs: Vec<(String, i64)> = Vec::new();
    evs.extend((0..500).map(|i| (format!("a{i}"), T)));
    evs.extend((0..100).map(|i| (format!("b{i}"), T + 100_000)));
    evs.extend((0..500).map(|i| (format!("a{i}"), T + 200_000)));
    let input = dir.path().join("gap.jsonl");
    fs::write(&input, jsonl(&evs))?;
    let output = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("ck").display());
    run_ok(&strs(&run_args(
        &plugin("counter"),
        &input,
        &output,
        &[
            "--batch-size",
            "100",
            "--state-ttl",
            "10s",
            "--store",
            &store,
            "--keep-open",
        ],
    )))?;
    let got = counts(&fs::read_to_string(&output)?)?;
    assert_eq!(got, model(&evs, 100, 10_000));
    assert!(
        got[600..].iter().all(|c| *c == 1),
        "the a keys expired during the gap"
    );
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let text = String::from_utf8_lossy(&show.stdout);
    let live: Vec<String> = (0..500)
        .map(|i| format!("a{i}"))
        .filter(|k| text.contains(&format!("\"{}:{k}/count\"", k.len())))
        .collect();
    assert_eq!(
        live.len(),
        500,
        "every a key written after the gap is live: {live:?}"
    );
    assert!(!text.contains("b0/count"), "the b keys expired");
    Ok(())
}
