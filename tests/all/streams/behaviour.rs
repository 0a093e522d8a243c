//! Jobs over streams: stopping, bad input, mixed inputs and outputs, clear errors, secrets,
//! where a first start reads, retention, and event time on a quiet stream.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cairn_tests::nats::NatsServer;
use cairn_tests::{cairn, expected_counts, plugin, run_cairn, run_ok, synthetic_input};

use super::*;

#[test]
fn sigterm_stops_a_job_blocked_on_a_pipe_with_a_final_checkpoint() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (out, store) = (dir.path().join("out.jsonl"), dir.path().join("ck"));
    let counter = plugin("counter");
    let mut child = cairn()
        .args(["run", "--plugin"])
        .arg(&counter)
        .args(["--input", "-", "--output"])
        .arg(&out)
        .arg("--store")
        .arg(format!("file:{}", store.display()))
        .args(["--batch-size", "10", "--checkpoint-every", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let input = synthetic_input(25, 3, 0);
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(input.as_bytes())?;
    stdin.flush()?;
    // Two whole batches are processed; five events wait for a third that never fills.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&out).unwrap_or_default().lines().count() < 20 {
        ensure!(Instant::now() < deadline, "the job processed nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&child);
    // Tests allow 5 s on a loaded machine (the job itself looks every 50 ms).
    let (status, took) = wait_exit(&mut child, Duration::from_secs(5))?;
    drop(stdin);
    ensure!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let expected: String = expected_counts(&input)?
        .lines()
        .take(20)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(std::fs::read_to_string(&out)?, expected);
    let listed = run_ok(&[
        "checkpoints",
        "list",
        "--store",
        &format!("file:{}", store.display()),
    ])?;
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.lines().count() >= 2, "a final checkpoint: {text}");
    Ok(())
}

#[test]
fn malformed_lines_are_dead_lettered_under_skip_and_stop_the_job_under_fail() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = synthetic_input(30, 4, 0);
    let lines: Vec<&str> = good.lines().collect();
    let input_text = format!(
        "{}\nnot an event\n{}\n{{\"key\": 7}}\n{}\n",
        lines[..10].join("\n"),
        lines[10..20].join("\n"),
        lines[20..].join("\n")
    );
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, &input_text)?;
    let (out, dead) = (dir.path().join("out.jsonl"), dir.path().join("dead.jsonl"));
    let counter = plugin("counter");
    let args = |policy: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into(), "--plugin".into(), counter.display().to_string()];
        for a in [
            "--input",
            &input.display().to_string(),
            "--output",
            &out.display().to_string(),
        ] {
            v.push(a.to_string());
        }
        v.extend(policy.iter().map(|s| s.to_string()));
        v
    };
    let skip = args(&[
        "--on-error",
        "skip",
        "--dead-letter",
        &dead.display().to_string(),
        "--batch-size",
        "8",
    ]);
    run_ok(&skip.iter().map(String::as_str).collect::<Vec<_>>())?;
    assert_eq!(std::fs::read_to_string(&out)?, expected_counts(&good)?);
    let dead_text = std::fs::read_to_string(&dead)?;
    let records: Vec<serde_json::Value> = dead_text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 2, "{dead_text}");
    assert_eq!(records[0]["record"], "not an event");
    assert!(
        records[0]["error"].as_str().unwrap().contains("line 11"),
        "{dead_text}"
    );
    assert_eq!(records[1]["record"], "{\"key\": 7}");
    let fail = args(&["--batch-size", "8"]);
    let r = run_cairn(&fail.iter().map(String::as_str).collect::<Vec<_>>(), b"")?;
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("line 11"));
    Ok(())
}

