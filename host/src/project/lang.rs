//! The languages an operator is written in: their default build steps, the tools those need
//! and how to install them, the SDK files `cairn build` provides, and the project templates.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ProjectError, io};

/// The WIT this host runs; written into every project's `.cairn/wit/` at build time.
const WIT: &str = include_str!(concat!(
    "../../../wit/",
    cairn_codec::contract_version!(),
    "/operator.wit"
));

/// The Python SDK (package `cairn_operator`), built into the binary.
const PYTHON_SDK: [(&str, &str); 5] = [
    (
        "cairn_operator/__init__.py",
        include_str!("../../../guest-sdk/python/cairn_operator/__init__.py"),
    ),
    (
        "cairn_operator/_host.py",
        include_str!("../../../guest-sdk/python/cairn_operator/_host.py"),
    ),
    (
        "cairn_operator/_json.py",
        include_str!("../../../guest-sdk/python/cairn_operator/_json.py"),
    ),
    (
        "cairn_operator/exports.py",
        include_str!("../../../guest-sdk/python/cairn_operator/exports.py"),
    ),
    (
        "cairn_operator/testing.py",
        include_str!("../../../guest-sdk/python/cairn_operator/testing.py"),
    ),
];

/// The C SDK, built into the binary.
const C_SDK: [(&str, &str); 2] = [
    (
        "cairn_operator.h",
        include_str!("../../../guest-sdk/c/cairn_operator.h"),
    ),
    (
        "cairn_operator.c",
        include_str!("../../../guest-sdk/c/cairn_operator.c"),
    ),
];

/// The JavaScript SDK, built into the binary.
const JS_SDK: &str = include_str!("../../../guest-sdk/js/cairn-operator.js");

/// The JavaScript SDK's test harness (run under node), written beside the SDK.
const JS_TESTING: [(&str, &str); 3] = [
    ("testing.mjs", include_str!("../../../guest-sdk/js/testing.mjs")),
    ("hooks.mjs", include_str!("../../../guest-sdk/js/hooks.mjs")),
    (
        "memory-host.mjs",
        include_str!("../../../guest-sdk/js/memory-host.mjs"),
    ),
];

