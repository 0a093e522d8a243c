//! Operators in Python (and the other SDKs' languages): built from `plugins/<lang>/` with
//! `cairn build`, their output byte-identical to the Rust operators'; errors reach the error
//! policy as they do for Rust; exactly-once under SIGKILL; `cairn new` → `cairn build` → `cairn run`;
//! and a component that keeps its state through wasi:keyvalue.

use std::fs;
use std::path::Path;

use anyhow::Result;
use cairn_tests::guests::{build, guest_plugin};
use cairn_tests::{
    cairn, expected_counts, input_failing_at, kills, plugin, run_args, run_cairn, run_ok,
    sigkill_exactly_once, strs, synthetic_input,
};

/// The languages with an SDK and `plugins/<lang>/{counter,window}`.
const LANGS: [&str; 3] = ["python", "c", "js"];

const WINDOW: &str =
    r#"{"field":"t","size_ms":10000,"slide_ms":5000,"out_of_order_ms":1000,"allowed_lateness_ms":500}"#;

/// Events over `keys` keys, out of order by up to 3 s, whose field `t` is an integer, a
/// decimal with up to 3 places, a numeric string or null.
fn window_input(n: usize, keys: u64) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = String::new();
    for i in 0..n {
        let key = next() % keys;
        let ts = 1_700_000_000_000 + i as i64 * 7 - (next() % 3000) as i64;
        let r = next();
        let t = match r % 4 {
            0 => format!("{}", (r >> 8) % 150) + "",
            1 => format!("{}.{:03}", ((r >> 8) % 20) as i64 - 10, (r >> 20) % 1000),
            2 => format!("\"{}\"", (r >> 8) % 9),
            _ => "null".into(),
        };
        s.push_str(&format!(
            "{{\"key\":\"k{key}\",\"ts\":{ts},\"value\":{{\"t\":{t}}}}}\n"
        ));
    }
    s
}

pub(crate) fn run_to_string(plugin: &Path, input: &Path, dir: &Path, extra: &[&str]) -> Result<String> {
    let out = dir.join(format!(
        "{}.out",
        plugin.file_stem().unwrap_or_default().to_string_lossy()
    ));
    run_ok(&strs(&run_args(plugin, input, &out, extra)))?;
    Ok(fs::read_to_string(out)?)
}

#[test]
fn counters_in_every_language_match_the_rust_counter_byte_for_byte() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = synthetic_input(100_000, 1000, 50);
    let input = dir.path().join("in.jsonl");
    fs::write(&input, &text)?;
    let rust = run_to_string(&plugin("counter"), &input, dir.path(), &[])?;
    assert_eq!(rust, expected_counts(&text)?);
    for lang in LANGS {
        let got = run_to_string(&guest_plugin(lang, "counter")?, &input, dir.path(), &[])?;
        assert!(
            got == rust,
            "the {lang} counter's output differs from the Rust counter's"
        );
    }
    Ok(())
}

#[test]
fn windows_in_every_language_match_the_rust_window_byte_for_byte() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    fs::write(&input, window_input(100_000, 500))?;
    let args = ["--config", WINDOW];
    let rust = run_to_string(&plugin("window"), &input, dir.path(), &args)?;
    assert!(rust.lines().count() > 50_000, "windows were emitted");
    assert!(
        rust.contains("e-") || rust.contains('.'),
        "fractional figures were written"
    );
    for lang in LANGS {
        let got = run_to_string(&guest_plugin(lang, "window")?, &input, dir.path(), &args)?;
        if got != rust {
            let first = got.lines().zip(rust.lines()).position(|(a, b)| a != b);
            panic!(
                "the {lang} window's output differs from the Rust window's at line {first:?}: {:?} vs {:?}",
                first.and_then(|i| got.lines().nth(i)),
                first.and_then(|i| rust.lines().nth(i))
            );
        }
    }
    Ok(())
}

const PICKY_PY: &str = r#"
import cairn_operator as cairn
from cairn_operator.exports import *  # noqa: F401,F403


