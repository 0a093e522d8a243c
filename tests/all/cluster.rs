//! Sharded jobs on a 3-node NATS JetStream cluster: workers SIGKILLed and restarted, a worker
//! paused past its lease (a zombie that must be fenced), a worker joining, and the node that
//! leads the commit stream killed and restarted — on a seeded schedule, while the input is
//! ingested step by step. The exported output must equal, shard by shard, a single-process
//! `cairn run` over that shard's events (a counter feeding a window).
//!
//! CI runs the short variant; the long one: `CAIRN_CHAOS_EVENTS=1000000 CAIRN_CHAOS_ACTIONS=40
//! cargo test --release -p cairn --test all -- cluster --nocapture` (docs/cluster.md).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cairn_tests::nats::NatsCluster;
use cairn_tests::{cairn, cairn_bin, plugin, run_ok};

use crate::streams::Rng;

const SHARDS: u32 = 16;
const GROUPS: u32 = 128;
const BATCH: usize = 256;
const LEASE: &str = "3s";
const LEASE_SECS: u64 = 3;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The operators, as a pipeline file's `[[operators]]`.
fn operators() -> String {
    format!(
        "[[operators]]\nname = \"counter\"\nplugin = \"{}\"\n\n[[operators]]\nname = \"window\"\nplugin = \"{}\"\n\
         config = {{ field = \"count\", size_ms = 10000 }}\n",
        plugin("counter").display(),
        plugin("window").display()
    )
}

