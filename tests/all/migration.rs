//! Upgrading an operator whose state layout changed: a component declares its operator name
//! and state version (`cairn_sdk::export!(Op, name = …, state_version = …)`, `cairn.toml`
//! for other languages); resuming a checkpoint of an older version migrates every entry
//! through the plugin's `migrate` before any event, then checkpoints in full. Fixtures:
//! `counter-v1` keeps counts as 4 little-endian bytes, `counter-v2` as `{"n": count}` JSON;
//! both declare operator `counter` and emit the counter's lines.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_tests::job::Job;
use cairn_tests::{cairn, expected_counts, plugin, run_ok, strs};

/// A job of `n` events over `keys` keys, the first half its first part.
fn new_job(n: usize, keys: usize) -> Result<Job> {
    Job::sized(n, keys, n / 2)
}

/// `--plugin P` and checkpoints every 20,000 events.
fn with(plugin: &Path) -> [String; 2] {
    ["--plugin".into(), plugin.display().to_string()]
}

const EVERY: [&str; 2] = ["--checkpoint-every", "20000"];

/// Run `plugin` over the first part or the whole input; the log.
fn run(job: &Job, plugin: &Path, whole: bool, extra: &[&str]) -> Result<String> {
    let what = with(plugin);
    job.run_log(whole, &strs(&what), &[&EVERY[..], extra].concat())
}

/// A run of `plugin` over the whole input that must fail; its error.
fn refused(job: &Job, plugin: &Path, extra: &[&str]) -> Result<String> {
    let what = with(plugin);
    job.refused(true, &strs(&what), &[&EVERY[..], extra].concat())
}

