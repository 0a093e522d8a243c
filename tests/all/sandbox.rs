//! Hostile plugins: whatever a plugin does, the host lives, the failed batch is rolled back,
//! the error names the plugin and the limit, and a well-behaved operator in the same process
//! is unaffected.

use std::fs;
use std::time::Duration;

use anyhow::Result;
use cairn::{CallError, Engine, EngineOptions, Event, Limits, OperatorInstance, Plugin};
use cairn_tests::{expected_counts, input_failing_at, plugin, run_args, run_cairn, run_ok, strs};

fn ev(key: &str, ts: i64, value: &str) -> Event {
    Event {
        key: key.into(),
        ts,
        value: value.as_bytes().to_vec(),
    }
}

fn state_of(op: &OperatorInstance) -> Vec<(String, String)> {
    op.state()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// A counter in the same engine; checks it keeps counting right after each hostile act.
struct Witness {
    op: OperatorInstance,
    n: u64,
}

impl Witness {
    fn new(engine: &Engine) -> Result<Self> {
        let op = Plugin::load(engine, plugin("counter"))?
            .operator()
            .name("witness")
            .build()?;
        Ok(Self { op, n: 0 })
    }

    fn check(&mut self) -> Result<()> {
        self.n += 1;
        let out = self.op.process(&[ev("w", self.n as i64, "1")])?;
        assert_eq!(out[0].value, format!("{{\"count\":{}}}", self.n).into_bytes());
        Ok(())
    }
}

/// Run `bad` on `plugin_name` with `limits` after a good batch; the bad batch must fail with
/// an error containing each of `needles`, leave the state as after the good batch, and the
/// operator must work again afterwards.
fn hostile(
    plugin_name: &str,
    limits: Limits,
    fuel: bool,
    bad: &[Event],
    needles: &[&str],
) -> Result<CallError> {
    let engine = Engine::with_options(EngineOptions { fuel })?;
    let mut witness = Witness::new(&engine)?;
    witness.check()?;
    let p = Plugin::load(&engine, plugin(plugin_name))?;
    let mut op = p.operator().limits(limits).build()?;
    op.process(&[ev("a", 1, "1"), ev("b", 2, "1")])?;
    let before = state_of(&op);
    let dirty_before = op.state().dirty_len();
    let err = op.process(bad).expect_err("the hostile batch must fail");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "expected {n:?} in: {msg}");
    }
    assert!(msg.contains(plugin_name), "the error must name the plugin: {msg}");
    assert_eq!(state_of(&op), before, "state must be rolled back");
    assert_eq!(
        op.state().dirty_len(),
        dirty_before,
        "dirty tracking must be rolled back"
    );
    witness.check()?;
    // The operator is usable again (a fresh instance, same state).
    let out = op.process(&[ev("a", 3, "1")])?;
    assert!(!out.is_empty());
    witness.check()?;
    Ok(err)
}

#[test]
fn infinite_loop_hits_the_deadline() -> Result<()> {
    let limits = Limits::default().with_timeout(Duration::from_millis(200));
    let e = hostile(
        "hostile-loop",
        limits,
        false,
        &[ev("a", 5, "1"), ev("c", 6, "\"loop\"")],
        &[
            "exceeded its time limit (timeout = 200ms)",
            "in `process`",
            "rolled back",
        ],
    )?;
    assert!(matches!(e, CallError::Timeout { .. }));
    Ok(())
}

#[test]
fn infinite_loop_runs_out_of_fuel() -> Result<()> {
    let limits = Limits::default().with_fuel(Some(5_000_000));
    let e = hostile(
        "hostile-loop",
        limits,
        true,
        &[ev("c", 6, "\"loop\"")],
        &["ran out of fuel (fuel = 5000000)"],
    )?;
    assert!(matches!(e, CallError::OutOfFuel { .. }));
    Ok(())
}

#[test]
fn memory_bomb_hits_the_memory_limit() -> Result<()> {
    let limits = Limits::default().with_memory_bytes(32 << 20);
    let e = hostile(
        "hostile-memory",
        limits,
        false,
        &[ev("a", 5, "1"), ev("c", 6, "\"grow\"")],
        &["exceeded its memory limit (memory-limit = 33554432 bytes)"],
    )?;
    assert!(matches!(e, CallError::Memory { .. }));
    Ok(())
}

