//! # cairn-sdk
//!
//! Write a stateful stream operator for [Cairn](https://github.com/) in Rust, build it with
//! `cargo build --target wasm32-wasip2 --release`, and run it with `cairn run`.
//!
//! An operator is a type implementing [`Operator`], exported with [`export!`]. Its state lives
//! in the host (see [`state`]), so it survives crashes through the host's checkpoints: keep
//! nothing in the operator value that must outlive a restart except what [`Operator::init`]
//! derives from the configuration.
//!
//! ```
//! use cairn_sdk::{Config, Error, Event, Operator, Output, state};
//!
//! struct Counter;
//!
//! impl Operator for Counter {
//!     fn init(_config: &Config) -> Result<Self, Error> {
//!         Ok(Counter)
//!     }
//!
//!     fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
//!         // State is scoped to the event's key: this is the count of `event.key`.
//!         let n: u64 = state::get_as("count")?.unwrap_or(0) + 1;
//!         state::set_as("count", &n)?;
//!         out.emit_json(event.key, event.ts, &serde_json::json!({ "count": n }))
//!     }
//! }
//!
//! cairn_sdk::export!(Counter);
//! ```

#![deny(missing_docs)]

mod error;
mod event;
pub mod json;
pub mod key;
pub mod log;
pub mod migration;
mod operator;
pub mod state;
pub mod stats;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod timers;
mod typed;

pub use error::Error;
pub use event::{Config, Event, Output};
pub use operator::Operator;
pub use typed::{MapKey, MapState, Scope, ValueState};

/// Re-exported so that operators and the [`export!`] macro use the same serde as the SDK.
pub use serde;
/// Re-exported for operators that read or write JSON values.
pub use serde_json;

/// The bindings generated from Cairn's WIT world. Not part of the stable API: use the
/// wrappers of this crate instead.
#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "operator-packed",
        pub_export_macro: true,
        export_macro_name: "__export_operator_world",
        default_bindings_module: "cairn_sdk::__bindings",
    });
}

#[doc(hidden)]
pub mod __rt;
#[doc(hidden)]
pub mod packed;

/// Export a type implementing [`Operator`] as the component's `operator` world.
///
/// Use it once per plugin crate, at the top level of `lib.rs`:
/// `cairn_sdk::export!(MyOperator);`, or with a declaration the host reads without running
/// the plugin: `cairn_sdk::export!(MyOperator, name = "counter", state_version = 2);` — the
/// operator's name (its state is keyed by it unless the pipeline names the operator) and the
/// version of its state layout (0 when not declared; a newer one migrates older state with
/// [`Operator::migrate`]). Either may be left out.
#[macro_export]
macro_rules! export {
    ($ty:ty, name = $name:literal, state_version = $v:literal $(,)?) => {
        $crate::__declare!(concat!(
            "name=",
            $name,
            "\nstate-version=",
            stringify!($v),
            "\n"
        ));
        $crate::export!($ty);
    };
    ($ty:ty, name = $name:literal $(,)?) => {
        $crate::__declare!(concat!("name=", $name, "\n"));
        $crate::export!($ty);
    };
    ($ty:ty, state_version = $v:literal $(,)?) => {
        $crate::__declare!(concat!("state-version=", stringify!($v), "\n"));
        $crate::export!($ty);
    };
    ($ty:ty) => {
        // Only a wasm build exports anything: natively (unit tests, benches) several plugins
        // can then be linked into one binary. There the operator is still checked (and used).
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&$crate::Config) -> ::std::result::Result<$ty, $crate::Error> =
            <$ty as $crate::Operator>::init;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __CairnExport;

            ::std::thread_local! {
                static __CAIRN_INSTANCE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            impl $crate::__bindings::exports::cairn::operator::operator::Guest for __CairnExport {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::init::<$ty>(slot, config))
                }

                fn process(
                    batch: ::std::vec::Vec<$crate::__bindings::cairn::operator::types::Event>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__bindings::cairn::operator::types::Event>,
                    ::std::string::String,
                > {
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::process::<$ty>(slot, batch))
                }

                fn on_watermark(
                    watermark: i64,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__bindings::cairn::operator::types::Event>,
                    ::std::string::String,
                > {
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::on_watermark::<$ty>(slot, watermark))
                }
            }

            impl $crate::__bindings::exports::cairn::operator::timer_handler::Guest for __CairnExport {
                fn on_timers(
                    fired: ::std::vec::Vec<
                        $crate::__bindings::exports::cairn::operator::timer_handler::Timer,
                    >,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__bindings::cairn::operator::types::Event>,
                    ::std::string::String,
                > {
                    let fired = fired.into_iter().map(|t| (t.key, t.ts)).collect();
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::on_timers::<$ty>(slot, fired))
                }
            }

            impl $crate::__bindings::exports::cairn::operator::packed_timer_handler::Guest for __CairnExport {
                fn on_timers_packed(
                    fired: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::on_timers_packed::<$ty>(slot, fired))
                }
            }

            impl $crate::__bindings::exports::cairn::operator::migration::Guest for __CairnExport {
                fn migrate(
                    from_version: u32,
                    page: ::std::vec::Vec<$crate::__bindings::exports::cairn::operator::migration::Entry>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__bindings::exports::cairn::operator::migration::Rewrite>,
                    ::std::string::String,
                > {
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::migrate_wit::<$ty>(slot, from_version, page))
                }
            }

            impl $crate::__bindings::exports::cairn::operator::packed_operator::Guest for __CairnExport {
                fn process_packed(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    __CAIRN_INSTANCE.with(|slot| $crate::__rt::process_packed::<$ty>(slot, batch))
                }
            }

    $crate::__bindings::__export_operator_world!(__CairnExport with_types_in $crate::__bindings);
        };
    };
}

/// The declaration section of [`export!`] (`cairn_codec::declared`): a custom section of the
/// plugin's core module, which the component keeps.
#[doc(hidden)]
#[macro_export]
macro_rules! __declare {
    ($payload:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const __P: &str = $payload;
            #[unsafe(link_section = "cairn-operator")]
            #[used]
            static __CAIRN_DECLARED: [u8; __P.len()] = $crate::__rt::bytes(__P);
        };
        // Checked natively too, so that a bad declaration fails `cargo test`.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::__rt::check_declared($payload);
    };
}
