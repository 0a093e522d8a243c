//! Live streams: a stop by signal while blocked on input, bad input under the error policy,
//! and NATS JetStream in and out — exactly once across SIGKILLs of the job and of the server
//! ([`exactly_once`]), and how jobs over streams behave otherwise ([`behaviour`]). Every test
//! starts its own nats-server. This module holds what they share.

mod behaviour;
mod exactly_once;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cairn_tests::nats::NatsServer;
use cairn_tests::{plugin, run_ok};

/// Wait up to `limit` for `child` to exit; its status and stderr (it must have been spawned
/// with stderr piped).
pub(super) fn exit_and_stderr(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<(std::process::ExitStatus, String)> {
    let (status, _) = wait_exit(child, limit)?;
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut err)?;
    Ok((status, err))
}

pub(super) fn sigterm(child: &std::process::Child) {
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Wait for `child` to exit, up to `limit`; its status and how long it took.
pub(super) fn wait_exit(
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

/// Publish `text` (JSON Lines) to `url` with `cairn cat`.
pub(super) fn publish(text: &str, url: &str, dir: &std::path::Path) -> Result<()> {
    let file = dir.join(format!("publish-{}.jsonl", text.len()));
    std::fs::write(&file, text)?;
    run_ok(&["cat", "--input", &file.display().to_string(), "--output", url])?;
    Ok(())
}

/// The messages of a stream's `subject`, as JSON Lines, read with `cairn cat`.
pub(super) fn read_subject(
    nats: &NatsServer,
    stream: &str,
    subject: &str,
    dir: &std::path::Path,
) -> Result<String> {
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

pub(super) fn streams(nats: &NatsServer) -> Result<()> {
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

/// The file-to-file run of `op_args` over `text`, event time kept open (a stream never ends),
/// in batches of 100: what a NATS job must publish.
pub(super) fn file_run(dir: &std::path::Path, op_args: &[&str], text: &str) -> Result<String> {
    let input = dir.join("ref-in.jsonl");
    std::fs::write(&input, text)?;
    let reference = dir.join("ref.jsonl");
    let mut args = vec!["run"];
    args.extend(op_args);
    let (i, o) = (input.display().to_string(), reference.display().to_string());
    args.extend([
        "--input",
        &i,
        "--output",
        &o,
        "--keep-open",
        "--batch-size",
        "100",
    ]);
    run_ok(&args)?;
    Ok(std::fs::read_to_string(&reference)?)
}

/// `cairn run <op_args>` from stream IN to subject `out` with a file store, checkpointing every
/// 2,500 events (each commit then goes out in three atomic batches of ≤ 1000 messages).
pub(super) fn nats_job(nats: &NatsServer, op_args: &[&str], store: &str) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(op_args.iter().map(|s| s.to_string()));
    for a in [
        "--input",
        &nats.url("IN"),
        "--output",
        &nats.url("out"),
        "--store",
        store,
        "--batch-size",
        "100",
        "--checkpoint-every",
        "2500",
        "--nats-retry",
        "30s",
    ] {
        v.push(a.to_string());
    }
    v
}

pub(super) fn spawn(args: &[String]) -> Result<std::process::Child> {
    Ok(Command::new(cairn_tests::cairn_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// A small deterministic generator for kill moments.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn below(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

/// Run `args` until the output subject holds `expected_len` bytes (or 300 s pass), then
/// SIGTERM it; it must exit 0. Returns the output subject's content.
pub(super) fn last_run_until_done(
    nats: &NatsServer,
    args: &[String],
    expected_len: usize,
    dir: &std::path::Path,
) -> Result<String> {
    let mut child = spawn(args)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while read_subject(nats, "OUT", "out", dir)?.len() < expected_len && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&child);
    let (status, _) = wait_exit(&mut child, Duration::from_secs(30))?;
    ensure!(status.success(), "the last run: {status}");
    read_subject(nats, "OUT", "out", dir)
}

/// Run `args` (a job over a stream, writing the file `out`) until `out` has `lines` lines, then
/// SIGTERM it; returns its stderr. The job must exit 0.
pub(super) fn run_until_lines(args: &[String], out: &std::path::Path, lines: usize) -> Result<String> {
    let mut child = Command::new(cairn_tests::cairn_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(out).unwrap_or_default().lines().count() < lines {
        ensure!(Instant::now() < deadline, "stuck below {lines} lines");
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let (status, err) = exit_and_stderr(&mut child, Duration::from_secs(5))?;
    ensure!(status.success(), "{status}: {err}");
    Ok(err)
}

pub(super) fn stream_job(input: &str, out: &std::path::Path, store: &str, extra: &[&str]) -> Vec<String> {
    let counter = plugin("counter").display().to_string();
    let mut v: Vec<String> = ["run", "--plugin", &counter, "--input", input, "--output"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push(out.display().to_string());
    v.extend(["--store", store, "--checkpoint-interval", "100ms"].map(String::from));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}
