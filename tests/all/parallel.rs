//! Parallel instances (`--parallelism N`): each instance owns a range of the key groups, a
//! checkpoint taken at N restores at any M, and the output's multiset and each key's sequence
//! of outputs do not depend on N (for a given input and batch size). Real plugins, real runs of
//! the `cairn` binary, a real file store.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_tests::{kills, plugin, run_args, run_cairn, run_ok, sigkill_exactly_once, strs, synthetic_input};

/// The example operators with configurations that make them keep state, fire timers and (for
/// dedup) drop events of the synthetic input.
fn operators() -> Vec<(&'static str, &'static str)> {
    vec![
        ("counter", "{}"),
        ("window", r#"{"field":"x","size_ms":200}"#),
        ("dedup", r#"{"id_field":"x","within_ms":400}"#),
        ("session", r#"{"gap_ms":40}"#),
    ]
}

/// Each key's outputs in order, and (through the map's order) the multiset of all of them.
fn per_key(output: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in output.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("output line {line}"))?;
        let key = v["key"].as_str().context("an output without a key")?.to_string();
        keys.entry(key).or_default().push(line.to_string());
    }
    Ok(keys)
}

fn sorted_lines(output: &str) -> Vec<&str> {
    let mut l: Vec<&str> = output.lines().collect();
    l.sort_unstable();
    l
}

/// `cairn run` of `op` over `input` into `output`, with `extra` flags.
fn run(dir: &Path, op: (&str, &str), input: &str, output: &str, extra: &[&str]) -> Result<String> {
    let out = dir.join(output);
    let mut args = vec!["--config", op.1, "--batch-size", "64"];
    args.extend_from_slice(extra);
    run_ok(&strs(&run_args(&plugin(op.0), &dir.join(input), &out, &args)))?;
    Ok(fs::read_to_string(out)?)
}

#[test]
fn a_checkpoint_taken_at_n_instances_resumes_at_m_with_the_same_outputs_per_key() -> Result<()> {
    // Out-of-order events (up to 30 ms late) over 300 keys.
    let text = synthetic_input(12_000, 300, 30);
    let first: String = text.lines().take(7_000).map(|l| format!("{l}\n")).collect();
    for op in operators() {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("all.jsonl"), &text)?;
        let reference = run(dir.path(), op, "all.jsonl", "reference.jsonl", &[])?;
        assert!(
            reference.lines().count() > 500,
            "{}: {} outputs",
            op.0,
            reference.lines().count()
        );
        let reference_keys = per_key(&reference)?;
        for (n, m) in [(2, 1), (1, 4), (4, 2)] {
            let store = format!("file:{}", dir.path().join(format!("store-{n}-{m}")).display());
            let input = format!("input-{n}-{m}.jsonl");
            let output = format!("output-{n}-{m}.jsonl");
            // The first part at N, event time kept open, then the whole input at M.
            fs::write(dir.path().join(&input), &first)?;
            let (sn, sm) = (n.to_string(), m.to_string());
            let ckpt = ["--store", store.as_str(), "--checkpoint-every", "1000"];
            let mut at_n = vec!["--parallelism", sn.as_str(), "--keep-open"];
            at_n.extend_from_slice(&ckpt);
            run(dir.path(), op, &input, &output, &at_n)?;
            let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
            let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
            assert_eq!(doc["operators"][0]["parallelism"], n, "{}: {doc:.300}", op.0);
            assert_eq!(doc["operators"][0]["key_groups"], 128);
            fs::write(dir.path().join(&input), &text)?;
            let mut at_m = vec!["--parallelism", sm.as_str()];
            at_m.extend_from_slice(&ckpt);
            let resumed = run(dir.path(), op, &input, &output, &at_m)?;
            assert_eq!(
                sorted_lines(&resumed),
                sorted_lines(&reference),
                "{}: {n} -> {m} instances: the outputs' multiset",
                op.0
            );
            assert!(
                per_key(&resumed)? == reference_keys,
                "{}: {n} -> {m} instances: a key's outputs in another order",
                op.0
            );
        }
    }
    Ok(())
}

#[test]
fn the_same_input_gives_the_same_output_at_every_parallelism_and_run() -> Result<()> {
    let text = synthetic_input(8_000, 500, 20);
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("in.jsonl"), &text)?;
    for op in operators() {
        let one = run(dir.path(), op, "in.jsonl", "one.jsonl", &[])?;
        for n in ["2", "3", "8"] {
            let a = run(dir.path(), op, "in.jsonl", "a.jsonl", &["--parallelism", n])?;
            let b = run(dir.path(), op, "in.jsonl", "b.jsonl", &["--parallelism", n])?;
            assert_eq!(
                a, b,
                "{} at parallelism {n}: the output order is deterministic",
                op.0
            );
            assert_eq!(sorted_lines(&a), sorted_lines(&one), "{} at {n}", op.0);
            assert!(per_key(&a)? == per_key(&one)?, "{} at {n}: per-key order", op.0);
        }
    }
    Ok(())
}

