//! An operator project on disk, in any language: its `cairn.toml` (name, language, build
//! steps, output), scaffolding one (`cairn new --lang`) and building it (`cairn build`).
//!
//! ```toml
//! [operator]
//! name = "counter"
//! lang = "python"            # rust | python | js | c
//! state_version = 2          # optional: the version of the state layout (0 when absent)
//!
//! [build]                    # optional: these are the language's defaults
//! steps = [["componentize-py", "-d", "{wit}", "-w", "operator-pickled", "componentize", "app",
//!           "-p", ".", "-p", "{sdk}", "-o", "{out}"]]
//! output = "build/counter.wasm"
//! ```
//!
//! Before the steps run, `cairn build` writes this host's WIT and the language's SDK (both
//! built into the binary) under `<project>/.cairn/`; `{wit}`, `{sdk}`, `{out}`, `{name}` and
//! `{dir}` (the `.cairn` directory) in the steps name them; a step whose program is `{cairn}`
//! runs one of this host's own commands (`componentize`) in-process. So a project builds with nothing but
//! the language's toolchain, and always against the WIT of the `cairn` that will run it.
//! A missing tool is named with its install command; nothing is installed behind the user's
//! back. The built component of a Python, JavaScript or C project gets a `cairn-operator`
//! section declaring `name` and `state_version` (`cairn_codec::declared`); a Rust crate
//! declares them in `cairn_sdk::export!`.

mod componentize;
mod lang;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

pub use componentize::{ComponentizeArgs, componentize, write_c_bindings};
pub use lang::Lang;

/// Why a project could not be made or built. Each names the file or tool concerned.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// `cairn.toml` is missing or unreadable.
    #[error(
        "no cairn.toml in {dir}: {source} (create a project with `cairn new --lang <rust|python|js|c> NAME`)"
    )]
    NoManifest {
        /// The project directory.
        dir: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// `cairn.toml` does not parse.
    #[error("{path} is not a valid cairn.toml: {message}")]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A build step's program is not on `PATH`.
    #[error("`{tool}` was not found on PATH: it builds {lang} operators; install it with: {install}")]
    ToolMissing {
        /// The program.
        tool: String,
        /// The project's language.
        lang: Lang,
        /// How to install it.
        install: String,
    },
    /// A build step failed.
    #[error("build step `{step}` failed in {dir} ({status}); its output is above{hint}")]
    StepFailed {
        /// The command line.
        step: String,
        /// Where it ran.
        dir: PathBuf,
        /// How it exited.
        status: String,
        /// What commonly causes this language's build to fail, and the remedy ("" if none).
        hint: &'static str,
    },
    /// The steps ran but the output is not there.
    #[error("the build finished but did not write {output}; check `output` in cairn.toml")]
    NoOutput {
        /// Where the component was expected.
        output: PathBuf,
    },
    /// The C bindings could not be generated from the WIT.
    #[error("generating the C bindings of world {world}: {message}")]
    Bindings {
        /// The world.
        world: String,
        /// What went wrong.
        message: String,
    },
    /// A core module could not be made into a component.
    #[error(
        "making a component of {core}: {message} (link the bindings' *_component_type.o into the module, and adapt what it imports with --adapt NAME=FILE)"
    )]
    Componentize {
        /// The core module.
        core: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The name cannot be a project's.
    #[error(
        "{name:?} is not a valid operator name: use lowercase letters, digits, `-` and `_`, starting with a letter"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// The target directory exists.
    #[error("{0} already exists; choose another name or --dir")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To which file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ProjectError {
    let path = path.to_path_buf();
    move |source| ProjectError::Io { action, path, source }
}

/// `cairn.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Who the operator is.
    pub operator: OperatorSection,
    /// How it is built (the language's defaults when absent).
    #[serde(default)]
    pub build: BuildSection,
}

/// `[operator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSection {
    /// The operator's name (the component's file name, and the name it declares).
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// The version of its state layout, declared in the component (not for Rust, whose
    /// crate declares it in `cairn_sdk::export!`).
    pub state_version: Option<u32>,
}

/// `[build]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Commands run in order in the project's directory, each a program and its arguments.
    pub steps: Option<Vec<Vec<String>>>,
    /// The built component, relative to the project.
    pub output: Option<PathBuf>,
}

impl Manifest {
    /// Read `<dir>/cairn.toml`.
    pub fn read(dir: &Path) -> Result<Self, ProjectError> {
        let path = dir.join("cairn.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ProjectError::NoManifest {
            dir: dir.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ProjectError::BadManifest {
            path,
            message: e.to_string(),
        })
    }

