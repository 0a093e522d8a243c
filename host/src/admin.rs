//! The admin server: the job's metrics in Prometheus text format and its health, over HTTP,
//! on a thread of its own.
//!
//! `GET /` (a live status page: events, rates, state per operator, a throughput chart, the last
//! checkpoints), `GET /metrics` (Prometheus text format 0.0.4), `GET /healthz` (the process is alive: always
//! 200), `GET /readyz` (200 once the job is restored and processing, 503 before and after).
//! The metrics are those of [`crate::runtime::metrics`], recorded by
//! `metrics-exporter-prometheus`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use thiserror::Error;

/// The admin server could not start.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("could not serve the admin endpoints on {addr}: {message}; pick a free port (or port 0)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        message: String,
    },
    /// Another metrics recorder is installed in this process.
    #[error("could not install the metrics recorder: {0}")]
    Recorder(String),
}

/// A running admin server; stopped when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

/// The live status page (self-contained: no CDN, no build step); it polls `/metrics`.
const STATUS_PAGE: &str = include_str!("admin/status.html");

/// Buckets of the duration histograms, seconds: 50 µs to 60 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];

impl AdminServer {
    /// Install the Prometheus recorder (once per process) and serve on `addr` (`host:port`;
    /// port 0 picks a free one: see [`AdminServer::addr`]).
    pub fn start(addr: &str) -> Result<Self, AdminError> {
        let handle = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .map_err(|e| AdminError::Recorder(e.to_string()))?
            .install_recorder()
            .map_err(|e| AdminError::Recorder(e.to_string()))?;
        crate::runtime::metrics::describe();
        let server = tiny_http::Server::http(addr).map_err(|e| AdminError::Bind {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
        let local = server.server_addr().to_ip().ok_or_else(|| AdminError::Bind {
            addr: addr.to_string(),
            message: "not an IP address".into(),
        })?;
        let server = Arc::new(server);
        let ready = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, ready) = (server.clone(), ready.clone());
            std::thread::Builder::new()
                .name("cairn-admin".into())
                .spawn(move || serve(&server, &handle, &ready))
                .map_err(|e| AdminError::Bind {
                    addr: addr.to_string(),
                    message: e.to_string(),
                })?
        };
        Ok(Self {
            addr: local,
            ready,
            server,
            thread: Some(thread),
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Say whether the job is restored and processing (`/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// A handle that sets readiness from elsewhere (the job).
    pub fn readiness(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, metrics: &PrometheusHandle, ready: &AtomicBool) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let (status, kind, body) = match (request.method(), path.as_str()) {
            (tiny_http::Method::Get, "/metrics") => {
                (200, "text/plain; version=0.0.4; charset=utf-8", metrics.render())
            }
            (tiny_http::Method::Get, "/") => (200, "text/html; charset=utf-8", STATUS_PAGE.to_string()),
            (tiny_http::Method::Get, "/healthz") => {
                (200, "application/json", r#"{"status":"alive"}"#.to_string())
            }
            (tiny_http::Method::Get, "/readyz") => {
                if ready.load(Ordering::Relaxed) {
                    (200, "application/json", r#"{"ready":true}"#.to_string())
                } else {
                    (503, "application/json", r#"{"ready":false}"#.to_string())
                }
            }
            _ => (
                404,
                "text/plain; charset=utf-8",
                "not found; try /, /metrics, /healthz or /readyz\n".to_string(),
            ),
        };
        let mut response = tiny_http::Response::from_string(body).with_status_code(status);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()) {
            response = response.with_header(h);
        }
        let _ = request.respond(response);
    }
}
