//! Test fixture: each event is one state operation, made through the binding its value names,
//! in the scope of the event's key; the answer is emitted as an event of that key. The
//! conformance table (`tests/all/bindings.rs`) runs one scenario through every binding and
//! compares answers and state.
//!
//! An event's value: `{"via": V, "op": O, "key": K, "value": S}` with `V` one of `state`,
//! `packed`, `bulk`, `pickled`, `kv` (wasi:keyvalue: the operator-wide scope) and `O` one of
//! `set`, `get`, `remove`, `timer` (register the timer of the event's key at `ts + 1000`),
//! `fail` (fail the batch after the operations before it). Answers: `{"ok": <value or null or
//! bool>}`, or `{"refused": "quota-exceeded" | "invalid" | "other", "message": ...}`. A host
//! function without an error to answer with fails the call instead (the batch rolls back).

wit_bindgen::generate!({
    world: "cairn:binding-probe/probe",
    path: ["../../../wit/0.2.4", "../../../wit/deps/keyvalue-0.2.0-draft2", "wit"],
    generate_all,
});

use cairn::operator::types::{Event, StateError};
use cairn::operator::{bulk_state, packed_state, packed_timers, pickled_state, state, timers};
use cairn_codec::pickle;
use cairn_codec::state::{Answers, KeyList, TimerList, Writes};
use exports::cairn::operator::{operator, timer_handler};
use serde_json::{Value, json};
use wasi::keyvalue::store as kv;

struct Probe;

fn refused(e: StateError) -> Value {
    match e {
        StateError::QuotaExceeded(m) => json!({"refused": "quota-exceeded", "message": m}),
        StateError::Invalid(m) => json!({"refused": "invalid", "message": m}),
    }
}

fn written(r: Result<(), StateError>) -> Value {
    match r {
        Ok(()) => json!({"ok": null}),
        Err(e) => refused(e),
    }
}

fn text(v: Option<Vec<u8>>) -> Value {
    json!({"ok": v.map(|b| String::from_utf8_lossy(&b).into_owned())})
}

fn kv_answer<T: Into<Value>>(r: Result<T, kv::Error>) -> Value {
    match r {
        Ok(v) => json!({"ok": v.into()}),
        Err(kv::Error::Other(m)) => json!({"refused": "other", "message": m}),
        Err(e) => json!({"refused": "other", "message": format!("{e:?}")}),
    }
}

/// One operation through the state interface named `via`.
fn run(via: &str, op: &str, scope: &str, key: &str, value: &str, ts: i64) -> Result<Value, String> {
    let s = Some(scope);
    let sb = Some(scope.as_bytes());
    Ok(match (via, op) {
        ("state", "set") => written(state::set(s, key, value.as_bytes())),
        ("state", "get") => text(state::get(s, key)),
        ("state", "remove") => json!({"ok": state::remove(s, key)}),
        ("state", "timer") => written(timers::register(scope, ts + 1000)),
        ("packed", "set") => {
            let mut w = Writes::new();
            w.set(sb, key.as_bytes(), value.as_bytes());
            written(packed_state::write_many_packed(w.as_bytes()))
        }
        ("packed", "remove") => {
            let mut w = Writes::new();
            w.remove(sb, key.as_bytes());
            written(packed_state::write_many_packed(w.as_bytes()))
        }
        ("packed", "get") => {
            let mut names = KeyList::new();
            names.push(sb, key.as_bytes());
            match packed_state::get_many_packed(names.as_bytes()) {
                Ok(bytes) => {
                    let v = Answers::new(&bytes).next_answer().map_err(|e| e.to_string())?;
                    text(v.map(<[u8]>::to_vec))
                }
                Err(e) => refused(e),
            }
        }
        ("packed", "timer") => {
            let mut t = TimerList::new();
            t.push(scope.as_bytes(), ts + 1000);
            written(packed_timers::register_packed(t.as_bytes()))
        }
        ("bulk", "set") => written(bulk_state::write_entries(&[(
            s.map(str::to_string),
            key.to_string(),
            Some(value.as_bytes().to_vec()),
        )])),
        ("bulk", "remove") => written(bulk_state::write_entries(&[(
            s.map(str::to_string),
            key.to_string(),
            None,
        )])),
        ("bulk", "get") => text(
            bulk_state::get_entries(&[(s.map(str::to_string), key.to_string())])
                .pop()
                .flatten(),
        ),
        ("pickled", "set" | "remove") => {
            let mut w = pickle::Writer::new(64);
            w.str(scope);
            w.str(key);
            w.opt_bytes((op == "set").then_some(value.as_bytes()));
            w.tuple(3);
            written(pickled_state::write_entries_pickled(&w.finish()))
        }
        ("pickled", "get") => {
            let mut w = pickle::Writer::new(64);
            w.str(scope);
            w.str(key);
            w.tuple(2);
            match pickled_state::get_entries_pickled(&w.finish()) {
                Ok(bytes) => {
                    let mut d = pickle::Decoder::new(&bytes, "answers").map_err(|e| e.to_string())?;
                    d.next_item().map_err(|e| e.to_string())?;
                    text(d.opt_bytes().map_err(|e| e.to_string())?.map(<[u8]>::to_vec))
                }
                Err(e) => refused(e),
            }
        }
        ("kv", _) => {
            let bucket = kv::open("default").map_err(|e| format!("{e:?}"))?;
            match op {
                "set" => kv_answer(bucket.set(key, value.as_bytes()).map(|()| Value::Null)),
                "get" => kv_answer(
                    bucket
                        .get(key)
                        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())),
                ),
                "remove" => kv_answer(bucket.delete(key).map(|()| true)),
                _ => return Err(format!("wasi:keyvalue has no operation {op:?}")),
            }
        }
        _ => return Err(format!("no operation {op:?} through {via:?}")),
    })
}

impl operator::Guest for Probe {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Result<Vec<Event>, String> {
        let mut out = Vec::with_capacity(batch.len());
        for e in batch {
            let cmd: Value = serde_json::from_slice(&e.value).map_err(|err| err.to_string())?;
            let field = |f: &str| cmd.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let op = field("op");
            if op == "fail" {
                return Err("the probe was told to fail".into());
            }
            let answer = run(&field("via"), &op, &e.key, &field("key"), &field("value"), e.ts)?;
            out.push(Event {
                key: e.key,
                ts: e.ts,
                value: answer.to_string().into_bytes(),
            });
        }
        Ok(out)
    }

    fn on_watermark(_watermark: i64) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

impl timer_handler::Guest for Probe {
    fn on_timers(fired: Vec<timer_handler::Timer>) -> Result<Vec<Event>, String> {
        Ok(fired
            .into_iter()
            .map(|t| Event {
                key: t.key,
                ts: t.ts,
                value: br#"{"fired":true}"#.to_vec(),
            })
            .collect())
    }
}

export!(Probe);
