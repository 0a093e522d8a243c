//! The example operators through the real host: hand-computed small cases, and large random
//! inputs (with out-of-order timestamps) checked against straightforward reference
//! implementations written here.

use std::collections::{BTreeMap, HashMap};
use std::fs;

use anyhow::Result;
use cairn_tests::{plugin, run_args, run_ok, strs};
use serde_json::{Value, json};

/// These tests are heavy (100k events through the CLI, kill loops): run them one at a time so
/// that timing-based kills are not disturbed by the others.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` events over `keys` keys, ts rising ~10 ms per event with up to `jitter` ms of disorder.
pub(crate) fn random_events(
    n: usize,
    keys: u64,
    jitter: i64,
    seed: u64,
    value: impl Fn(&mut Rng, usize) -> Value,
) -> Vec<(String, i64, Value)> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            let k = format!("k{}", r.below(keys));
            let ts = 1_000_000 + i as i64 * 10
                - if jitter > 0 {
                    r.below(jitter as u64) as i64
                } else {
                    0
                };
            let v = value(&mut r, i);
            (k, ts, v)
        })
        .collect()
}

pub(crate) fn to_jsonl(events: &[(String, i64, Value)]) -> String {
    events
        .iter()
        .map(|(k, ts, v)| format!("{}\n", json!({"key": k, "ts": ts, "value": v})))
        .collect()
}

/// Run `plugin_name` with `config` over `events` through the CLI; returns the output events.
pub(crate) fn run_plugin(
    plugin_name: &str,
    config: &Value,
    events: &[(String, i64, Value)],
    batch: &str,
) -> Result<Vec<(String, i64, Value)>> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    fs::write(&input, to_jsonl(events))?;
    let cfg = config.to_string();
    run_ok(&strs(&run_args(
        &plugin(plugin_name),
        &input,
        &output,
        &["--config", &cfg, "--batch-size", batch],
    )))?;
    fs::read_to_string(&output)?
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok((
                v["key"].as_str().unwrap_or_default().to_string(),
                v["ts"].as_i64().unwrap_or_default(),
                v["value"].clone(),
            ))
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn aggregate_matches_a_reference_on_100k_events() -> Result<()> {
    let _serial = serial();
    let events = random_events(
        100_000,
        40,
        0,
        7,
        |r, _| json!({"temp": (r.below(2001) as f64) / 10.0 - 100.0}),
    );
    let out = run_plugin("aggregate", &json!({"field": "temp"}), &events, "256")?;
    assert_eq!(out.len(), events.len());
    let mut seen: HashMap<String, Vec<f64>> = HashMap::new();
    for ((k, ts, v), (ok, ots, ov)) in events.iter().zip(&out) {
        assert_eq!((k, ts), (ok, ots));
        let xs = seen.entry(k.clone()).or_default();
        xs.push(v["temp"].as_f64().unwrap_or_default());
        let n = xs.len() as f64;
        let sum: f64 = xs.iter().sum();
        let mean = sum / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        assert_eq!(ov["count"].as_u64(), Some(xs.len() as u64));
        assert!(close(ov["sum"].as_f64().unwrap_or(f64::NAN), sum));
        assert!(close(ov["avg"].as_f64().unwrap_or(f64::NAN), mean));
        assert!(
            close(ov["stddev"].as_f64().unwrap_or(f64::NAN), var.sqrt()),
            "{} vs {}",
            ov["stddev"],
            var.sqrt()
        );
        // (serde_json's fast float parsing may differ from the exact value by an ulp)
        assert!(close(
            ov["min"].as_f64().unwrap_or(f64::NAN),
            xs.iter().cloned().fold(f64::INFINITY, f64::min)
        ));
        assert!(close(
            ov["max"].as_f64().unwrap_or(f64::NAN),
            xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        ));
    }
    Ok(())
}

/// The watermark before each event as the host moves it: the highest ts of the batches (of
/// `batch` events) before the event's own.
fn watermarks(events: &[(String, i64, Value)], batch: usize) -> Vec<Option<i64>> {
    let mut out = Vec::with_capacity(events.len());
    let mut wm: Option<i64> = None;
    for chunk in events.chunks(batch) {
        out.extend(std::iter::repeat_n(wm, chunk.len()));
        let max = chunk.iter().map(|e| e.1).max();
        wm = wm.max(max);
    }
    out
}

