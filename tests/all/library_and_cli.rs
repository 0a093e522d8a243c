//! The real counter.wasm through the library and the CLI, every load error with its message,
//! and plugins built for every supported WIT version.

use std::fs;
use std::path::Path;

use anyhow::Result;
use cairn::{Engine, Event, LoadError, Plugin};
use cairn_tests::{expected_counts, plugin, run_args, run_cairn, run_ok, strs};

/// `cairn run --plugin <plugin> --input <input> --output <output> <extra…>` fed `stdin`.
fn cli(
    plugin: &Path,
    input: &Path,
    output: &Path,
    extra: &[&str],
    stdin: &[u8],
) -> Result<std::process::Output> {
    run_cairn(&strs(&run_args(plugin, input, output, extra)), stdin)
}

/// Run `plugin` (a counter) over `input` through the CLI's pipes at each batch size; its output
/// must be the counts computed independently.
fn assert_counts_at_batch_sizes(plugin: &Path, input: &str, sizes: &[&str]) -> Result<()> {
    for batch in sizes {
        let out = cli(
            plugin,
            Path::new("-"),
            Path::new("-"),
            &["--batch-size", batch],
            input.as_bytes(),
        )?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8(out.stdout)?,
            expected_counts(input)?,
            "{} at batch size {batch}",
            plugin.display()
        );
    }
    Ok(())
}

fn ev(key: &str, ts: i64) -> Event {
    Event {
        key: key.into(),
        ts,
        value: b"{}".to_vec(),
    }
}

#[test]
fn library_runs_counter_and_keeps_state_per_key() -> Result<()> {
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, plugin("counter"))?;
    assert_eq!(plugin.name(), "counter");
    let mut op = plugin.operator().build()?;
    let out = op.process(&[ev("a", 1), ev("b", 2), ev("a", 3)])?;
    let got: Vec<(String, i64, String)> = out
        .into_iter()
        .map(|e| (e.key, e.ts, String::from_utf8(e.value).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), 1, r#"{"count":1}"#.into()),
            ("b".into(), 2, r#"{"count":1}"#.into()),
            ("a".into(), 3, r#"{"count":2}"#.into()),
        ]
    );
    let out = op.process(&[ev("a", 4)])?;
    assert_eq!(out[0].value, br#"{"count":3}"#);
    // Each count lives in its key's scope (the scoped key `<len>:<key>/count`).
    assert_eq!(op.state().get("1:a/count"), Some(&b"3"[..]));
    assert_eq!(op.state().get("1:b/count"), Some(&b"1"[..]));
    assert_eq!(op.state().len(), 2);
    // A second instance has its own state.
    let mut other = plugin.operator().name("counter-2").build()?;
    assert_eq!(other.process(&[ev("a", 9)])?[0].value, br#"{"count":1}"#);
    Ok(())
}

#[test]
fn cli_run_writes_counts_to_a_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = cairn_tests::repo_root().join("examples/sensors.jsonl");
    let output = dir.path().join("out.jsonl");
    let counter = plugin("counter");
    run_ok(&strs(&run_args(&counter, &input, &output, &[])))?;
    let got = fs::read_to_string(&output)?;
    assert_eq!(got, expected_counts(&fs::read_to_string(&input)?)?);
    assert!(got.starts_with("{\"key\":\"sensor-1\",\"ts\":1700000000000,\"value\":{\"count\":1}}\n"));
    Ok(())
}

#[test]
fn output_to_a_device_is_written_as_a_stream_and_a_resume_into_one_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = cairn_tests::repo_root().join("examples/sensors.jsonl");
    let counter = plugin("counter");
    let null = Path::new("/dev/null");
    run_ok(&strs(&run_args(&counter, &input, null, &[])))?;
    // With a store, the second run would resume and must truncate: a device cannot be.
    let store = format!("file:{}", dir.path().join("ck").display());
    let args = run_args(
        &counter,
        &input,
        null,
        &["--store", &store, "--checkpoint-every", "5"],
    );
    run_ok(&strs(&args))?;
    let again = run_cairn(&strs(&args), b"")?;
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success(),
        "resuming into /dev/null succeeded: {err}"
    );
    assert!(err.contains("not a regular file"), "{err}");
    Ok(())
}

#[test]
fn cli_run_works_with_pipes_and_small_batches() -> Result<()> {
    let input = cairn_tests::synthetic_input(5000, 37, 0);
    let counter = plugin("counter");
    assert_counts_at_batch_sizes(&counter, &input, &["1", "7", "256"])?;
    Ok(())
}