/// `checkpoints show latest --json`.
fn latest(job: &Job) -> Result<serde_json::Value> {
    let out = run_ok(&["checkpoints", "show", "latest", "--store", &job.store(), "--json"])?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// `cairn state get` of key `count` in scope `scope` of operator `counter`.
fn count_of(job: &Job, scope: &str) -> Result<Vec<u8>> {
    let store = job.store();
    let out = run_ok(&[
        "state",
        "get",
        "--store",
        &store,
        "--operator",
        "counter",
        "--scope",
        scope,
        "count",
    ])?;
    // Printed with a newline after the value's bytes.
    let mut v = out.stdout;
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    Ok(v)
}

fn latest_operator(job: &Job) -> Result<serde_json::Value> {
    Ok(latest(job)?["operators"][0].clone())
}

/// v1 over the first half, then `v2` over the whole input: byte-identical to v1 uninterrupted,
/// and the state is v2's afterwards.
fn upgrade_and_compare(v2: &Path, n: usize, keys: usize) -> Result<Job> {
    let job = new_job(n, keys)?;
    let v1 = plugin("counter-v1");
    run(&job, &v1, false, &[])?;
    let op = latest_operator(&job)?;
    assert_eq!(op["name"], "counter", "{op}");
    assert_eq!(op["state_version"], 1, "{op}");
    // One key's count as v1 keeps it: 4 little-endian bytes.
    let before = count_of(&job, "k1")?;
    assert_eq!(before.len(), 4, "{before:?}");
    // Every checkpoint kept, to find the one taken at the upgrade.
    let log = run(&job, v2, true, &["--max-retained", "1000"])?;
    assert!(
        log.contains("migrating the state of checkpoint") && log.contains("from version 1 to 2"),
        "{log}"
    );
    assert!(
        log.contains(&format!("{keys} entries")),
        "every key's count migrated: {log}"
    );
    assert_eq!(
        job.output()?,
        expected_counts(&job.text)?,
        "byte for byte as an uninterrupted v1"
    );
    let op = latest_operator(&job)?;
    assert_eq!(op["state_version"], 2, "{op}");
    let after: serde_json::Value = serde_json::from_slice(&count_of(&job, "k1")?)?;
    assert!(after["n"].as_u64().context("n")? > u64::from(u32::from_le_bytes(before[..].try_into()?)));
    Ok(job)
}

#[test]
fn a_rust_v2_migrates_v1_state_and_output_stays_exact() -> Result<()> {
    let job = upgrade_and_compare(&plugin("counter-v2"), 1_000_000, 10_000)?;
    // The first checkpoint after the upgrade is full and was taken before any event: the
    // chain's first entry of state version 2.
    let list = run_ok(&["checkpoints", "list", "--store", &job.store(), "--json"])?;
    let list: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    let v2_full = list
        .as_array()
        .context("a list")?
        .iter()
        .find(|c| c["kind"] == "full" && c["events_in"] == 500_000);
    assert!(v2_full.is_some(), "a full checkpoint at the upgrade: {list}");
    // Back to v1: an older state version is refused, naming both.
    let err = refused(&job, &plugin("counter-v1"), &[])?;
    assert!(
        err.contains("holds state version 2, and this plugin declares version 1, which is older"),
        "{err}"
    );
    assert!(err.contains("--restore-from"), "the hint: {err}");
    Ok(())
}

#[test]
fn a_python_v2_migrates_rust_v1_state() -> Result<()> {
    let project = tempfile::tempdir()?;
    fs::write(
        project.path().join("cairn.toml"),
        "[operator]\nname = \"counter\"\nlang = \"python\"\nstate_version = 2\n",
    )?;
    fs::write(
        project.path().join("app.py"),
        r#"import json

import cairn_operator as cairn
from cairn_operator.exports import *  # noqa: F401,F403


@cairn.operator
class Counter:
    def on_event(self, event, out):
        n = cairn.state.get_json("count", {"n": 0})["n"] + 1
        cairn.state.set_json("count", {"n": n})
        out.emit_json(event.key, event.ts, {"count": n})

    def migrate(self, from_version, entry):
        if from_version == 1 and entry.key == "count":
            n = int.from_bytes(entry.value, "little")
            return json.dumps({"n": n}, separators=(",", ":")).encode()
        return None
"#,
    )?;
    let built = cairn_tests::guests::build(project.path(), &project.path().join("counter-v2.wasm"))?;
    let inspect = run_ok(&["inspect", &built.display().to_string()])?;
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("operator name: counter")
            && text.contains("state version: 2")
            && text.contains("migrates older state: yes"),
        "{text}"
    );
    upgrade_and_compare(&built, 100_000, 2_000)?;
    Ok(())
}