/// A file into NATS and NATS into a file, with checkpoints, and a SIGTERM on a job idle on its
/// stream, resumed without loss or duplicate.
#[test]
fn file_to_nats_and_nats_to_file_and_a_stop_while_idle() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    streams(&nats)?;
    let counter = plugin("counter").display().to_string();
    let text = synthetic_input(3_000, 40, 0);
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, &text)?;
    let store = |n: &str| format!("file:{}", dir.path().join(n).display());
    // File -> NATS: a file ends, so event time ends too (as file -> file).
    let file_out = dir.path().join("file-out.jsonl");
    let i = input.display().to_string();
    run_ok(&[
        "run",
        "--plugin",
        &counter,
        "--input",
        &i,
        "--output",
        &file_out.display().to_string(),
    ])?;
    run_ok(&[
        "run",
        "--plugin",
        &counter,
        "--input",
        &i,
        "--output",
        &nats.url("out"),
        "--store",
        &store("a"),
    ])?;
    assert_eq!(
        read_subject(&nats, "OUT", "out", dir.path())?,
        std::fs::read_to_string(&file_out)?
    );
    // NATS -> file: the first half published, the job stopped while idle, the rest published,
    // the job resumed; the file holds each output once.
    let lines: Vec<&str> = text.lines().collect();
    let half: String = lines[..1500].iter().map(|l| format!("{l}\n")).collect();
    let rest: String = lines[1500..].iter().map(|l| format!("{l}\n")).collect();
    publish(&half, &nats.url("in"), dir.path())?;
    let out = dir.path().join("from-nats.jsonl");
    let o = out.display().to_string();
    let job = [
        "run",
        "--plugin",
        &counter,
        "--input",
        &nats.url("IN"),
        "--output",
        &o,
        "--store",
        &store("b"),
        "--checkpoint-interval",
        "200ms",
    ];
    let mut child = spawn(&job.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let wait_lines = |n: usize| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&out).unwrap_or_default().lines().count() < n {
            ensure!(Instant::now() < deadline, "stuck below {n} lines");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    wait_lines(1500)?;
    sigterm(&child);
    let (status, took) = wait_exit(&mut child, Duration::from_secs(5))?;
    ensure!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    publish(&rest, &nats.url("in"), dir.path())?;
    let mut child = spawn(&job.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    wait_lines(3000)?;
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(5))?;
    assert_eq!(std::fs::read_to_string(&out)?, expected_counts(&text)?);
    Ok(())
}

#[test]
fn a_nats_output_without_atomic_batches_or_a_stream_is_a_clear_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    run_ok(&[
        "stream",
        "create",
        &nats.url("PLAIN"),
        "--subjects",
        "plain,plain.commit.>",
    ])?;
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, synthetic_input(5, 2, 0))?;
    let counter = plugin("counter").display().to_string();
    let store = format!("file:{}", dir.path().join("ck").display());
    for (subject, says) in [
        ("plain", "allow atomic"),
        ("nowhere", "no stream captures subject nowhere"),
    ] {
        let r = run_cairn(
            &[
                "run",
                "--plugin",
                &counter,
                "--input",
                &input.display().to_string(),
                "--output",
                &nats.url(subject),
                "--store",
                &store,
            ],
            b"",
        )?;
        assert!(!r.status.success());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(says), "{err}");
        assert!(err.contains("cairn stream"), "names the fix: {err}");
    }
    Ok(())
}

/// `--idle-event-time`: on a stream that goes quiet, event time follows the wall clock, so the
/// window operator closes its last windows without waiting for more events — as the file run
/// closes them at the end of its input.
#[test]
fn on_request_event_time_follows_the_clock_on_an_idle_stream() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    streams(&nats)?;
    let window = plugin("window").display().to_string();
    let op = [
        "--plugin",
        window.as_str(),
        "--config",
        r#"{"field":"x","size_ms":1000}"#,
    ];
    // 50 events over 490 ms of event time: one window, closed only by time.
    let text = synthetic_input(50, 5, 0);
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, &text)?;
    let reference = dir.path().join("ref.jsonl");
    let mut args = vec!["run"];
    args.extend(op);
    let (i, r) = (input.display().to_string(), reference.display().to_string());
    args.extend(["--input", &i, "--output", &r]);
    run_ok(&args)?;
    let reference = std::fs::read_to_string(&reference)?;
    assert!(reference.lines().count() >= 5, "a window per key: {reference}");
    publish(&text, &nats.url("in"), dir.path())?;
    let out = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("ck").display());
    let mut job: Vec<String> = vec!["run".into()];
    job.extend(op.iter().map(|s| s.to_string()));
    for a in [
        "--input",
        &nats.url("IN"),
        "--output",
        &out.display().to_string(),
        "--store",
        &store,
        "--checkpoint-interval",
        "200ms",
        "--idle-event-time",
        "300ms",
    ] {
        job.push(a.to_string());
    }
    let mut child = spawn(&job)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&out).unwrap_or_default() != reference {
        ensure!(Instant::now() < deadline, "the windows never closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    sigterm(&child);
    let (status, _) = wait_exit(&mut child, Duration::from_secs(5))?;
    ensure!(status.success(), "{status}");
    assert_eq!(std::fs::read_to_string(&out)?, reference);
    Ok(())
}

/// A password in the URL reaches the server and nothing else: not the log, not the summary,
/// not the checkpoints; a wrong one fails after --nats-retry without echoing it.
#[test]
fn credentials_in_a_url_never_show() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start_with(&["--user", "alice", "--pass", "s3cret-pw"])?;
    run_ok(&[
        "stream",
        "create",
        &nats.url_as("alice:s3cret-pw", "IN"),
        "--subjects",
        "in",
    ])?;
    let text = synthetic_input(30, 4, 0);
    publish(&text, &nats.url_as("alice:s3cret-pw", "in"), dir.path())?;
    let out = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("ck").display());
    let job = stream_job(&nats.url_as("alice:s3cret-pw", "IN"), &out, &store, &[]);
    let err = run_until_lines(&job, &out, 30)?;
    assert!(!err.contains("s3cret"), "{err}");
    assert!(
        err.contains("nats://127.0.0.1:"),
        "the summary names the server: {err}"
    );
    for cmd in [
        &["checkpoints", "list"][..],
        &["checkpoints", "show", "latest"][..],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--store", &store]);
        let shown = run_ok(&args)?;
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(!text.contains("s3cret") && !text.contains("alice"), "{text}");
    }
    let wrong = stream_job(
        &nats.url_as("alice:wrong-pw", "IN"),
        &out,
        &store,
        &["--nats-retry", "2s"],
    );
    let r = run_cairn(&wrong.iter().map(String::as_str).collect::<Vec<_>>(), b"")?;
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.contains("wrong-pw"), "{err}");
    assert!(err.contains("nats://127.0.0.1:"), "names the server: {err}");

    // A token, and a seed list whose first server is down.
    let tokened = NatsServer::start_with(&["--auth", "t0ken-xyz"])?;
    let url = tokened.url_as("t0ken-xyz", "IN");
    run_ok(&["stream", "create", &url, "--subjects", "in"])?;
    publish(&text, &tokened.url_as("t0ken-xyz", "in"), dir.path())?;
    let seeds = url.replacen("nats://", "nats://t0ken-xyz@127.0.0.1:1,", 1);
    let out2 = dir.path().join("out2.jsonl");
    let store2 = format!("file:{}", dir.path().join("ck2").display());
    let err = run_until_lines(&stream_job(&seeds, &out2, &store2, &[]), &out2, 30)?;
    assert!(!err.contains("t0ken"), "{err}");
    assert_eq!(std::fs::read_to_string(&out2)?, expected_counts(&text)?);
    Ok(())
}