@cairn.operator
class Picky:
    prefetch = ("count",)  # read for the whole batch in one call

    def on_event(self, event, out):
        n = cairn.state.incr("count")
        v = event.json()
        if v == "boom":
            raise ValueError(f"refusing {event.key} at {event.ts}")
        if v == "set":
            out.emit_json(event.key, event.ts, {"s": {1, 2}})  # JSON has no sets
            return
        if v == "big":
            try:
                cairn.state.set("big", b"x" * 2048)
            except cairn.QuotaExceeded as e:
                cairn.state.set_int("count", n - 1)
                out.emit_json(event.key, event.ts, {"refused": e.kind})
                return
        out.emit_json(event.key, event.ts, {"count": n})
"#;

/// A one-file project `name` in `lang` (its source written as `file`), built with `cairn build`.
pub(crate) fn build_project(
    dir: &Path,
    name: &str,
    lang: &str,
    file: &str,
    source: &str,
) -> Result<std::path::PathBuf> {
    let project = dir.join(name);
    fs::create_dir_all(&project)?;
    fs::write(project.join(file), source)?;
    fs::write(
        project.join("cairn.toml"),
        format!("[operator]\nname = \"{name}\"\nlang = \"{lang}\"\n"),
    )?;
    build(&project, &dir.join(format!("{name}.wasm")))
}

#[test]
fn a_python_operator_built_for_the_bulk_world_still_runs_alike() -> Result<()> {
    // Projects whose cairn.toml names world `operator-bulk` (WIT 0.2.1, lists of tuples) keep
    // working with the SDK that now builds `operator-pickled`: same dead letters, same
    // refusal from the call that made it.
    let dir = tempfile::tempdir()?;
    let project = dir.path().join("picky-bulk");
    fs::create_dir_all(&project)?;
    fs::write(project.join("app.py"), PICKY_PY)?;
    fs::write(
        project.join("cairn.toml"),
        "[operator]\nname = \"picky-bulk\"\nlang = \"python\"\n[build]\nsteps = [[\"componentize-py\", \"-d\", \"{wit}\", \"-w\", \"operator-bulk\", \"componentize\", \"app\", \"-p\", \".\", \"-p\", \"{sdk}\", \"-o\", \"{out}\"]]\noutput = \"build/picky-bulk.wasm\"\n",
    )?;
    let wasm = build(&project, &dir.path().join("picky-bulk.wasm"))?;
    let exports = run_ok(&["inspect", &wasm.display().to_string()])?;
    let exports = String::from_utf8_lossy(&exports.stdout);
    assert!(
        exports.contains("cairn:operator/bulk-operator@") && !exports.contains("pickled-operator"),
        "{exports}"
    );
    let (_, dead) = boom_twice_under_skip(&wasm, dir.path())?;
    assert_eq!(dead.lines().count(), 2);
    assert_eq!(
        big_under_a_small_quota(&wasm, dir.path(), 3)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"refused\":\"quota-exceeded\"}}\n{\"key\":\"a\",\"ts\":3,\"value\":{\"count\":2}}\n"
    );
    Ok(())
}

/// Runs `wasm` (a counter that fails on `"boom"`) under `--on-error skip` over 1000 events of
/// which the 300th and the 700th are `"boom"`: checks that the run succeeded and that the
/// counts are those of the good events (the failing events' writes were rolled back); returns
/// the input's path and the dead-letter file's text.
fn boom_twice_under_skip(wasm: &Path, dir: &Path) -> Result<(std::path::PathBuf, String)> {
    let (input, good) = input_failing_at(1000, &[(300, "\"boom\""), (700, "\"boom\"")]);
    let in_path = dir.join("in.jsonl");
    fs::write(&in_path, &input)?;
    let out_path = dir.join("out.jsonl");
    let dead = dir.join("dead.jsonl");
    let dead_arg = dead.display().to_string();
    let extra = [
        "--on-error",
        "skip",
        "--dead-letter",
        &dead_arg,
        "--batch-size",
        "64",
    ];
    let out = run_cairn(&strs(&run_args(wasm, &in_path, &out_path, &extra)), b"")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_to_string(&out_path)?, expected_counts(&good)?);
    Ok((in_path, fs::read_to_string(&dead)?))
}

