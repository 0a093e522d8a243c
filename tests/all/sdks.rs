//! The SDKs as a whole: one conformance probe (the same scripted state calls, errors and a
//! timer) built in every language with an SDK and observing the same, and the SDKs packaged
//! as their ecosystems expect (the Python wheel and the npm package are tested by their own
//! suites under `guest-sdk/`).

use std::fs;

use anyhow::Result;
use cairn_tests::repo_root;

use crate::languages::{build_project, run_to_string};

/// The conformance probe's input: state calls in the event's scope, another key's and the
/// operator-wide one, a failing event, a timer (`tests/conformance/`).
const PROBE_INPUT: &str = r#"{"key":"a","ts":1,"value":{"op":"put","name":"x","v":"1"}}
{"key":"a","ts":2,"value":{"op":"put","name":"x","v":"2"}}
{"key":"a","ts":3,"value":{"op":"put","name":"y","v":"3"}}
{"key":"a","ts":4,"value":{"op":"keys"}}
{"key":"a","ts":5,"value":{"op":"get","name":"x"}}
{"key":"a","ts":6,"value":{"op":"del","name":"x"}}
{"key":"a","ts":7,"value":{"op":"del","name":"x"}}
{"key":"a","ts":8,"value":{"op":"keys"}}
{"key":"b","ts":9,"value":{"op":"get","name":"y"}}
{"key":"b","ts":10,"value":{"op":"other","target":"a","name":"z","v":"9"}}
{"key":"a","ts":11,"value":{"op":"keys"}}
{"key":"c","ts":12,"value":{"op":"global"}}
{"key":"d","ts":13,"value":{"op":"global"}}
{"key":"a","ts":14,"value":{"op":"fail"}}
{"key":"a","ts":15,"value":{"op":"get","name":"y"}}
{"key":"e","ts":16,"value":{"op":"put","name":"y","v":"7"}}
{"key":"e","ts":17,"value":{"op":"timer","at":20}}
"#;

/// What every SDK's probe must emit for [`PROBE_INPUT`].
const PROBE_OUTPUT: &str = r#"{"key":"a","ts":1,"value":{"had":false}}
{"key":"a","ts":2,"value":{"had":true}}
{"key":"a","ts":3,"value":{"had":false}}
{"key":"a","ts":4,"value":{"keys":["x","y"]}}
{"key":"a","ts":5,"value":{"value":"2"}}
{"key":"a","ts":6,"value":{"removed":true,"exists":false}}
{"key":"a","ts":7,"value":{"removed":false,"exists":false}}
{"key":"a","ts":8,"value":{"keys":["y"]}}
{"key":"b","ts":9,"value":{"value":null}}
{"key":"b","ts":10,"value":{"value":"9"}}
{"key":"a","ts":11,"value":{"keys":["y","z"]}}
{"key":"c","ts":12,"value":{"total":1}}
{"key":"d","ts":13,"value":{"total":2}}
{"key":"a","ts":15,"value":{"value":"3"}}
{"key":"e","ts":16,"value":{"had":false}}
{"key":"e","ts":17,"value":{"registered":20}}
{"key":"e","ts":20,"value":{"fired":20,"y":7}}
"#;

#[test]
fn the_conformance_probe_observes_the_same_state_in_every_sdk() -> Result<()> {
    // The same scripted state calls through each SDK (Python's and C's with their writes held
    // back and their reads cached), in batches of 4 so that calls span batch boundaries and a
    // failing event's batch is rolled back.
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("probe.jsonl");
    fs::write(&input, PROBE_INPUT)?;
    for (lang, file, source) in [
        ("python", "app.py", include_str!("../conformance/probe.py")),
        ("js", "app.js", include_str!("../conformance/probe.js")),
        ("c", "operator.c", include_str!("../conformance/probe.c")),
    ] {
        let wasm = build_project(dir.path(), &format!("probe-{lang}"), lang, file, source)?;
        let dead = dir.path().join(format!("{lang}.dead"));
        let dead_arg = dead.display().to_string();
        let extra = [
            "--batch-size",
            "4",
            "--on-error",
            "skip",
            "--dead-letter",
            &dead_arg,
        ];
        let got = run_to_string(&wasm, &input, dir.path(), &extra)?;
        assert_eq!(got, PROBE_OUTPUT, "{lang}");
        let dead = fs::read_to_string(&dead)?;
        assert!(
            dead.lines().count() == 1 && dead.contains("\"ts\":14") && dead.contains("asked to fail"),
            "{lang}: {dead}"
        );
    }
    Ok(())
}

