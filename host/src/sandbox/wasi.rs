use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{Deterministic, HostMonotonicClock, HostWallClock, WasiCtx};

/// Longest line of guest stdout/stderr kept before it is logged in pieces.
const MAX_LINE: usize = 4096;

/// A WASI context that grants nothing: no preopened directories, no environment, no
/// arguments, no stdin, sockets denied, name lookup denied. Clocks are frozen at zero and
/// randomness is a fixed sequence, so a plugin's behaviour depends only on its events (which
/// keeps replays after a restore exact). The guest's stdout and stderr go to the host's log,
/// tagged with the plugin's name.
pub fn no_authority_wasi(plugin: &Arc<str>) -> WasiCtx {
    let mut b = WasiCtx::builder();
    b.stdout(GuestOutput::new(plugin.clone(), "stdout"))
        .stderr(GuestOutput::new(plugin.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(Deterministic::new(FIXED_BYTES.clone()))
        .insecure_random(Deterministic::new(FIXED_BYTES.clone()))
        .insecure_random_seed(0x6361_6972_6e00);
    b.build()
}

/// The bytes the guest's randomness cycles through (computed once: every instance starts one).
static FIXED_BYTES: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(fixed_bytes);

fn fixed_bytes() -> Vec<u8> {
    // A fixed, non-trivial byte cycle (xorshift), so hash seeds are not all zero.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Guest stdout or stderr, forwarded line by line to the host's log (target `cairn::guest`).
#[derive(Clone)]
pub struct GuestOutput {
    plugin: Arc<str>,
    stream: &'static str,
}

impl GuestOutput {
    /// A stream for `plugin`'s `stream` ("stdout" or "stderr").
    pub fn new(plugin: Arc<str>, stream: &'static str) -> Self {
        Self { plugin, stream }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            plugin: self.plugin.clone(),
            stream: self.stream,
            line: Vec::new(),
        })
    }
}

struct LineLogger {
    plugin: Arc<str>,
    stream: &'static str,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\n', '\r']);
        if self.stream == "stderr" {
            tracing::warn!(target: "cairn::guest", plugin = %self.plugin, stream = self.stream, "{text}");
        } else {
            tracing::info!(target: "cairn::guest", plugin = %self.plugin, stream = self.stream, "{text}");
        }
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        for &b in buf {
            this.line.push(b);
            if b == b'\n' || this.line.len() >= MAX_LINE {
                this.emit();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.line.is_empty() {
            this.emit();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}
