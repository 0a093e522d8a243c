//! Exactly-once on files: a run SIGKILLed at random moments and restarted each time writes
//! output byte-identical to a run that was never interrupted.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use cairn_tests::{
    cairn, expected_counts, plugin, run_args, run_ok, sigkill_exactly_once, strs, synthetic_input,
};

/// Frequent checkpoints, small batches, short chains: many cut points for the kills to hit.
const CKPT: [&str; 8] = [
    "--checkpoint-every",
    "1000",
    "--batch-size",
    "8",
    "--full-every",
    "4",
    "--max-retained",
    "2",
];

/// The tests of this file time their kills and signals: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn sigkill_at_random_moments_and_restart_gives_identical_output() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let input = synthetic_input(300_000, 5_000, 0);
    let counter = plugin("counter");
    let reference = sigkill_exactly_once(
        &["--plugin", counter.to_str().unwrap_or_default()],
        &input,
        &CKPT,
        30,
        10,
    )?;
    assert_eq!(
        reference,
        expected_counts(&input)?,
        "the uninterrupted run itself is wrong"
    );
    Ok(())
}

#[test]
fn a_two_operator_pipeline_is_exactly_once_under_sigkill() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // counter -> aggregate(count): the running count per key, then per key the statistics of
    // those counts. Both operators' state is in each checkpoint.
    let dir = tempfile::tempdir()?;
    let pipeline = dir.path().join("pipeline.toml");
    let plugins = cairn_tests::plugin_dir();
    std::fs::write(
        &pipeline,
        format!(
            "name = \"two\"\n[[operators]]\nplugin = \"{0}/counter.wasm\"\n[[operators]]\nplugin = \"{0}/aggregate.wasm\"\nconfig = {{ field = \"count\" }}\n",
            plugins.display()
        ),
    )?;
    let input = synthetic_input(200_000, 2_000, 0);
    let reference = sigkill_exactly_once(
        &["--pipeline", pipeline.to_str().unwrap_or_default()],
        &input,
        &CKPT,
        25,
        8,
    )?;
    // The last line for a key: the counts 1..=n have sum n(n+1)/2.
    let mut last: std::collections::HashMap<String, serde_json::Value> = Default::default();
    for l in reference.lines() {
        let v: serde_json::Value = serde_json::from_str(l)?;
        last.insert(
            v["key"].as_str().unwrap_or_default().to_string(),
            v["value"].clone(),
        );
    }
    for v in last.values() {
        let n = v["count"].as_f64().unwrap_or_default();
        assert_eq!(v["sum"].as_f64(), Some(n * (n + 1.0) / 2.0));
        assert_eq!(v["max"].as_f64(), Some(n));
    }
    Ok(())
}

#[test]
fn sigterm_finishes_the_batch_checkpoints_and_exits_zero() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let input_text = synthetic_input(300_000, 100, 0);
    let input = dir.path().join("in.jsonl");
    fs::write(&input, &input_text)?;
    let out = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("store").display());
    let extra = [
        "--store",
        store.as_str(),
        "--checkpoint-interval",
        "1h",
        "--batch-size",
        "4",
    ];
    let a = run_args(&plugin("counter"), &input, &out, &extra);
    let child = cairn()
        .args(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(150));
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let res = child.wait_with_output()?;
    assert!(
        res.status.success(),
        "exit status {}: {}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    let partial = fs::read_to_string(&out)?;
    let expected = expected_counts(&input_text)?;
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "stopped output should be a proper prefix"
    );
    assert!(expected.starts_with(&partial));
    // The final checkpoint covers exactly what was written.
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["host"]["output_len"].as_u64(), Some(partial.len() as u64));
    // Resume to the end.
    run_ok(&strs(&a))?;
    assert_eq!(fs::read_to_string(&out)?, expected);
    Ok(())
}
