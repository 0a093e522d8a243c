//! A real S3-compatible server (`s3s-fs`, an S3 API over a directory) on a free loopback port
//! for the duration of a test.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const ACCESS_KEY: &str = "cairn-test";
const SECRET_KEY: &str = "cairn-test-secret";

/// A running `s3s-fs` with one bucket, `cairn`. Stopped when dropped.
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn binary() -> Result<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    let tools = format!("{home}/.cache/cairn/tools/bin");
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain([tools.as_str(), &format!("{home}/.cargo/bin")])
    {
        let p = PathBuf::from(dir).join("s3s-fs");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!(
        "s3s-fs is not installed: `bash scripts/test.sh` installs it (cargo install s3s-fs \
         --version 0.14.1 --features binary --locked --root ~/.cache/cairn/tools)"
    )
}

impl S3Server {
    /// Start a server on a free port with an empty bucket `cairn`.
    pub fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("cairn"))?;
        let mut s = Self {
            child: None,
            port: free_port()?,
            dir,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new(binary()?)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start s3s-fs")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("s3s-fs on port {} did not listen within 10 s", self.port)
    }

    /// The endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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
        format!("127.0.0.1:{}", self.port)
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
        self.dir.path().join("cairn")
    }

    /// SIGKILL the server (its objects stay in the directory).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Start it again on the same port and directory.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
