//! Exactly once from a NATS stream to a NATS subject across SIGKILLs of the job and of the
//! server, with the input published before or while the job runs, and with the server gone.

use std::time::Duration;

use anyhow::{Result, ensure};
use cairn_tests::nats::NatsServer;
use cairn_tests::{expected_counts, kills, plugin, synthetic_input};

use super::*;

/// `op_args` NATS to NATS: 200k events published before the job starts, the job SIGKILLed at
/// random moments (one pause past the streams' 1 s duplicate window) and the server SIGKILLed
/// and restarted once while it runs; once the input is consumed, SIGTERM. The output subject
/// holds exactly the file-to-file run's lines, in order.
fn exactly_once_under_kills(op_args: &[&str], seed: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut nats = NatsServer::start()?;
    streams(&nats)?;
    let text = synthetic_input(200_000, 500, 0);
    publish(&text, &nats.url("in"), dir.path())?;
    let reference = file_run(dir.path(), op_args, &text)?;
    ensure!(
        reference.lines().count() > 1000,
        "the operator emits enough to compare"
    );
    let store = format!("file:{}", dir.path().join("ck").display());
    let job = nats_job(&nats, op_args, &store);
    let mut rng = Rng(seed);
    let kills = kills(10);
    for k in 0..kills {
        let mut child = spawn(&job)?;
        std::thread::sleep(Duration::from_millis(150 + rng.below(900)));
        if k == kills / 2 {
            // The server goes away and comes back while the job runs.
            nats.kill()?;
            std::thread::sleep(Duration::from_millis(300));
            nats.restart()?;
            std::thread::sleep(Duration::from_millis(200 + rng.below(300)));
        }
        child.kill()?;
        child.wait()?;
        if k == 1 {
            // Restart only after the server's duplicate window has passed: nothing may rely on it.
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    let out = last_run_until_done(&nats, &job, reference.len(), dir.path())?;
    assert_eq!(out.lines().count(), reference.lines().count());
    assert!(out == reference, "the output differs from the file-to-file run");
    Ok(())
}

#[test]
fn the_counter_nats_to_nats_is_exactly_once_across_kills_of_the_job_and_the_server() -> Result<()> {
    let counter = plugin("counter").display().to_string();
    exactly_once_under_kills(&["--plugin", &counter], 0x9E37_79B9_7F4A_7C15)
}

#[test]
fn the_window_nats_to_nats_is_exactly_once_across_kills_of_the_job_and_the_server() -> Result<()> {
    let window = plugin("window").display().to_string();
    exactly_once_under_kills(
        &["--plugin", &window, "--config", r#"{"field":"x","size_ms":5000}"#],
        0x2545_F491_4F6C_DD1D,
    )
}

/// Live: events published in chunks while the job runs and is SIGKILLed now and then. The
/// output is still the file-to-file run's, line for line (the counter's output does not depend
/// on where batches end, and the stream keeps the publishing order).
#[test]
fn a_live_stream_is_exactly_once_across_kills() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    streams(&nats)?;
    let text = synthetic_input(60_000, 300, 0);
    let counter = plugin("counter").display().to_string();
    let reference = file_run(dir.path(), &["--plugin", &counter], &text)?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let job = nats_job(&nats, &["--plugin", &counter], &store);
    let lines: Vec<&str> = text.lines().collect();
    let mut rng = Rng(0xDEAD_BEEF_1234_5678);
    let mut child = spawn(&job)?;
    for (i, chunk) in lines.chunks(5_000).enumerate() {
        let part: String = chunk.iter().map(|l| format!("{l}\n")).collect();
        publish(&part, &nats.url("in"), dir.path())?;
        if i % 3 == 1 {
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            child.kill()?;
            child.wait()?;
            child = spawn(&job)?;
        }
    }
    child.kill()?;
    child.wait()?;
    let out = last_run_until_done(&nats, &job, reference.len(), dir.path())?;
    assert_eq!(out.lines().count(), reference.lines().count());
    assert!(out == reference, "the output differs from the file-to-file run");
    Ok(())
}

/// The broker gone for good: the job retries for --nats-retry, then fails, keeping its last
/// checkpoint; with the server back, a new run goes on without loss or duplicate.
#[test]
fn a_job_whose_broker_stays_away_fails_after_the_retry_time_and_resumes_later() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut nats = NatsServer::start()?;
    streams(&nats)?;
    let counter = plugin("counter").display().to_string();
    let text = synthetic_input(2_000, 30, 0);
    publish(&text, &nats.url("in"), dir.path())?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let mut job = nats_job(&nats, &["--plugin", &counter], &store);
    let at = job.iter().position(|a| a == "--nats-retry").unwrap();
    job[at + 1] = "2s".into();
    let mut child = spawn(&job)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_subject(&nats, "OUT", "out", dir.path())?.lines().count() < 2_000 {
        ensure!(Instant::now() < deadline, "the job published nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    nats.kill()?;
    let (status, _) = wait_exit(&mut child, Duration::from_secs(60))?;
    assert!(!status.success(), "fails once the retry time is over");
    nats.restart()?;
    publish(
        &synthetic_input(2_500, 30, 0)
            .lines()
            .skip(2_000)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        &nats.url("in"),
        dir.path(),
    )?;
    let all = synthetic_input(2_500, 30, 0);
    let out = last_run_until_done(&nats, &job, expected_counts(&all)?.len(), dir.path())?;
    assert_eq!(out, expected_counts(&all)?);
    Ok(())
}
