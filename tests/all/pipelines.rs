//! Pipeline files: chaining, isolated state per operator in one checkpoint, and clear errors.

use std::fs;

use anyhow::Result;
use cairn_tests::{repo_root, run_cairn, run_ok};

#[test]
fn example_pipeline_chains_operators_with_isolated_state_in_one_checkpoint() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = format!("file:{}", dir.path().join("ck").display());
    let root = repo_root();
    // The example file, pointed at this run's plugins instead of dist/.
    let pipeline = dir.path().join("pipeline.toml");
    let example = fs::read_to_string(root.join("examples/pipeline.toml"))?;
    assert!(example.contains("../dist/plugins/"));
    let plugins = format!("{}/", cairn_tests::plugin_dir().display());
    fs::write(&pipeline, example.replace("../dist/plugins/", &plugins))?;
    let input = root.join("examples/sensors.jsonl");
    let out = run_ok(&[
        "run",
        "--pipeline",
        pipeline.to_str().unwrap_or_default(),
        "--input",
        input.to_str().unwrap_or_default(),
        "--output",
        "-",
        "--store",
        &store,
    ])?;
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 8);
    // sensor-1's 4th event: counts 1, 2, 3, 4 -> sum 10, avg 2.5.
    let last = &lines[7];
    assert_eq!(last["key"], "sensor-1");
    assert_eq!(last["value"]["count"], 4);
    assert_eq!(last["value"]["sum"], 10.0);
    assert_eq!(last["value"]["avg"], 2.5);
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["host"]["job"], "sensors");
    let ops = doc["operators"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        (ops[0]["name"].as_str(), ops[1]["name"].as_str()),
        (Some("counter"), Some("count-stats"))
    );
    // Each operator sees only its own keys, each in the scope of its stream key.
    assert_eq!(ops[0]["state"]["8:sensor-1/count"], 4);
    assert!(ops[0]["state"].get("8:sensor-1/agg").is_none());
    assert_eq!(ops[1]["state"]["8:sensor-1/agg"]["count"], 4);
    assert!(ops[1]["state"].get("8:sensor-1/count").is_none());
    Ok(())
}

fn pipeline_error(toml: &str) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("p.toml");
    fs::write(
        &p,
        toml.replace("@PLUGINS", &cairn_tests::plugin_dir().display().to_string()),
    )?;
    let out = run_cairn(
        &[
            "run",
            "--pipeline",
            p.to_str().unwrap_or_default(),
            "--input",
            "-",
            "--output",
            "-",
        ],
        b"",
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(p.to_str().unwrap_or_default()),
        "the error must name the file: {err}"
    );
    Ok(err)
}

#[test]
fn bad_pipeline_files_are_clear_errors() -> Result<()> {
    let e = pipeline_error(
        "[[operators]]\nplugin = \"@PLUGINS/counter.wasm\"\n[[operators]]\nplugin = \"@PLUGINS/counter.wasm\"\n",
    )?;
    assert!(e.contains("two operators are named `counter`"), "{e}");
    let e = pipeline_error("name = \"x\"\n")?;
    assert!(e.contains("operators"), "{e}");
    let e = pipeline_error("[[operators]]\nplugin = \"@PLUGINS/nope.wasm\"\n")?;
    assert!(
        e.contains("operator `nope`") && e.contains("does not exist"),
        "{e}"
    );
    let e = pipeline_error("[[operators]]\nplugin = \"@PLUGINS/counter.wasm\"\ntimeout = \"soon\"\n")?;
    assert!(e.contains("operator `counter`") && e.contains("`timeout`"), "{e}");
    let e = pipeline_error("[[operators]]\nplugin = \"@PLUGINS/counter.wasm\"\ncolour = 1\n")?;
    assert!(e.contains("colour"), "{e}");
    Ok(())
}