#[test]
fn missing_ts_defaults_to_line_number_and_blank_lines_are_skipped() -> Result<()> {
    let counter = plugin("counter");
    let input = "{\"key\":\"a\"}\n\n{\"key\":\"a\",\"value\":[1,2]}\n";
    let out = cli(&counter, Path::new("-"), Path::new("-"), &[], input.as_bytes())?;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":3,\"value\":{\"count\":2}}\n"
    );
    Ok(())
}

#[test]
fn malformed_line_is_an_error_naming_it_and_nothing_is_written_past_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = "{\"key\":\"a\",\"ts\":1,\"value\":1}\n{\"key\":\"b\",\"ts\":2,\"value\":2}\n";
    let input = format!("{good}{{\"key\": \"c\", \"ts\": oops}}\n{{\"key\":\"d\",\"ts\":4,\"value\":4}}\n");
    let in_path = dir.path().join("in.jsonl");
    let out_path = dir.path().join("out.jsonl");
    fs::write(&in_path, &input)?;
    let counter = plugin("counter");
    let out = cli(&counter, &in_path, &out_path, &[], b"")?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains(in_path.to_str().unwrap()), "{err}");
    assert_eq!(fs::read_to_string(&out_path)?, expected_counts(good)?);
    Ok(())
}

#[test]
fn bad_config_is_refused_before_anything_runs() -> Result<()> {
    let counter = plugin("counter");
    let out = cli(
        &counter,
        Path::new("-"),
        Path::new("-"),
        &["--config", "{nope"],
        b"{\"key\":\"a\"}\n",
    )?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config is not valid JSON"));
    assert!(out.stdout.is_empty());
    Ok(())
}

fn load_err(bytes: Option<&[u8]>) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("p.wasm");
    if let Some(b) = bytes {
        fs::write(&path, b)?;
    }
    let engine = Engine::new()?;
    let err = Plugin::load(&engine, &path).expect_err("loading must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(path.to_str().unwrap()),
        "message must name the file: {msg}"
    );
    // The CLI reports the same message and fails.
    let out = cli(&path, Path::new("-"), Path::new("-"), &[], b"")?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&msg),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = matches!(err, LoadError::NotFound { .. });
    Ok(msg)
}

#[test]
fn load_errors_are_distinct_and_say_what_to_do() -> Result<()> {
    let missing = load_err(None)?;
    assert!(
        missing.contains("does not exist") && missing.contains("build-plugins.sh"),
        "{missing}"
    );

    let random = load_err(Some(b"\x7fELF this is not wasm at all"))?;
    assert!(random.contains("is not a WebAssembly file"), "{random}");
    let empty = load_err(Some(b""))?;
    assert!(empty.contains("is not a WebAssembly file"), "{empty}");

    // The smallest valid core module.
    let core = load_err(Some(b"\0asm\x01\0\0\0"))?;
    assert!(
        core.contains("core WebAssembly module, not a component") && core.contains("wasm32-wasip2"),
        "{core}"
    );

    // The smallest valid component: fits no world.
    let other = load_err(Some(b"\0asm\x0d\0\x01\0"))?;
    assert!(
        other.contains(&format!("does not fit Cairn's world {}", cairn::plugin::WORLD)),
        "{other}"
    );
    assert!(other.contains("or `init` (0.1)"), "{other}");
    for export in ["process", "on-watermark"] {
        assert!(other.contains(&format!("missing export `{export}`")), "{other}");
    }

    // A component header with garbage after it.
    let broken = load_err(Some(b"\0asm\x0d\0\x01\0\x07\x99garbage"))?;
    assert!(
        broken.contains("is not a valid WebAssembly component"),
        "{broken}"
    );
    Ok(())
}

#[test]
fn inspect_reports_world_fit() -> Result<()> {
    let counter = plugin("counter");
    let out = run_ok(&["inspect", counter.to_str().unwrap()])?;
    let text = String::from_utf8(out.stdout)?;
    let v = cairn::plugin::CONTRACT_VERSION;
    for needle in [
        "component".to_string(),
        format!("cairn:operator/state@{v}"),
        format!("cairn:operator/packed-state@{v}"),
        format!("  cairn:operator/operator@{v}"),
        format!("  cairn:operator/packed-operator@{v}"),
        format!("  cairn:operator/packed-timer-handler@{v}"),
        format!("fits world cairn:operator/operator-packed@{v}: yes"),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
    }

    let dir = tempfile::tempdir()?;
    let core = dir.path().join("core.wasm");
    fs::write(&core, b"\0asm\x01\0\0\0")?;
    let out = run_cairn(&["inspect", core.to_str().unwrap()], b"")?;
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("core module") && text.contains(": no"), "{text}");
    Ok(())
}

