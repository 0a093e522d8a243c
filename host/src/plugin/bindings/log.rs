//! The `log` interface (the same in every version): a plugin's messages go to the host's log,
//! tagged with the plugin's name.

use wasmtime::component::{ComponentType, Lift, LinkerInstance};

use super::{Ctx, InstanceData};

/// The `level` enum. Its values are only made by lifting them from the guest.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, ComponentType, Lift)]
#[component(enum)]
#[repr(u8)]
enum Level {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

/// Register `log`.
pub(super) fn add(i: &mut LinkerInstance<'_, InstanceData>, name: &'static str) -> wasmtime::Result<()> {
    i.func_wrap(name, |store: Ctx<'_>, (level, message): (Level, String)| {
        let plugin = &*store.data().plugin;
        match level {
            Level::Trace => tracing::trace!(target: "cairn::guest", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "cairn::guest", plugin, "{message}"),
            Level::Info => tracing::info!(target: "cairn::guest", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "cairn::guest", plugin, "{message}"),
            Level::Error => tracing::error!(target: "cairn::guest", plugin, "{message}"),
        }
        Ok(())
    })
}
