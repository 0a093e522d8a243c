//! Test fixture: each event's value is a JSON array of state operations; the plugin runs them
//! through cairn-sdk's `state` functions (so through its cache and prefetch in a plugin) and
//! emits one event per operation with the answer. A refused write is an answer (`"refused"`),
//! not a failure; the operation `["fail"]` fails the batch. Tests compare the answers and the
//! final state with a plain model.
//!
//! Operations: `["set", k, v]`, `["remove", k]`, `["discard", k]`, `["get", k]`, `["exists", k]`,
//! `["list", prefix]`, `["prefetch", [k…]]`, `["get_many", [k…]]`, `["set_many", [[k, v]…]]`,
//! `["remove_many", [k…]]`, `["fail"]`, and `["set_wide", k, v]` (a write to the operator-wide
//! scope). Values are strings. Keys are in the event key's scope but for `set_wide`'s.

use cairn_sdk::serde_json::{Value, json};
use cairn_sdk::{Config, Error, Event, Operator, Output, state};

struct Model;

fn s(v: &Value) -> Result<&str, Error> {
    v.as_str()
        .ok_or_else(|| Error::msg(format_args!("expected a string, got {v}")))
}

fn strs(v: &Value) -> Result<Vec<String>, Error> {
    v.as_array()
        .ok_or_else(|| Error::msg("expected an array"))?
        .iter()
        .map(|k| s(k).map(str::to_string))
        .collect()
}

fn text(v: Option<Vec<u8>>) -> Value {
    v.map_or(Value::Null, |b| {
        Value::String(String::from_utf8_lossy(&b).into_owned())
    })
}

fn written(r: Result<(), state::StateError>) -> Value {
    match r {
        Ok(()) => json!("ok"),
        Err(_) => json!("refused"),
    }
}

impl Operator for Model {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Model)
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let ops: Vec<Value> = event.value_json()?;
        for op in ops {
            let a = op
                .as_array()
                .ok_or_else(|| Error::msg("an operation is an array"))?;
            let name = s(&a[0])?;
            let answer = match name {
                "set" => written(state::set(s(&a[1])?, s(&a[2])?.as_bytes())),
                "set_wide" => {
                    let (k, v) = (s(&a[1])?, s(&a[2])?);
                    written(state::with_operator(|| state::set(k, v.as_bytes())))
                }
                "remove" => json!(state::remove(s(&a[1])?)),
                "discard" => {
                    state::discard(s(&a[1])?);
                    json!("ok")
                }
                "get" => text(state::get(s(&a[1])?)),
                "exists" => json!(state::exists(s(&a[1])?)),
                "list" => json!(state::keys_with_prefix(s(&a[1])?)),
                "prefetch" => {
                    let keys = strs(&a[1])?;
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    state::prefetch([event.key.as_str()], &keys);
                    json!("ok")
                }
                "get_many" => Value::Array(state::get_many(&strs(&a[1])?).into_iter().map(text).collect()),
                "set_many" => {
                    let entries = a[1]
                        .as_array()
                        .ok_or_else(|| Error::msg("set_many takes an array"))?
                        .iter()
                        .map(|e| Ok((s(&e[0])?.to_string(), s(&e[1])?.as_bytes().to_vec())))
                        .collect::<Result<Vec<_>, Error>>()?;
                    written(state::set_many(&entries))
                }
                "remove_many" => json!(state::remove_many(&strs(&a[1])?)),
                "fail" => return Err(Error::msg("asked to fail")),
                other => return Err(Error::msg(format_args!("unknown operation {other}"))),
            };
            out.emit_json(event.key.clone(), event.ts, &answer)?;
        }
        Ok(())
    }
}

cairn_sdk::export!(Model);