/// A language operators are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with the cairn-sdk crate.
    Rust,
    /// Python, with componentize-py and the `cairn_operator` package.
    Python,
    /// JavaScript, with componentize-js.
    Js,
    /// C, with clang (cairn writes the bindings and makes the component).
    C,
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        })
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Lang {
    /// The build steps when `cairn.toml` names none.
    pub fn default_steps(self, name: &str) -> Vec<Vec<String>> {
        match self {
            Lang::Rust => vec![argv(&[
                "cargo",
                "build",
                "--target",
                "wasm32-wasip2",
                "--release",
            ])],
            Lang::Python => vec![argv(&[
                "componentize-py",
                "-d",
                "{wit}",
                "-w",
                "operator-pickled",
                "componentize",
                "app",
                "-p",
                ".",
                "-p",
                "{sdk}",
                "-o",
                "{out}",
            ])],
            Lang::Js => vec![argv(&[
                "componentize-js",
                "{dir}/bundle.js",
                "--wit",
                "{wit}",
                "--world-name",
                "operator-packed",
                "-d",
                "http",
                "fetch-event",
                "-o",
                "{out}",
            ])],
            Lang::C => {
                let _ = name;
                vec![
                    argv(&[
                        "clang",
                        "--target=wasm32-wasi",
                        "-mexec-model=reactor",
                        "-O2",
                        "-I{dir}/bindings",
                        "-I{sdk}",
                        "-o",
                        "{dir}/core.wasm",
                        "operator.c",
                        "{sdk}/cairn_operator.c",
                        "{dir}/bindings/operator_packed.c",
                        "{dir}/bindings/operator_packed_component_type.o",
                    ]),
                    argv(&[
                        "{cairn}",
                        "componentize",
                        "{dir}/core.wasm",
                        "--adapt",
                        "wasi_snapshot_preview1={dir}/wasi_snapshot_preview1.reactor.wasm",
                        "-o",
                        "{out}",
                    ]),
                ]
            }
        }
    }

    /// Where the component goes when `cairn.toml` does not say.
    pub fn default_output(self, name: &str) -> PathBuf {
        match self {
            Lang::Rust => PathBuf::from(format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            )),
            _ => PathBuf::from(format!("build/{name}.wasm")),
        }
    }

    /// How to install `tool`, for an error message.
    pub fn install_hint(self, tool: &str) -> String {
        match tool {
            "componentize-py" => "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1, then put .venv/bin on PATH".into(),
            "componentize-js" => "npm install --prefix ~/.local/cairn-js @bytecodealliance/componentize-js@0.23.0, then put ~/.local/cairn-js/node_modules/.bin on PATH (node and npm: apt-get install nodejs npm)".into(),
            "clang" | "wasm-ld" => "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32".into(),
            "wit-bindgen" => "cargo install --locked wit-bindgen-cli --version 0.63.0 (or drop the step: `cairn build` writes the bindings to .cairn/bindings itself)".into(),
            "wasm-tools" => "cargo install --locked wasm-tools --version 1.263.0 (or use the step `{cairn} componentize`, which does what `wasm-tools component new` does)".into(),
            "cargo" => "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`".into(),
            other => format!("`{other}` is named by cairn.toml's build steps; install it or change the steps ({self} operators)"),
        }
    }

    /// Appended to a failed build step's error: a known cause of this language's build
    /// failing, and what to do.
    pub(crate) fn step_failure_hint(self) -> &'static str {
        match self {
            Lang::Python => {
                "; if it says `module 'app' has no attribute 'PickledOperator'` (or 'BulkOperator'), \
                 app.py names only some of the component's exports (projects made before WIT \
                 0.2.1): write `from cairn_operator.exports import *` in app.py"
            }
            Lang::Js => {
                "; if it says `Error loading module \"cairn:operator/packed-state@…\"`, cairn.toml \
                 builds world `operator-timers` (projects made before the JavaScript SDK's speed \
                 path): write `operator-packed` there, or delete the `steps` line to use the defaults"
            }
            _ => "",
        }
    }

    /// Write what the build steps read under `dir` (a project's `.cairn/`): the WIT as
    /// `wit/operator.wit` and the SDK under `sdk/`; for C also the bindings under `bindings/`
    /// and the WASI adapter; for JavaScript also `bundle.js`, the SDK
    /// followed by the project's `app.js` (componentize-js takes one module).
    pub fn write_support(self, project: &Path, dir: &Path) -> Result<(), ProjectError> {
        write(&dir.join("wit/operator.wit"), WIT)?;
        let sdk = dir.join("sdk");
        match self {
            Lang::Rust => {}
            Lang::Python => {
                for (file, text) in PYTHON_SDK {
                    write(&sdk.join(file), text)?;
                }
            }
            Lang::C => {
                super::componentize::write_c_bindings(
                    WIT,
                    super::componentize::C_WORLD,
                    &dir.join("bindings"),
                )?;
                for (file, text) in C_SDK {
                    write(&sdk.join(file), text)?;
                }
                // libc's stdio (snprintf) imports WASI preview1; the adapter maps it to 0.2.
                let adapter = dir.join("wasi_snapshot_preview1.reactor.wasm");
                std::fs::write(
                    &adapter,
                    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )
                .map_err(io("writing", &adapter))?;
            }
            Lang::Js => {
                write(&sdk.join("cairn-operator.js"), JS_SDK)?;
                for (file, text) in JS_TESTING {
                    write(&sdk.join(file), text)?;
                }
                let app = project.join("app.js");
                let text = std::fs::read_to_string(&app).map_err(io("reading", &app))?;
                write(
                    &dir.join("bundle.js"),
                    &format!("{JS_SDK}\n// ---- app.js ----\n{text}"),
                )?;
            }
        }
        Ok(())
    }

    /// The files of a new project: `cairn.toml`, the operator's source, `.gitignore`.
    pub fn template(self, name: &str) -> Vec<(&'static str, String)> {
        let manifest = format!(
            "# Built by `cairn build`; run by `cairn run --plugin {}`.\n\
             [operator]\nname = \"{name}\"\nlang = \"{self}\"\n# The version of the state layout: raise it when the state changes shape, and write\n# `migrate` (docs/upgrades.md).\n# state_version = 1\n\n[build]\n# Run in this directory; {{wit}}, {{sdk}}, {{dir}} (.cairn/) and {{out}} are filled in;\n# {{cairn}} runs cairn's own command (componentize).\nsteps = [\n{}]\noutput = \"{}\"\n",
            self.default_output(name).display(),
            self.default_steps(name)
                .iter()
                .map(|s| format!("  {s:?},\n"))
                .collect::<String>(),
            self.default_output(name).display(),
        );
        let ignore = "/.cairn\n/build\n".to_string();
        match self {
            Lang::Python => vec![
                ("cairn.toml", manifest),
                ("app.py", PYTHON_APP.to_string()),
                ("test_app.py", PYTHON_TEST.to_string()),
                (".gitignore", ignore),
            ],
            Lang::Js => vec![
                ("cairn.toml", manifest),
                ("app.js", JS_APP.to_string()),
                ("app.test.mjs", JS_TEST.to_string()),
                (".gitignore", ignore),
            ],
            Lang::C => vec![
                ("cairn.toml", manifest),
                ("operator.c", C_APP.to_string()),
                (".gitignore", ignore),
            ],
            _ => vec![("cairn.toml", manifest), (".gitignore", ignore)],
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), ProjectError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("creating", d))?;
    }
    std::fs::write(path, text).map_err(io("writing", path))
}

