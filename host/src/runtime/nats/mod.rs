//! NATS JetStream as a source and a sink (cargo feature `nats`).
//!
//! * [`NatsSource`] reads a stream by *stream sequence* (an ordered consumer, nothing
//!   acknowledged): its position in a checkpoint is the sequence of the last message it handed
//!   out, so a restore reads on from the next one.
//! * [`NatsSink`] holds a checkpoint's output until the checkpoint is durable, then publishes it
//!   in atomic batches (≤ 1000 messages: up to 999 outputs and a commit record) on the job's
//!   commit subject, each fenced by `Nats-Expected-Last-Subject-Sequence`: a run that is not
//!   the newest can never publish. The checkpoint keeps the output until then, and the commit
//!   record counts what was published, so a restore publishes exactly the rest — without the
//!   server's duplicate window.
//!
//! Each side runs its client on a small tokio runtime of its own. URLs are
//! `nats://[USER:PASS@|TOKEN@]HOST:PORT[,HOST:PORT…]/NAME[?query]` (`tls://` for TLS); a
//! credentials file comes from `--nats-creds` or `CAIRN_NATS_CREDS`. Names in logs and errors
//! never carry credentials ([`super::io::shown`]).

mod admin;
mod sink;
mod source;

use std::time::{Duration, Instant};

pub use admin::{StreamSpec, create_stream};
pub use sink::{
    CommitRecord, FENCED, NatsSink, OUTPUTS_PER_BATCH, ShardCommit, ShardLink, ShardRecord, commit_subject,
};
pub(crate) use sink::{atomic_batch, last_commit};
pub use source::{END_HEADER, NatsSource, ShardInput, recorded_batch_size};

use super::io::{IoOptions, shown};

/// The kind of source position a NATS source writes.
pub const KIND: &str = "nats";

/// Whether `name` is a NATS URL.
pub fn is_url(name: &str) -> bool {
    name.starts_with("nats://") || name.starts_with("tls://")
}

/// A parsed `nats://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrl {
    /// The servers as the client takes them (credentials included).
    pub servers: Vec<String>,
    /// The URL as shown (no credentials).
    pub shown: String,
    /// The stream (inputs) or subject (outputs).
    pub name: String,
    /// `key=value` pairs of the query.
    pub query: Vec<(String, String)>,
}

