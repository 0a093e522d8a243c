//! Changing a job between runs: operators are matched with their checkpointed state by name,
//! whatever their place in the pipeline; a renamed operator carries its state over with
//! `--rename-operator`, an added one starts empty, a dropped one is refused unless
//! `--allow-dropped-state`; a changed configuration needs `--accept-config-change`. Savepoints
//! outlive retention; `cairn state export|get` read state out as stored.

use std::fs;

use anyhow::Result;
use cairn_tests::job::Job;
use cairn_tests::{expected_counts, plugin, run_ok, strs};

#[test]
fn a_renamed_plugin_file_carries_its_state_over_with_rename_operator() -> Result<()> {
    let job = Job::new()?;
    let counter = plugin("counter");
    let v2 = job.dir.path().join("counter-v2.wasm");
    fs::copy(&counter, &v2)?;
    job.run(false, &["--plugin", &counter.display().to_string()], &[])?;
    // Named after its file, the operator is now `counter-v2`: `counter`'s state would be lost.
    let v2s = v2.display().to_string();
    let err = job.refused(true, &["--plugin", &v2s], &[])?;
    assert!(
        err.contains("holds the state of operators [\"counter\"], which the job (operators [\"counter-v2\"]) no longer has"),
        "{err}"
    );
    assert!(err.contains("--rename-operator OLD=NEW"), "{err}");
    let err = job.refused(
        true,
        &["--plugin", &v2s],
        &["--rename-operator", "count=counter-v2"],
    )?;
    assert!(err.contains("operator `count` is not in checkpoint"), "{err}");
    let out = job.run(
        true,
        &["--plugin", &v2s],
        &["--rename-operator", "counter=counter-v2"],
    )?;
    assert_eq!(out, expected_counts(&job.text)?);
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &job.store(), "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["operators"][0]["name"], "counter-v2");
    Ok(())
}

