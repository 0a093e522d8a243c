use std::path::PathBuf;

use super::{CheckpointStore, FileStore, MemoryStore, RedisStore, StoreError};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`
    Memory,
    /// `file:<dir>`
    File(PathBuf),
    /// `rocksdb:<dir>`
    Rocks(PathBuf),
    /// `redis://<host>:<port>[/<db>][?prefix=<p>&ttl=<secs>]`
    Redis {
        /// `redis://<host>:<port>[/<db>]`, as the client takes it.
        server: String,
        /// Key prefix (default `cairn`).
        prefix: String,
        /// Expiry of checkpoints, seconds.
        ttl: Option<u64>,
    },
    /// `s3://<bucket>[/<prefix>][?<setting>=<value>&...]`
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes at its ends ("" for the bucket's root).
        prefix: String,
        /// Settings from the query (`endpoint`, `region`, `allow_http`, ...), `part_size` apart.
        config: Vec<(String, String)>,
        /// `part_size` in bytes, if given.
        part_size: Option<usize>,
    },
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url == "memory:" {
            return Ok(StoreUrl::Memory);
        }
        for (scheme, rocks) in [("file:", false), ("rocksdb:", true)] {
            if let Some(dir) = url.strip_prefix(scheme) {
                let dir = dir.strip_prefix("//").unwrap_or(dir);
                if dir.is_empty() {
                    return Err(bad(&format!(
                        "{scheme} needs a directory, e.g. {scheme}./checkpoints"
                    )));
                }
                let dir = PathBuf::from(dir);
                return Ok(if rocks {
                    StoreUrl::Rocks(dir)
                } else {
                    StoreUrl::File(dir)
                });
            }
        }
        if let Some(rest) = url.strip_prefix("redis://") {
            let (server, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (hostport, db) = server.split_once('/').unwrap_or((server, ""));
            let Some((host, port)) = hostport.rsplit_once(':') else {
                return Err(bad(
                    "redis:// needs a host and a port, e.g. redis://127.0.0.1:6379/0",
                ));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad(
                    "redis:// needs a host and a numeric port, e.g. redis://127.0.0.1:6379/0",
                ));
            }
            if !db.is_empty() && db.parse::<u32>().is_err() {
                return Err(bad("the Redis database after the slash must be a number"));
            }
            let mut prefix = "cairn".to_string();
            let mut ttl = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("prefix", p)) if !p.is_empty() => prefix = p.to_string(),
                    Some(("ttl", t)) => {
                        ttl = Some(
                            t.parse::<u64>()
                                .ok()
                                .filter(|&t| t > 0)
                                .ok_or_else(|| bad("ttl must be a positive number of seconds"))?,
                        )
                    }
                    _ => {
                        return Err(bad(&format!(
                            "unknown query parameter {pair:?} (known: prefix, ttl)"
                        )));
                    }
                }
            }
            return Ok(StoreUrl::Redis {
                server: format!("redis://{server}"),
                prefix,
                ttl,
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            if bucket.is_empty() {
                return Err(bad("s3:// needs a bucket, e.g. s3://my-bucket/cairn/job-1"));
            }
            let mut config = Vec::new();
            let mut part_size = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(bad(&format!(
                        "query parameter {pair:?} needs a value (name=value)"
                    )));
                };
                if k == "part_size" {
                    let n = v.parse::<usize>().ok().filter(|&n| n >= 5 << 20).ok_or_else(|| {
                        bad("part_size must be a number of bytes of at least 5242880 (5 MiB, S3's smallest part)")
                    })?;
                    part_size = Some(n);
                } else {
                    // `allow_http` is a client setting object_store knows as `aws_allow_http`.
                    let k = if k == "allow_http" { "aws_allow_http" } else { k };
                    config.push((k.to_string(), v.to_string()));
                }
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                config,
                part_size,
            });
        }
        Err(bad("unknown scheme"))
    }
}

/// The URL of namespace `sub` (`a/b`: path segments of letters, digits, `-` and `_`) inside
/// the store at `url`: a subdirectory of a file or RocksDB store, a longer key prefix of a
/// Redis or S3 store. A sharded job keeps each shard's and each owner's checkpoints apart so.
pub fn namespaced(url: &str, sub: &str) -> Result<String, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let segments_ok = !sub.is_empty()
        && sub.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !segments_ok {
        return Err(bad(&format!(
            "{sub:?} is not a namespace (segments of letters, digits, - and _)"
        )));
    }
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let with_query = |b: String| match query {
        Some(q) => format!("{b}?{q}"),
        None => b,
    };
    Ok(match url.parse::<StoreUrl>()? {
        StoreUrl::Memory => {
            return Err(bad(
                "memory: is one process's own; give a store that every worker reaches",
            ));
        }
        StoreUrl::File(_) | StoreUrl::Rocks(_) | StoreUrl::S3 { .. } => {
            with_query(format!("{}/{sub}", base.trim_end_matches('/')))
        }
        StoreUrl::Redis { prefix, .. } => {
            let prefix = format!("{prefix}:{}", sub.replace('/', ":"));
            let mut pairs: Vec<String> = query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("prefix="))
                .map(str::to_string)
                .collect();
            pairs.insert(0, format!("prefix={prefix}"));
            format!("{base}?{}", pairs.join("&"))
        }
    })
}

