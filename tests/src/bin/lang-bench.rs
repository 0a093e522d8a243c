//! The languages bench: the counter operator written in Rust, Python, JavaScript and C (built
//! from `plugins/<lang>/counter` with `cairn build`), and the native counter program, over the
//! same generated input: events/s per language and the ratio to Rust, cold start (a first run
//! with an empty component cache: compile included) and warm start (a run over one event with
//! the cache filled: read the cached artifact, instantiate, `init`, process, exit). Outputs must
//! be byte-identical to Rust's.
//!
//! `lang-bench [--events N] [--runs R]` (defaults: 100,000 events over 10,000 keys, 3 runs).
//! `scripts/bench.sh langs` runs it after building everything in release and installing the
//! toolchains (scripts/toolchains.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use cairn_tests::bench::{arg, median, time, write_input};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 100_000)?;
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
    write_input(&input, events, 10_000)?;
    let one = tmp.path().join("one.jsonl");
    write_input(&one, 1, 1)?;
    let cache = tmp.path().join("cache");

    let mut plugins = vec![(
        "Rust",
        PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join("counter.wasm"),
    )];
    for (name, lang) in [("Python", "python"), ("JavaScript", "js"), ("C", "c")] {
        let out = tmp.path().join(format!("counter-{lang}.wasm"));
        let o = Command::new(&cairn)
            .arg("build")
            .arg(root.join("plugins").join(lang).join("counter"))
            .arg("--out")
            .arg(&out)
            .output()?;
        ensure!(
            o.status.success(),
            "cairn build plugins/{lang}/counter failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        plugins.push((name, out));
    }

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
        "the counter in each language, {events} events over 10,000 keys, batch 1024, median of {runs} runs:"
    );
    println!(
        "| language | wall | events/s (wall − warm start) | ÷ Rust | cold start (compile) | warm start (cached) | size |"
    );
    println!("|---|---|---|---|---|---|---|");
    let reference = tmp.path().join("rust.jsonl");
    let mut rust_rate = 0.0;
    for (name, plugin) in &plugins {
        let fresh = tmp.path().join(format!("cold-{name}"));
        let cold = time(&mut run(plugin, &one, &tmp.path().join("o1"), &fresh))?;
        let mut warm = Vec::new();
        let mut wall = Vec::new();
        let output = tmp.path().join(format!("{name}.jsonl"));
        for _ in 0..runs {
            warm.push(time(&mut run(plugin, &one, &tmp.path().join("o1"), &cache))?);
            wall.push(time(&mut run(plugin, &input, &output, &cache))?);
        }
        if *name == "Rust" {
            std::fs::copy(&output, &reference)?;
        } else {
            ensure!(
                std::fs::read(&output)? == std::fs::read(&reference)?,
                "the {name} counter's output differs from the Rust counter's"
            );
        }
        let (warm, wall) = (median(warm), median(wall));
        let rate = events as f64 / (wall.saturating_sub(warm)).as_secs_f64().max(1e-9);
        if *name == "Rust" {
            rust_rate = rate;
        }
        println!(
            "| {name} | {:.2} s | {:.0} | **{:.3}×** | {:.0} ms | {:.0} ms | {:.1} MB |",
            wall.as_secs_f64(),
            rate,
            rate / rust_rate,
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            std::fs::metadata(plugin)?.len() as f64 / 1e6
        );
    }
    let mut wall = Vec::new();
    let out_n = tmp.path().join("native.jsonl");
    for _ in 0..runs {
        wall.push(time(Command::new(&native).arg(&input).arg(&out_n))?);
    }
    ensure!(
        std::fs::read(&out_n)? == std::fs::read(&reference)?,
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
    Ok(())
}