#[test]
fn cairn_new_scaffolds_a_plugin_that_tests_builds_and_runs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = run_ok(&["new", "my-sum", "--dir", dir.path().to_str().unwrap()])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("created plugin crate"));
    let root = dir.path().join("my-sum");
    // Its own target dir (inside ours, so dependencies are reused across runs) avoids waiting on
    // the lock of the build that runs this test.
    let target = cairn_tests::cairn_bin()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("scaffold"))
        .unwrap_or_else(|| dir.path().join("target"));
    let cargo = |args: &[&str]| -> Result<()> {
        let st = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .status()?;
        anyhow::ensure!(
            st.success(),
            "cargo {} failed in the scaffolded crate",
            args.join(" ")
        );
        Ok(())
    };
    cargo(&["test", "--release", "--quiet"])?;
    cargo(&["build", "--target", "wasm32-wasip2", "--release", "--quiet"])?;
    let wasm = target.join("wasm32-wasip2/release/my_sum.wasm");
    let input = dir.path().join("in.jsonl");
    fs::write(
        &input,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"temp\":1.5}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"temp\":2}}\n",
    )?;
    let out = run_ok(&strs(&run_args(
        &wasm,
        &input,
        Path::new("-"),
        &["--config", "{\"field\": \"temp\"}"],
    )))?;
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"sum\":1.5}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"sum\":3.5}}\n"
    );
    // Refusals.
    let again = run_cairn(&["new", "my-sum", "--dir", dir.path().to_str().unwrap()], b"")?;
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = run_cairn(&["new", "Bad Name", "--dir", dir.path().to_str().unwrap()], b"")?;
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not a valid plugin name")
    );
    Ok(())
}

/// Run `plugin` (a counter) over the first part of `input` with a file store and `--keep-open`,
/// then over the whole of it: the second run resumes from the first's checkpoint, and the output
/// is exactly the counts of the whole input. Without `--keep-open`, the first run closes event
/// time and a store so closed refuses the grown input, saying what to do.
fn assert_resumes_from_checkpoints(plugin: &Path, input: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    let store = format!("file:{}", dir.path().join("ck").display());
    let cut = input.len() / 2;
    let cut = input[..cut].rfind('\n').map_or(0, |i| i + 1);
    fs::write(&inp, &input[..cut])?;
    let extra = [
        "--store",
        store.as_str(),
        "--checkpoint-every",
        "100",
        "--batch-size",
        "64",
    ];
    let closed = format!("file:{}", dir.path().join("closed").display());
    let closed_extra = ["--store", closed.as_str(), "--batch-size", "64"];
    let closed_out = dir.path().join("closed-out.jsonl");
    run_ok(&strs(&run_args(plugin, &inp, &closed_out, &closed_extra)))?;
    let open_extra = [&extra[..], &["--keep-open"]].concat();
    run_ok(&strs(&run_args(plugin, &inp, &out, &open_extra)))?;
    fs::write(&inp, input)?;
    run_ok(&strs(&run_args(plugin, &inp, &out, &extra)))?;
    let refused = run_cairn(&strs(&run_args(plugin, &inp, &closed_out, &closed_extra)), b"")?;
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("closed event time") && err.contains("--keep-open"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&out)?,
        expected_counts(input)?,
        "{}",
        plugin.display()
    );
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["host"]["events_in"], input.lines().count());
    Ok(())
}

/// A plugin built against the 0.1.0 world (before `process-packed` and `get-inline`, importing
/// `state@0.1.0`) still loads, fits, runs through `process`, keeps state across batches and
/// resumes from checkpoints.
#[test]
fn plugin_built_for_world_0_1_0_still_runs() -> Result<()> {
    assert_old_counter_runs("counter-0-1-0", &["cairn:operator/state@0.1.0"])?;
    Ok(())
}

