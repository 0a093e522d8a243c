//! Live streams: a stop by signal while blocked on input, bad input under the error policy,
//! and NATS JetStream in and out — exactly once across SIGKILLs of the job and of the server.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cairn_tests::nats::NatsServer;
use cairn_tests::{cairn, expected_counts, kills, plugin, run_cairn, run_ok, synthetic_input};

fn sigterm(child: &std::process::Child) {
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Wait for `child` to exit, up to `limit`; its status and how long it took.
fn wait_exit(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<(std::process::ExitStatus, Duration)> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok((s, t.elapsed()));
        }
        if t.elapsed() > limit {
            child.kill()?;
            anyhow::bail!("still running {limit:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

/// Publish `text` (JSON Lines) to `url` with `cairn cat`.
fn publish(text: &str, url: &str, dir: &std::path::Path) -> Result<()> {
    let file = dir.join(format!("publish-{}.jsonl", text.len()));
    std::fs::write(&file, text)?;
    run_ok(&["cat", "--input", &file.display().to_string(), "--output", url])?;
    Ok(())
}

/// The messages of a stream's `subject`, as JSON Lines, read with `cairn cat`.
fn read_subject(nats: &NatsServer, stream: &str, subject: &str, dir: &std::path::Path) -> Result<String> {
    let file = dir.join("read.jsonl");
    run_ok(&[
        "cat",
        "--input",
        &format!("{}?subject={subject}", nats.url(stream)),
        "--output",
        &file.display().to_string(),
    ])?;
    Ok(std::fs::read_to_string(&file)?)
}

fn streams(nats: &NatsServer) -> Result<()> {
    run_ok(&["stream", "create", &nats.url("IN"), "--subjects", "in"])?;
    run_ok(&[
        "stream",
        "create",
        &nats.url("OUT"),
        "--subjects",
        "out,out.commit.>",
        "--allow-atomic",
        "--duplicate-window",
        "1s",
    ])?;
    Ok(())
}

/// The counter, NATS to NATS: events published before the job starts, the job SIGKILLed at
/// random moments and the server SIGKILLed and restarted once while it runs; once the input is
/// consumed, SIGTERM. The output subject holds exactly the file-to-file run's lines, in order.
/// A checkpoint every 2,500 events: each commit is published in three atomic batches (≤ 1000
/// messages each).
#[test]
fn nats_to_nats_is_exactly_once_across_kills_of_the_job_and_the_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut nats = NatsServer::start()?;
    streams(&nats)?;
    let n = 200_000;
    let text = synthetic_input(n, 500, 0);
    publish(&text, &nats.url("in"), dir.path())?;
    // The reference: file to file, event time kept open (a stream never ends).
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, &text)?;
    let reference = dir.path().join("ref.jsonl");
    let counter = plugin("counter").display().to_string();
    run_ok(&[
        "run",
        "--plugin",
        &counter,
        "--input",
        &input.display().to_string(),
        "--output",
        &reference.display().to_string(),
        "--keep-open",
        "--batch-size",
        "100",
    ])?;
    let reference = std::fs::read_to_string(&reference)?;
    assert_eq!(reference, expected_counts(&text)?);

    let store = format!("file:{}", dir.path().join("ck").display());
    let job = [
        "run",
        "--plugin",
        &counter,
        "--input",
        &nats.url("IN"),
        "--output",
        &nats.url("out"),
        "--store",
        &store,
        "--batch-size",
        "100",
        "--checkpoint-every",
        "2500",
        "--nats-retry",
        "30s",
    ];
    let spawn = || -> Result<std::process::Child> {
        Ok(Command::new(cairn_tests::cairn_bin())
            .args(job)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut below = |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let kills = kills(10);
    for k in 0..kills {
        let mut child = spawn()?;
        std::thread::sleep(Duration::from_millis(150 + below(900)));
        if k == kills / 2 {
            // The server goes away and comes back while the job runs.
            nats.kill()?;
            std::thread::sleep(Duration::from_millis(300));
            nats.restart()?;
            std::thread::sleep(Duration::from_millis(200 + below(300)));
        }
        child.kill()?;
        child.wait()?;
    }
    // The last run: once everything is out, SIGTERM.
    let mut child = spawn()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut out;
    loop {
        out = read_subject(&nats, "OUT", "out", dir.path())?;
        if out.len() >= reference.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&child);
    let (status, _) = wait_exit(&mut child, Duration::from_secs(30))?;
    ensure!(status.success(), "the last run: {status}");
    let out = read_subject(&nats, "OUT", "out", dir.path())?;
    assert_eq!(out.lines().count(), reference.lines().count());
    assert!(out == reference, "the output differs from the file-to-file run");
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