#[test]
fn a_reordered_pipeline_resumes_an_added_operator_starts_empty_a_dropped_one_is_refused() -> Result<()> {
    let job = Job::new()?;
    let counter = plugin("counter");
    let aggregate = plugin("aggregate");
    let stats = r#"{ field = "count" }"#;
    // Two counters in a row count each key's events twice over: both emit the same counts.
    let ab = job.pipeline("ab.toml", &[("a", &counter, "{}"), ("b", &counter, "{}")])?;
    job.run(false, &["--pipeline", &ab], &[])?;
    let ba = job.pipeline("ba.toml", &[("b", &counter, "{}"), ("a", &counter, "{}")])?;
    let out = job.run(false, &["--pipeline", &ba], &[])?;
    assert_eq!(
        out,
        expected_counts(&job.first)?,
        "each counter went on from its own state"
    );

    // An operator added: it starts with empty state, the others keep theirs.
    let bas = job.pipeline(
        "bas.toml",
        &[
            ("b", &counter, "{}"),
            ("a", &counter, "{}"),
            ("stats", &aggregate, stats),
        ],
    )?;
    job.run(true, &["--pipeline", &bas], &[])?;
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &job.store(), "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    // The aggregate saw the counts from the point it was added (its count per key is the
    // number of the key's events after the first part), and they went on from the counters'
    // restored state (the largest is the key's count over the whole input).
    let events_of = |k: &str, text: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("\"key\":\"{k}\"")))
            .count()
    };
    for k in ["k7", "k31"] {
        let agg = &doc["operators"][2]["state"][format!("{}:{k}/agg", k.len())];
        assert_eq!(
            agg["count"],
            events_of(k, &job.text) - events_of(k, &job.first),
            "{k}: {agg}"
        );
        assert_eq!(agg["max"], events_of(k, &job.text) as f64, "{k}: {agg}");
    }

    // An operator dropped: refused, naming it; then allowed.
    let ba2 = job.pipeline("ba2.toml", &[("b", &counter, "{}"), ("a", &counter, "{}")])?;
    let err = job.refused(true, &["--pipeline", &ba2], &[])?;
    assert!(err.contains("holds the state of operators [\"stats\"]"), "{err}");
    assert!(err.contains("hint: pass --allow-dropped-state"), "{err}");
    job.run(true, &["--pipeline", &ba2], &["--allow-dropped-state"])?;
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &job.store(), "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["operators"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[test]
fn a_changed_configuration_needs_accept_config_change() -> Result<()> {
    let job = Job::new()?;
    let window = plugin("window").display().to_string();
    let config = |size: u32| format!(r#"{{"field":"x","size_ms":{size}}}"#);
    job.run(false, &["--plugin", &window, "--config", &config(100)], &[])?;
    let err = job.refused(
        true,
        &["--plugin", &window, "--config", &config(200)],
        &["--accept-plugin-change"],
    )?;
    assert!(
        err.contains("operator `window`: the configuration changed since checkpoint"),
        "{err}"
    );
    assert!(err.contains("hint: pass --accept-config-change"), "{err}");
    job.run(
        true,
        &["--plugin", &window, "--config", &config(200)],
        &["--accept-config-change"],
    )?;
    Ok(())
}

#[test]
fn a_savepoint_outlives_retention_and_a_job_starts_from_it() -> Result<()> {
    let job = Job::sized(15_000, 50, 2_500)?;
    let counter = plugin("counter").display().to_string();
    let store = job.store();
    job.run(false, &["--plugin", &counter], &["--checkpoint-every", "500"])?;
    let pinned = run_ok(&[
        "checkpoints",
        "pin",
        "latest",
        "--as",
        "first-part",
        "--store",
        &store,
    ])?;
    let said = String::from_utf8(pinned.stdout)?;
    let pinned: u64 = said
        .split("checkpoint ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    let at_pin = fs::read_to_string(job.path("out.jsonl"))?;
    // 50 and more checkpoints later, with 2 kept, the pinned one is long gone from the chain.
    let out = job.run(
        true,
        &["--plugin", &counter],
        &["--checkpoint-every", "20", "--max-retained", "2"],
    )?;
    assert_eq!(out, expected_counts(&job.text)?);
    let list = String::from_utf8(run_ok(&["checkpoints", "list", "--store", &store])?.stdout)?;
    assert!(list.contains("savepoint \"first-part\""), "{list}");
    let ids: Vec<u64> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        !ids.contains(&pinned) && ids.iter().max().is_some_and(|&m| m >= pinned + 50),
        "pinned {pinned}, kept {ids:?}"
    );
    // Start over from the savepoint with the output as it was then: the same final output.
    fs::write(job.path("out.jsonl"), &at_pin)?;
    let again = job.run(true, &["--plugin", &counter], &["--restore-from", "first-part"])?;
    assert_eq!(again, expected_counts(&job.text)?);
    // Names that are not savepoints are clear errors; unpin releases it.
    fs::write(job.path("out.jsonl"), &at_pin)?;
    let err = job.refused(true, &["--plugin", &counter], &["--restore-from", "second-part"])?;
    assert!(
        err.contains("there is no savepoint \"second-part\"") && err.contains("first-part"),
        "{err}"
    );
    run_ok(&["checkpoints", "unpin", "first-part", "--store", &store])?;
    let list = String::from_utf8(run_ok(&["checkpoints", "list", "--store", &store])?.stdout)?;
    assert!(!list.contains("savepoint"), "{list}");
    Ok(())
}

#[test]
fn state_is_exported_as_stored_from_a_checkpoint_or_savepoint_encrypted_too() -> Result<()> {
    let job = Job::new()?;
    let window = plugin("window").display().to_string();
    let key = ["--passphrase-env", "CAIRN_TEST_PASSPHRASE"];
    // The passphrase is in the environment of the processes this test starts.
    let with_env = |args: &[&str]| -> Result<std::process::Output> {
        let out = cairn_tests::cairn()
            .args(args)
            .env("CAIRN_TEST_PASSPHRASE", "correct horse")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };
    let run = job.args(
        false,
        &["--plugin", &window, "--config", r#"{"field":"x","size_ms":500}"#],
        &key,
    )?;
    with_env(&strs(&run))?;
    let store = job.store();
    let exported = job.path("window.jsonl");
    let mut export = vec![
        "state",
        "export",
        "--store",
        &store,
        "--operator",
        "window",
        "--output",
        &exported,
    ];
    export.extend_from_slice(&key);
    let said = String::from_utf8(with_env(&export)?.stderr)?;
    assert!(said.contains("entries exported"), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&exported)?.permissions().mode() & 0o777, 0o600);
    }
    let text = fs::read_to_string(&exported)?;
    let lines: Vec<serde_json::Value> = text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines[0]["operator"], "window");
    assert_eq!(lines[0]["key_groups"], 128);
    // The same entries as `checkpoints show` restores: keyed values as stored, and timers.
    let mut show = vec!["checkpoints", "show", "latest", "--store", &store, "--json"];
    show.extend_from_slice(&key);
    let doc: serde_json::Value = serde_json::from_slice(&with_env(&show)?.stdout)?;
    let state = doc["operators"][0]["state"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let entries: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("key").is_some()).collect();
    assert_eq!(entries.len(), state.len(), "{text:.300}");
    // The window keeps binary values: base64, the bytes as stored.
    let bytes = |l: &serde_json::Value| -> Result<Vec<u8>> {
        use base64::Engine as _;
        Ok(match (l.get("value"), l["value_b64"].as_str()) {
            (Some(v), _) => v.to_string().into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b)?,
            (None, None) => anyhow::bail!("no value: {l}"),
        })
    };
    let timers = lines.iter().filter(|l| l.get("timer").is_some()).count();
    assert_eq!(
        timers,
        doc["operators"][0]["timers"].as_array().map_or(0, Vec::len)
    );
    assert!(timers > 0);
    // One entry, and the same from a savepoint.
    let some = entries[entries.len() / 2];
    let (scope, k) = (
        some["scope"].as_str().unwrap_or_default(),
        some["key"].as_str().unwrap_or_default(),
    );
    let mut get = vec![
        "state",
        "get",
        "--store",
        &store,
        "--operator",
        "window",
        "--scope",
        scope,
        k,
    ];
    get.extend_from_slice(&key);
    let got = with_env(&get)?.stdout;
    assert_eq!(got, [bytes(some)?, b"\n".to_vec()].concat());
    let mut pin = vec!["checkpoints", "pin", "latest", "--as", "sp", "--store", &store];
    pin.extend_from_slice(&key);
    with_env(&pin)?;
    get.extend_from_slice(&["--checkpoint", "sp"]);
    assert_eq!(with_env(&get)?.stdout, got);
    Ok(())
}

