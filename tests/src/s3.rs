//! A real S3-compatible server (`s3s-fs`, an S3 API over a directory) on a free loopback port
//! for the duration of a test.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::server::{ServerProcess, binary, tools_dir};

const ACCESS_KEY: &str = "cairn-test";
const SECRET_KEY: &str = "cairn-test-secret";

/// A running `s3s-fs` with one bucket, `cairn`. Stopped when dropped.
pub struct S3Server(ServerProcess);

impl S3Server {
    /// Start a server on a free port with an empty bucket `cairn`.
    pub fn start() -> Result<Self> {
        let s = ServerProcess::new("s3s-fs")?;
        std::fs::create_dir(s.dir.path().join("cairn"))?;
        let mut s = Self(s);
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
        let bin = binary(
            "s3s-fs",
            &[tools_dir().join("bin"), home.join(".cargo/bin")],
            "cargo install s3s-fs --version 0.14.1 --features binary --locked --root ~/.cache/cairn/tools",
        )?;
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", &self.0.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.0.dir.path());
        self.0
            .spawn(cmd, |port| TcpStream::connect(("127.0.0.1", port)).is_ok())
    }

    /// The endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// A store URL for `prefix` in the bucket, carrying the endpoint and the credentials in its
    /// query (so that it works without `AWS_*` variables), plus `extra` query parameters.
    pub fn url(&self, prefix: &str, extra: &str) -> String {
        self.url_via(&self.endpoint(), prefix, extra)
    }

    /// [`url`](Self::url), reaching the server through `endpoint` (a proxy in front of it).
    pub fn url_via(&self, endpoint: &str, prefix: &str, extra: &str) -> String {
        format!(
            "s3://cairn/{prefix}?endpoint={endpoint}&allow_http=true&access_key_id={ACCESS_KEY}\
             &secret_access_key={SECRET_KEY}&region=us-east-1{extra}"
        )
    }

    /// `127.0.0.1:<port>`, for a proxy to forward to.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.0.port)
    }

    /// The environment variables that give the same settings to any S3 tool.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The directory holding the bucket's objects (`<dir>/cairn/<key>`).
    pub fn bucket_dir(&self) -> PathBuf {
        self.0.dir.path().join("cairn")
    }

    /// SIGKILL the server (its objects stay in the directory).
    pub fn kill(&mut self) -> Result<()> {
        self.0.kill()
    }

    /// Start it again on the same port and directory.
    pub fn restart(&mut self) -> Result<()> {
        self.0.kill()?;
        self.spawn()
    }
}