impl NatsUrl {
    /// Parse `url`; the error says what is wrong and what the form is.
    pub fn parse(url: &str) -> Result<Self, String> {
        let form = "the form is nats://[USER:PASS@]HOST:PORT[,HOST:PORT…]/NAME[?key=value&…]";
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("not a NATS URL; {form}"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (servers, name) = rest
            .split_once('/')
            .ok_or_else(|| format!("no stream or subject after the server; {form}"))?;
        if name.is_empty() || servers.is_empty() {
            return Err(format!("a server and a stream or subject are needed; {form}"));
        }
        let servers = servers
            .split(',')
            .map(|s| {
                let s = s.trim();
                if s.contains("://") {
                    s.to_string()
                } else {
                    format!("{scheme}://{s}")
                }
            })
            .collect();
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(format!("query parameter `{p}` has no value; {form}")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            servers,
            shown: shown(url),
            name: name.to_string(),
            query,
        })
    }

    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Refuse query parameters other than `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!(
                "unknown query parameter `{k}` (known: {})",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// A tokio runtime for one client: one worker, so that the connection is served (pings,
/// reconnects) between the job's calls.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cairn-nats")
        .enable_all()
        .build()
}

/// Connect to `url`'s servers, retrying (with back-off) for up to `io.retry_for`.
pub(crate) async fn connect(url: &NatsUrl, io: &IoOptions) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name("cairn")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5));
    if let Some(creds) = &io.nats_creds {
        options = options.credentials_file(creds).await.map_err(|e| {
            format!(
                "could not read the NATS credentials file {}: {e}; check --nats-creds / CAIRN_NATS_CREDS",
                creds.display()
            )
        })?;
    }
    // The client does not read credentials from server URLs: take them out (the first
    // server's that has any) and give the servers without them.
    let mut secret: Option<(String, Option<String>)> = None;
    let mut servers = Vec::with_capacity(url.servers.len());
    for s in &url.servers {
        let (plain, auth) = split_credentials(s);
        if secret.is_none() {
            secret = auth;
        }
        let addr: async_nats::ServerAddr = plain
            .parse()
            .map_err(|e| format!("server address {}: {e}", shown(s)))?;
        servers.push(addr);
    }
    options = match secret {
        Some((user, Some(pass))) => options.user_and_password(user, pass),
        Some((token, None)) => options.token(token),
        None => options,
    };
    let client = tokio::time::timeout(io.retry_for, options.connect(servers))
        .await
        .map_err(|_| {
            format!(
                "no NATS server answered within {} (--nats-retry)",
                humantime::format_duration(io.retry_for)
            )
        })?
        .map_err(|e| format!("could not connect: {e}"))?;
    Ok(client)
}

/// `scheme://[user[:pass]@]host:port` without its userinfo, and the userinfo (percent-decoded):
/// `(user, Some(pass))`, or `(token, None)`.
fn split_credentials(server: &str) -> (String, Option<(String, Option<String>)>) {
    let Some((scheme, rest)) = server.split_once("://") else {
        return (server.to_string(), None);
    };
    match rest.rsplit_once('@') {
        None => (server.to_string(), None),
        Some((info, host)) => {
            let auth = match info.split_once(':') {
                Some((u, p)) => (decode(u), Some(decode(p))),
                None => (decode(info), None),
            };
            (format!("{scheme}://{host}"), Some(auth))
        }
    }
}

/// Percent-decoding of a URL's userinfo (`%40` → `@`).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Retry `op` with back-off (100 ms doubling to 5 s) until it succeeds, it fails for a reason
/// retrying cannot fix (`permanent`), or `retry_for` has passed since the first failure.
pub(crate) async fn with_retry<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    retry_for: Duration,
    permanent: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut first_failure: Option<Instant> = None;
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => {
                if first_failure.is_some() {
                    tracing::info!("{what}: the NATS server answers again");
                }
                return Ok(v);
            }
            Err(e) if permanent(&e) => return Err(format!("{what}: {e}")),
            Err(e) => {
                let since = *first_failure.get_or_insert_with(Instant::now);
                crate::runtime::metrics::broker_retry();
                if since.elapsed() >= retry_for {
                    return Err(format!(
                        "{what}: {e}; gave up after {} of retries (--nats-retry)",
                        humantime::format_duration(retry_for)
                    ));
                }
                tracing::warn!("{what}: {e}; retrying in {} ms", pause.as_millis());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_show_no_credentials() {
        let u = NatsUrl::parse("nats://alice:s3cret@h1:4222,h2:4223/EVENTS?subject=ev.>&start=new").unwrap();
        assert_eq!(u.servers, vec!["nats://alice:s3cret@h1:4222", "nats://h2:4223"]);
        assert_eq!(u.shown, "nats://h1:4222,h2:4223/EVENTS?subject=ev.>&start=new");
        assert_eq!(u.name, "EVENTS");
        assert_eq!(u.param("subject"), Some("ev.>"));
        assert_eq!(u.param("start"), Some("new"));
        assert!(u.only(&["subject", "start"]).is_ok());
        assert!(u.only(&["subject"]).unwrap_err().contains("`start`"));
        assert_eq!(
            split_credentials("nats://alice:p%40ss@h1:4222"),
            (
                "nats://h1:4222".into(),
                Some(("alice".into(), Some("p@ss".into())))
            )
        );
        assert_eq!(
            split_credentials("tls://tok3n@h:4222"),
            ("tls://h:4222".into(), Some(("tok3n".into(), None)))
        );
        assert_eq!(split_credentials("nats://h:4222"), ("nats://h:4222".into(), None));
        let t = NatsUrl::parse("tls://tok3n@h:4222/out").unwrap();
        assert_eq!(t.shown, "tls://h:4222/out");
        assert!(!format!("{:?}", t.shown).contains("tok3n"));
        assert!(
            NatsUrl::parse("nats://h:4222")
                .unwrap_err()
                .contains("the form is")
        );
        assert!(NatsUrl::parse("nats://h:4222/S?x").unwrap_err().contains("`x`"));
    }
}
