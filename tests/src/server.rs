//! What the test servers (redis-server, s3s-fs, nats-server) share: a free loopback port, a
//! data directory, finding the binary, starting it and waiting until it answers, SIGKILL and
//! restart on the same port and data, and a kill when the test ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A server process on a free loopback port with a data directory of its own. Killed when
/// dropped.
pub struct ServerProcess {
    child: Option<Child>,
    name: &'static str,
    /// The port it listens on.
    pub port: u16,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

/// The first `name` found on PATH or in `also` (directories), else an error saying how
/// `install` gets it.
pub fn binary(name: &str, also: &[PathBuf], install: &str) -> Result<PathBuf> {
    let path: Vec<PathBuf> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .chain(also.iter().cloned())
        .collect();
    for dir in path {
        let p = dir.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("{name} is not installed: `bash scripts/test.sh` installs it ({install})")
}

/// The tool cache the scripts install into (`$CAIRN_TOOLS`, else `~/.cache/cairn/tools`).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CAIRN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cairn/tools")
        })
}

impl ServerProcess {
    /// A free port and an empty directory; nothing started yet.
    pub fn new(name: &'static str) -> Result<Self> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        Ok(Self {
            child: None,
            name,
            port: l.local_addr()?.port(),
            dir: tempfile::tempdir()?,
        })
    }

    /// Start `cmd` (its output discarded) and wait up to 10 s until `ready(port)`.
    pub fn spawn(&mut self, mut cmd: Command, ready: impl Fn(u16) -> bool) -> Result<()> {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}", self.name))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ready(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} on port {} did not answer within 10 s", self.name, self.port)
    }

    /// SIGKILL it (its data stays in the directory).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