/// The counter fixture `name`, built for a 0.1 world: `inspect` shows `needles` and says it
/// fits; it counts at several batch sizes and resumes from checkpoints.
fn assert_old_counter_runs(name: &str, needles: &[&str]) -> Result<std::path::PathBuf> {
    let old = plugin(name);
    let text = String::from_utf8(run_ok(&["inspect", old.to_str().unwrap()])?.stdout)?;
    for n in needles
        .iter()
        .chain(&["fits world cairn:operator/operator@0.1.1: yes"])
    {
        assert!(text.contains(n), "missing {n:?} in:\n{text}");
    }
    let input = cairn_tests::synthetic_input(3000, 41, 0);
    assert_counts_at_batch_sizes(&old, &input, &["1", "64", "1000"])?;
    assert_resumes_from_checkpoints(&old, &input)?;
    Ok(old)
}

/// A plugin built against the 0.1.1 world with its speed paths (`process-packed`, `get-inline`,
/// `set-many-packed`) still runs, keeps its state under the plain keys 0.1 plugins used, and
/// resumes from checkpoints.
#[test]
fn plugin_built_for_world_0_1_1_still_runs() -> Result<()> {
    let old = assert_old_counter_runs(
        "counter-0-1-1",
        &["cairn:operator/state@0.1.1", "  process-packed"],
    )?;

    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, &old)?;
    assert_eq!(plugin.contract(), cairn::plugin::Contract::V0_1);
    let mut op = plugin.operator().build()?;
    op.process(&[ev("a", 1), ev("a", 2)])?;
    assert_eq!(
        op.state().get("a"),
        Some(&b"2"[..]),
        "0.1 state keys are stored as they are"
    );
    Ok(())
}

/// The current counter resumes from checkpoints too, and says which contract it was built for.
#[test]
fn plugin_built_for_world_0_2_0_resumes() -> Result<()> {
    let counter = plugin("counter");
    let engine = Engine::new()?;
    assert_eq!(
        Plugin::load(&engine, &counter)?.contract(),
        cairn::plugin::Contract::V0_2
    );
    assert_resumes_from_checkpoints(&counter, &cairn_tests::synthetic_input(3000, 41, 0))
}

/// The batch-at-a-time counter (bulk `get_many` / `set_many`, packed) gives the counter's
/// output at any batch size, and a quota refusal inside its bulk write fails the batch with the
/// quota's message and rolls the whole batch back.
#[test]
fn counter_batched_matches_counter_and_bulk_writes_obey_quotas() -> Result<()> {
    let batched = plugin("counter-batched");
    let input = cairn_tests::synthetic_input(4000, 53, 0);
    assert_counts_at_batch_sizes(&batched, &input, &["1", "17", "1000"])?;

    let engine = Engine::new()?;
    let limits = cairn::Limits::default().with_state_quotas(3, 1 << 20, 1 << 10);
    let mut op = Plugin::load(&engine, &batched)?
        .operator()
        .limits(limits)
        .build()?;
    op.process(&[ev("a", 1), ev("b", 2), ev("a", 3)])?;
    let before: Vec<(String, Vec<u8>)> = op.state().iter().map(|(k, v)| (k.into(), v.to_vec())).collect();
    let err = op
        .process(&[ev("a", 4), ev("c", 5), ev("d", 6)])
        .expect_err("a fourth key exceeds max-keys = 3");
    assert!(
        err.to_string()
            .contains("state quota max-keys = 3 would be exceeded"),
        "{err}"
    );
    let after: Vec<(String, Vec<u8>)> = op.state().iter().map(|(k, v)| (k.into(), v.to_vec())).collect();
    assert_eq!(after, before, "the failed batch must leave no write behind");
    assert_eq!(op.process(&[ev("a", 7)])?[0].value, br#"{"count":3}"#);
    Ok(())
}

/// `examples/embed.rs` (built by `cargo test` as the cairn package's example): load, process,
/// checkpoint, restore into a fresh instance, carry on.
#[test]
fn the_embedding_example_runs() -> Result<()> {
    let exe = cairn_tests::cairn_bin()
        .parent()
        .map(|d| d.join("examples/embed"))
        .unwrap_or_default();
    anyhow::ensure!(
        exe.exists(),
        "{} is missing: `cargo test` builds it",
        exe.display()
    );
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(&exe)
        .arg(plugin("counter"))
        .arg(dir.path().join("ckpt"))
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "a 1 {\"count\":1}\nb 2 {\"count\":1}\na 3 {\"count\":2}\ncheckpoint 1 written\na 4 {\"count\":3}\n"
    );
    Ok(())
}
