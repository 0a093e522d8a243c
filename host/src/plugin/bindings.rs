//! Host bindings generated from `wit/operator.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "operator",
});