/// The window semantics, written plainly: per event, the host's watermark (as of the batch
/// before) decides which of its windows are still open; at the end of the input the final
/// watermark closes and emits every window.
fn reference_windows(
    events: &[(String, i64, Value)],
    batch: usize,
    size: i64,
    slide: i64,
    ooo: i64,
    lateness: i64,
) -> (BTreeMap<(String, i64), Vec<f64>>, u64) {
    let mut windows: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    let mut max_ts: Option<i64> = None;
    let mut late = 0;
    for ((k, ts, v), before) in events.iter().zip(watermarks(events, batch)) {
        let x = v["x"].as_f64().unwrap_or_default();
        let wm = before.map(|m| m - ooo);
        let mut assigned = false;
        let mut start = ts.div_euclid(slide) * slide;
        while start > ts - size {
            if wm.is_none_or(|w| start + size + lateness > w) {
                windows.entry((k.clone(), start)).or_default().push(x);
                assigned = true;
            }
            start -= slide;
        }
        if !assigned {
            late += 1;
        }
        max_ts = Some(max_ts.map_or(*ts, |m| m.max(*ts)));
    }
    // The end of the input ends event time: every window is emitted.
    let _ = max_ts;
    (windows, late)
}

#[test]
fn window_matches_a_reference_on_100k_out_of_order_events() -> Result<()> {
    let _serial = serial();
    let events = random_events(100_000, 20, 400, 11, |r, _| json!({"x": r.below(100)}));
    for (size, slide, ooo, lateness) in [(1000, 1000, 100, 0), (500, 250, 20, 30)] {
        let cfg = json!({"field": "x", "size_ms": size, "slide_ms": slide, "out_of_order_ms": ooo, "allowed_lateness_ms": lateness});
        // 97 events (~970 ms) a batch: batch boundaries do not line up with window ends.
        let out = run_plugin("window", &cfg, &events, "97")?;
        let (expected, late) = reference_windows(&events, 97, size, slide, ooo, lateness);
        eprintln!(
            "size {size} slide {slide} ooo {ooo} lateness {lateness}: {} windows, {late} late events",
            expected.len()
        );
        assert!(
            late > 0,
            "the input should have late events for this test to mean something"
        );
        let mut got: BTreeMap<(String, i64), Value> = BTreeMap::new();
        for (k, ts, v) in out {
            let start = v["start"].as_i64().unwrap_or_default();
            assert_eq!(ts, start + size - 1);
            assert!(got.insert((k, start), v).is_none(), "a window was emitted twice");
        }
        assert_eq!(
            got.len(),
            expected.len(),
            "number of windows (size {size}, slide {slide})"
        );
        for ((k, start), xs) in &expected {
            let v = &got[&(k.clone(), *start)];
            assert_eq!(v["count"].as_u64(), Some(xs.len() as u64));
            assert!(close(v["sum"].as_f64().unwrap_or(f64::NAN), xs.iter().sum()));
            assert_eq!(v["min"].as_f64(), xs.iter().cloned().reduce(f64::min));
            assert_eq!(v["max"].as_f64(), xs.iter().cloned().reduce(f64::max));
            assert_eq!(v["end"].as_i64(), Some(start + size));
        }
    }
    Ok(())
}

/// The pattern semantics, written plainly: keep every partial (key, ts, seq); a B completes
/// the live partials of its key with a.ts <= b.ts <= a.ts + within, in (ts, seq) order; a
/// partial dies once the host's watermark (as of the batch before) passes a.ts + within.
fn reference_matches(events: &[(String, i64, Value)], batch: usize, within: i64) -> Vec<(String, i64, i64)> {
    let mut partials: Vec<(String, i64, u64, bool)> = Vec::new();
    let mut out = Vec::new();
    let mut seq = 0;
    for ((k, ts, v), wm) in events.iter().zip(watermarks(events, batch)) {
        if let Some(wm) = wm {
            partials.retain(|p| p.1 + within >= wm);
        }
        if v["t"] == "B" {
            let mut live: Vec<&mut (String, i64, u64, bool)> = partials
                .iter_mut()
                .filter(|p| !p.3 && &p.0 == k && p.1 <= *ts && *ts <= p.1 + within)
                .collect();
            live.sort_by_key(|p| (p.1, p.2));
            for p in live {
                p.3 = true;
                out.push((k.clone(), p.1, *ts));
            }
        }
        if v["t"] == "A" {
            seq += 1;
            partials.push((k.clone(), *ts, seq, false));
        }
        partials.retain(|p| !p.3);
    }
    out
}