    /// The build steps: the manifest's, or the language's defaults.
    pub fn steps(&self) -> Vec<Vec<String>> {
        self.build
            .steps
            .clone()
            .unwrap_or_else(|| self.operator.lang.default_steps(&self.operator.name))
    }

    /// Where the component is written, relative to the project.
    pub fn output(&self) -> PathBuf {
        self.build
            .output
            .clone()
            .unwrap_or_else(|| self.operator.lang.default_output(&self.operator.name))
    }
}

/// Build the project in `dir`: write the WIT and the SDK under `dir/.cairn/`, check that every
/// step's program exists, run the steps, and return the component's path. `out` overrides the
/// manifest's output. The steps' own output goes to this process's stderr.
pub fn build(dir: &Path, out: Option<&Path>) -> Result<PathBuf, ProjectError> {
    let dir = &std::path::absolute(dir).map_err(io("resolving", dir))?;
    let manifest = Manifest::read(dir)?;
    let lang = manifest.operator.lang;
    if lang == Lang::Rust && manifest.operator.state_version.is_some() {
        return Err(ProjectError::BadManifest {
            path: dir.join("cairn.toml"),
            message: "a Rust operator declares its state version in its crate: \
                      `cairn_sdk::export!(Op, name = \"…\", state_version = N)`; remove `state_version` here"
                .into(),
        });
    }
    let support = dir.join(".cairn");
    let output = match out {
        Some(o) => std::path::absolute(o).map_err(io("resolving", o))?,
        None => dir.join(manifest.output()),
    };
    let fill = |arg: &str| {
        arg.replace("{wit}", &support.join("wit").display().to_string())
            .replace("{sdk}", &support.join("sdk").display().to_string())
            .replace("{dir}", &support.display().to_string())
            .replace("{out}", &output.display().to_string())
            .replace("{name}", &manifest.operator.name)
    };
    let steps: Vec<Vec<String>> = manifest
        .steps()
        .iter()
        .map(|s| s.iter().map(|a| fill(a)).collect())
        .collect();
    for step in &steps {
        let Some(tool) = step.first() else {
            return Err(ProjectError::BadManifest {
                path: dir.join("cairn.toml"),
                message: "a build step is empty".into(),
            });
        };
        if tool != componentize::BUILTIN && find_program(tool).is_none() {
            return Err(ProjectError::ToolMissing {
                tool: tool.clone(),
                lang,
                install: lang.install_hint(tool),
            });
        }
    }
    lang.write_support(dir, &support)?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    // A stale component must not pass for a fresh one.
    let _ = std::fs::remove_file(&output);
    for step in &steps {
        if step[0] == componentize::BUILTIN {
            componentize::run_builtin(&step[1..], &dir.join("cairn.toml"))?;
            continue;
        }
        let status = Command::new(&step[0])
            .args(&step[1..])
            .current_dir(dir)
            .stdout(std::process::Stdio::inherit())
            .status()
            .map_err(io("running", Path::new(&step[0])))?;
        if !status.success() {
            return Err(ProjectError::StepFailed {
                step: step.join(" "),
                dir: dir.to_path_buf(),
                status: status.to_string(),
                hint: lang.step_failure_hint(),
            });
        }
    }
    if !output.is_file() {
        return Err(ProjectError::NoOutput { output });
    }
    if lang != Lang::Rust {
        declare(&output, &manifest.operator)?;
    }
    Ok(output)
}

/// Append the declaration of `op` (its name and state version) to the component at `path`.
fn declare(path: &Path, op: &OperatorSection) -> Result<(), ProjectError> {
    use std::io::Write;
    let declared = cairn_codec::declared::Declared {
        name: Some(op.name.clone()),
        state_version: op.state_version,
    };
    let section = cairn_codec::declared::custom_section(declared.encode().as_bytes());
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&section))
        .map_err(io("declaring the operator's name and state version in", path))
}

/// `program`'s path: itself when it names a file, else the first match on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// Whether `name` can be a project's name.
pub fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Create project `name` in `parent/name` for `lang` (not Rust: see `cairn new`, which makes a
/// cargo crate); returns its directory.
pub fn scaffold(lang: Lang, name: &str, parent: &Path) -> Result<PathBuf, ProjectError> {
    if !valid_name(name) {
        return Err(ProjectError::BadName { name: name.into() });
    }
    let root = parent.join(name);
    if root.exists() {
        return Err(ProjectError::Exists(root));
    }
    for (file, text) in lang.template(name) {
        let p = root.join(file);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(io("creating", d))?;
        }
        std::fs::write(&p, text).map_err(io("writing", &p))?;
    }
    Ok(root)
}
