//! The sharded-job bench, on a real nats-server started here: the counter as a job of 16
//! shards run by 1, 2 and 3 workers (events/s, CPU per event, commit latency), beside `cairn
//! run` NATS → NATS over the same events; and the failover time after a SIGKILL.
//!
//! * **Throughput**: N events ingested first; from starting the workers (`--exit-when-done`)
//!   until the last exits (start-up and restore included). CPU: every worker's user + system.
//! * **Commit latency**: each shard commit's atomic batch, from its first message to the ack
//!   (the workers' debug log), p50 and p99.
//! * **Failover**: two workers, lease 3 s, input ingested in steps while they run; one is
//!   SIGKILLed: the time until every shard it held is re-acquired by the other, and until each
//!   of those has committed again.
//!
//! `cluster-bench [--events N]` (default 1,000,000). `bash scripts/bench.sh cluster` builds
//! everything and runs it.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cairn_tests::bench::{arg, follow, write_input};
use cairn_tests::nats::NatsServer;

fn run(cairn: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(cairn).args(args).output()?;
    ensure!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wait for `child` and read its CPU time (user + system) from the kernel.
fn wait_cpu(child: Child) -> Result<(Duration, bool)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child, not waited for yet.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    ensure!(r == pid, "wait4: {}", std::io::Error::last_os_error());
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((tv(usage.ru_utime) + tv(usage.ru_stime), ok))
}

fn job_file(dir: &Path, name: &str, counter: &Path) -> Result<PathBuf> {
    let f = dir.join(format!("{name}.toml"));
    std::fs::write(
        &f,
        format!(
            "name = \"{name}\"\nshards = 16\nkey_groups = 128\nbatch_size = 1024\nstore = \"file:{}\"\n\
             checkpoint_every = 50000\n\n[[operators]]\nname = \"counter\"\nplugin = \"{}\"\n",
            dir.join(format!("{name}-store")).display(),
            counter.display()
        ),
    )?;
    Ok(f)
}

fn worker(cairn: &Path, url: &str, name: &str, id: &str, dir: &Path, exit: bool) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}-{id}.log")))?;
    let mut c = Command::new(cairn);
    c.args([
        "worker",
        "--coordinator",
        url,
        "--name",
        name,
        "--worker-id",
        id,
        "--lease-ttl",
        "3s",
    ])
    .env("CAIRN_LOG", "info,cairn::runtime::nats::sink=debug")
    .env("CAIRN_CACHE_DIR", dir.join("cache"))
    .stdout(Stdio::null())
    .stderr(log);
    if exit {
        c.arg("--exit-when-done");
    }
    Ok(c.spawn()?)
}

