//! Older checkpoint formats still restore. Format 1 (written by Cairn 0.1: the JSONL position
//! in fixed fields, one flat list of entries): `tests/fixtures/v1-store` was written by the 0.1
//! `cairn` running `counter-0-1-0` over the first events of `input.jsonl`; a run of today's host
//! resumes from it, continues the chain in today's format, and the output is exactly the counts
//! of the whole input. Format 2 (entries as a list per key group; format 3 writes sorted
//! blocks): `tests/fixtures/v2-store`, the format-3 `tests/fixtures/v3-store`, the format-4
//! `tests/fixtures/v4-store` and the format-5 `tests/fixtures/v5-store` (their READMEs say how
//! they were made) resume the `window`
//! operator, timers and all, into the output of one uninterrupted run.

use std::fs;
use std::path::Path;

use anyhow::Result;
use cairn_tests::{expected_counts, plugin, repo_root, run_args, run_ok, strs};

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

#[test]
fn a_version_1_store_restores_and_its_chain_continues_in_todays_format() -> Result<()> {
    let fixture = repo_root().join("tests/fixtures/v1-store");
    let dir = tempfile::tempdir()?;
    copy_dir(&fixture, dir.path())?;
    let store = format!("file:{}", dir.path().join("store").display());
    let (input, output) = (dir.path().join("input.jsonl"), dir.path().join("output.jsonl"));

    // What the fixture holds, read by today's code.
    let list = String::from_utf8(run_ok(&["checkpoints", "list", "--store", &store])?.stdout)?;
    assert!(list.contains("(latest)") && !list.contains("DAMAGED"), "{list}");
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    let before = doc["host"]["events_in"].as_u64().unwrap_or_default();
    assert!(before > 0);
    assert_eq!(doc["host"]["source"]["kind"], "jsonl");
    assert_eq!(doc["host"]["source"]["position"]["line"], before);

    // More input arrives; the job resumes where the 0.1 host stopped.
    let mut text = fs::read_to_string(&input)?;
    text.push_str(&cairn_tests::synthetic_input(2000, 23, 0));
    fs::write(&input, &text)?;
    let extra = [
        "--store",
        store.as_str(),
        "--checkpoint-every",
        "500",
        "--accept-plugin-change",
    ];
    run_ok(&strs(&run_args(
        &plugin("counter-0-1-0"),
        &input,
        &output,
        &extra,
    )))?;
    assert_eq!(fs::read_to_string(&output)?, expected_counts(&text)?);

    let verify = run_ok(&["checkpoints", "verify", "--store", &store, "--json"])?;
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout)?;
    let all = report["checkpoints"].as_array().cloned().unwrap_or_default();
    assert!(
        all.len() >= 2 && all.iter().all(|c| c["error"].is_null()),
        "{report}"
    );
    Ok(())
}

#[test]
fn a_version_2_store_of_windows_and_timers_resumes_into_the_uninterrupted_output() -> Result<()> {
    resumes_into_the_uninterrupted_output("tests/fixtures/v2-store", "window=692  (latest)")
}

/// Format 3 (before the sink's record joined the host state in format 4), written by the
/// previous release over the same input.
#[test]
fn a_version_3_store_of_windows_and_timers_resumes_into_the_uninterrupted_output() -> Result<()> {
    resumes_into_the_uninterrupted_output("tests/fixtures/v3-store", "window=44  (latest)")
}

/// Format 4 (one payload for every key group, before format 5's blocks by key-group range),
/// written by the previous release over the same input.
#[test]
fn a_version_4_store_of_windows_and_timers_resumes_into_the_uninterrupted_output() -> Result<()> {
    resumes_into_the_uninterrupted_output("tests/fixtures/v4-store", "window=44  (latest)")
}

/// Format 5 (blocks by key-group range, before format 6 recorded each operator's state
/// version), written by the previous release over the same input: its operators read as state
/// version 0.
#[test]
fn a_version_5_store_of_windows_and_timers_resumes_into_the_uninterrupted_output() -> Result<()> {
    let fixture = repo_root().join("tests/fixtures/v5-store");
    let store = format!("file:{}", fixture.join("store").display());
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["operators"][0]["state_version"], 0, "{doc}");
    resumes_into_the_uninterrupted_output("tests/fixtures/v5-store", "window=44  (latest)")
}

/// The window fixture store at `fixture` (whose listing shows `latest`) resumed over the full
/// input gives the output of one uninterrupted run, and its chain goes on in today's format.
fn resumes_into_the_uninterrupted_output(fixture: &str, latest: &str) -> Result<()> {
    let fixture = repo_root().join(fixture);
    let dir = tempfile::tempdir()?;
    copy_dir(&fixture, dir.path())?;
    let store = format!("file:{}", dir.path().join("store").display());
    let list = String::from_utf8(run_ok(&["checkpoints", "list", "--store", &store])?.stdout)?;
    assert!(list.contains(latest) && !list.contains("DAMAGED"), "{list}");

    fs::copy(
        dir.path().join("full-input.jsonl"),
        dir.path().join("input.jsonl"),
    )?;
    let window = plugin("window");
    let job = |output: &str, extra: &[&str]| -> Result<String> {
        let out = dir.path().join(output);
        let mut args = vec![
            "--config",
            r#"{"field":"temp","size_ms":200}"#,
            "--batch-size",
            "100",
        ];
        args.extend_from_slice(extra);
        run_ok(&strs(&run_args(
            &window,
            &dir.path().join("input.jsonl"),
            &out,
            &args,
        )))?;
        Ok(fs::read_to_string(&out)?)
    };
    let resumed = job(
        "output.jsonl",
        &[
            "--store",
            &store,
            "--checkpoint-every",
            "500",
            "--accept-plugin-change",
        ],
    )?;
    let fresh = job("fresh.jsonl", &[])?;
    assert!(
        resumed.lines().count() > 1500,
        "{} lines",
        resumed.lines().count()
    );
    assert_eq!(resumed, fresh);

    // The chain continued in today's format and every checkpoint reads.
    let verify = run_ok(&["checkpoints", "verify", "--store", &store, "--json"])?;
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout)?;
    let all = report["checkpoints"].as_array().cloned().unwrap_or_default();
    assert!(
        all.len() >= 5 && all.iter().all(|c| c["error"].is_null()),
        "{report}"
    );
    Ok(())
}
