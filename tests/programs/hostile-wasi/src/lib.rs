//! Test fixture: tries everything a sandboxed plugin must not be able to do — read a file,
//! list a directory, read the environment and arguments, open sockets, look at the clock —
//! and emits what happened as JSON, one event per input event.

use std::io::Read;

use cairn_sdk::{Config, Error, Event, Operator, Output};

struct Prober;

fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => format!("ALLOWED: {v:?}"),
        Err(e) => format!("denied: {e}"),
    }
}

impl Operator for Prober {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Prober)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let file = outcome(std::fs::read_to_string("/etc/passwd").map(|s| s.len()));
        let cwd_file = outcome(std::fs::File::open("Cargo.toml").map(|_| ()));
        let dir = outcome(std::fs::read_dir("/").map(|d| d.count()));
        let write = outcome(std::fs::write("/tmp/cairn-escape", b"x"));
        let env: Vec<(String, String)> = std::env::vars().collect();
        let args: Vec<String> = std::env::args().collect();
        let tcp = outcome(std::net::TcpStream::connect("127.0.0.1:22").map(|_| ()));
        let dns = outcome(std::net::TcpStream::connect("localhost:80").map(|_| ()));
        let udp = outcome(std::net::UdpSocket::bind("0.0.0.0:0").map(|_| ()));
        let mut stdin = String::new();
        let stdin = outcome(std::io::stdin().read_to_string(&mut stdin));
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(u64::MAX);
        println!("hello from the sandbox");
        eprintln!("a line on stderr");
        out.emit_json(
            event.key,
            event.ts,
            &serde_json::json!({
                "file": file, "cwd_file": cwd_file, "dir": dir, "write": write,
                "env": env, "args": args, "tcp": tcp, "dns": dns, "udp": udp,
                "stdin": stdin, "clock_secs": clock,
            }),
        )
    }
}

cairn_sdk::export!(Prober);
