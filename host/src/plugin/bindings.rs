//! Host bindings generated from `wit/operator.wit`, for the `operator-core` world that every
//! plugin fits; the optional `process-packed` export is looked up by hand (see `packed`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operator-core",
});

pub use OperatorCore as Operator;
pub use OperatorCorePre as OperatorPre;