#[test]
fn huge_output_hits_the_memory_limit() -> Result<()> {
    let limits = Limits::default().with_memory_bytes(64 << 20);
    hostile(
        "hostile-output",
        limits,
        false,
        &[ev("c", 6, "\"flood\"")],
        &["memory limit"],
    )?;
    Ok(())
}

#[test]
fn malformed_packed_output_is_refused_and_rolled_back() -> Result<()> {
    for (input, needle) in [
        (
            "\"garbage\"",
            "the event count at byte 0: is larger than the input can hold",
        ),
        ("\"badutf8\"", "an event key at byte 4: is not UTF-8"),
    ] {
        let e = hostile(
            "hostile-packed",
            Limits::default(),
            false,
            &[ev("c", 6, input)],
            &["returned a malformed packed batch", needle],
        )?;
        assert!(matches!(e, CallError::Guest { .. }), "{e:?}");
    }
    // Malformed packed state calls are answered with `state-error.invalid` (never a trap);
    // the plugin fails its batch with the answer.
    for (input, needle) in [
        (
            "\"badstate\"",
            "the write count at byte 0: is larger than the input can hold",
        ),
        ("\"badscope\"", "a scope at byte 4: is not UTF-8"),
        (
            "\"badtimers\"",
            "a timer's time at byte 22: runs past the end of the input\")); the whole timer was registered: false",
        ),
    ] {
        let e = hostile(
            "hostile-packed",
            Limits::default(),
            false,
            &[ev("c", 6, input)],
            &["Invalid", "malformed packed", needle],
        )?;
        assert!(matches!(e, CallError::Guest { .. }), "{e:?}");
    }
    Ok(())
}

#[test]
fn state_bomb_of_keys_hits_max_keys() -> Result<()> {
    let limits = Limits::default().with_state_quotas(1000, 1 << 30, 1 << 20);
    let e = hostile(
        "hostile-state",
        limits,
        false,
        &[ev("a", 5, "1"), ev("c", 6, "\"keys\"")],
        &["state quota max-keys = 1000 would be exceeded"],
    )?;
    assert!(matches!(e, CallError::Guest { .. }));
    Ok(())
}

#[test]
fn state_bomb_of_a_huge_value_hits_max_value_bytes() -> Result<()> {
    let limits = Limits::default().with_state_quotas(1000, 1 << 30, 1 << 20);
    hostile(
        "hostile-state",
        limits,
        false,
        &[ev("c", 6, "\"huge\"")],
        &["state quota max-value-bytes = 1048576 would be exceeded"],
    )?;
    let limits = Limits::default().with_state_quotas(1000, 4096, 1 << 30);
    hostile(
        "hostile-state",
        limits,
        false,
        &[ev("c", 6, "\"huge\"")],
        &["state quota max-state-bytes = 4096"],
    )?;
    Ok(())
}

#[test]
fn panic_after_writing_state_is_a_trap_and_rolls_back() -> Result<()> {
    let e = hostile(
        "hostile-panic",
        Limits::default(),
        false,
        &[ev("a", 5, "1"), ev("z", 6, "1"), ev("a", 7, "\"boom\"")],
        &["trapped in `process`"],
    )?;
    assert!(matches!(e, CallError::Trap { .. }));
    let e = hostile(
        "hostile-panic",
        Limits::default(),
        false,
        &[ev("a", 5, "1"), ev("a", 7, "\"fail\"")],
        &["failed in `process`: refusing event at ts 7"],
    )?;
    assert!(matches!(e, CallError::Guest { .. }));
    Ok(())
}

#[test]
fn a_plugin_has_no_ambient_authority() -> Result<()> {
    let engine = Engine::new()?;
    let mut op = Plugin::load(&engine, plugin("hostile-wasi"))?
        .operator()
        .build()?;
    // SAFETY-free: the host process itself has environment variables and arguments.
    assert!(std::env::vars().count() > 0);
    let out = op.process(&[ev("probe", 1, "null")])?;
    let v: serde_json::Value = serde_json::from_slice(&out[0].value)?;
    for what in ["file", "cwd_file", "dir", "write", "tcp", "dns", "udp"] {
        let s = v[what].as_str().unwrap_or_default();
        assert!(s.starts_with("denied"), "{what} must be denied, got {s:?}");
    }
    assert_eq!(v["env"], serde_json::json!([]), "no environment");
    assert_eq!(v["args"], serde_json::json!([]), "no arguments");
    assert_eq!(v["clock_secs"], 0, "the wall clock is frozen at zero");
    let stdin = v["stdin"].as_str().unwrap_or_default();
    assert!(
        stdin.starts_with("denied") || stdin == "ALLOWED: 0",
        "stdin must give nothing: {stdin}"
    );
    assert!(!std::path::Path::new("/tmp/cairn-escape").exists());
    Ok(())
}