/// The output of `wasm` with `--max-value-bytes 1KiB` over the first `n` of: key `a` value 1,
/// key `a` value `"big"` (the operator then writes 2 KiB), key `a` value 1.
fn big_under_a_small_quota(wasm: &Path, dir: &Path, n: usize) -> Result<String> {
    let lines = [
        "{\"key\":\"a\",\"ts\":1,\"value\":1}\n",
        "{\"key\":\"a\",\"ts\":2,\"value\":\"big\"}\n",
        "{\"key\":\"a\",\"ts\":3,\"value\":1}\n",
    ];
    let big = dir.join("big.jsonl");
    fs::write(&big, lines[..n].concat())?;
    let out_path = dir.join("big.out");
    let extra = ["--max-value-bytes", "1KiB"];
    let out = run_cairn(&strs(&run_args(wasm, &big, &out_path, &extra)), b"")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(fs::read_to_string(out_path)?)
}

#[test]
fn a_python_exception_reaches_the_error_policy_and_a_refusal_is_an_exception() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let wasm = build_project(dir.path(), "picky", "python", "app.py", PICKY_PY)?;
    let (in_path, dead) = boom_twice_under_skip(&wasm, dir.path())?;
    let dead: Vec<serde_json::Value> = dead.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0]["event"]["ts"].clone(), dead[1]["event"]["ts"].clone()),
        (300.into(), 700.into())
    );
    let error = dead[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ValueError: refusing k6 at 300")
            && error.contains("Traceback")
            && error.contains("app.py"),
        "the error carries the exception and its traceback: {error}"
    );

    // Under the fail policy the batch is rolled back and the run stops with the message.
    let store = format!("file:{}", dir.path().join("ck").display());
    let extra = ["--store", store.as_str(), "--batch-size", "10"];
    let out = run_cairn(
        &strs(&run_args(&wasm, &in_path, &dir.path().join("o2.jsonl"), &extra)),
        b"",
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ValueError: refusing k6 at 300") && err.contains("Traceback"),
        "{err}"
    );
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["host"]["events_in"], 290);

    // A value JSON cannot hold, which the host finds when it writes the JSON (WIT 0.2.2), is
    // that event's error under the policy, as an exception would be.
    let sets = dir.path().join("sets.jsonl");
    fs::write(
        &sets,
        "{\"key\":\"a\",\"ts\":1,\"value\":1}\n{\"key\":\"a\",\"ts\":2,\"value\":\"set\"}\n{\"key\":\"a\",\"ts\":3,\"value\":1}\n",
    )?;
    let dead_sets = dir.path().join("dead-sets.jsonl");
    let extra = [
        "--on-error",
        "skip",
        "--dead-letter",
        dead_sets.to_str().unwrap_or_default(),
    ];
    let out_sets = dir.path().join("out-sets.jsonl");
    let out = run_cairn(&strs(&run_args(&wasm, &sets, &out_sets, &extra)), b"")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        fs::read_to_string(&out_sets)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":3,\"value\":{\"count\":2}}\n"
    );
    let dead = fs::read_to_string(&dead_sets)?;
    assert!(
        dead.lines().count() == 1
            && dead.contains("\"ts\":2")
            && dead.contains("a set is not JSON serializable"),
        "{dead}"
    );

    // A refused write is the SDK's exception, which the operator may handle; the SDK holds
    // a batch's writes back, yet the refusal comes from the call that made it.
    assert_eq!(
        big_under_a_small_quota(&wasm, dir.path(), 3)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"refused\":\"quota-exceeded\"}}\n{\"key\":\"a\",\"ts\":3,\"value\":{\"count\":2}}\n"
    );
    outgrowing_max_keys(&wasm, dir.path())
}

/// Runs `wasm` (a counter) over 5,000 events on 1,000 keys with `--max-keys 100`: the job
/// fails with the quota named, whichever write (held back or not) reaches it.
fn outgrowing_max_keys(wasm: &Path, dir: &Path) -> Result<()> {
    let many = dir.join("many.jsonl");
    fs::write(&many, synthetic_input(5_000, 1000, 0))?;
    let out = run_cairn(
        &strs(&run_args(
            wasm,
            &many,
            &dir.join("o4.jsonl"),
            &["--max-keys", "100"],
        )),
        b"",
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quota-exceeded") && err.contains("max-keys = 100"),
        "{err}"
    );
    Ok(())
}