/// `?start=new`: a first start reads only what is published after it.
#[test]
fn start_new_reads_only_what_arrives_after_the_first_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    streams(&nats)?;
    let text = synthetic_input(40, 4, 0);
    let lines: Vec<&str> = text.lines().collect();
    let (old, new): (String, String) = (
        lines[..20].iter().map(|l| format!("{l}\n")).collect(),
        lines[20..].iter().map(|l| format!("{l}\n")).collect(),
    );
    publish(&old, &nats.url("in"), dir.path())?;
    let out = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("ck").display());
    let job = stream_job(&format!("{}?start=new", nats.url("IN")), &out, &store, &[]);
    let publisher = {
        let (url, dir) = (nats.url("in"), dir.path().to_path_buf());
        std::thread::spawn(move || -> Result<()> {
            std::thread::sleep(Duration::from_millis(1500));
            publish(&new, &url, &dir)
        })
    };
    run_until_lines(&job, &out, 20)?;
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    let lines_new: String = lines[20..].iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(std::fs::read_to_string(&out)?, expected_counts(&lines_new)?);
    Ok(())
}

/// A checkpoint whose next messages the stream's retention removed: the restore fails naming
/// both sequences, and nothing is skipped.
#[test]
fn a_checkpoint_behind_the_streams_retention_is_refused_naming_both_sequences() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    run_ok(&[
        "stream",
        "create",
        &nats.url("IN"),
        "--subjects",
        "in",
        "--max-messages",
        "50",
    ])?;
    let text = synthetic_input(140, 4, 0);
    let lines: Vec<&str> = text.lines().collect();
    let part = |r: std::ops::Range<usize>| -> String { lines[r].iter().map(|l| format!("{l}\n")).collect() };
    publish(&part(0..40), &nats.url("in"), dir.path())?;
    let out = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("ck").display());
    let job = stream_job(&nats.url("IN"), &out, &store, &[]);
    run_until_lines(&job, &out, 40)?;
    // 100 more: the stream keeps the last 50 (sequences 91..140); 41..90 are gone unread.
    publish(&part(40..140), &nats.url("in"), dir.path())?;
    // (A job that did not refuse would run on: it gets 30 s, then fails the test.)
    let mut child = Command::new(cairn_tests::cairn_bin())
        .args(&job)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (status, err) = exit_and_stderr(&mut child, Duration::from_secs(30))?;
    assert!(!status.success());
    assert!(
        err.contains("up to sequence 40") && err.contains("starts at sequence 91"),
        "{err}"
    );
    Ok(())
}
