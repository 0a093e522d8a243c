//! A TCP proxy on a free loopback port that can lose the server's answers: requests still reach
//! the server (and take effect there), but while answers are lost the client's connection is
//! closed instead of carrying the answer back. That is the failure a client cannot tell apart
//! from a request that never arrived.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

/// A running proxy; it stops accepting when dropped.
pub struct AnswerLosingProxy {
    port: u16,
    lose: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl AnswerLosingProxy {
    /// Start forwarding a free loopback port to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let lose = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, up) = (lose.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&up) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (c2, s2) = (client.try_clone(), server.try_clone());
                let (Ok(c2), Ok(s2)) = (c2, s2) else { continue };
                std::thread::spawn(move || pump(client, s2, None));
                let l = l.clone();
                std::thread::spawn(move || pump(server, c2, Some(l)));
            }
        });
        Ok(Self { port, lose, stop })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, answers are lost (`true`) or carried (`false`).
    pub fn lose_answers(&self, lose: bool) {
        self.lose.store(lose, Ordering::SeqCst);
    }
}

impl Drop for AnswerLosingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copy `from` to `to` until either side closes; when `lose` is set at the moment data
/// arrives, drop it and close both sides instead.
fn pump(mut from: TcpStream, mut to: TcpStream, lose: Option<Arc<AtomicBool>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if lose.as_ref().is_some_and(|l| l.load(Ordering::SeqCst)) {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
