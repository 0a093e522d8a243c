//! The streams bench: the counter NATS → NATS (`--delivery exactly-once` and `at-least-once`)
//! beside file → file, on a real nats-server started here.
//!
//! * **Throughput**: N events published before the job starts; the time from starting the job
//!   until a reader following the output subject has every output line (job start-up included).
//! * **Latency**: events published one by one at a steady rate while the job runs, each with
//!   its publish time (ms) as event time; a reader following the output stamps each output
//!   line on arrival: p50 and p99 of arrival − publish.
//!
//! `stream-bench [--events N] [--rate R] [--seconds S]` (defaults 200,000 events; 2,000 events/s
//! for 10 s). `scripts/bench.sh streams` builds everything and runs it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use cairn_tests::bench::{arg, follow, write_input};
use cairn_tests::nats::NatsServer;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn run(cairn: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(cairn).args(args).output()?;
    ensure!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn sigterm(child: &mut Child) -> Result<()> {
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait()?;
    Ok(())
}

struct Setup {
    cairn: PathBuf,
    plugin: String,
    nats: NatsServer,
    dir: tempfile::TempDir,
    round: usize,
}

impl Setup {
    /// Fresh streams for one measurement: `IN<r>` (subject `in<r>`) and `OUT<r>` (`out<r>` and
    /// its commit subjects).
    fn streams(&mut self) -> Result<(String, String)> {
        self.round += 1;
        let r = self.round;
        run(
            &self.cairn,
            &[
                "stream",
                "create",
                &self.nats.url(&format!("IN{r}")),
                "--subjects",
                &format!("in{r}"),
            ],
        )?;
        run(
            &self.cairn,
            &[
                "stream",
                "create",
                &self.nats.url(&format!("OUT{r}")),
                "--subjects",
                &format!("out{r},out{r}.commit.>"),
                "--allow-atomic",
            ],
        )?;
        Ok((format!("in{r}"), format!("out{r}")))
    }

    fn job(&self, r: &str, delivery: &str) -> Result<Child> {
        let n = r.trim_start_matches("in");
        let store = format!("file:{}", self.dir.path().join(format!("ck{n}")).display());
        Ok(Command::new(&self.cairn)
            .args([
                "run",
                "--plugin",
                &self.plugin,
                "--input",
                &self.nats.url(&format!("IN{n}")),
            ])
            .args([
                "--output",
                &self.nats.url(&format!("out{n}")),
                "--store",
                &store,
                "--quiet",
            ])
            .args(["--delivery", delivery, "--checkpoint-interval", "1s"])
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// Events/s of the counter NATS → NATS over the `events` lines of `input`.
    fn throughput(&mut self, input: &Path, events: usize, delivery: &str) -> Result<f64> {
        let (i, o) = self.streams()?;
        run(
            &self.cairn,
            &[
                "cat",
                "--input",
                &input.display().to_string(),
                "--output",
                &self.nats.url(&i),
            ],
        )?;
        let n = &o[3..];
        let (mut reader, mut lines) = follow(
            &self.cairn,
            &format!("{}?subject={o}", self.nats.url(&format!("OUT{n}"))),
        )?;
        let t = Instant::now();
        let mut job = self.job(&i, delivery)?;
        let mut line = String::new();
        for _ in 0..events {
            line.clear();
            ensure!(lines.read_line(&mut line)? > 0, "the reader ended early");
        }
        let took = t.elapsed();
        sigterm(&mut job)?;
        sigterm(&mut reader)?;
        Ok(events as f64 / took.as_secs_f64())
    }

    /// p50 and p99 (ms) from publish to output visible, `rate` events/s for `seconds`.
    fn latency(&mut self, rate: usize, seconds: usize, delivery: &str) -> Result<(i64, i64)> {
        let (i, o) = self.streams()?;
        let n = &o[3..];
        let (mut reader, lines) = follow(
            &self.cairn,
            &format!("{}?subject={o}", self.nats.url(&format!("OUT{n}"))),
        )?;
        let mut job = self.job(&i, delivery)?;
        std::thread::sleep(Duration::from_millis(500));
        let mut publisher = Command::new(&self.cairn)
            .args([
                "cat",
                "--batch-size",
                "1",
                "--input",
                "-",
                "--output",
                &self.nats.url(&i),
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let total = rate * seconds;
        let arrivals = std::thread::spawn(move || -> Result<Vec<i64>> {
            let mut lat = Vec::with_capacity(total);
            for line in lines.lines().take(total) {
                let line = line?;
                let v: serde_json::Value = serde_json::from_str(&line)?;
                lat.push(now_ms() - v["ts"].as_i64().context("ts")?);
            }
            Ok(lat)
        });
        let mut stdin = publisher.stdin.take().context("stdin")?;
        let start = Instant::now();
        for k in 0..total {
            let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            writeln!(
                stdin,
                "{{\"key\":\"k{}\",\"ts\":{},\"value\":1}}",
                k % 500,
                now_ms()
            )?;
            stdin.flush()?;
        }
        drop(stdin);
        publisher.wait()?;
        let mut lat = arrivals
            .join()
            .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
        sigterm(&mut job)?;
        sigterm(&mut reader)?;
        lat.sort_unstable();
        let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        Ok((at(0.5), at(0.99)))
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 200_000)?;
    let rate = arg(&args, "--rate", 2_000)?;
    let seconds = arg(&args, "--seconds", 10)?;
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench's directory")?;
    let cairn = dir.join("cairn");
    ensure!(
        cairn.exists(),
        "{} is missing: run scripts/bench.sh streams",
        cairn.display()
    );
    let plugin = cairn_tests::plugin("counter").display().to_string();
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in.jsonl");
    write_input(&input, events, 10_000)?;
    // File → file: the same job without a broker.
    let out = tmp.path().join("out.jsonl");
    let t = Instant::now();
    run(
        &cairn,
        &[
            "run",
            "--plugin",
            &plugin,
            "--input",
            &input.display().to_string(),
            "--output",
            &out.display().to_string(),
            "--quiet",
        ],
    )?;
    let file_rate = events as f64 / t.elapsed().as_secs_f64();
    let mut s = Setup {
        cairn,
        plugin,
        nats: NatsServer::start()?,
        dir: tempfile::tempdir()?,
        round: 0,
    };
    println!(
        "counter, {events} events over 10,000 keys (throughput); {rate} events/s for {seconds} s (latency):"
    );
    println!("| route | events/s | latency p50 | p99 |");
    println!("|---|---|---|---|");
    println!("| file → file | {file_rate:.0} | – | – |");
    for delivery in ["exactly-once", "at-least-once"] {
        let eps = s.throughput(&input, events, delivery)?;
        let (p50, p99) = s.latency(rate, seconds, delivery)?;
        println!("| NATS → NATS, {delivery} (checkpoint every 1 s) | {eps:.0} | {p50} ms | {p99} ms |");
    }
    Ok(())
}