#[test]
fn sigkilled_parallel_jobs_restart_byte_identical_at_the_same_parallelism() -> Result<()> {
    let text = synthetic_input(60_000, 2_000, 25);
    for (op, config) in [("window", r#"{"field":"x","size_ms":200}"#), ("counter", "{}")] {
        let wasm = plugin(op).display().to_string();
        sigkill_exactly_once(
            &[
                "--plugin",
                &wasm,
                "--config",
                config,
                "--parallelism",
                "3",
                "--batch-size",
                "128",
            ],
            &text,
            &["--checkpoint-every", "5000"],
            kills(4),
            2,
        )?;
    }
    Ok(())
}

#[test]
fn key_groups_are_recorded_and_a_restore_with_another_number_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("in.jsonl"), synthetic_input(2_000, 50, 0))?;
    let store = format!("file:{}", dir.path().join("store").display());
    let counter = ("counter", "{}");
    let ckpt = [
        "--store",
        store.as_str(),
        "--keep-open",
        "--key-groups",
        "16",
        "--parallelism",
        "16",
    ];
    run(dir.path(), counter, "in.jsonl", "out.jsonl", &ckpt)?;
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["operators"][0]["key_groups"], 16);
    assert_eq!(doc["operators"][0]["parallelism"], 16);
    // Blocks by key-group range (a state this small: one block of all 16 groups).
    let blocks = doc["operators"][0]["blocks"].as_array().context("blocks")?;
    let sets: u64 = blocks.iter().map(|b| b["sets"].as_u64().unwrap_or(0)).sum();
    assert!(!blocks.is_empty() && sets >= 50, "{blocks:?}");
    let text = String::from_utf8(run_ok(&["checkpoints", "show", "latest", "--store", &store])?.stdout)?;
    assert!(text.contains("16 key groups, taken at parallelism 16"), "{text}");
    assert!(text.contains("block key groups 0..16:"), "{text}");

    // Without --key-groups the checkpoint's 16 are kept (17 instances would be too many).
    let args = run_args(
        &plugin("counter"),
        &dir.path().join("in.jsonl"),
        &dir.path().join("out.jsonl"),
        &["--store", &store, "--keep-open", "--parallelism", "17"],
    );
    let out = run_cairn(&strs(&args), b"")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("operator `counter` cannot run with parallelism 17: the job has 16 key groups"),
        "{err}"
    );
    // Another number of groups: refused, naming both.
    let args = run_args(
        &plugin("counter"),
        &dir.path().join("in.jsonl"),
        &dir.path().join("out.jsonl"),
        &["--store", &store, "--key-groups", "128"],
    );
    let out = run_cairn(&strs(&args), b"")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("splits keyed state into 16 key groups, this run asks for 128"),
        "{err}"
    );
    assert!(err.contains("hint: leave --key-groups out"), "{err}");
    Ok(())
}

#[test]
fn operators_whose_state_is_operator_wide_run_as_one_instance_only() -> Result<()> {
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("in.jsonl"), synthetic_input(100, 5, 0))?;
    for (program, why) in [
        (
            "counter-0-1-0",
            "it is a 0.1.x plugin, whose state is all operator-wide",
        ),
        ("kv-counter", "it keeps its state through wasi:keyvalue"),
    ] {
        let args = run_args(
            &plugin(program),
            &dir.path().join("in.jsonl"),
            &dir.path().join("out.jsonl"),
            &["--parallelism", "2"],
        );
        let out = run_cairn(&strs(&args), b"")?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{program}");
        assert!(
            err.contains(&format!("cannot run with parallelism 2: {why}"))
                && err.contains("hint: pass --parallelism 1"),
            "{program}: {err}"
        );
        assert!(
            !dir.path().join("out.jsonl").exists()
                || fs::read_to_string(dir.path().join("out.jsonl"))?.is_empty()
        );
    }
    Ok(())
}

