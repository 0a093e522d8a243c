//! What a run tells its operator: the summary line it ends with, the JSON log format.

use std::fs;
use std::process::Stdio;

use anyhow::Result;
use cairn_tests::{cairn, plugin, run_args, strs, synthetic_input};
use serde_json::Value;

#[test]
fn a_run_ends_with_a_summary_and_logs_json_lines_when_asked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = synthetic_input(20_000, 300, 0);
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    fs::write(&input, &text)?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let args = run_args(
        &plugin("counter"),
        &input,
        &output,
        &["--store", &store, "--checkpoint-every", "5000", "--keep-open"],
    );
    let out = cairn()
        .env("CAIRN_LOG", "debug")
        .arg("--log-format")
        .arg("json")
        .args(strs(&args))
        .stderr(Stdio::piped())
        .output()?;
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stderr)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(lines.len() >= 2, "log lines and the summary: {lines:?}");
    let summary = lines
        .iter()
        .find_map(|l| l.get("summary"))
        .expect("a summary object");
    let out_lines = fs::read_to_string(&output)?.lines().count() as u64;
    assert_eq!(summary["events_in"], 20_000);
    assert_eq!(summary["events_out"].as_u64(), Some(out_lines));
    assert_eq!(summary["state_keys"], 300);
    assert_eq!(
        summary["checkpoints_full"].as_u64().unwrap_or(0)
            + summary["checkpoints_delta"].as_u64().unwrap_or(0),
        4
    );
    assert_eq!(summary["dead_lettered"], 0);
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" && l["message"] == "checkpoint committed"),
        "log events are JSON objects too, with their fields: {lines:?}"
    );

    // `checkpoints list` says each one's chain length and keys per operator.
    let list = cairn_tests::run_ok(&["checkpoints", "list", "--store", &store, "--json"])?;
    let list: Vec<Value> = serde_json::from_slice(&list.stdout)?;
    assert_eq!(list.len(), 4);
    for c in &list {
        let (id, base) = (c["id"].as_u64().unwrap_or(0), c["base"].as_u64().unwrap_or(0));
        assert_eq!(c["chain_len"].as_u64(), Some(id - base + 1), "{c}");
        assert_eq!(c["keys"][0]["operator"], "counter");
        // The write time of each is recorded by the next one (so not for the newest).
        assert_eq!(c["write_us"].is_u64(), c != &list[3], "{c}");
        if c["kind"] == "full" {
            assert_eq!(c["keys"][0]["keys"], 300, "a full checkpoint holds every key");
        }
    }
    // Text: one line; --quiet: none. A resumed run counts the events of this run apart.
    let more = synthetic_input(30_000, 300, 0);
    assert!(more.starts_with(&text));
    fs::write(&input, &more)?;
    let out = cairn().args(strs(&args)).stderr(Stdio::piped()).output()?;
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("-> counter ->") && err.contains("30000 events in") && err.contains("10000 this run"),
        "{err}"
    );
    let quiet = [&args[..], &["-q".to_string()]].concat();
    let out = cairn().args(strs(&quiet)).stderr(Stdio::piped()).output()?;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_terminal_gets_a_progress_bar_and_quiet_gets_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    fs::write(&input, synthetic_input(300_000, 1_000, 0))?;
    let bin = cairn_tests::cairn_bin();
    let base = format!(
        "{} run --plugin {} --input {} --output /dev/null --batch-size 64",
        bin.display(),
        plugin("counter").display(),
        input.display()
    );
    // `script` runs the command on a pseudo-terminal (util-linux, on every Debian).
    let on_tty = |cmd: &str| -> Result<String> {
        let out = std::process::Command::new("script")
            .args(["-qfec", cmd, "/dev/null"])
            .env("CAIRN_LOG", "warn")
            .stdin(Stdio::null())
            .output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let shown = on_tty(&base)?;
    assert!(
        shown.contains("ev/s, state 1000 keys")
            && shown.contains("last checkpoint none")
            && shown.contains("ETA"),
        "{shown}"
    );
    assert!(shown.contains("300000 events in"), "the summary follows: {shown}");
    assert_eq!(on_tty(&format!("{base} --quiet"))?, "", "--quiet: nothing at all");
    Ok(())
}