#[test]
fn pattern_matches_a_reference_on_100k_out_of_order_events() -> Result<()> {
    let _serial = serial();
    let events = random_events(100_000, 30, 300, 5, |r, i| {
        let t = ["A", "B", "C"][r.below(3) as usize];
        json!({"t": t, "i": i})
    });
    let within = 500;
    let cfg = json!({"first": {"field": "t", "equals": "A"}, "then": {"field": "t", "equals": "B"}, "within_ms": within});
    let out = run_plugin("pattern", &cfg, &events, "64")?;
    let got: Vec<(String, i64, i64)> = out
        .iter()
        .map(|(k, ts, v)| (k.clone(), v["first"]["ts"].as_i64().unwrap_or_default(), *ts))
        .collect();
    let expected = reference_matches(&events, 64, within);
    assert!(expected.len() > 1000);
    assert_eq!(got, expected);
    // Each match carries both events.
    let (_, _, v) = &out[0];
    assert_eq!(v["first"]["value"]["t"], "A");
    assert_eq!(v["then"]["value"]["t"], "B");
    Ok(())
}

#[test]
fn dedup_matches_a_reference_on_100k_events() -> Result<()> {
    let _serial = serial();
    let events = random_events(
        100_000,
        10,
        50,
        3,
        |r, _| json!({"id": r.below(500), "p": r.below(10)}),
    );
    let within = 2_000;
    let out = run_plugin(
        "dedup",
        &json!({"id_field": "id", "within_ms": within}),
        &events,
        "256",
    )?;
    // Ids are forgotten when the host's watermark (as of the batch before) passes them by
    // more than `within`.
    let mut seen: HashMap<(String, String), i64> = HashMap::new();
    let mut expected = Vec::new();
    for ((k, ts, v), wm) in events.iter().zip(watermarks(&events, 256)) {
        if let Some(wm) = wm {
            seen.retain(|_, t| *t >= wm - within);
        }
        let id = (k.clone(), v["id"].to_string());
        match seen.get(&id) {
            Some(t) if (ts - t).abs() <= within => {}
            _ => {
                seen.insert(id, *ts);
                expected.push((k.clone(), *ts, v.clone()));
            }
        }
    }
    assert!(expected.len() < events.len() && expected.len() > 1000);
    assert_eq!(out, expected);
    Ok(())
}

#[test]
fn window_and_pattern_runs_killed_mid_stream_give_identical_output() -> Result<()> {
    let _serial = serial();
    let events = random_events(150_000, 20, 300, 21, |r, i| {
        let t = if i % 3 == 0 { "A" } else { "B" };
        json!({"x": r.below(100), "t": t})
    });
    let text = to_jsonl(&events);
    let window = plugin("window");
    let cfg = json!({"field": "x", "size_ms": 500, "slide_ms": 250, "out_of_order_ms": 100}).to_string();
    let ckpt = [
        "--checkpoint-every",
        "500",
        "--batch-size",
        "4",
        "--full-every",
        "3",
    ];
    let out = cairn_tests::sigkill_exactly_once(
        &["--plugin", window.to_str().unwrap_or_default(), "--config", &cfg],
        &text,
        &ckpt,
        8,
        4,
    )?;
    assert!(out.lines().count() > 1000, "windows were emitted");
    let pattern = plugin("pattern");
    let cfg = json!({"first": {"field": "t", "equals": "A"}, "then": {"field": "t", "equals": "B"}, "within_ms": 400}).to_string();
    let out = cairn_tests::sigkill_exactly_once(
        &["--plugin", pattern.to_str().unwrap_or_default(), "--config", &cfg],
        &text,
        &ckpt,
        8,
        4,
    )?;
    assert!(out.lines().count() > 1000, "matches were emitted");
    Ok(())
}