#[test]
fn operator_wide_writes_are_refused_at_n_and_a_checkpoint_holding_them_stays_at_1() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let line = |key: &str, ts: i64, ops: &str| format!("{{\"key\":\"{key}\",\"ts\":{ts},\"value\":{ops}}}\n");
    let text: String = (0..40)
        .map(|i| {
            line(
                &format!("k{i}"),
                i,
                r#"[["set","n","1"],["set_wide","total","1"]]"#,
            )
        })
        .collect();
    fs::write(dir.path().join("in.jsonl"), &text)?;
    let model = ("state-model", "{}");
    // At parallelism 2 every keyed write is taken, every operator-wide one refused.
    let out = run(
        dir.path(),
        model,
        "in.jsonl",
        "two.jsonl",
        &["--parallelism", "2"],
    )?;
    let answers: Vec<String> = out
        .lines()
        .map(|l| Ok(serde_json::from_str::<serde_json::Value>(l)?["value"].to_string()))
        .collect::<Result<_>>()?;
    assert_eq!(
        answers.iter().filter(|a| *a == "\"ok\"").count(),
        40,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| *a == "\"refused\"").count(),
        40,
        "{answers:?}"
    );

    // At 1 they are taken; that checkpoint cannot be restored at 2.
    let store = format!("file:{}", dir.path().join("store").display());
    let out = run(
        dir.path(),
        model,
        "in.jsonl",
        "one.jsonl",
        &["--store", &store, "--keep-open"],
    )?;
    assert!(!out.contains("refused"), "{out}");
    let args = run_args(
        &plugin("state-model"),
        &dir.path().join("in.jsonl"),
        &dir.path().join("one.jsonl"),
        &[
            "--config",
            "{}",
            "--batch-size",
            "64",
            "--store",
            &store,
            "--parallelism",
            "2",
        ],
    );
    let run = run_cairn(&strs(&args), b"")?;
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("operator `state-model` cannot be restored with parallelism 2")
            && err.contains("holds 1 operator-wide entries"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("one.jsonl"))?,
        out,
        "the output is untouched"
    );
    Ok(())
}

/// Killed with SIGKILL at random points of progress and restarted each time at another
/// parallelism: the final output holds the lines of an uninterrupted run at 1, each key's in the
/// same order.
#[test]
fn sigkilled_and_restarted_at_other_parallelisms_the_outputs_per_key_are_the_same() -> Result<()> {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let text = synthetic_input(200_000, 1_000, 25);
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("in.jsonl"), &text)?;
    let op = ("window", r#"{"field":"x","size_ms":200}"#);
    let reference = run(dir.path(), op, "in.jsonl", "reference.jsonl", &[])?;
    let out = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("store").display());
    let total = reference.len() as u64;
    let mut at = 0u64;
    let mut landed = Vec::new();
    let levels = ["3", "1", "4", "2"];
    let kills = kills(4);
    // The job at parallelism `n`, checkpointing into the one store.
    let args_at = |n: &str| {
        run_args(
            &plugin(op.0),
            &dir.path().join("in.jsonl"),
            &out,
            &[
                "--config",
                op.1,
                "--batch-size",
                "64",
                "--store",
                &store,
                "--checkpoint-every",
                "2000",
                "--parallelism",
                n,
            ],
        )
    };
    for k in 0..kills {
        let n = levels[k % levels.len()];
        let args = args_at(n);
        let mut child = cairn_tests::cairn()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Kill once the output has grown by a share of the whole.
        let target = at + total / (kills as u64 + 2);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            let len = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            if len >= target || Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                at = len;
                landed.push((n, len));
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The kills landed mid-run, each at a later point.
    assert!(
        landed.len() == kills && landed.iter().all(|&(_, l)| l > 0 && l < total),
        "kills at {landed:?} of {total} bytes"
    );
    // The last run, at 2, finishes.
    let args = args_at("2");
    run_ok(&strs(&args))?;
    let got = fs::read_to_string(&out)?;
    assert_eq!(
        sorted_lines(&got),
        sorted_lines(&reference),
        "the outputs' multiset"
    );
    assert!(
        per_key(&got)? == per_key(&reference)?,
        "a key's outputs in another order"
    );
    let verify = run_ok(&["checkpoints", "verify", "--store", &store, "--json"])?;
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout)?;
    assert!(
        report["checkpoints"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["error"].is_null())),
        "{report}"
    );
    Ok(())
}