const PICKY_C: &str = r#"
#include <string.h>
#include "cairn_operator.h"

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    int64_t n;
    cairn_status s = cairn_incr(CAIRN_KEY, "count", 1, &n);
    if (s) return s;
    if (ev->value.len == 6 && memcmp(ev->value.ptr, "\"boom\"", 6) == 0)
        return cairn_fail("refusing %.*s at %lld", (int)ev->key.len, ev->key.ptr, (long long)ev->ts);
    if (ev->value.len == 5 && memcmp(ev->value.ptr, "\"big\"", 5) == 0) {
        static char big[2048];
        s = cairn_set(CAIRN_KEY, "big", big, sizeof big);
        if (s == CAIRN_QUOTA_EXCEEDED) {
            cairn_set_i64(CAIRN_KEY, "count", n - 1);
            return cairn_emit_str(out, ev->key, ev->ts, "{\"refused\":\"quota-exceeded\"}");
        }
        if (s) return s;
    }
    char json[40] = "{\"count\":";
    size_t len = 9 + cairn_fmt_i64(json + 9, n);
    json[len++] = '}';
    return cairn_emit(out, ev->key, ev->ts, (cairn_str){json, len});
}

CAIRN_OPERATOR(.prefetch = (const char *const[]){"count", NULL}, .on_event = on_event);
"#;

#[test]
fn a_c_error_status_reaches_the_error_policy_and_a_refusal_is_a_status() -> Result<()> {
    // The C SDK holds a batch's writes back; a refusal must still come back from the call
    // that made it, and a failed batch must leave nothing.
    let dir = tempfile::tempdir()?;
    let wasm = build_project(dir.path(), "picky-c", "c", "operator.c", PICKY_C)?;
    let (_, dead) = boom_twice_under_skip(&wasm, dir.path())?;
    assert_eq!(dead.lines().count(), 2, "{dead}");
    assert!(
        dead.contains("refusing k6 at 300") && dead.contains("refusing k0 at 700"),
        "{dead}"
    );

    assert_eq!(
        big_under_a_small_quota(&wasm, dir.path(), 3)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"refused\":\"quota-exceeded\"}}\n{\"key\":\"a\",\"ts\":3,\"value\":{\"count\":2}}\n"
    );
    outgrowing_max_keys(&wasm, dir.path())
}

const PICKY_JS: &str = r#"
cairn.operator(
  class Picky {
    onEvent(event, out) {
      const n = cairn.state.incr("count");
      const v = event.json();
      if (v === "boom") throw new RangeError(`refusing ${event.key} at ${event.ts}`);
      if (v === "big") {
        try {
          cairn.state.set("big", new Uint8Array(2048));
        } catch (e) {
          if (!(e instanceof cairn.StateError)) throw e;
          cairn.state.set("count", String(n - 1));
          out.emitJson(event.key, event.ts, { refused: e.kind });
          return;
        }
      }
      out.emitJson(event.key, event.ts, { count: n });
    }
  },
);
"#;

#[test]
fn a_js_error_reaches_the_error_policy_and_a_refusal_is_a_state_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let wasm = build_project(dir.path(), "picky-js", "js", "app.js", PICKY_JS)?;
    let (_, dead) = boom_twice_under_skip(&wasm, dir.path())?;
    assert_eq!(dead.lines().count(), 2, "{dead}");
    assert!(
        dead.contains("RangeError: refusing k6 at 300") && dead.contains("refusing k0 at 700"),
        "the error carries the JS error: {dead}"
    );
    assert_eq!(
        big_under_a_small_quota(&wasm, dir.path(), 3)?,
        "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"refused\":\"quota-exceeded\"}}\n{\"key\":\"a\",\"ts\":3,\"value\":{\"count\":2}}\n"
    );
    Ok(())
}

#[test]
fn a_python_counter_killed_at_random_moments_gives_identical_output() -> Result<()> {
    let wasm = guest_plugin("python", "counter")?;
    let input = synthetic_input(30_000, 300, 0);
    let wasm = wasm.display().to_string();
    let reference = sigkill_exactly_once(
        &["--plugin", &wasm, "--batch-size", "64"],
        &input,
        &["--checkpoint-every", "500"],
        kills(4),
        2,
    )?;
    assert_eq!(reference, expected_counts(&input)?);
    Ok(())
}

