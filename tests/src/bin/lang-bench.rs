//! The languages bench: the counter operator written in Rust, Python, JavaScript and C (built
//! from `plugins/<lang>/counter` with `cairn build`), and the native counter program, over the
//! same generated input: events/s per language and the ratio to Rust, cold start (a first run
//! with an empty component cache: compile included) and warm start (a run over one event with
//! the cache filled: read the cached artifact, instantiate, `init`, process, exit). Outputs must
//! be byte-identical to Rust's. Each round runs every language once, Rust first, so each ratio
//! to Rust is the median of the rounds' ratios (alternating pairs). Then the Python operator as a
//! newcomer writes it (`plugins/python/window`: state read and written by name, a timer per
//! window, no prefetch): its events/s, against the goal of 100,000.
//!
//! `lang-bench [--events N] [--keys K] [--runs R]` (defaults: 200,000 events over 5,000 keys, 3
//! rounds).
//! `scripts/bench.sh langs` runs it after building everything in release and installing the
//! toolchains (scripts/toolchains.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cairn_tests::bench::{arg, median, same_file, time, write_input};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 200_000)?;
    let keys = arg(&args, "--keys", 5_000)?.max(1);
    let runs = arg(&args, "--runs", 3)?.max(1);
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench's directory")?;
    let cairn = dir.join("cairn");
    let native = dir.join("native-counter");
    for p in [&cairn, &native] {
        ensure!(
            p.exists(),
            "{} is missing: run scripts/bench.sh langs",
            p.display()
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in.jsonl");
    write_input(&input, events, keys as u64)?;
    let one = tmp.path().join("one.jsonl");
    write_input(&one, 1, 1)?;
    let cache = tmp.path().join("cache");

    let mut plugins = vec![(
        "Rust",
        PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join("counter.wasm"),
    )];
    for (name, lang) in [("Python", "python"), ("JavaScript", "js"), ("C", "c")] {
        let out = tmp.path().join(format!("counter-{lang}.wasm"));
        build(&cairn, &root.join("plugins").join(lang).join("counter"), &out)?;
        plugins.push((name, out));
    }

    let window = tmp.path().join("window-python.wasm");
    build(&cairn, &root.join("plugins/python/window"), &window)?;

    let run = |plugin: &Path, input: &Path, output: &Path, cache: &Path| {
        let mut c = Command::new(&cairn);
        c.args(["run", "-q", "--batch-size", "1024", "--plugin"])
            .arg(plugin)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output)
            .env("CAIRN_CACHE_DIR", cache);
        c
    };

    println!(
        "the counter in each language, {events} events over {keys} keys, batch 1024, {runs} rounds (medians):"
    );
    println!(
        "| language | wall | events/s (wall − warm start) | ÷ Rust (median of rounds, min–max) | cold start (compile) | warm start (cached) | size |"
    );
    println!("|---|---|---|---|---|---|---|");
    let reference = tmp.path().join("rust.jsonl");
    // Per language: cold start, then per round warm start, wall and events/s.
    let mut cold = Vec::new();
    for (name, plugin) in &plugins {
        let fresh = tmp.path().join(format!("cold-{name}"));
        cold.push(time(&mut run(plugin, &one, &tmp.path().join("o1"), &fresh))?);
        // Fill the shared cache, so that every round's start is warm.
        time(&mut run(plugin, &one, &tmp.path().join("o1"), &cache))?;
    }
    let config = r#"{"field":"temp","size_ms":10000}"#;
    time(run(&window, &one, &tmp.path().join("o1"), &cache).args(["--config", config]))?;
    let mut rounds: Vec<Vec<(Duration, Duration, f64)>> = plugins.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (i, (name, plugin)) in plugins.iter().enumerate() {
            let output = tmp.path().join(format!("{name}.jsonl"));
            let warm = time(&mut run(plugin, &one, &tmp.path().join("o1"), &cache))?;
            let wall = time(&mut run(plugin, &input, &output, &cache))?;
            if *name == "Rust" {
                std::fs::copy(&output, &reference)?;
            } else {
                ensure!(
                    same_file(&output, &reference)?,
                    "the {name} counter's output differs from the Rust counter's"
                );
            }
            let rate = events as f64 / (wall.saturating_sub(warm)).as_secs_f64().max(1e-9);
            rounds[i].push((warm, wall, rate));
        }
    }
    for (i, (name, plugin)) in plugins.iter().enumerate() {
        let mut ratios: Vec<f64> = rounds[i].iter().zip(&rounds[0]).map(|(l, r)| l.2 / r.2).collect();
        ratios.sort_by(f64::total_cmp);
        let warm = median(rounds[i].iter().map(|r| r.0).collect());
        let wall = median(rounds[i].iter().map(|r| r.1).collect());
        let mut rates: Vec<f64> = rounds[i].iter().map(|r| r.2).collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.2} s | {:.0} | **{:.3}×** ({:.3}–{:.3}) | {:.0} ms | {:.0} ms | {:.1} MB |",
            wall.as_secs_f64(),
            rates[rates.len() / 2],
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            cold[i].as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            std::fs::metadata(plugin)?.len() as f64 / 1e6
        );
    }
    let rust_rate = {
        let mut r: Vec<f64> = rounds[0].iter().map(|r| r.2).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let mut wall = Vec::new();
    let out_n = tmp.path().join("native.jsonl");
    for _ in 0..runs {
        wall.push(time(Command::new(&native).arg(&input).arg(&out_n))?);
    }
    ensure!(
        same_file(&out_n, &reference)?,
        "the native counter's output differs"
    );
    let wall = median(wall);
    let rate = events as f64 / wall.as_secs_f64();
    println!(
        "| native Rust program | {:.2} s | {:.0} | {:.3}× | – | – | – |",
        wall.as_secs_f64(),
        rate,
        rate / rust_rate
    );

    // The newcomer's Python operator, warm.
    let mut rates = Vec::new();
    for _ in 0..runs {
        let out = tmp.path().join("window.jsonl");
        let warm = time(run(&window, &one, &tmp.path().join("o1"), &cache).args(["--config", config]))?;
        let wall = time(run(&window, &input, &out, &cache).args(["--config", config]))?;
        rates.push(events as f64 / (wall.saturating_sub(warm)).as_secs_f64().max(1e-9));
    }
    rates.sort_by(f64::total_cmp);
    println!();
    println!(
        "the Python window as a newcomer writes it (plugins/python/window, {config}), same input: **{:.0}** events/s (median of {runs}; goal 100,000)",
        rates[rates.len() / 2]
    );
    Ok(())
}

/// `cairn build <project> --out <out>`.
fn build(cairn: &Path, project: &Path, out: &Path) -> Result<()> {
    let o = Command::new(cairn)
        .arg("build")
        .arg(project)
        .arg("--out")
        .arg(out)
        .output()?;
    ensure!(
        o.status.success(),
        "cairn build {} failed: {}",
        project.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}