#[test]
fn the_rust_sdk_packages_as_a_crate_that_builds_from_its_package() -> Result<()> {
    // `cargo package` verifies by building the packaged crates on their own: cairn-sdk's WIT
    // must be inside it. Built in a target dir that later runs reuse.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("package-check");
    // cairn-sdk is verified against the cairn-codec just packaged, which cargo takes for a
    // registry crate: a registry crate of the same version unpacked (under
    // `$CARGO_HOME/registry/src`) or built by an earlier run is taken as it is, not unpacked
    // and built from the new source. Forget both.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let mut stale: Vec<std::path::PathBuf> =
        vec![target.join("debug/.fingerprint"), target.join("debug/deps")];
    stale.extend(
        fs::read_dir(cargo_home.join("registry/src"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path()),
    );
    for dir in stale {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if [
                "cairn-codec-",
                "cairn_codec-",
                "libcairn_codec-",
                "cairn-sdk-",
                "cairn_sdk-",
                "libcairn_sdk-",
            ]
            .iter()
            .any(|p| name.starts_with(p))
            {
                let path = entry.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }
    let out = std::process::Command::new("cargo")
        .args(["package", "-p", "cairn-codec", "-p", "cairn-sdk", "--allow-dirty"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo_root())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Verifying cairn-sdk"), "{err}");
    let listed = std::process::Command::new("cargo")
        .args(["package", "-p", "cairn-sdk", "--list", "--allow-dirty"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo_root())
        .output()?;
    let files = String::from_utf8(listed.stdout)?;
    assert!(files.lines().any(|l| l == "wit/operator.wit"), "{files}");
    Ok(())
}

/// Write `files` into `project`, run `cairn build` on it, expect it to fail: its stderr.
fn build_error(project: &std::path::Path, files: &[(&str, &str)]) -> Result<String> {
    fs::create_dir_all(project)?;
    for (name, text) in files {
        fs::write(project.join(name), text)?;
    }
    let out = cairn_tests::cairn()
        .args(["build", &project.display().to_string()])
        .output()?;
    assert!(!out.status.success(), "the build should fail");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_python_project_naming_only_some_exports_is_told_how_to_fix_it() -> Result<()> {
    // Projects made before WIT 0.2.1 import `Operator, TimerHandler` only; the pickled
    // world also exports `PickledOperator`, and the build error says what to write instead.
    let dir = tempfile::tempdir()?;
    let err = build_error(
        &dir.path().join("old"),
        &[
            (
                "app.py",
                "import cairn_operator as cairn\nfrom cairn_operator.exports import Operator, TimerHandler  # noqa: F401\n\n\n@cairn.operator\nclass C:\n    def on_event(self, event, out):\n        pass\n",
            ),
            ("cairn.toml", "[operator]\nname = \"old\"\nlang = \"python\"\n"),
        ],
    )?;
    assert!(
        err.contains("has no attribute 'PickledOperator'")
            && err.contains("write `from cairn_operator.exports import *` in app.py"),
        "{err}"
    );
    Ok(())
}

#[test]
fn componentizing_a_file_that_is_not_a_core_module_names_it_and_the_remedy() -> Result<()> {
    // `cairn componentize` (a C project's last build step) on a file clang did not make.
    let dir = tempfile::tempdir()?;
    let core = dir.path().join("core.wasm");
    fs::write(&core, b"not wasm")?;
    let out_file = dir.path().join("op.wasm");
    let out = cairn_tests::cairn()
        .args(["componentize", &core.display().to_string(), "-o"])
        .arg(&out_file)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("making a component of {}", core.display()))
            && err.contains("_component_type.o"),
        "{err}"
    );
    assert!(!out_file.exists());

    // The same as a build step, misspelt: the manifest is named with what clap says.
    let err = build_error(
        &dir.path().join("bad"),
        &[(
            "cairn.toml",
            "[operator]\nname = \"bad\"\nlang = \"c\"\n[build]\nsteps = [[\"{cairn}\", \"componentise\", \"x.wasm\"]]\noutput = \"x.wasm\"\n",
        )],
    )?;
    assert!(
        err.contains("is not a valid cairn.toml")
            && err.contains("componentise")
            && err.contains("componentize"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_js_project_building_the_old_world_is_told_how_to_fix_it() -> Result<()> {
    // Projects made before the JS speed path name world `operator-timers` in cairn.toml; the
    // SDK now imports `packed-state`, and the build error says what to change.
    let dir = tempfile::tempdir()?;
    let steps = r#"[["componentize-js", "{dir}/bundle.js", "--wit", "{wit}", "--world-name", "operator-timers", "-d", "http", "fetch-event", "-o", "{out}"]]"#;
    let err = build_error(
        &dir.path().join("oldjs"),
        &[
            ("app.js", "cairn.operator(class { onEvent(event, out) {} });\n"),
            (
                "cairn.toml",
                &format!(
                    "[operator]\nname = \"oldjs\"\nlang = \"js\"\n[build]\nsteps = {steps}\noutput = \"build/oldjs.wasm\"\n"
                ),
            ),
        ],
    )?;
    assert!(
        err.contains(&format!(
            "cairn:operator/packed-state@{}",
            cairn::plugin::CONTRACT_VERSION
        )) && err.contains("write `operator-packed` there, or delete the `steps` line"),
        "{err}"
    );
    Ok(())
}
