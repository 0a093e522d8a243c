//! The end-to-end bench: a whole `cairn run` of the `counter`, `window` and `dedup` operators
//! against the same jobs as plain native programs (`native-counter`, `native-window`,
//! `native-dedup`), on the same generated input, in alternating
//! pairs of runs; prints the medians (CPU-seconds, wall time, peak memory) and **Cairn ÷
//! native** in CPU and in wall time, each the median of the pairs' ratios (pairing keeps the
//! ratio meaningful on a machine whose speed drifts), against the goals of each operator;
//! a file store's cost (Cairn with the store ÷ without, the two runs of each round side by
//! side); then the counter with and without `--admin` (the metrics' cost). The outputs must be
//! byte-identical.
//!
//! Then the same three jobs (no checkpoints) at parallelism 1, 2 and 4 (`--parallelism`), in
//! rounds that run all three side by side: events/s, N ÷ 1 (median of the rounds' ratios), and
//! the CPU time of each of the job's threads (from the run's JSON summary). Their outputs must
//! hold the same lines as parallelism 1's (order aside).
//!
//! `e2e-bench [--events N] [--runs R] [--only parallel]` (defaults: 1,000,000 events over
//! 10,000 keys, 15 pairs). `scripts/bench.sh` runs it after building everything in release;
//! `scripts/bench.sh parallel` the parallel table alone.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cairn_tests::bench::{Measured, arg, measure, median, same_file, time, write_input};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 1_000_000)?;
    let runs = arg(&args, "--runs", 15)?.max(1);
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench's directory")?;
    let cairn = dir.join("cairn");
    ensure!(
        cairn.exists(),
        "{} is missing: run scripts/bench.sh",
        cairn.display()
    );
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in.jsonl");
    write_input(&input, events, 10_000)?;
    let out_c = tmp.path().join("cairn.jsonl");
    let out_n = tmp.path().join("native.jsonl");
    if args.iter().any(|a| a == "parallel") {
        return parallel(&cairn, &input, events, runs, tmp.path());
    }
    let variants: [(&str, bool); 2] = [
        ("no checkpoints", false),
        ("file store, checkpoint every 100k events", true),
    ];
    println!("end to end, {events} events over 10,000 keys, batch 1024, {runs} alternating pairs:");
    println!(
        "| operator | variant | CPU s, Cairn / native | Cairn ÷ native, CPU (median of pairs, min–max) | wall s, Cairn / native | Cairn ÷ native, wall | goal (CPU, wall) | peak RSS, Cairn / native |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // Per operator: a file store's cost, Cairn with it ÷ without, per run (the two runs of a
    // round are next to each other).
    let mut store_costs = Vec::new();
    for (op, config, native_args, goal) in OPERATORS {
        let plugin = PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join(format!("{op}.wasm"));
        let native = dir.join(format!("native-{op}"));
        for p in [&native, &plugin] {
            ensure!(p.exists(), "{} is missing: run scripts/bench.sh", p.display());
        }
        // Per variant: Cairn's and the native program's runs.
        let mut by: Vec<[Vec<Measured>; 2]> = variants.iter().map(|_| Default::default()).collect();
        for r in 0..runs {
            // Each round runs every variant, Cairn then native.
            for (v, (_, store)) in variants.iter().enumerate() {
                let _ = std::fs::remove_file(&out_c);
                let mut c = Command::new(&cairn);
                c.args(["run", "--plugin"])
                    .arg(&plugin)
                    .args(["--config", config, "--batch-size", "1024"])
                    .arg("--input")
                    .arg(&input)
                    .arg("--output")
                    .arg(&out_c)
                    .env("RUST_LOG", "warn");
                if *store {
                    let dir = tmp.path().join(format!("ck-{op}-{r}"));
                    c.arg("--store").arg(format!("file:{}", dir.display()));
                    c.args(["--checkpoint-every", "100000"]);
                }
                by[v][0].push(measure(&mut c)?);
                let mut n = Command::new(&native);
                n.arg(&input).arg(&out_n);
                if native_args {
                    n.args(["1024", config]);
                }
                by[v][1].push(measure(&mut n)?);
                ensure!(
                    same_file(&out_c, &out_n)?,
                    "{op}: Cairn's output differs from the native program's"
                );
            }
        }
        for ((name, store), [c, n]) in variants.iter().zip(&by) {
            let cpu = sorted_ratios(c, n, |m| m.cpu);
            let wall = sorted_ratios(c, n, |m| m.wall);
            let secs = |v: &[Measured], f: fn(&Measured) -> Duration| {
                median(v.iter().map(f).collect()).as_secs_f64()
            };
            let mib = |v: &[Measured]| {
                let mut m: Vec<u64> = v.iter().map(|x| x.rss).collect();
                m.sort_unstable();
                m[m.len() / 2] as f64 / (1 << 20) as f64
            };
            // The goals are for the jobs without a store.
            let verdict = match store {
                false => {
                    let (gc, gw) = goal;
                    let met = cpu[cpu.len() / 2] <= gc && wall[wall.len() / 2] <= gw;
                    format!("≤ {gc}×, ≤ {gw}×: {}", if met { "met" } else { "missed" })
                }
                true => String::new(),
            };
            println!(
                "| {op} | {name} | {:.3} / {:.3} | **{:.2}** ({:.2}–{:.2}) | {:.3} / {:.3} | **{:.2}** ({:.2}–{:.2}) | {verdict} | {:.1} / {:.1} MiB |",
                secs(c, |m| m.cpu),
                secs(n, |m| m.cpu),
                cpu[cpu.len() / 2],
                cpu[0],
                cpu[cpu.len() - 1],
                secs(c, |m| m.wall),
                secs(n, |m| m.wall),
                wall[wall.len() / 2],
                wall[0],
                wall[wall.len() - 1],
                mib(c),
                mib(n)
            );
        }
        // (`variants`: without the store first, then with it.)
        let [none, with_store] = [0, 1].map(|v| &by[v][0]);
        store_costs.push((op, sorted_ratios(with_store, none, |m| m.wall)));
    }
    println!();
    println!(
        "a file store's cost in wall time, Cairn with it ÷ without (median of the {runs} rounds' ratios, min–max):"
    );
    for (op, r) in store_costs {
        println!(
            "  {op}: **{:.3}** ({:.3}–{:.3})",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
    // The metrics' cost: the counter with the admin server (Prometheus recorder installed) and
    // without, alternating.
    let plugin = PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join("counter.wasm");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(10) {
        for admin in [true, false] {
            let mut c = Command::new(&cairn);
            c.args(["run", "-q", "--plugin"])
                .arg(&plugin)
                .args(["--batch-size", "1024", "--output", "/dev/null", "--input"])
                .arg(&input);
            if admin {
                c.args(["--admin", "127.0.0.1:0"]);
                with.push(time(&mut c)?);
            } else {
                without.push(time(&mut c)?);
            }
        }
    }
    let pairs = with.len();
    let (w, wo) = (median(with), median(without));
    println!();
    println!(
        "counter with --admin vs without ({pairs} alternating pairs): medians {:.3} s vs {:.3} s, ratio **{:.3}**",
        w.as_secs_f64(),
        wo.as_secs_f64(),
        w.as_secs_f64() / wo.as_secs_f64()
    );
    println!();
    parallel(&cairn, &input, events, runs, tmp.path())
}

/// The operators the bench runs, with their configurations, whether their native program
/// takes the batch size and configuration, and their goals (Cairn ÷ native in CPU and in wall
/// time, without a store; docs/performance.md).
const OPERATORS: [(&str, &str, bool, (f64, f64)); 3] = [
    ("counter", "{}", false, (2.0, 1.5)),
    ("window", r#"{"field":"temp","size_ms":10000}"#, true, (2.5, 2.0)),
    (
        "dedup",
        r#"{"id_field":"temp","within_ms":5000}"#,
        true,
        (2.5, 2.0),
    ),
];

/// One run at a parallelism: wall time (from start to exit), the summary's CPU per thread.
struct ParallelRun {
    wall: f64,
    cpu: Vec<(String, f64)>,
}

/// The parallel table: each operator at parallelism 1, 2 and 4, `runs` rounds.
fn parallel(
    cairn: &std::path::Path,
    input: &std::path::Path,
    events: usize,
    runs: usize,
    tmp: &std::path::Path,
) -> Result<()> {
    const LEVELS: [u32; 3] = [1, 2, 4];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "parallel instances, {events} events over 10,000 keys, batch 1024, no checkpoints, {cores} cores, {runs} rounds of N = 1, 2, 4:"
    );
    println!(
        "| operator | N | events/s (median) | N ÷ 1 (median of rounds, min–max) | CPU s per thread (median) |"
    );
    println!("|---|---|---|---|---|");
    for (op, config, _, _) in OPERATORS {
        let plugin = PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join(format!("{op}.wasm"));
        let mut by: Vec<Vec<ParallelRun>> = LEVELS.iter().map(|_| Vec::new()).collect();
        let mut reference = None;
        for _ in 0..runs {
            for (l, n) in LEVELS.iter().enumerate() {
                let out = tmp.join(format!("par-{op}-{n}.jsonl"));
                let mut c = Command::new(cairn);
                c.args(["--log-format", "json", "run", "--plugin"])
                    .arg(&plugin)
                    .args([
                        "--config",
                        config,
                        "--batch-size",
                        "1024",
                        "--parallelism",
                        &n.to_string(),
                    ])
                    .arg("--input")
                    .arg(input)
                    .arg("--output")
                    .arg(&out)
                    .env("RUST_LOG", "warn");
                let t = std::time::Instant::now();
                let o = c.output().with_context(|| format!("running {c:?}"))?;
                let wall = t.elapsed().as_secs_f64();
                ensure!(
                    o.status.success(),
                    "{c:?} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                let summary = String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|v| v.get("summary").is_some())
                    .context("the run's JSON summary")?;
                let cpu = summary["summary"]["thread_cpu_s"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                            .collect()
                    })
                    .unwrap_or_default();
                let digest = lines_digest(&out)?;
                match reference {
                    None => reference = Some(digest),
                    Some(r) => ensure!(r == digest, "{op} at parallelism {n}: other lines than at 1"),
                }
                by[l].push(ParallelRun { wall, cpu });
            }
        }
        for (l, n) in LEVELS.iter().enumerate() {
            let mut walls: Vec<f64> = by[l].iter().map(|r| r.wall).collect();
            walls.sort_by(f64::total_cmp);
            let mut ratios: Vec<f64> = by[0]
                .iter()
                .zip(&by[l])
                .map(|(one, r)| one.wall / r.wall)
                .collect();
            ratios.sort_by(f64::total_cmp);
            // Median CPU per thread name, in the order the first run lists them.
            let names: Vec<String> = by[l][0].cpu.iter().map(|(k, _)| k.clone()).collect();
            let cpu: Vec<String> = names
                .iter()
                .map(|name| {
                    let mut v: Vec<f64> = by[l]
                        .iter()
                        .filter_map(|r| r.cpu.iter().find(|(k, _)| k == name).map(|(_, c)| *c))
                        .collect();
                    v.sort_by(f64::total_cmp);
                    format!("{name} {:.2}", v[v.len() / 2])
                })
                .collect();
            println!(
                "| {op} | {n} | {:.0} | **{:.2}** ({:.2}–{:.2}) | {} |",
                events as f64 / walls[walls.len() / 2],
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1],
                cpu.join(", ")
            );
        }
    }
    Ok(())
}

/// The lines of a file as a multiset: their count and the sum of their hashes.
fn lines_digest(path: &std::path::Path) -> Result<(u64, u64)> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    use std::io::BufRead;
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let (mut n, mut sum) = (0u64, 0u64);
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        n += 1;
        sum = sum.wrapping_add(hasher.hash_one(line?));
    }
    Ok((n, sum))
}

/// `f(a[i]) ÷ f(b[i])` for every run, sorted.
fn sorted_ratios(a: &[Measured], b: &[Measured], f: fn(&Measured) -> Duration) -> Vec<f64> {
    let mut r: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| f(x).as_secs_f64() / f(y).as_secs_f64())
        .collect();
    r.sort_by(f64::total_cmp);
    r
}