/// Commit latencies (µs) in a worker log.
fn commits(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("commit_us=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect()
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 1_000_000)?;
    let exe = std::env::current_exe()?;
    let cairn = exe.parent().context("the bench's directory")?.join("cairn");
    ensure!(
        cairn.exists(),
        "{} is missing: run scripts/bench.sh cluster",
        cairn.display()
    );
    let counter = PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join("counter.wasm");
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    let nats = NatsServer::start()?;
    let url = nats.coordinator();
    let input = d.join("in.jsonl");
    write_input(&input, events, 10_000)?;
    let inp = input.display().to_string();
    println!(
        "sharded job: the counter, {events} events over 10,000 keys, 16 shards, batch 1024, one nats-server:"
    );
    println!("| run | wall s | events/s | CPU s | CPU µs/event | commits | commit p50 / p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    // `cairn run` NATS -> NATS: the stream read from the start, SIGTERM once every output is there.
    run(
        &cairn,
        &[
            "stream",
            "create",
            &format!("{url}/BASE_IN"),
            "--subjects",
            "base.in",
        ],
    )?;
    run(
        &cairn,
        &[
            "stream",
            "create",
            &format!("{url}/BASE_OUT"),
            "--subjects",
            "base.out,base.out.commit.>",
            "--allow-atomic",
        ],
    )?;
    run(
        &cairn,
        &["cat", "--input", &inp, "--output", &format!("{url}/base.in")],
    )?;
    let t = Instant::now();
    let job = Command::new(&cairn)
        .args([
            "run",
            "--plugin",
            &counter.display().to_string(),
            "--input",
            &format!("{url}/BASE_IN"),
        ])
        .args([
            "--output",
            &format!("{url}/base.out"),
            "--store",
            &format!("file:{}", d.join("base").display()),
        ])
        .args(["--checkpoint-every", "50000", "--batch-size", "1024"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let (mut reader, lines) = follow(&cairn, &format!("{url}/BASE_OUT?subject=base.out"))?;
    let mut seen = 0;
    for line in lines.lines() {
        line?;
        seen += 1;
        if seen == events {
            break;
        }
    }
    let wall = t.elapsed();
    // SAFETY: signals to our own children.
    unsafe {
        libc::kill(job.id() as i32, libc::SIGTERM);
        libc::kill(reader.id() as i32, libc::SIGTERM);
    }
    let (base_cpu, _) = wait_cpu(job)?;
    let _ = reader.wait();
    let base_us = base_cpu.as_secs_f64() * 1e6 / events as f64;
    println!(
        "| `cairn run` NATS → NATS | {:.2} | {:.0} | {:.2} | {base_us:.2} | – | – |",
        wall.as_secs_f64(),
        events as f64 / wall.as_secs_f64(),
        base_cpu.as_secs_f64()
    );
    let mut one_us = 0.0;
    for n in 1..=3 {
        let name = format!("bench{n}");
        run(
            &cairn,
            &[
                "job",
                "create",
                "--coordinator",
                &url,
                "--job",
                &job_file(d, &name, &counter)?.display().to_string(),
            ],
        )?;
        run(
            &cairn,
            &["ingest", "--coordinator", &url, "--name", &name, "--input", &inp],
        )?;
        let t = Instant::now();
        let workers: Vec<Child> = (1..=n)
            .map(|i| worker(&cairn, &url, &name, &format!("w{i}"), d, true))
            .collect::<Result<_>>()?;
        let mut cpu = Duration::ZERO;
        for w in workers {
            let (c, ok) = wait_cpu(w)?;
            ensure!(
                ok,
                "a worker of {name} failed (see {}/{name}-w*.log)",
                d.display()
            );
            cpu += c;
        }
        let wall = t.elapsed();
        let mut lat: Vec<u64> = (1..=n)
            .flat_map(|i| commits(&d.join(format!("{name}-w{i}.log"))))
            .collect();
        let us = cpu.as_secs_f64() * 1e6 / events as f64;
        if n == 1 {
            one_us = us;
        }
        println!(
            "| {n} worker{} | {:.2} | {:.0} | {:.2} | {us:.2} | {} | {:.1} / {:.1} |",
            if n > 1 { "s" } else { "" },
            wall.as_secs_f64(),
            events as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64(),
            lat.len(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
    }
    println!(
        "\nCPU per event, one worker ÷ `cairn run` NATS → NATS: {:.2}× (goal ≤ 1.5×)",
        one_us / base_us
    );
    failover(&cairn, &url, d, &counter, &input)
}

/// Two workers; one SIGKILLed while input flows: how long until its shards are re-acquired,
/// and committed again, by the other.
fn failover(cairn: &Path, url: &str, d: &Path, counter: &Path, input: &Path) -> Result<()> {
    let name = "failover";
    run(
        cairn,
        &[
            "job",
            "create",
            "--coordinator",
            url,
            "--job",
            &job_file(d, name, counter)?.display().to_string(),
        ],
    )?;
    let text = std::fs::read_to_string(input)?;
    let lines: Vec<&str> = text.lines().take(400_000).collect();
    let feed = d.join("feed.jsonl");
    let fed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (c2, u2, f2, flag) = (cairn.to_path_buf(), url.to_string(), feed.clone(), fed.clone());
    let owned: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let feeder = std::thread::spawn(move || -> Result<()> {
        for step in 1..=40 {
            std::fs::write(&f2, owned[..owned.len() * step / 40].join("\n") + "\n")?;
            let f = f2.display().to_string();
            let mut a = vec!["ingest", "--coordinator", &u2, "--name", name, "--input", &f];
            if step < 40 {
                a.push("--keep-open");
            }
            run(&c2, &a)?;
            std::thread::sleep(Duration::from_millis(500));
        }
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    let mut a = worker(cairn, url, name, "a", d, true)?;
    let b = worker(cairn, url, name, "b", d, true)?;
    std::thread::sleep(Duration::from_secs(6));
    let status = || -> Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(&run(
            cairn,
            &["job", "status", "--coordinator", url, "--name", name, "--json"],
        )?)?)
    };
    let before = status()?;
    let held: BTreeMap<u64, u64> = before
        .iter()
        .filter(|s| s["owner"] == "a")
        .map(|s| (s["shard"].as_u64().unwrap_or(0), s["epoch"].as_u64().unwrap_or(0)))
        .collect();
    ensure!(!held.is_empty(), "worker a holds no shard after 6 s: {before:?}");
    a.kill()?;
    let killed = Instant::now();
    let (mut acquired, mut committed) = (None, None);
    while committed.is_none() && killed.elapsed() < Duration::from_secs(60) {
        let now = status().unwrap_or_default();
        let moved = |s: &&serde_json::Value| held.contains_key(&s["shard"].as_u64().unwrap_or(u64::MAX));
        if acquired.is_none() && now.iter().filter(moved).all(|s| s["owner"] == "b") {
            acquired = Some(killed.elapsed());
        }
        if now.iter().filter(moved).all(|s| {
            s["epoch"].as_u64() != held.get(&s["shard"].as_u64().unwrap_or(0)).copied() || s["done"] == true
        }) {
            committed = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = a.wait();
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the feeder panicked"))??;
    let (_, ok) = wait_cpu(b)?;
    ensure!(ok, "worker b failed");
    match (acquired, committed) {
        (Some(a), Some(c)) => println!(
            "\nfailover (lease 3 s, {} shards of the killed worker): re-acquired after {:.1} s, committed again after {:.1} s",
            held.len(),
            a.as_secs_f64(),
            c.as_secs_f64()
        ),
        _ => bail!("the killed worker's shards were not taken over within 60 s"),
    }
    Ok(())
}
