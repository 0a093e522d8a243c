//! A real `redis-server` on a free loopback port for the duration of a test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::server::{ServerProcess, binary};

/// A running redis-server (append-only file, fsync always, so a kill loses nothing
/// committed). Stopped when dropped.
pub struct RedisServer(ServerProcess);

impl RedisServer {
    /// Start a server on a free port.
    pub fn start() -> Result<Self> {
        let mut s = Self(ServerProcess::new("redis-server")?);
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = binary(
            "redis-server",
            &["/usr/bin".into(), "/usr/sbin".into(), "/usr/local/bin".into()],
            "apt-get install redis-server",
        )?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &self.0.port.to_string(),
            "--save",
            "",
        ])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no",
        ])
        .arg("--dir")
        .arg(self.0.dir.path());
        self.0.spawn(cmd, ping)
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// The port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// A store URL on this server with `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("redis://127.0.0.1:{}/0?prefix={prefix}", self.0.port)
    }

    /// SIGKILL the server (its data survives in the append-only file).
    pub fn kill(&mut self) -> Result<()> {
        self.0.kill()
    }

    /// Start it again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.0.kill()?;
        self.spawn()
    }
}
