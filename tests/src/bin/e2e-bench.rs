//! The end-to-end bench: a whole `cairn run` of the `counter` operator against the same job
//! as a plain native program (`native-counter`), on the same generated input, in alternating
//! pairs of runs; prints the medians and **Cairn ÷ native** as the median of the pairs' ratios
//! (pairing keeps the ratio meaningful on a machine whose speed drifts). The outputs must be
//! byte-identical.
//!
//! `e2e-bench [--events N] [--runs R]` (defaults: 1,000,000 events over 10,000 keys, 7 pairs).
//! `scripts/bench.sh` runs it after building everything in release.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

fn arg(args: &[String], name: &str, default: usize) -> Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a number"))?
            .parse()
            .with_context(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

/// Deterministic input: `n` events over `keys` keys, ts rising by 1 ms.
fn write_input(path: &Path, n: usize, keys: u64) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(
            w,
            "{{\"key\":\"sensor-{}\",\"ts\":{},\"value\":{{\"temp\":{}.5}}}}",
            x % keys,
            1_700_000_000_000u64 + i as u64,
            x % 100
        )?;
    }
    Ok(())
}

fn time(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let d = t.elapsed();
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(d)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events = arg(&args, "--events", 1_000_000)?;
    let runs = arg(&args, "--runs", 7)?.max(1);
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench's directory")?;
    let cairn = dir.join("cairn");
    let native = dir.join("native-counter");
    let plugin = PathBuf::from(env!("CAIRN_PLUGIN_DIR")).join("counter.wasm");
    for p in [&cairn, &native, &plugin] {
        ensure!(p.exists(), "{} is missing: run scripts/bench.sh", p.display());
    }
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in.jsonl");
    write_input(&input, events, 10_000)?;
    let out_c = tmp.path().join("cairn.jsonl");
    let out_n = tmp.path().join("native.jsonl");
    let variants: [(&str, Vec<String>); 2] = [
        ("no checkpoints", vec![]),
        (
            "file store, checkpoint every 100k events",
            vec![
                "--store".into(),
                "STORE".into(),
                "--checkpoint-every".into(),
                "100000".into(),
            ],
        ),
    ];
    println!("end to end, counter, {events} events over 10,000 keys, batch 1024, {runs} alternating pairs:");
    println!("| variant | Cairn (median) | native (median) | Cairn ÷ native (median of pairs, min–max) |");
    println!("|---|---|---|---|");
    for (name, extra) in variants {
        let (mut tc, mut tn) = (Vec::new(), Vec::new());
        for r in 0..runs {
            let store = format!("file:{}", tmp.path().join(format!("ck-{r}")).display());
            let extra: Vec<String> = extra
                .iter()
                .map(|a| if a == "STORE" { store.clone() } else { a.clone() })
                .collect();
            let _ = std::fs::remove_file(&out_c);
            tc.push(time(
                Command::new(&cairn)
                    .args(["run", "--plugin"])
                    .arg(&plugin)
                    .arg("--input")
                    .arg(&input)
                    .arg("--output")
                    .arg(&out_c)
                    .args(["--batch-size", "1024"])
                    .args(&extra)
                    .env("RUST_LOG", "warn"),
            )?);
            tn.push(time(Command::new(&native).arg(&input).arg(&out_n))?);
        }
        ensure!(
            std::fs::read(&out_c)? == std::fs::read(&out_n)?,
            "Cairn's output differs from the native program's"
        );
        let mut ratios: Vec<f64> = tc
            .iter()
            .zip(&tn)
            .map(|(c, n)| c.as_secs_f64() / n.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let (c, n) = (median(tc), median(tn));
        println!(
            "| {name} | {:.3} s | {:.3} s | **{:.2}** ({:.2}–{:.2}) |",
            c.as_secs_f64(),
            n.as_secs_f64(),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    Ok(())
}
