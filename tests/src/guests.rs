//! Operators written in other languages (`plugins/<lang>/<name>`), built with `cairn build` once
//! per test process, into the target directory. The toolchains come from
//! `scripts/toolchains.sh` (the test command installs them and puts them on PATH); a missing
//! one fails the build with the tool's name and install command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Result, bail};

use crate::{cairn, plugin_dir, repo_root};

type Built = Arc<OnceLock<Result<PathBuf, String>>>;

/// `plugins/<lang>/<name>` built as `<name>-<lang>.wasm`.
pub fn guest_plugin(lang: &str, name: &str) -> Result<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, Built>>> = OnceLock::new();
    let slot = {
        let mut m = BUILT.get_or_init(Default::default).lock().expect("lock");
        m.entry(format!("{name}-{lang}")).or_default().clone()
    };
    let built = slot.get_or_init(|| {
        let out = plugin_dir()
            .join("../guest-plugins")
            .join(format!("{name}-{lang}.wasm"));
        build(&repo_root().join("plugins").join(lang).join(name), &out).map_err(|e| format!("{e:#}"))
    });
    match built {
        Ok(p) => Ok(p.clone()),
        Err(e) => bail!("{e}"),
    }
}

/// `cairn build <dir> --out <out>`; the built component's path (the last line of stdout).
pub fn build(dir: &Path, out: &Path) -> Result<PathBuf> {
    let o = cairn()
        .args([
            "build",
            &dir.display().to_string(),
            "--out",
            &out.display().to_string(),
        ])
        .output()?;
    if !o.status.success() {
        bail!(
            "cairn build {} failed: {}{}",
            dir.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let stdout = String::from_utf8(o.stdout)?;
    let last = stdout.lines().last().unwrap_or_default();
    Ok(PathBuf::from(last))
}