/// A worker process whose log (stderr) is appended to `log`.
struct Worker {
    id: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Worker {
    fn start(id: &str, url: &str, dir: &Path) -> Result<Self> {
        let mut w = Self {
            id: id.to_string(),
            child: None,
            log: dir.join(format!("{id}.log")),
        };
        w.spawn(url, dir)?;
        Ok(w)
    }

    fn spawn(&mut self, url: &str, dir: &Path) -> Result<()> {
        let log = OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(cairn_bin())
            .args([
                "worker",
                "--coordinator",
                url,
                "--name",
                "chaos",
                "--worker-id",
                &self.id,
            ])
            .args(["--lease-ttl", LEASE, "--nats-retry", "120s"])
            .env("CAIRN_LOG", "info")
            .env("CAIRN_CACHE_DIR", dir.join("cache"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a worker")?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: a signal to our own child.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(&mut self) -> Result<()> {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        if let Some(mut c) = self.child.take() {
            let t = Instant::now();
            loop {
                if let Some(s) = c.try_wait()? {
                    ensure!(s.success(), "worker {} exited with {s}", self.id);
                    return Ok(());
                }
                if t.elapsed() > Duration::from_secs(60) {
                    c.kill()?;
                    bail!("worker {} did not leave within 60 s of SIGTERM", self.id);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.kill();
    }
}

/// Write `lines[..n]` to `file` and ingest it (the input kept open unless `end`).
fn ingest(url: &str, file: &Path, lines: &[&str], n: usize, end: bool) -> Result<()> {
    let mut text = lines[..n].join("\n");
    text.push('\n');
    std::fs::write(file, text)?;
    let f = file.display().to_string();
    let mut args = vec!["ingest", "--coordinator", url, "--name", "chaos", "--input", &f];
    if !end {
        args.push("--keep-open");
    }
    run_ok(&args)?;
    Ok(())
}

/// Every shard's status.
fn status(url: &str, job: &str) -> Result<Vec<serde_json::Value>> {
    let out = run_ok(&["job", "status", "--coordinator", url, "--name", job, "--json"])?;
    Ok(serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)?)
}

fn chaos(events: usize, actions: usize, seed: u64) -> Result<()> {
    eprintln!("chaos: seed {seed} (CAIRN_CHAOS_SEED={seed} repeats it), {events} events, {actions} actions");
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let mut cluster = NatsCluster::start(3)?;
    let url = cluster.url();
    let job = d.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"chaos\"\nshards = {SHARDS}\nkey_groups = {GROUPS}\nbatch_size = {BATCH}\n\
             store = \"file:{}\"\ncheckpoint_every = 2000\nreplicas = 3\n\n{}",
            d.join("store").display(),
            operators()
        ),
    )?;
    // The cluster elects its JetStream leader first.
    let t = Instant::now();
    loop {
        let out = cairn()
            .args(["job", "create", "--coordinator", &url, "--job"])
            .arg(&job)
            .output()?;
        if out.status.success() {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "job create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let input = d.join("events.jsonl");
    cairn_tests::bench::write_input(&input, events, 10_000)?;
    let text = std::fs::read_to_string(&input)?;
    let lines: Vec<&str> = text.lines().collect();
    let feed = d.join("feed.jsonl");
    let mut workers: Vec<Worker> = (1..=3)
        .map(|i| Worker::start(&format!("w{i}"), &url, d))
        .collect::<Result<_>>()?;
    // The schedule: each kind of trouble at least once, then at random.
    let mut rng = Rng(seed | 1);
    let mut kinds: Vec<u64> = vec![0, 1, 2, 3];
    while kinds.len() < actions {
        kinds.push(rng.below(4));
    }
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i as u64 + 1) as usize);
    }
    // Every pause feeds half a step more: the file lasts for every action.
    let step = events / (actions * 3 / 2 + 1);
    let mut fed = 0;
    let mut joined = false;
    for (a, kind) in kinds.iter().enumerate() {
        fed = (fed + step).min(lines.len());
        ingest(&url, &feed, &lines, fed, false)?;
        std::thread::sleep(Duration::from_millis(500 + rng.below(1500)));
        let w = rng.below(workers.len() as u64) as usize;
        match kind {
            0 => {
                eprintln!("action {a}: SIGKILL worker {} and restart it", workers[w].id);
                workers[w].kill()?;
                std::thread::sleep(Duration::from_millis(rng.below(2000)));
                workers[w].spawn(&url, d)?;
            }
            1 => {
                eprintln!(
                    "action {a}: SIGSTOP worker {} past its lease, then SIGCONT",
                    workers[w].id
                );
                workers[w].signal(libc::SIGSTOP);
                // Input for its shards' new owners while it sleeps.
                fed = (fed + step / 2).min(lines.len());
                ingest(&url, &feed, &lines, fed, false)?;
                std::thread::sleep(Duration::from_secs(LEASE_SECS * 3));
                workers[w].signal(libc::SIGCONT);
            }
            2 if !joined => {
                eprintln!("action {a}: a 4th worker joins");
                workers.push(Worker::start("w4", &url, d)?);
                joined = true;
            }
            _ => {
                let leader = cluster.stream_leader("CAIRN_chaos_OUT")?.unwrap_or(0);
                eprintln!(
                    "action {a}: SIGKILL node {} (leads the commit stream) and restart it",
                    cluster.name(leader)
                );
                cluster.kill(leader)?;
                std::thread::sleep(Duration::from_millis(1000 + rng.below(2000)));
                cluster.restart(leader)?;
            }
        }
    }
    ingest(&url, &feed, &lines, lines.len(), true)?;
    let t = Instant::now();
    loop {
        // (The cluster may still be electing leaders after the last restart.)
        let s = status(&url, "chaos").unwrap_or_default();
        if s.len() == SHARDS as usize && s.iter().all(|s| s["done"] == true) {
            break;
        }
        if t.elapsed() > Duration::from_secs(240) {
            for w in &workers {
                let log = std::fs::read_to_string(&w.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "--- {} (last lines)\n{}",
                    w.id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            bail!(
                "not every shard is done after 240 s: {}",
                serde_json::to_string(&s)?
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for w in &mut workers {
        w.stop()?;
    }
    let out = d.join("out.jsonl");
    let o = out.display().to_string();
    run_ok(&[
        "job",
        "export",
        "--coordinator",
        &url,
        "--name",
        "chaos",
        "--output",
        &o,
    ])?;
    compare(d, &lines, &std::fs::read_to_string(&out)?)?;
    let logs: String = workers
        .iter()
        .map(|w| std::fs::read_to_string(&w.log).unwrap_or_default())
        .collect();
    let fenced = logs.lines().filter(|l| l.contains("FENCED")).count();
    eprintln!("chaos: {fenced} FENCED lines in the workers' logs");
    ensure!(
        fenced > 0,
        "no zombie was fenced: the pause did not leave one (seed {seed})"
    );
    Ok(())
}

/// The shard of `key`.
fn shard_of(key: &str) -> u32 {
    cairn_codec::scoped::key_group(key, GROUPS) / (GROUPS / SHARDS)
}

/// The exported output, split by shard, must equal a `cairn run` over each shard's events.
fn compare(d: &Path, lines: &[&str], exported: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Keyed {
        key: String,
    }
    let key = |l: &str| -> Result<String> { Ok(serde_json::from_str::<Keyed>(l)?.key) };
    let mut inputs: BTreeMap<u32, String> = BTreeMap::new();
    for l in lines {
        let s = inputs.entry(shard_of(&key(l)?)).or_default();
        s.push_str(l);
        s.push('\n');
    }
    let mut outputs: BTreeMap<u32, String> = BTreeMap::new();
    for l in exported.lines() {
        let s = outputs.entry(shard_of(&key(l)?)).or_default();
        s.push_str(l);
        s.push('\n');
    }
    let pipeline = d.join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!("batch_size = {BATCH}\nkey_groups = {GROUPS}\n\n{}", operators()),
    )?;
    for (shard, events) in &inputs {
        let input = d.join(format!("shard-{shard}.jsonl"));
        let expected = d.join(format!("expected-{shard}.jsonl"));
        std::fs::write(&input, events)?;
        run_ok(&[
            "run",
            "--pipeline",
            &pipeline.display().to_string(),
            "--input",
            &input.display().to_string(),
            "--output",
            &expected.display().to_string(),
        ])?;
        let want = std::fs::read_to_string(&expected)?;
        let got = outputs.get(shard).map(String::as_str).unwrap_or("");
        ensure!(!want.is_empty(), "shard {shard} emits something");
        if got != want {
            let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            let first = g
                .iter()
                .zip(&w)
                .position(|(a, b)| a != b)
                .unwrap_or(g.len().min(w.len()));
            bail!(
                "shard {shard}: {} lines exported, {} expected; first difference at line {first}: {:?} vs {:?}",
                g.len(),
                w.len(),
                g.get(first),
                w.get(first)
            );
        }
    }
    Ok(())
}

#[test]
fn a_sharded_job_survives_kills_pauses_a_join_and_a_leader_failure() -> Result<()> {
    let seed = std::env::var("CAIRN_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    chaos(
        env_or("CAIRN_CHAOS_EVENTS", 300_000) as usize,
        env_or("CAIRN_CHAOS_ACTIONS", 6) as usize,
        seed,
    )
}

/// Create job `name`: the counter over `shards` shards of `groups` key groups, checkpoints
/// under `d`.
fn counter_job(url: &str, name: &str, shards: u32, groups: u32, d: &Path) -> Result<()> {
    let job = d.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"{name}\"\nshards = {shards}\nkey_groups = {groups}\nstore = \"file:{}\"\n\n\
             [[operators]]\nname = \"counter\"\nplugin = \"{}\"\n",
            d.join("store").display(),
            plugin("counter").display()
        ),
    )?;
    run_ok(&[
        "job",
        "create",
        "--coordinator",
        url,
        "--job",
        &job.display().to_string(),
    ])?;
    Ok(())
}

/// Run one worker of job `name` until every shard is done; it must leave cleanly.
fn worker_to_the_end(url: &str, name: &str, d: &Path) -> Result<()> {
    let w = cairn()
        .args(["worker", "--coordinator", url, "--name", name, "--exit-when-done"])
        .env("CAIRN_CACHE_DIR", d.join("cache"))
        .output()?;
    ensure!(
        w.status.success(),
        "worker: {}",
        String::from_utf8_lossy(&w.stderr)
    );
    Ok(())
}

/// `cairn ingest` SIGKILLed at random moments and run again until it finishes stores every
/// event once: one worker then counts each key's events exactly.
#[test]
fn an_ingest_killed_and_run_again_adds_every_event_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let nats = cairn_tests::nats::NatsServer::start()?;
    let url = nats.coordinator();
    counter_job(&url, "ingested", 4, 64, d)?;
    let input = d.join("events.jsonl");
    cairn_tests::bench::write_input(&input, 200_000, 3_000)?;
    let f = input.display().to_string();
    let args = [
        "ingest",
        "--coordinator",
        &url,
        "--name",
        "ingested",
        "--input",
        &f,
    ];
    let mut rng = Rng(0x5eed);
    for _ in 0..3 {
        let mut child = cairn().args(args).stderr(Stdio::null()).spawn()?;
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        child.kill()?;
        child.wait()?;
    }
    run_ok(&args)?;
    let again = run_ok(&args)?;
    ensure!(
        String::from_utf8_lossy(&again.stderr).contains("ingested 0 events"),
        "a run after the end adds nothing: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    worker_to_the_end(&url, "ingested", d)?;
    let out = d.join("out.jsonl");
    run_ok(&[
        "job",
        "export",
        "--coordinator",
        &url,
        "--name",
        "ingested",
        "--output",
        &out.display().to_string(),
    ])?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for l in std::fs::read_to_string(&input)?.lines() {
        let v: serde_json::Value = serde_json::from_str(l)?;
        *counts
            .entry(v["key"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for l in std::fs::read_to_string(&out)?.lines() {
        let v: serde_json::Value = serde_json::from_str(l)?;
        let key = v["key"].as_str().unwrap_or_default().to_string();
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        ensure!(
            v["value"]["count"] == *n,
            "key {key}: count {} where {n} was due",
            v["value"]["count"]
        );
    }
    ensure!(
        seen == counts,
        "every key counted exactly as often as it was in the file"
    );
    Ok(())
}

/// A job of 16 shards over three events: the shards without any event end too (a record that
/// says they are done), so the worker leaves and the export holds the three outputs.
#[test]
fn shards_without_events_end_too() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let nats = cairn_tests::nats::NatsServer::start()?;
    let url = nats.coordinator();
    counter_job(&url, "sparse", 16, 128, d)?;
    let input = d.join("events.jsonl");
    std::fs::write(
        &input,
        "{\"key\":\"a\",\"ts\":1,\"value\":{}}\n{\"key\":\"b\",\"ts\":2,\"value\":{}}\n{\"key\":\"a\",\"ts\":3,\"value\":{}}\n",
    )?;
    let f = input.display().to_string();
    run_ok(&["ingest", "--coordinator", &url, "--name", "sparse", "--input", &f])?;
    worker_to_the_end(&url, "sparse", d)?;
    let s = status(&url, "sparse")?;
    ensure!(
        s.len() == 16 && s.iter().all(|s| s["done"] == true),
        "every shard done: {s:?}"
    );
    let out = run_ok(&[
        "job",
        "export",
        "--coordinator",
        &url,
        "--name",
        "sparse",
        "--output",
        "-",
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let counts: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| format!("{}={}", v["key"], v["value"]["count"]))
        })
        .collect::<Result<_, _>>()?;
    let mut sorted = counts.clone();
    sorted.sort();
    ensure!(sorted == ["\"a\"=1", "\"a\"=2", "\"b\"=1"], "outputs: {counts:?}");
    Ok(())
}
