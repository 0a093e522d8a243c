//! Event-time timers through the host: the same operators run in the host (wasm, checkpoints)
//! and natively in cairn-sdk's harness give the same output, in the same order; timer quotas
//! and failures roll a batch back; timers survive SIGKILLs.

use std::fs;

use anyhow::Result;
use cairn_sdk::testing::Harness;
use cairn_sdk::{Event, Operator};
use cairn_tests::{plugin, run_args, run_cairn, run_ok, sigkill_exactly_once, strs};
use serde_json::{Value, json};

use crate::operators::{random_events, run_plugin, serial, to_jsonl};

/// `events` through the operator natively, fed in batches of `batch` as `cairn run` feeds them,
/// then the final watermark a bounded input ends with.
fn natively<O: Operator>(
    config: &Value,
    events: &[(String, i64, Value)],
    batch: usize,
) -> Result<Vec<(String, i64, Value)>> {
    let mut h = Harness::<O>::new(&config.to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    for chunk in events.chunks(batch) {
        let evs: Vec<Event> = chunk
            .iter()
            .map(|(k, ts, v)| Event::json(k, *ts, v))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for e in h.feed(evs).map_err(|e| anyhow::anyhow!("{e}"))? {
            out.push((e.key.clone(), e.ts, serde_json::from_slice(&e.value)?));
        }
    }
    // The end of a bounded input ends event time.
    for e in h.watermark(i64::MAX).map_err(|e| anyhow::anyhow!("{e}"))? {
        out.push((e.key.clone(), e.ts, serde_json::from_slice(&e.value)?));
    }
    Ok(out)
}

#[test]
fn session_and_window_in_the_host_match_the_native_harness() -> Result<()> {
    let _serial = serial();
    let events = random_events(20_000, 50, 300, 17, |r, _| json!({"x": r.below(10)}));
    let session = json!({"gap_ms": 150});
    let host = run_plugin("session", &session, &events, "50")?;
    let native = natively::<session::Sessions>(&session, &events, 50)?;
    assert!(host.len() > 500, "{} sessions", host.len());
    assert_eq!(host, native, "session: host vs native");
    let window = json!({"field": "x", "size_ms": 100, "slide_ms": 50, "out_of_order_ms": 20});
    let host = run_plugin("window", &window, &events, "50")?;
    let native = natively::<window::Window>(&window, &events, 50)?;
    assert!(host.len() > 1000, "{} windows", host.len());
    assert_eq!(host, native, "window: host vs native");
    Ok(())
}

#[test]
fn a_refused_timer_fails_the_batch_and_rolls_it_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    // One event a batch: a's window and timer fit the quota of one timer, b's timer does not.
    fs::write(
        &input,
        "{\"key\":\"a\",\"ts\":1,\"value\":1}\n{\"key\":\"b\",\"ts\":2,\"value\":1}\n",
    )?;
    let cfg = r#"{"field": "", "size_ms": 10}"#;
    let store = format!("file:{}", dir.path().join("ck").display());
    let args = run_args(
        &plugin("window"),
        &input,
        &output,
        &[
            "--config",
            cfg,
            "--max-timers",
            "1",
            "--batch-size",
            "1",
            "--store",
            &store,
        ],
    );
    let out = run_cairn(&strs(&args), b"")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("max-timers = 1") && err.contains("\"b\" at 10"),
        "{err}"
    );
    // The checkpoint taken at the failure holds a's window and timer, nothing of b's batch.
    let show = run_cairn(
        &["checkpoints", "show", "latest", "--store", &store, "--json"],
        b"",
    )?;
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    let doc: Value = serde_json::from_str(&text)?;
    let op = &doc["operators"][0];
    let keys: Vec<&String> = op["state"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert!(
        keys.iter().all(|k| k.starts_with("1:a/win/")) && keys.len() == 1,
        "{text}"
    );
    assert_eq!(op["timers"], json!([{"key": "a", "ts": 10}]), "{text}");
    Ok(())
}

/// Short variant of the SIGKILL test with timers in play (sessions open and closing across
/// every kill). The full 200-kill form: `CAIRN_KILLS=200 cargo test --release -p cairn --test all timers::`.
#[test]
fn session_runs_killed_mid_stream_give_identical_output() -> Result<()> {
    let _serial = serial();
    let kills = cairn_tests::kills(12);
    // Enough input for every kill to land before the run ends.
    let events = random_events(120_000.max(kills * 2_000), 200, 300, 29, |_, i| json!(i));
    let text: String = events
        .iter()
        .map(|(k, ts, v)| format!("{{\"key\":\"{k}\",\"ts\":{ts},\"value\":{v}}}\n"))
        .collect();
    let session = plugin("session");
    let op = [
        "--plugin",
        session.to_str().unwrap_or_default(),
        "--config",
        r#"{"gap_ms": 40}"#,
        "--batch-size",
        "64",
    ];
    let reference = sigkill_exactly_once(&op, &text, &["--checkpoint-every", "2000"], kills, kills / 3)?;
    assert!(
        reference.lines().count() > 10_000,
        "sessions closed: {}",
        reference.lines().count()
    );
    Ok(())
}