/// Open the store a URL names.
pub fn open(url: &str) -> Result<Box<dyn CheckpointStore>, StoreError> {
    Ok(match url.parse::<StoreUrl>()? {
        StoreUrl::Memory => Box::new(MemoryStore::new()),
        StoreUrl::File(dir) => Box::new(FileStore::open(dir)?),
        StoreUrl::Redis { server, prefix, ttl } => Box::new(RedisStore::open(url, &server, &prefix, ttl)?),
        #[cfg(feature = "rocksdb")]
        StoreUrl::Rocks(dir) => Box::new(super::RocksStore::open(dir)?),
        #[cfg(feature = "s3")]
        StoreUrl::S3 {
            bucket,
            prefix,
            config,
            part_size,
        } => Box::new(super::S3Store::open(super::S3Options {
            bucket,
            prefix,
            config,
            part_size: part_size.unwrap_or(super::s3::DEFAULT_PART_SIZE),
        })?),
        #[cfg(not(feature = "s3"))]
        StoreUrl::S3 { .. } => {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                reason: "this cairn was built without S3 support; rebuild it with \
                         `cargo build --release -p cairn --features s3`"
                    .into(),
            });
        }
        #[cfg(not(feature = "rocksdb"))]
        StoreUrl::Rocks(_) => {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                reason: "this cairn was built without RocksDB support; rebuild it with \
                         `cargo build --release -p cairn --features rocksdb`"
                    .into(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_nest_in_every_kind_of_store() {
        assert_eq!(
            namespaced("file:/tmp/x/", "shard-1/epoch-7").unwrap(),
            "file:/tmp/x/shard-1/epoch-7"
        );
        assert_eq!(
            namespaced("s3://b/jobs?endpoint=http://h:1&allow_http=true", "shard-0").unwrap(),
            "s3://b/jobs/shard-0?endpoint=http://h:1&allow_http=true"
        );
        assert_eq!(
            namespaced("redis://127.0.0.1:6380/2?ttl=60&prefix=demo", "shard-3/epoch-9").unwrap(),
            "redis://127.0.0.1:6380/2?prefix=demo:shard-3:epoch-9&ttl=60"
        );
        assert_eq!(
            namespaced("redis://127.0.0.1:6380", "s").unwrap(),
            "redis://127.0.0.1:6380?prefix=cairn:s"
        );
        assert!(namespaced("memory:", "s").is_err());
        assert!(namespaced("file:/x", "../up").is_err());
    }

    #[test]
    fn parses_every_form() {
        assert_eq!("memory:".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
        assert_eq!(
            "file:/tmp/x".parse::<StoreUrl>().unwrap(),
            StoreUrl::File("/tmp/x".into())
        );
        assert_eq!(
            "rocksdb:./db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Rocks("./db".into())
        );
        assert_eq!(
            "redis://127.0.0.1:6380/2?prefix=demo&ttl=60"
                .parse::<StoreUrl>()
                .unwrap(),
            StoreUrl::Redis {
                server: "redis://127.0.0.1:6380/2".into(),
                prefix: "demo".into(),
                ttl: Some(60)
            }
        );
        assert_eq!(
            "redis://localhost:6379".parse::<StoreUrl>().unwrap(),
            StoreUrl::Redis {
                server: "redis://localhost:6379".into(),
                prefix: "cairn".into(),
                ttl: None
            }
        );
    }

    #[test]
    fn bad_urls_list_the_accepted_forms() {
        assert_eq!(
            "s3://b/jobs/one/?endpoint=http://127.0.0.1:9000&allow_http=true&part_size=6000000"
                .parse::<StoreUrl>()
                .unwrap(),
            StoreUrl::S3 {
                bucket: "b".into(),
                prefix: "jobs/one".into(),
                config: vec![
                    ("endpoint".into(), "http://127.0.0.1:9000".into()),
                    ("aws_allow_http".into(), "true".into())
                ],
                part_size: Some(6_000_000)
            }
        );
        for bad in [
            "s3://",
            "s3:///x",
            "s3://b?part_size=10",
            "s3://b?endpoint",
            "gs://bucket",
            "file:",
            "redis://host",
            "redis://h:port",
            "redis://h:1/x",
            "redis://h:1?ttl=0",
            "redis://h:1?foo=1",
            "memory",
        ] {
            let e = bad.parse::<StoreUrl>().unwrap_err().to_string();
            assert!(
                e.contains("accepted forms: memory:, file:<dir>, rocksdb:<dir>, redis://"),
                "{bad}: {e}"
            );
        }
    }
}