#[test]
fn state_quotas_are_the_operators_shared_among_its_instances() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text: String = (0..40)
        .map(|i| format!("{{\"key\":\"k{i}\",\"ts\":{i},\"value\":[[\"set\",\"n\",\"1\"]]}}\n"))
        .collect();
    fs::write(dir.path().join("in.jsonl"), &text)?;
    let model = ("state-model", "{}");
    for n in ["1", "2", "4"] {
        let out = run(
            dir.path(),
            model,
            "in.jsonl",
            "out.jsonl",
            &["--max-keys", "10", "--parallelism", n],
        )?;
        let ok = out.lines().filter(|l| l.contains("\"ok\"")).count();
        let refused = out.lines().filter(|l| l.contains("\"refused\"")).count();
        assert_eq!(ok + refused, 40, "{out}");
        // Never more keys than the operator's quota, whatever the parallelism.
        assert!((7..=10).contains(&ok), "parallelism {n}: {ok} keys written");
        if n == "1" {
            assert_eq!(ok, 10);
        }
    }
    Ok(())
}

#[test]
fn operators_of_different_parallelism_follow_each_other_in_a_pipeline() -> Result<()> {
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("in.jsonl"), synthetic_input(20_000, 400, 20))?;
    let pipeline = |first: u32, second: u32| -> Result<String> {
        let p = dir.path().join(format!("p-{first}-{second}.toml"));
        fs::write(
            &p,
            format!(
                "batch_size = 64\n\
                 [[operators]]\nplugin = \"{counter}\"\nparallelism = {first}\n\
                 [[operators]]\nplugin = \"{window}\"\nconfig = {{ field = \"count\", size_ms = 300 }}\nparallelism = {second}\n",
                counter = plugin("counter").display(),
                window = plugin("window").display(),
            ),
        )?;
        let out = dir.path().join(format!("out-{first}-{second}.jsonl"));
        let store = format!(
            "file:{}",
            dir.path().join(format!("store-{first}-{second}")).display()
        );
        let args = [
            "run",
            "--pipeline",
            &p.display().to_string(),
            "--input",
            &dir.path().join("in.jsonl").display().to_string(),
            "--output",
            &out.display().to_string(),
            "--store",
            &store,
        ]
        .map(String::from);
        run_ok(&strs(&args))?;
        let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
        let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
        assert_eq!(doc["operators"][0]["parallelism"], first);
        assert_eq!(doc["operators"][1]["parallelism"], second);
        Ok(fs::read_to_string(out)?)
    };
    let one = pipeline(1, 1)?;
    assert!(one.lines().count() > 100);
    for (a, b) in [(3, 2), (1, 4), (2, 1)] {
        let got = pipeline(a, b)?;
        assert_eq!(sorted_lines(&got), sorted_lines(&one), "{a} then {b}");
        assert!(per_key(&got)? == per_key(&one)?, "{a} then {b}: per-key order");
    }
    Ok(())
}

#[test]
fn a_batch_failing_in_one_instance_is_rolled_back_in_every_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Every event reads its key's `last` and writes its own number there (so a write left over
    // from a failed attempt shows in the next read); event 25 also writes `x25`, then fails
    // its batch.
    let text: String = (0..60)
        .map(|i| {
            let ops = if i == 25 {
                format!(r#"[["get","last"],["set","last","{i}"],["set","x25","1"],["fail"]]"#)
            } else {
                format!(r#"[["get","last"],["set","last","{i}"]]"#)
            };
            format!("{{\"key\":\"k{}\",\"ts\":{i},\"value\":{ops}}}\n", i % 9)
        })
        .collect();
    fs::write(dir.path().join("in.jsonl"), &text)?;
    let model = ("state-model", "{}");
    let mut outputs = Vec::new();
    for n in ["1", "3"] {
        let store = format!("file:{}", dir.path().join(format!("store-{n}")).display());
        let dead = dir.path().join(format!("dead-{n}.jsonl"));
        let out = run(
            dir.path(),
            model,
            "in.jsonl",
            &format!("out-{n}.jsonl"),
            &[
                "--parallelism",
                n,
                "--on-error",
                "skip",
                "--dead-letter",
                &dead.display().to_string(),
                "--store",
                &store,
            ],
        )?;
        // The failing event alone is set aside; its write is not kept in any instance.
        let dead = fs::read_to_string(&dead)?;
        assert_eq!(dead.lines().count(), 1, "{dead}");
        assert!(dead.contains("\"ts\":25"), "{dead}");
        let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
        let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
        assert_eq!(doc["operators"][0]["keys"], 9, "{n}: {doc:.400}");
        assert!(
            !doc.to_string().contains("x25"),
            "{n}: the failed event's write was kept"
        );
        outputs.push(out);
    }
    // Every event's read saw the write of the event before it of its key and none of a failed
    // attempt (the batch is retried one event at a time after the rollback), at 3 as at 1.
    assert_eq!(sorted_lines(&outputs[0]), sorted_lines(&outputs[1]));
    assert_eq!(outputs[0].lines().count(), 59 * 2);
    Ok(())
}