#[test]
fn a_job_resumes_only_with_the_batch_size_it_was_checkpointed_with() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let text: String = (0..100)
        .map(|i| format!("{{\"key\":\"k{}\",\"ts\":{i},\"value\":1}}\n", i % 7))
        .collect();
    fs::write(&input, text)?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let run = |batch: Option<&str>| {
        let mut extra = vec!["--config", r#"{"field": "", "size_ms": 10}"#, "--store", &store];
        if let Some(b) = batch {
            extra.extend(["--batch-size", b]);
        }
        run_cairn(&strs(&run_args(&plugin("window"), &input, &output, &extra)), b"")
    };
    assert!(run(Some("8"))?.status.success());
    let again = run(Some("16"))?;
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{err}");
    assert!(
        err.contains("batches of 8 events") && err.contains("--batch-size 8"),
        "{err}"
    );
    assert!(run(Some("8"))?.status.success(), "the same batch size resumes");
    assert!(
        run(None)?.status.success(),
        "without --batch-size the checkpoint's is used"
    );
    Ok(())
}

#[test]
fn the_end_of_the_input_closes_every_window_unless_kept_open() -> Result<()> {
    let _serial = serial();
    let events = random_events(6_000, 20, 300, 5, |r, _| json!({"x": r.below(10)}));
    let cfg = json!({"field": "x", "size_ms": 1000, "slide_ms": 1000, "out_of_order_ms": 400}).to_string();
    let dir = tempfile::tempdir()?;
    let p = |name: &str| dir.path().join(name);
    let store = |name: &str| format!("file:{}", p(name).display());
    let (whole, half) = (to_jsonl(&events), to_jsonl(&events[..3_000]));
    fs::write(p("whole.jsonl"), &whole)?;
    fs::write(p("half.jsonl"), &half)?;
    let window = plugin("window");
    let run = |input: &str, output: &str, st: &str, extra: &[&str]| -> Result<String> {
        let s = store(st);
        let mut args = vec![
            "--config",
            cfg.as_str(),
            "--batch-size",
            "50",
            "--store",
            s.as_str(),
        ];
        args.extend_from_slice(extra);
        run_ok(&strs(&run_args(&window, &p(input), &p(output), &args)))?;
        Ok(fs::read_to_string(p(output))?)
    };
    // Closed: every window of the input is emitted, the last ones by the final watermark.
    let closed = run("half.jsonl", "closed.jsonl", "closed", &[])?;
    let open = run("half.jsonl", "open.jsonl", "open", &["--keep-open"])?;
    assert!(
        closed.starts_with(&open) && closed.len() > open.len(),
        "kept open, the last windows wait ({} vs {} bytes)",
        open.len(),
        closed.len()
    );
    let windows_of = |text: &str| -> Result<std::collections::BTreeSet<(String, i64)>> {
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l)?;
                Ok((
                    v["key"].as_str().unwrap_or_default().to_string(),
                    v["value"]["start"].as_i64().unwrap_or(-1),
                ))
            })
            .collect()
    };
    let mut expected = std::collections::BTreeSet::new();
    for (k, ts, _) in &events[..3_000] {
        expected.insert((k.clone(), ts.div_euclid(1000) * 1000));
    }
    assert_eq!(
        windows_of(&closed)?,
        expected,
        "closed: one output per window of the input"
    );
    // An input kept open grows and the job resumes over it, then ends: the same output as one
    // closed run over the whole input.
    let mut grown = fs::OpenOptions::new().append(true).open(p("half.jsonl"))?;
    std::io::Write::write_all(&mut grown, &whole.as_bytes()[half.len()..])?;
    let resumed = run("half.jsonl", "open.jsonl", "open", &[])?;
    let once = run("whole.jsonl", "once.jsonl", "once", &[])?;
    assert_eq!(resumed, once);
    // The closed store refuses the grown input.
    let s = store("closed");
    let refused = run_cairn(
        &strs(&run_args(
            &window,
            &p("half.jsonl"),
            &p("closed.jsonl"),
            &[
                "--config",
                cfg.as_str(),
                "--batch-size",
                "50",
                "--store",
                s.as_str(),
            ],
        )),
        b"",
    )?;
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("closed event time"),
        "{err}"
    );
    Ok(())
}

/// Windows that only the end of the input closes (a huge out-of-order allowance): nearly all
/// output comes from the final watermark, so the kills land in the final flush, and a run killed
/// there redoes it from the checkpoint before and writes the same output.
#[test]
fn a_run_killed_during_the_final_flush_gives_identical_output() -> Result<()> {
    let _serial = serial();
    let kills = cairn_tests::kills(12);
    let events = random_events(60_000, 30, 0, 41, |r, _| json!({"x": r.below(100)}));
    let text = to_jsonl(&events);
    let window = plugin("window");
    let op = [
        "--plugin",
        window.to_str().unwrap_or_default(),
        "--config",
        r#"{"field": "x", "size_ms": 100, "slide_ms": 100, "out_of_order_ms": 100000000}"#,
        "--batch-size",
        "64",
    ];
    let reference = sigkill_exactly_once(&op, &text, &["--checkpoint-every", "5000"], kills, kills / 3)?;
    assert!(
        reference.lines().count() > 5_000,
        "windows closed at the end: {}",
        reference.lines().count()
    );
    Ok(())
}
