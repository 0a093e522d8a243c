//! The admin server during a real run: /metrics scraped with HTTP while a 1M-event job runs,
//! /healthz and /readyz, and the final values equal to the summary line and the output.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_tests::{cairn, plugin, run_args, strs, synthetic_input};

/// `GET path` over HTTP/1.1: (status, body).
fn get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The unlabelled samples of a Prometheus text exposition.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `cairn run` of the counter from `input` to `output` with `extra` flags (which include
/// `--admin`), its log lines, and the admin address the log names.
fn with_admin(
    input: &std::path::Path,
    output: &std::path::Path,
    extra: &[&str],
) -> Result<(std::process::Child, Lines, String)> {
    let mut child = cairn()
        .env("CAIRN_LOG", "info")
        .args(strs(&run_args(&plugin("counter"), input, output, extra)))
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(at) = line.find("listening on http://") {
            let addr = line[at + "listening on http://".len()..].trim().to_string();
            return Ok((child, lines, addr));
        }
    }
    bail!("cairn ended without naming its admin address")
}

/// Read the log up to the summary line a run ends with (printed before the admin server's
/// linger), and return it.
fn summary_line(lines: &mut Lines) -> Result<String> {
    for line in lines {
        let line = line?;
        if line.contains("events in,") {
            return Ok(line);
        }
    }
    bail!("no summary line")
}

/// The log lines of a running `cairn`.
type Lines = std::io::Lines<BufReader<std::process::ChildStderr>>;