#[test]
fn export_import_export_round_trips_and_the_imported_state_resumes_alike() -> Result<()> {
    let job = Job::new()?;
    let window = plugin("window").display().to_string();
    let key = ["--passphrase-env", "CAIRN_TEST_PASSPHRASE"];
    let cmd = |args: &[&str]| -> Result<std::process::Output> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&key);
        let out = cairn_tests::cairn()
            .args(&all)
            .env("CAIRN_TEST_PASSPHRASE", "correct horse")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };
    // A window with timers and state TTL records, in an encrypted store.
    let op = [
        "--plugin",
        window.as_str(),
        "--config",
        r#"{"field":"x","size_ms":500}"#,
        "--state-ttl",
        "2s",
    ];
    cmd(&strs(&job.args(false, &op, &[])?))?;
    let (a, b, c) = (
        job.store(),
        format!("file:{}", job.path("b")),
        format!("file:{}", job.path("c")),
    );
    let export = |store: &str, file: &str| -> Result<String> {
        cmd(&[
            "state",
            "export",
            "--store",
            store,
            "--operator",
            "window",
            "--output",
            &job.path(file),
        ])?;
        Ok(fs::read_to_string(job.path(file))?)
    };
    let first = export(&a, "a.jsonl")?;
    assert!(
        first.contains("\"timer\"") && first.contains("\"host\":\"!w/"),
        "{first:.400}"
    );
    // Into a copy of the job's store, over its newest checkpoint; and into an empty store.
    run_ok(&["checkpoints", "copy", "--from", &a, "--to", &b])?;
    let input = job.path("a.jsonl");
    let import = [
        "state",
        "import",
        "--operator",
        "window",
        "--input",
        input.as_str(),
    ];
    cmd(&[&import[..], &["--store", &b, "--into-latest"]].concat())?;
    cmd(&[&import[..], &["--store", &c]].concat())?;
    let refused = cairn_tests::cairn()
        .args([&import[..], &["--store", &c], &key[..]].concat())
        .env("CAIRN_TEST_PASSPHRASE", "correct horse")
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --into-latest"));
    assert_eq!(export(&b, "b.jsonl")?, first, "byte for byte through import");
    assert_eq!(export(&c, "c.jsonl")?, first, "byte for byte into an empty store");
    // The job resumed from its own checkpoint and from the imported one: the same output.
    let cut = fs::read_to_string(job.path("out.jsonl"))?;
    let resumed = |store: &str| -> Result<String> {
        fs::write(job.path("out.jsonl"), &cut)?;
        let mut args = job.args(true, &op, &[])?;
        let at = args.iter().position(|x| x == "--store").unwrap_or(0) + 1;
        args[at] = store.to_string();
        cmd(&strs(&args))?;
        Ok(fs::read_to_string(job.path("out.jsonl"))?)
    };
    let from_a = resumed(&a)?;
    assert!(from_a.len() > cut.len());
    assert_eq!(resumed(&b)?, from_a);
    // The new job of the empty store starts its input from the beginning, with the state.
    fs::write(job.path("out.jsonl"), "")?;
    let mut args = job.args(true, &op, &[])?;
    let at = args.iter().position(|x| x == "--store").unwrap_or(0) + 1;
    args[at] = c.clone();
    cmd(&strs(&args))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&cmd(&["checkpoints", "show", "latest", "--store", &c, "--json"])?.stdout)?;
    assert_eq!(doc["host"]["events_in"], 6_000);
    assert_eq!(doc["host"]["source"]["kind"], "jsonl");
    Ok(())
}
