//! The host side of the `state` and `log` interfaces, and the data each store carries.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::cairn::operator::{log, state, types};
use crate::sandbox::Limiter;
use crate::state::{StateError, StateHolder};

/// What a plugin's store holds: its WASI context (granting nothing), its limits and its state.
pub(crate) struct StoreData {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub state: StateHolder,
    pub plugin: Arc<str>,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreData {}

fn to_wit(e: StateError) -> types::StateError {
    match e {
        StateError::QuotaExceeded { .. } => types::StateError::QuotaExceeded(e.to_string()),
    }
}

impl state::Host for StoreData {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.state.get(&key).map(<[u8]>::to_vec)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::StateError> {
        self.state.set(&key, value).map_err(to_wit)
    }

    fn remove(&mut self, key: String) -> bool {
        self.state.remove(&key)
    }

    fn exists(&mut self, key: String) -> bool {
        self.state.exists(&key)
    }

    fn list_keys(&mut self, prefix: String, start_after: Option<String>, limit: u32) -> Vec<String> {
        self.state
            .list_keys(&prefix, start_after.as_deref(), limit as usize)
    }

    fn get_many(&mut self, keys: Vec<String>) -> Vec<Option<Vec<u8>>> {
        keys.iter()
            .map(|k| self.state.get(k).map(<[u8]>::to_vec))
            .collect()
    }

    fn set_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> Result<(), types::StateError> {
        for (k, v) in entries {
            self.state.set(&k, v).map_err(to_wit)?;
        }
        Ok(())
    }

    fn remove_many(&mut self, keys: Vec<String>) -> u32 {
        keys.iter().filter(|k| self.state.remove(k)).count() as u32
    }
}

impl log::Host for StoreData {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "cairn::guest", plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "cairn::guest", plugin, "{message}"),
        }
    }
}
