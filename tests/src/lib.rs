//! Helpers for Cairn's end-to-end tests: where the built plugins and the `cairn` binary are,
//! running the CLI, writing inputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

pub mod bench;
pub mod guests;
pub mod job;
pub mod native;
pub mod nats;
pub mod proxy;
pub mod redis;
pub mod s3;
pub mod server;

/// The repository root: the parent of the package directory cargo runs the tests in (read at
/// run time, as cargo may reuse a build made in another clone sharing the target directory).
pub fn repo_root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The directory of the fixture and example plugins, built for this test run by this crate's
/// build script (never stale: it re-runs when a plugin, the SDK or the WIT changes).
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CAIRN_PLUGIN_DIR"))
}

/// The built plugin `<name>.wasm` (the crate name under `plugins/`).
pub fn plugin(name: &str) -> PathBuf {
    let p = plugin_dir().join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: is there a crate plugins/{name} or tests/programs/{name}?",
        p.display()
    );
    p
}

/// The `cairn` binary of the same build as this test (target/<profile>/cairn).
pub fn cairn_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = dir.join("cairn");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p cairn` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A `cairn` command with logs limited to warnings.
pub fn cairn() -> Command {
    let mut c = Command::new(cairn_bin());
    c.env("CAIRN_LOG", "warn");
    c
}

/// Run `cairn` with `args`, feeding `stdin`; returns its output (whatever the exit status).
pub fn run_cairn(args: &[&str], stdin: &[u8]) -> Result<Output> {
    let mut child = cairn()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start cairn")?;
    let mut input = child.stdin.take().context("no stdin")?;
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().context("cairn did not finish")?;
    let _ = writer.join();
    Ok(out)
}

/// Run `cairn` with `args` and fail with its stderr unless it succeeds.
pub fn run_ok(args: &[&str]) -> Result<Output> {
    let out = run_cairn(args, b"")?;
    if !out.status.success() {
        bail!(
            "cairn {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// A JSON Lines input of `n` events over `keys` keys, deterministic, with timestamps that
/// go up (with some disorder when `disorder` is non-zero).
pub fn synthetic_input(n: usize, keys: usize, disorder: i64) -> String {
    let mut s = String::with_capacity(n * 60);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = (x % keys as u64) as usize;
        let jitter = if disorder > 0 {
            (x >> 20) as i64 % disorder
        } else {
            0
        };
        let ts = 1_700_000_000_000 + (i as i64) * 10 - jitter;
        s.push_str(&format!(
            "{{\"key\":\"k{key}\",\"ts\":{ts},\"value\":{{\"n\":{i},\"x\":{}}}}}\n",
            (x >> 40) % 1000
        ));
    }
    s
}

/// Events 1..=`n` (key `k<i % 7>`, ts `i`, value `1`) but for the `failing` ones (event number,
/// JSON value); returns the input and the lines of the good events alone.
pub fn input_failing_at(n: usize, failing: &[(usize, &str)]) -> (String, String) {
    let (mut input, mut good) = (String::new(), String::new());
    for i in 1..=n {
        let value = failing.iter().find(|(at, _)| *at == i).map_or("1", |(_, v)| v);
        let line = format!("{{\"key\":\"k{}\",\"ts\":{i},\"value\":{value}}}\n", i % 7);
        if value == "1" {
            good.push_str(&line);
        }
        input.push_str(&line);
    }
    (input, good)
}

/// What the counter plugin must output for `input`, computed independently.
pub fn expected_counts(input: &str) -> Result<String> {
    let mut counts = std::collections::HashMap::<String, u64>::new();
    let mut out = String::new();
    for (i, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let key = v["key"].as_str().context("key")?.to_string();
        let ts = v["ts"].as_i64().unwrap_or(i as i64 + 1);
        let n = counts.entry(key.clone()).or_default();
        *n += 1;
        out.push_str(&format!(
            "{{\"key\":{},\"ts\":{ts},\"value\":{{\"count\":{n}}}}}\n",
            serde_json::to_string(&key)?
        ));
    }
    Ok(out)
}

/// `cairn run --plugin <plugin> --input <input> --output <output> <extra…>` as owned strings.
pub fn run_args(plugin: &Path, input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["run", "--plugin"].iter().map(|s| s.to_string()).collect();
    v.push(plugin.display().to_string());
    v.push("--input".into());
    v.push(input.display().to_string());
    v.push("--output".into());
    v.push(output.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Borrow owned arguments for [`run_cairn`] / [`run_ok`].
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// How many SIGKILLs a kill test makes: `CAIRN_KILLS` (the long form, e.g. 200), else
/// `default` (the short form CI runs).
pub fn kills(default: usize) -> usize {
    std::env::var("CAIRN_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Exactly-once under SIGKILL: runs `cairn run <op_args> --input <input_text> --output …
/// --store file:… <ckpt_args>` once uninterrupted (the reference), then again while killing it
/// with SIGKILL `kills` times at random moments (from start-up to well into processing),
/// restarting it after each kill, and lets the last restart finish. Fails unless the final
/// output is byte-identical to the reference, the kills that waited for progress (all but the
/// quarter that land during start-up; never the first) landed at `min_distinct` or more
/// different output lengths (as many as there were, if fewer) and mid-run, and `checkpoints
/// verify` passes. Returns the reference output.
pub fn sigkill_exactly_once(
    op_args: &[&str],
    input_text: &str,
    ckpt_args: &[&str],
    kills: usize,
    min_distinct: usize,
) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let stores = dir.path().to_path_buf();
    sigkill_exactly_once_on(
        &|name| format!("file:{}", stores.join(name).display()),
        op_args,
        input_text,
        ckpt_args,
        kills,
        min_distinct,
    )
}