#[test]
fn a_failed_migration_leaves_the_checkpoint_and_v1_resumes_from_it() -> Result<()> {
    let job = new_job(60_000, 500)?;
    let v1 = plugin("counter-v1");
    let v2 = plugin("counter-v2");
    run(&job, &v1, false, &[])?;
    // Fails on one key's entry, whatever page it is in.
    let err = refused(
        &job,
        &v2,
        &["--config", r#"{"fail_on":"k7"}"#, "--accept-config-change"],
    )?;
    assert!(err.contains("from version 1 to 2 failed"), "{err}");
    assert!(
        err.contains("told to fail here") && err.contains("\"k7\""),
        "{err}"
    );
    assert!(err.contains("the previous plugin still resumes from it"), "{err}");
    // Out of time: the whole migration's deadline.
    let err = refused(
        &job,
        &v2,
        &[
            "--config",
            r#"{"spin":50000000}"#,
            "--accept-config-change",
            "--migration-timeout",
            "300ms",
        ],
    )?;
    assert!(
        err.contains("timeout = 300ms") && err.contains("`migrate`"),
        "{err}"
    );
    assert!(err.contains("--migration-timeout"), "the hint: {err}");
    run(&job, &v1, true, &[])?;
    assert_eq!(job.output()?, expected_counts(&job.text)?);
    Ok(())
}

#[test]
fn a_sigkill_during_migration_leaves_the_checkpoint_and_v1_resumes_from_it() -> Result<()> {
    let job = new_job(60_000, 500)?;
    let v1 = plugin("counter-v1");
    run(&job, &v1, false, &[])?;
    let before = latest(&job)?;
    // A slow migration (about a second per hundred entries), killed once it has begun.
    let what = with(&plugin("counter-v2"));
    let args = job.args(
        true,
        &strs(&what),
        &["--config", r#"{"spin":3000000}"#, "--accept-config-change"],
    )?;
    let mut child = cairn()
        .env("CAIRN_LOG", "info")
        .args(&args[..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let t = Instant::now();
    loop {
        let line = lines
            .next()
            .context("the log ended before the migration began")??;
        if line.contains("migrating the state of checkpoint") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no migration in sight");
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill()?;
    let status = child.wait()?;
    assert!(!status.success(), "killed during the migration, not after it");
    assert_eq!(latest(&job)?, before, "the newest checkpoint is still v1's");
    run(&job, &v1, true, &[])?;
    assert_eq!(job.output()?, expected_counts(&job.text)?);
    Ok(())
}

#[test]
fn the_declared_name_keys_state_and_the_same_version_resumes_a_changed_plugin() -> Result<()> {
    let job = new_job(20_000, 100)?;
    // A file of any name: the state is the declared operator's, `counter`.
    let renamed: PathBuf = job.dir.path().join("counter-build-17.wasm");
    fs::copy(plugin("counter-v1"), &renamed)?;
    run(&job, &renamed, false, &[])?;
    assert_eq!(latest_operator(&job)?["name"], "counter");
    // Another build (another digest) declaring the same state version resumes by itself.
    let mut bytes = fs::read(&renamed)?;
    bytes.extend(custom_section("build-info", b"rebuilt"));
    let rebuilt = job.dir.path().join("counter-build-18.wasm");
    fs::write(&rebuilt, bytes)?;
    let log = run(&job, &rebuilt, true, &[])?;
    assert!(
        log.contains("the plugin changed since checkpoint")
            && log.contains("declares the same state version 1"),
        "{log}"
    );
    assert_eq!(job.output()?, expected_counts(&job.text)?);
    // A plugin that declares no state version has version 0: older than 1.
    let err = refused(&job, &plugin("counter"), &[])?;
    assert!(
        err.contains("this plugin declares version 0, which is older"),
        "{err}"
    );

    // Between plugins that declare no version, a change keeps the old rule.
    let plain = job.dir.path().join("plain");
    fs::create_dir(&plain)?;
    let undeclared = plain.join("counter.wasm");
    fs::copy(plugin("counter"), &undeclared)?;
    let other = new_job(20_000, 100)?;
    run(&other, &undeclared, false, &[])?;
    let mut bytes = fs::read(&undeclared)?;
    bytes.extend(custom_section("build-info", b"rebuilt"));
    fs::write(&undeclared, bytes)?;
    let err = refused(&other, &undeclared, &[])?;
    assert!(err.contains("the plugin changed since checkpoint"), "{err}");
    assert!(err.contains("--accept-plugin-change"), "{err}");
    run(&other, &undeclared, true, &["--accept-plugin-change"])?;
    assert_eq!(other.output()?, expected_counts(&other.text)?);
    Ok(())
}

#[test]
fn parallel_instances_each_migrate_their_key_groups() -> Result<()> {
    let job = new_job(40_000, 300)?;
    run(&job, &plugin("counter-v1"), false, &["--parallelism", "2"])?;
    let log = run(&job, &plugin("counter-v2"), true, &["--parallelism", "3"])?;
    assert!(log.contains("300 entries"), "{log}");
    // Instances emit in their own order: compare line sets and each key's sequence.
    let mut got: Vec<String> = job.output()?.lines().map(String::from).collect();
    let mut want: Vec<String> = expected_counts(&job.text)?.lines().map(String::from).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    Ok(())
}

/// A custom section `name` holding `payload` (appended, it leaves a component valid).
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    assert!(body.len() < 128, "one-byte LEB128 size");
    let mut out = vec![0u8, body.len() as u8];
    out.extend(body);
    out
}
