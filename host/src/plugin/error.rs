use std::time::Duration;

use thiserror::Error;

/// Why a plugin could not be loaded. Each variant says what the file is and what to do.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file does not exist.
    #[error(
        "plugin file {path} does not exist; build the example plugins with `bash scripts/build-plugins.sh` \
         (they land in dist/plugins/) or pass the path of your own .wasm"
    )]
    NotFound {
        /// The path given.
        path: String,
    },
    /// The file exists but could not be read.
    #[error("could not read plugin file {path}")]
    Read {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error(
        "{path} is not a WebAssembly file (it does not start with the `\\0asm` magic); pass the .wasm \
         that `cargo build --target wasm32-wasip2 --release` writes under target/wasm32-wasip2/release/"
    )]
    NotWasm {
        /// The path given.
        path: String,
    },
    /// A core module, not a component.
    #[error(
        "{path} is a core WebAssembly module, not a component; Cairn runs components: build the plugin \
         with `cairn build` (any language; its cairn.toml says how), or for Rust with `cargo build --target \
         wasm32-wasip2` (wasm32-unknown-unknown and wasm32-wasip1 produce core modules); a C core module \
         becomes a component with `wasm-tools component new`"
    )]
    CoreModule {
        /// The path given.
        path: String,
    },
    /// The component is malformed or could not be compiled.
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Invalid {
        /// The path given.
        path: String,
        /// What wasmtime said.
        message: String,
    },
    /// A component of another world.
    #[error(
        "{path} does not fit Cairn's world {world}: {}; a plugin implements world `operator-core` (or \
         `operator-timers`) of WIT cairn:operator@{} (or an older supported version): in Rust, export it with \
         `cairn_sdk::export!(YourOperator);`; in Python, JavaScript or C, build it with `cairn build` \
         (`cairn new --lang python|js|c NAME` makes a project whose SDK does)",
        problems.join("; "),
        cairn_codec::CONTRACT_VERSION
    )]
    WorldMismatch {
        /// The path given.
        path: String,
        /// The world expected.
        world: &'static str,
        /// What is missing or wrong, one item each.
        problems: Vec<String>,
    },
    /// The component's declaration (its `cairn-operator` section) cannot be read.
    #[error(
        "{path} declares its operator name and state version in a custom section `cairn-operator` that \
         cannot be read: {message}; rebuild it (cairn-sdk: `export!(Op, name = \"…\", state_version = N)`; \
         other languages: `name` and `state_version` in cairn.toml's [operator], then `cairn build`)"
    )]
    BadDeclaration {
        /// The path given.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a call into a plugin failed. The batch's state writes have been rolled back.
#[derive(Debug, Error)]
pub enum CallError {
    /// The call ran past its deadline.
    #[error(
        "plugin `{plugin}` exceeded its time limit (timeout = {}) in `{call}`; the batch was rolled back. \
         Raise the limit if the work is legitimate, otherwise fix the plugin",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        /// Operator name.
        plugin: String,
        /// Which export.
        call: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The call used up its fuel.
    #[error("plugin `{plugin}` ran out of fuel (fuel = {fuel}) in `{call}`; the batch was rolled back")]
    OutOfFuel {
        /// Operator name.
        plugin: String,
        /// Which export.
        call: &'static str,
        /// The limit.
        fuel: u64,
    },
    /// Linear memory or a table would have grown past its cap.
    #[error(
        "plugin `{plugin}` exceeded its memory limit (memory-limit = {limit} bytes) in `{call}`; the batch was \
         rolled back"
    )]
    Memory {
        /// Operator name.
        plugin: String,
        /// Which export.
        call: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The guest trapped (panic, unreachable, out-of-bounds access, …).
    #[error("plugin `{plugin}` trapped in `{call}`: {message}; the batch was rolled back")]
    Trap {
        /// Operator name.
        plugin: String,
        /// Which export.
        call: &'static str,
        /// The trap and its wasm backtrace.
        message: String,
    },
    /// The guest returned an error value.
    #[error("plugin `{plugin}` failed in `{call}`: {message}; the batch was rolled back")]
    Guest {
        /// Operator name.
        plugin: String,
        /// Which export.
        call: &'static str,
        /// The guest's message.
        message: String,
    },
    /// The batch could not be passed to the plugin (nothing was called).
    #[error("batch for plugin `{plugin}` cannot be passed to it: {message}")]
    Input {
        /// Operator name.
        plugin: String,
        /// What is wrong with the batch.
        message: String,
    },
    /// The plugin could not be instantiated.
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate {
        /// Operator name.
        plugin: String,
        /// What wasmtime said.
        message: String,
    },
}