#[test]
fn cairn_new_then_build_then_run_in_every_language() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    fs::write(
        &input,
        "{\"key\":\"a\",\"ts\":1,\"value\":{}}\n{\"key\":\"a\",\"ts\":2,\"value\":{}}\n",
    )?;
    for lang in LANGS {
        let name = format!("hello-{lang}");
        let made = cairn()
            .args([
                "new",
                "--lang",
                lang,
                &name,
                "--dir",
                &dir.path().display().to_string(),
            ])
            .output()?;
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let project = dir.path().join(&name);
        assert!(project.join("cairn.toml").is_file());
        let built = cairn().args(["build", &project.display().to_string()]).output()?;
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let wasm = String::from_utf8(built.stdout)?
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        assert!(wasm.ends_with(&format!("build/{name}.wasm")), "{wasm}");
        // The scaffold's own test runs under the language's native runner.
        let native_test = match lang {
            "python" => Some((
                "1 passed",
                std::process::Command::new("python")
                    .args(["-m", "pytest", "-q"])
                    .env("PYTHONPATH", project.join(".cairn/sdk"))
                    .current_dir(&project)
                    .output()?,
            )),
            "js" => Some((
                "# pass 1",
                std::process::Command::new("node")
                    .arg("--test")
                    .current_dir(&project)
                    .output()?,
            )),
            _ => None,
        };
        if let Some((passed, t)) = native_test {
            assert!(
                t.status.success() && String::from_utf8_lossy(&t.stdout).contains(passed),
                "{lang}: {}{}",
                String::from_utf8_lossy(&t.stdout),
                String::from_utf8_lossy(&t.stderr)
            );
        }
        let out = dir.path().join(format!("{lang}.out"));
        run_ok(&strs(&run_args(Path::new(&wasm), &input, &out, &[])))?;
        assert_eq!(
            fs::read_to_string(&out)?,
            "{\"key\":\"a\",\"ts\":1,\"value\":{\"count\":1}}\n{\"key\":\"a\",\"ts\":2,\"value\":{\"count\":2}}\n",
            "{lang}"
        );
    }
    Ok(())
}

#[test]
fn a_missing_toolchain_is_named_with_its_install_command() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let made = cairn()
        .args([
            "new",
            "--lang",
            "python",
            "op",
            "--dir",
            &dir.path().display().to_string(),
        ])
        .output()?;
    assert!(made.status.success());
    let out = cairn()
        .args(["build", &dir.path().join("op").display().to_string()])
        .env("PATH", "/nonexistent")
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`componentize-py` was not found on PATH")
            && err.contains("pip install componentize-py==0.25.1"),
        "{err}"
    );
    assert!(
        !dir.path().join("op/build").exists(),
        "nothing was built or installed"
    );
    Ok(())
}

#[test]
fn a_wasi_keyvalue_operator_counts_like_the_counter_and_is_exactly_once() -> Result<()> {
    // kv-counter keeps its counts through wasi:keyvalue@0.2.0-draft2 (bucket "default"),
    // kv-counter-draft (the same source) through @0.2.0-draft.
    let dir = tempfile::tempdir()?;
    let text = synthetic_input(100_000, 1000, 0);
    let input = dir.path().join("in.jsonl");
    fs::write(&input, &text)?;
    let got = run_to_string(&plugin("kv-counter"), &input, dir.path(), &[])?;
    assert!(
        got == expected_counts(&text)?,
        "kv-counter's output differs from the counter's"
    );
    let wasm = plugin("kv-counter").display().to_string();
    let small = synthetic_input(20_000, 200, 0);
    let reference = sigkill_exactly_once(
        &["--plugin", &wasm, "--batch-size", "64"],
        &small,
        &["--checkpoint-every", "500"],
        kills(4),
        2,
    )?;
    assert_eq!(reference, expected_counts(&small)?);

    // The same operator built against wasi:keyvalue@0.2.0-draft (wasmtime-wasi-keyvalue's).
    let got = run_to_string(&plugin("kv-counter-draft"), &input, dir.path(), &[])?;
    assert!(
        got == expected_counts(&text)?,
        "kv-counter-draft's output differs from the counter's"
    );
    let wasm = plugin("kv-counter-draft").display().to_string();
    let reference = sigkill_exactly_once(
        &["--plugin", &wasm, "--batch-size", "64"],
        &small,
        &["--checkpoint-every", "500"],
        kills(2),
        2,
    )?;
    assert_eq!(reference, expected_counts(&small)?);
    Ok(())
}
