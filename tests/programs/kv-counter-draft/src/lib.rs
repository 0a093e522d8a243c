//! `kv-counter-draft`: kv-counter's operator (`plugins/kv-counter/src/counter.rs`) built against
//! `wasi:keyvalue@0.2.0-draft`, the version wasmtime-wasi-keyvalue hosts, instead of draft2.

wit_bindgen::generate!({
    world: "cairn:kv-counter/kv-counter",
    path: ["../../../wit/0.2.0", "../../../wit/deps/keyvalue-0.2.0-draft", "wit"],
    generate_all,
});

#[path = "../../../../plugins/kv-counter/src/counter.rs"]
mod counter;

use counter::KvCounter;

export!(KvCounter);
