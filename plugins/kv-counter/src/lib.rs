//! `kv-counter`: the counter (`{"count": n}` per event, n counting the events of its key so
//! far) written against `wasi:keyvalue` alone, as a component built for Spin would keep its
//! state: `atomics::increment` on bucket `default`, one entry per stream key. Its output is
//! byte-identical to the `counter` plugin's.

wit_bindgen::generate!({
    world: "cairn:kv-counter/kv-counter",
    path: ["../../wit/0.2.0", "../../wit/deps/keyvalue-0.2.0-draft2", "wit"],
    generate_all,
});

mod counter;

use counter::KvCounter;

export!(KvCounter);