#[test]
fn non_plugins_are_refused_with_clear_messages() -> Result<()> {
    let engine = Engine::new()?;
    let err = Plugin::load(&engine, plugin("other-world"))
        .expect_err("another world")
        .to_string();
    let world = format!("does not fit Cairn's world {}", cairn::plugin::WORLD);
    for n in [
        world.as_str(),
        "missing export `cairn:operator/operator@0.2.0` (0.2) or `init` (0.1)",
        "missing export `process`",
        "imports `example:other/clock@1.0.0`, which Cairn does not provide",
    ] {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    let dir = tempfile::tempdir()?;
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for (name, bytes, needle) in [
        ("random.wasm", random.as_slice(), "is not a WebAssembly file"),
        ("empty.wasm", &[][..], "is not a WebAssembly file"),
        (
            "core.wasm",
            &b"\0asm\x01\0\0\0"[..],
            "core WebAssembly module, not a component",
        ),
    ] {
        let p = dir.path().join(name);
        fs::write(&p, bytes)?;
        let err = Plugin::load(&engine, &p).expect_err("refused").to_string();
        assert!(err.contains(needle), "{name}: {err}");
    }
    Ok(())
}

#[test]
fn cli_on_error_skip_sends_failing_events_to_the_dead_letter_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (input, good) = input_failing_at(1000, &[(300, "\"boom\""), (700, "\"fail\"")]);
    let in_path = dir.path().join("in.jsonl");
    fs::write(&in_path, &input)?;
    let out_path = dir.path().join("out.jsonl");
    let dead_path = dir.path().join("dead.jsonl");
    let extra = [
        "--on-error",
        "skip",
        "--dead-letter",
        dead_path.to_str().unwrap_or_default(),
        "--batch-size",
        "64",
    ];
    let args = run_args(&plugin("hostile-panic"), &in_path, &out_path, &extra);
    let out = run_cairn(&strs(&args), b"")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The failing events' writes were rolled back, so the counts are those of the good events.
    assert_eq!(fs::read_to_string(&out_path)?, expected_counts(&good)?);
    let dead = fs::read_to_string(&dead_path)?;
    let lines: Vec<serde_json::Value> = dead.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"]["ts"], 300);
    assert!(lines[0]["error"].as_str().unwrap_or_default().contains("trapped"));
    assert_eq!(lines[1]["event"]["ts"], 700);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("refusing event at ts 700")
    );
    Ok(())
}

#[test]
fn cli_on_error_fail_stops_with_a_final_consistent_checkpoint() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut input = String::new();
    for i in 1..=100 {
        let value = if i == 50 { "\"boom\"" } else { "1" };
        input.push_str(&format!("{{\"key\":\"k\",\"ts\":{i},\"value\":{value}}}\n"));
    }
    let in_path = dir.path().join("in.jsonl");
    fs::write(&in_path, &input)?;
    let out_path = dir.path().join("out.jsonl");
    let store = format!("file:{}", dir.path().join("ck").display());
    let extra = ["--store", store.as_str(), "--batch-size", "10"];
    let args = run_args(&plugin("hostile-panic"), &in_path, &out_path, &extra);
    let out = run_cairn(&strs(&args), b"")?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plugin `hostile-panic` trapped in `process`"),
        "{err}"
    );
    // Batches 1-4 (events 1..=40) were done; the failing batch (41..=50) was rolled back.
    let written = fs::read_to_string(&out_path)?;
    assert_eq!(written.lines().count(), 40);
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["host"]["events_in"], 40);
    assert_eq!(doc["host"]["output_len"], written.len());
    // The count of key "k", in the scope of key "k".
    assert_eq!(doc["operators"][0]["state"]["1:k/k"], 40);
    Ok(())
}
