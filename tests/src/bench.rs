//! What the bench binaries (`e2e-bench`, `lang-bench`) share: their flags, the generated input,
//! timing a command, medians.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

/// The number after flag `name`, or `default`.
pub fn arg(args: &[String], name: &str, default: usize) -> Result<usize> {
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
pub fn write_input(path: &Path, n: usize, keys: u64) -> Result<()> {
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

/// Run `cmd` to success; how long it took.
pub fn time(cmd: &mut Command) -> Result<Duration> {
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

/// The median.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
