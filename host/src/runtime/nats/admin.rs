//! Creating the streams a job reads and writes (`cairn stream create`).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::{NatsUrl, connect, runtime};
use crate::runtime::io::IoOptions;

/// How to create a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamSpec {
    /// The subjects it captures.
    pub subjects: Vec<String>,
    /// Allow atomic batch publishes (an exactly-once output needs them).
    pub allow_atomic: bool,
    /// The server's de-duplication window (`None`: the server's default).
    pub duplicate_window: Option<Duration>,
    /// Keep messages in memory instead of files.
    pub memory: bool,
    /// Keep at most this many messages (older ones are removed; `None`: no limit).
    pub max_messages: Option<i64>,
}

/// Create (or update to `spec`) the stream `url` names (`nats://HOST:PORT/STREAM`). Returns a
/// line describing it.
pub fn create_stream(url: &str, spec: &StreamSpec, io: &IoOptions) -> Result<String, String> {
    let u = NatsUrl::parse(url)?;
    u.only(&[])?;
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = connect(&u, io).await?;
        let js = jetstream::new(client);
        let config = stream::Config {
            name: u.name.clone(),
            subjects: spec.subjects.clone(),
            allow_atomic_publish: spec.allow_atomic,
            duplicate_window: spec.duplicate_window.unwrap_or_default(),
            storage: if spec.memory {
                stream::StorageType::Memory
            } else {
                stream::StorageType::File
            },
            max_messages: spec.max_messages.unwrap_or(-1),
            ..Default::default()
        };
        let info = match js.get_stream(u.name.clone()).await {
            Ok(_) => js
                .update_stream(config)
                .await
                .map_err(|e| format!("updating stream {}: {e}", u.name))?,
            Err(_) => js
                .create_stream(config)
                .await
                .map_err(|e| format!("creating stream {}: {e}", u.name))?
                .cached_info()
                .clone(),
        };
        Ok(format!(
            "stream {} on {}: subjects {:?}, atomic batches {}, {} messages",
            info.config.name,
            u.shown,
            info.config.subjects,
            if info.config.allow_atomic_publish {
                "allowed"
            } else {
                "not allowed"
            },
            info.state.messages
        ))
    })
}