#[test]
fn metrics_grow_during_a_run_and_end_equal_to_the_summary() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, synthetic_input(1_000_000, 10_000, 0))?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let extra = [
        "--admin",
        "127.0.0.1:0",
        "--admin-linger",
        "30s",
        "--store",
        store.as_str(),
        "--checkpoint-every",
        "100000",
        "--batch-size",
        "256",
    ];
    let (mut child, mut lines, addr) = with_admin(&input, &output, &extra)?;
    assert_eq!(
        get(&addr, "/healthz")?,
        (200, r#"{"status":"alive"}"#.to_string())
    );
    assert_eq!(get(&addr, "/nope")?.0, 404);
    // Scrape while the job runs: events_in only grows.
    let mut seen = Vec::new();
    let mut ready_seen = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (status, body) = get(&addr, "/metrics")?;
        assert_eq!(status, 200);
        let m = samples(&body);
        let n = m.get("cairn_events_in_total").copied().unwrap_or(0.0);
        ready_seen |= get(&addr, "/readyz")?.0 == 200;
        if seen.last().is_none_or(|&l| n != l) {
            seen.push(n);
        }
        if n >= 1_000_000.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(ready_seen, "/readyz answers 200 while the job processes");
    assert!(
        seen.iter().filter(|&&n| n > 0.0 && n < 1_000_000.0).count() >= 2,
        "the counters should be seen growing mid-run: {seen:?}"
    );
    // The summary line comes before the linger; then the final values are read.
    let summary = summary_line(&mut lines)?;
    let (_, body) = get(&addr, "/metrics")?;
    let m = samples(&body);
    let out_lines = std::fs::read_to_string(&output)?.lines().count();
    assert_eq!(m["cairn_events_in_total"], 1_000_000.0);
    assert_eq!(m["cairn_events_out_total"], out_lines as f64);
    assert!(
        summary.contains(&format!("1000000 events in, {out_lines} out")),
        "{summary}"
    );
    assert_eq!(
        m["cairn_state_keys{operator=\"counter\",instance=\"0\"}"],
        10_000.0
    );
    assert!(summary.contains("state 10000 keys"), "{summary}");
    let ckpts = m["cairn_checkpoints_total{kind=\"full\"}"]
        + m.get("cairn_checkpoints_total{kind=\"delta\"}")
            .copied()
            .unwrap_or(0.0);
    assert!(
        summary.contains(&format!("checkpoints 1 full, {} delta", ckpts as u64 - 1)),
        "{summary} / {ckpts}"
    );
    assert!(m["cairn_batch_duration_seconds_count"] >= (1_000_000 / 256) as f64);
    assert!(m["cairn_input_bytes_read_total"] == m["cairn_input_bytes_total"]);
    assert_eq!(get(&addr, "/readyz")?, (503, r#"{"ready":false}"#.to_string()));
    assert!(
        !body.contains("cairn_fuel_consumed_total{"),
        "no fuel metric without --fuel"
    );
    child.kill()?;
    child.wait()?;
    Ok(())
}

#[test]
fn fuel_is_counted_when_metered() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, synthetic_input(20_000, 100, 0))?;
    let extra = [
        "--admin",
        "127.0.0.1:0",
        "--admin-linger",
        "30s",
        "--fuel",
        "100000000",
    ];
    let (mut child, mut lines, addr) = with_admin(&input, &output, &extra)?;
    summary_line(&mut lines)?;
    let m = samples(&get(&addr, "/metrics")?.1);
    let fuel = m["cairn_fuel_consumed_total{operator=\"counter\",instance=\"0\"}"];
    // A counter event costs a few hundred units at least.
    assert!(fuel > 20_000.0 * 100.0, "{fuel}");
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// Debian's `chromium`, headless (`scripts/test.sh` installs it).
fn chromium() -> Result<std::path::PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin"])
    {
        let p = std::path::Path::new(dir).join("chromium");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("chromium is not installed: `bash scripts/test.sh` installs it (apt-get install chromium)")
}

/// The page at `url` as a real browser renders it after `ms` of its own (virtual) time: its
/// scripts have run and fetched, and their timers fired.
fn rendered(url: &str, ms: u32) -> Result<String> {
    let profile = tempfile::tempdir()?;
    let out = std::process::Command::new(chromium()?)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={ms}"))
        .args(["--dump-dom", url])
        .stderr(Stdio::null())
        .output()?;
    anyhow::ensure!(out.status.success(), "chromium failed on {url}");
    Ok(String::from_utf8(out.stdout)?)
}

/// The number shown in the element with `id`.
fn shown(dom: &str, id: &str) -> Result<f64> {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .with_context(|| format!("no #{id} in the page"))?;
    let text = &dom[at..];
    let text = &text[text.find('>').context("tag")? + 1..];
    let text = &text[..text.find('<').context("text")?];
    text.replace(',', "")
        .trim()
        .parse()
        .with_context(|| format!("#{id} shows {text:?}"))
}

#[test]
fn the_status_page_shows_the_job_live_in_a_real_browser() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, synthetic_input(1_500_000, 5_000, 0))?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let extra = [
        "--admin",
        "127.0.0.1:0",
        "--admin-linger",
        "60s",
        "--store",
        store.as_str(),
        "--checkpoint-every",
        "100000",
        "--batch-size",
        "8",
        "--parallelism",
        "2",
    ];
    let (mut child, mut lines, addr) = with_admin(&input, &output, &extra)?;
    let url = format!("http://{addr}/");
    // During the run: the page's figures are live, and no ahead of /metrics read after it.
    let dom = rendered(&url, 2500)?;
    let page_in = shown(&dom, "events-in")?;
    let metrics_in = samples(&get(&addr, "/metrics")?.1)["cairn_events_in_total"];
    assert!(
        page_in > 0.0 && page_in <= metrics_in,
        "page {page_in}, metrics {metrics_in}"
    );
    assert!(dom.contains("id=\"op-counter\""), "the operator's row");
    // After the job (the admin server lingers): the page shows exactly the final values.
    summary_line(&mut lines)?;
    let m = samples(&get(&addr, "/metrics")?.1);
    let dom = rendered(&url, 2500)?;
    assert_eq!(shown(&dom, "events-in")?, m["cairn_events_in_total"]);
    assert_eq!(shown(&dom, "events-out")?, m["cairn_events_out_total"]);
    assert_eq!(m["cairn_events_in_total"], 1_500_000.0);
    let keys = dom.split("id=\"op-counter\"").nth(1).context("row")?;
    assert!(
        keys.contains("<td>counter</td><td>2</td><td>5,000</td>"),
        "two instances, state keys of the counter: {keys:.200}"
    );
    let last_id = m["cairn_checkpoint_last_id"];
    assert!(
        dom.contains(&format!("<tr><td>{last_id}</td>")),
        "the last checkpoint ({last_id}) is listed"
    );
    assert!(dom.contains("not processing"), "/readyz after the end");
    child.kill()?;
    child.wait()?;
    Ok(())
}