const PYTHON_APP: &str = r#""""An operator: for each event, count the events of its key and emit the count."""

import cairn_operator as cairn
from cairn_operator.exports import *  # noqa: F401,F403 (the component's exports)


@cairn.operator
class Counter:
    def on_event(self, event, out):
        n = cairn.state.incr("count")  # state is this event's key's
        out.emit_json(event.key, event.ts, {"count": n})
"#;

const PYTHON_TEST: &str = r#""""Run the operator under plain Python: `PYTHONPATH=.cairn/sdk python -m pytest`
(after one `cairn build`, which writes the SDK to .cairn/sdk)."""

from cairn_operator.testing import Harness

from app import Counter


def test_counts_per_key():
    h = Harness(Counter)
    out = h.send_all([("a", 1, {}), ("b", 2, {}), ("a", 3, {})])
    assert [(e.key, e.json()) for e in out] == [
        ("a", {"count": 1}),
        ("b", {"count": 1}),
        ("a", {"count": 2}),
    ]
    assert h.state("a") == {"count": b"2"}
"#;

const JS_TEST: &str = r#"// Run the operator under node: `node --test` (after one `cairn build`, which writes the SDK
// and its test harness to .cairn/sdk).
import assert from "node:assert/strict";
import { test } from "node:test";

import { load } from "./.cairn/sdk/testing.mjs";

test("counts per key", async () => {
  const h = await load(new URL("./app.js", import.meta.url));
  const out = h.sendAll([["a", 1, {}], ["b", 2, {}], ["a", 3, {}]]);
  assert.deepEqual(
    out.map((e) => [e.key, JSON.parse(e.value)]),
    [["a", { count: 1 }], ["b", { count: 1 }], ["a", { count: 2 }]],
  );
  assert.deepEqual(h.state("a"), { count: "2" });
});
"#;

const C_APP: &str = r#"/* An operator: for each event, count the events of its key and emit the count. */
#include <stdio.h>

#include "cairn_operator.h"

static cairn_status on_event(const cairn_event *ev, cairn_out *out) {
    int64_t n;
    cairn_status s = cairn_incr(CAIRN_KEY, "count", 1, &n); /* state is this event's key's */
    if (s) return s;
    char json[40];
    snprintf(json, sizeof json, "{\"count\":%lld}", (long long)n);
    return cairn_emit_str(out, ev->key, ev->ts, json);
}

/* on_event reads "count" of its key: the SDK fetches them for the whole batch in one call. */
CAIRN_OPERATOR(.prefetch = (const char *const[]){"count", NULL}, .on_event = on_event);
"#;

const JS_APP: &str = r#"// An operator: for each event, count the events of its key and emit the count.
// `cairn` is the SDK (cairn build puts it in front of this file).
cairn.operator(
  class Counter {
    static prefetch = ["count"]; // read for the whole batch's keys in one host call

    onEvent(event, out) {
      const n = cairn.state.incr("count"); // state is this event's key's
      out.emitJson(event.key, event.ts, { count: n });
    }
  },
);
"#;

#[cfg(test)]
mod tests {
    use super::WIT;

    /// Projects are built against the current contract version, and the Python and JavaScript
    /// SDK packages carry it (the JS SDK also imports the host's interfaces at it).
    #[test]
    fn the_sdk_packages_carry_the_wit_version() {
        let version = WIT
            .lines()
            .find_map(|l| l.strip_prefix("package cairn:operator@"))
            .expect("a package line")
            .trim_end_matches(';');
        assert_eq!(
            version,
            cairn_codec::CONTRACT_VERSION,
            "the WIT written into projects"
        );
        let pyproject = include_str!("../../../guest-sdk/python/pyproject.toml");
        assert!(
            pyproject.contains(&format!("version = \"{version}\"")),
            "pyproject.toml"
        );
        let package = include_str!("../../../guest-sdk/js/package.json");
        assert!(
            package.contains(&format!("\"version\": \"{version}\"")),
            "package.json"
        );
        assert!(
            super::JS_SDK.contains(&format!("\"cairn:operator/state@{version}\"")),
            "cairn-operator.js imports the host's interfaces at {version}"
        );
    }
}
