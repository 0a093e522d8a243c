//! Exactly-once on files: a run SIGKILLed at random moments and restarted each time writes
//! output byte-identical to a run that was never interrupted.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, ensure};
use cairn_tests::{cairn, expected_counts, plugin, run_args, run_ok, strs, synthetic_input};

/// The tests of this file time their kills and signals: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn sigkill_at_random_moments_and_restart_gives_identical_output() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir()?;
    let input_text = synthetic_input(300_000, 5_000, 0);
    let input = dir.path().join("in.jsonl");
    fs::write(&input, &input_text)?;
    let counter = plugin("counter");
    let out_ref = dir.path().join("ref.jsonl");
    let out = dir.path().join("out.jsonl");
    let args = |input: &std::path::Path, output: &std::path::Path, store: &str| -> Vec<String> {
        let extra = [
            "--store",
            store,
            "--checkpoint-every",
            "1000",
            "--batch-size",
            "8",
            "--full-every",
            "4",
            "--max-retained",
            "2",
        ];
        run_args(&counter, input, output, &extra)
    };

    // The uninterrupted run, with the same settings; its duration calibrates the kill delays.
    let started = Instant::now();
    let ref_store = format!("file:{}", dir.path().join("ref-store").display());
    run_ok(&strs(&args(&input, &out_ref, &ref_store)))?;
    let full_run = started.elapsed();
    let reference = fs::read_to_string(&out_ref)?;
    assert_eq!(
        reference,
        expected_counts(&input_text)?,
        "the uninterrupted run itself is wrong"
    );

    // Start-up cost (engine, compiling the component): a run over an empty input.
    let empty = dir.path().join("empty.jsonl");
    fs::write(&empty, "")?;
    let mut startup = Duration::ZERO;
    for i in 0..3 {
        let started = Instant::now();
        let empty_store = format!("file:{}", dir.path().join(format!("empty-store-{i}")).display());
        run_ok(&strs(&args(
            &empty,
            &dir.path().join("empty-out.jsonl"),
            &empty_store,
        )))?;
        startup = startup.max(started.elapsed());
    }

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed: {seed}; uninterrupted run took {full_run:?}, start-up {startup:?}");
    let mut rng = Rng(seed);
    let store = format!("file:{}", dir.path().join("store").display());
    let a = args(&input, &out, &store);
    // Kills land anywhere from start-up (restore) to well into processing, but each
    // incarnation gets at most ~1/30 of the work done, so 30 kills hardly ever finish the job.
    let work = full_run.saturating_sub(startup).as_micros() as u64;
    let max_delay = startup.as_micros() as u64 * 13 / 10 + (work / 40).max(2_000);
    let mut kills = 0;
    let mut finished_early = false;
    let mut sizes = Vec::new();
    while kills < 30 {
        let mut child = cairn()
            .args(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_micros(500 + rng.below(max_delay)));
        if let Some(status) = child.try_wait()? {
            ensure!(
                status.success(),
                "an incarnation failed on its own: {status} (seed {seed})"
            );
            finished_early = true;
            break;
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        kills += 1;
        sizes.push(fs::metadata(&out).map(|m| m.len()).unwrap_or(0));
    }
    ensure!(
        kills >= 20,
        "only {kills} kills landed before the run finished (finished early: {finished_early}, seed {seed})"
    );
    // The kills landed at many different points of the output, not all during start-up.
    let mut distinct = sizes.clone();
    distinct.sort();
    distinct.dedup();
    eprintln!("output length at each kill: {sizes:?}");
    ensure!(
        distinct.len() >= 10,
        "kills did not land mid-run: output lengths {sizes:?} (seed {seed})"
    );

    // Let it finish.
    run_ok(&strs(&a))?;
    let got = fs::read_to_string(&out)?;
    assert!(
        got == reference,
        "output after {kills} SIGKILLs differs from the uninterrupted run (seed {seed})"
    );

    let verify = run_ok(&["checkpoints", "verify", "--store", &store])?;
    assert!(String::from_utf8_lossy(&verify.stdout).contains("are valid"));
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