/// [`sigkill_exactly_once`] with the stores `store_of(name)` names (a different store per
/// name: the reference run's, start-up probes', the killed runs').
pub fn sigkill_exactly_once_on(
    store_of: &dyn Fn(&str) -> String,
    op_args: &[&str],
    input_text: &str,
    ckpt_args: &[&str],
    kills: usize,
    min_distinct: usize,
) -> Result<String> {
    use std::time::{Duration, Instant, SystemTime};
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, input_text)?;
    let args = |input: &Path, output: &Path, store: &str| -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(op_args.iter().map(|s| s.to_string()));
        for (flag, val) in [
            ("--input", input.display().to_string()),
            ("--output", output.display().to_string()),
        ] {
            v.push(flag.into());
            v.push(val);
        }
        v.push("--store".into());
        v.push(store.into());
        v.extend(ckpt_args.iter().map(|s| s.to_string()));
        v
    };

    let started = Instant::now();
    let out_ref = dir.path().join("ref.jsonl");
    run_ok(&strs(&args(&input, &out_ref, &store_of("ref-store"))))?;
    let full_run = started.elapsed();
    let reference = std::fs::read_to_string(&out_ref)?;

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "")?;
    let mut startup = Duration::ZERO;
    for i in 0..3 {
        let t = Instant::now();
        run_ok(&strs(&args(
            &empty,
            &dir.path().join("empty-out.jsonl"),
            &store_of(&format!("e{i}")),
        )))?;
        startup = startup.max(t.elapsed());
    }

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let mut rng = XorShift(seed);
    // Kill moments are chosen by progress, not by the clock, so that a busy or idle machine
    // makes no difference: a quarter of the kills land during start-up (restore, truncation),
    // the others once the output has grown by a random amount past where it stood, at most
    // about 1/(kills + 5) of the whole output on average.
    let total = reference.len() as u64;
    let chunk = (total / (kills as u64 + 5)).max(1);
    let mut sizes = Vec::new();
    // The output length at each kill that waited for progress (an early kill lands where the
    // incarnation before it stopped, so it says nothing about landing mid-run).
    let mut mid_run = Vec::new();
    // Rounds: a job that finishes before all kills landed (a kill landed late: the watching
    // loop was not scheduled while the output grew fast) is checked, and the next round
    // starts the job over with a new output and store, until the kills have all landed.
    for round in 1..=4 {
        let out = dir.path().join(format!("out-{round}.jsonl"));
        let store = store_of(&format!("store-{round}"));
        let a = args(&input, &out, &store);
        // (On a loaded machine kills that waited for progress can still land after the last
        // output, or where an earlier one did: rounds go on, up to three times the kills, until
        // they landed mid-run at enough distinct places.)
        let landed = |m: &[u64]| mid_run_spread(m, min_distinct, total);
        while (sizes.len() < kills || !landed(&mid_run)) && sizes.len() < kills * 3 {
            let at_spawn = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            let mut child = cairn()
                .args(&a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            // The first kill of a round always waits for progress.
            let early = at_spawn > 0 && rng.below(4) == 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            let target = at_spawn + 1 + rng.below(2 * chunk);
            let wait_startup = Duration::from_micros(rng.below(startup.as_micros() as u64 + 1));
            let spawned = Instant::now();
            let finished = loop {
                if let Some(status) = child.try_wait()? {
                    anyhow::ensure!(
                        status.success(),
                        "an incarnation failed on its own: {status} (seed {seed})"
                    );
                    break true;
                }
                let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
                if (early && spawned.elapsed() >= wait_startup)
                    || (!early && len >= target)
                    || Instant::now() > deadline
                {
                    break false;
                }
                std::thread::sleep(Duration::from_micros(300));
            };
            if finished {
                break;
            }
            child.kill()?;
            child.wait()?;
            let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            sizes.push(len);
            if !early {
                mid_run.push(len);
            }
        }
        run_ok(&strs(&a))?;
        let got = std::fs::read_to_string(&out)?;
        anyhow::ensure!(
            got == reference,
            "output after {} SIGKILLs differs from the uninterrupted run (round {round}, seed {seed})",
            sizes.len()
        );
        run_ok(&["checkpoints", "verify", "--store", &store])?;
        if sizes.len() >= kills && landed(&mid_run) {
            break;
        }
    }
    eprintln!("seed {seed}: run {full_run:?}, start-up {startup:?}; output length at each kill: {sizes:?}");
    anyhow::ensure!(
        sizes.len() >= kills * 2 / 3,
        "only {} kills landed in 4 rounds (seed {seed})",
        sizes.len()
    );
    anyhow::ensure!(
        mid_run_spread(&mid_run, min_distinct, total),
        "kills did not land mid-run: {sizes:?}, of which waited for progress {mid_run:?} (seed {seed})"
    );
    Ok(reference)
}

/// Whether the kills that waited for progress (the output lengths they left, of `total`)
/// landed at `min_distinct` distinct lengths (or as many as there were kills), one of them
/// mid-run.
fn mid_run_spread(mid_run: &[u64], min_distinct: usize, total: u64) -> bool {
    let mut distinct = mid_run.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() >= min_distinct.min(mid_run.len()) && distinct.iter().any(|&l| l > 0 && l < total)
}
