//! A job run again and again over one store, as an upgrade does: the whole input, its first
//! part, a file store, and `cairn run` over either (the first part with event time kept open).

use std::fs;
use std::path::Path;

use anyhow::{Result, bail};

use crate::{cairn, run_cairn, strs, synthetic_input};

/// A job's files: the whole input, its first part, a store.
pub struct Job {
    /// Where its files are.
    pub dir: tempfile::TempDir,
    /// The whole input.
    pub text: String,
    /// Its first part.
    pub first: String,
}

impl Job {
    /// 6,000 events of 50 keys, the first 2,500 the first part.
    pub fn new() -> Result<Self> {
        Self::sized(6_000, 50, 2_500)
    }

    /// `n` events of `keys` keys ([`synthetic_input`]), the first `first` the first part.
    pub fn sized(n: usize, keys: usize, first: usize) -> Result<Self> {
        let text = synthetic_input(n, keys, 0);
        let first = text.lines().take(first).map(|l| format!("{l}\n")).collect();
        Ok(Self {
            dir: tempfile::tempdir()?,
            text,
            first,
        })
    }

    /// A file of the job's directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The store's URL.
    pub fn store(&self) -> String {
        format!("file:{}", self.path("store"))
    }

    /// A pipeline file of `(name, plugin, config)` operators.
    pub fn pipeline(&self, file: &str, ops: &[(&str, &Path, &str)]) -> Result<String> {
        let mut toml = String::new();
        for (name, plugin, config) in ops {
            toml.push_str(&format!(
                "[[operators]]\nname = \"{name}\"\nplugin = \"{}\"\nconfig = {config}\n",
                plugin.display()
            ));
        }
        fs::write(self.path(file), toml)?;
        Ok(self.path(file))
    }

    /// `cairn run <what…> --input … --output … --store … --batch-size 100 <extra…>` over the
    /// first part (event time kept open) or the whole input.
    pub fn args(&self, whole: bool, what: &[&str], extra: &[&str]) -> Result<Vec<String>> {
        fs::write(
            self.path("in.jsonl"),
            if whole { &self.text } else { &self.first },
        )?;
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(what.iter().map(|s| s.to_string()));
        for s in [
            "--input",
            &self.path("in.jsonl"),
            "--output",
            &self.path("out.jsonl"),
            "--store",
            &self.store(),
            "--batch-size",
            "100",
        ] {
            a.push(s.to_string());
        }
        if !whole {
            a.push("--keep-open".into());
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        Ok(a)
    }

    /// A run that must succeed; the output file's text.
    pub fn run(&self, whole: bool, what: &[&str], extra: &[&str]) -> Result<String> {
        self.run_log(whole, what, extra)?;
        self.output()
    }

    /// A run that must succeed; its log (stderr) at level info.
    pub fn run_log(&self, whole: bool, what: &[&str], extra: &[&str]) -> Result<String> {
        let args = self.args(whole, what, extra)?;
        let out = cairn().env("CAIRN_LOG", "info").args(&args).output()?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!("cairn {} failed ({}):\n{log}", args.join(" "), out.status);
        }
        Ok(log)
    }

    /// The output file's text.
    pub fn output(&self) -> Result<String> {
        Ok(fs::read_to_string(self.path("out.jsonl"))?)
    }

    /// The store's `LATEST` pointer (None before the first checkpoint).
    pub fn latest_id(&self) -> Option<String> {
        fs::read_to_string(self.dir.path().join("store").join("LATEST")).ok()
    }

    /// The error of a run that must fail, checked to have left the output and the newest
    /// checkpoint as they were.
    pub fn refused(&self, whole: bool, what: &[&str], extra: &[&str]) -> Result<String> {
        let before = (self.output()?, self.latest_id());
        let out = run_cairn(&strs(&self.args(whole, what, extra)?), b"")?;
        assert!(!out.status.success());
        assert_eq!(
            (self.output()?, self.latest_id()),
            before,
            "the output and the newest checkpoint are untouched"
        );
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
