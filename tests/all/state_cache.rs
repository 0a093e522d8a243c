//! Model-based test of cairn-sdk's state cache inside a real plugin: random batches of state
//! operations (writes held back, prefetches, bulk calls, refusals by tight quotas, failed
//! batches) through the `state-model` fixture, against a plain ordered map with the host's
//! quota rules. Every answer and the state after every batch must match the model exactly.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cairn::{Batch, Engine, Limits, Plugin};
use cairn_tests::plugin;
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Op {
    Set(String, String),
    Remove(String),
    Discard(String),
    Get(String),
    Exists(String),
    List(String),
    Prefetch(Vec<String>),
    GetMany(Vec<String>),
    SetMany(Vec<(String, String)>),
    RemoveMany(Vec<String>),
    Fail,
}

impl Op {
    fn json(&self) -> Value {
        match self {
            Op::Set(k, v) => json!(["set", k, v]),
            Op::Remove(k) => json!(["remove", k]),
            Op::Discard(k) => json!(["discard", k]),
            Op::Get(k) => json!(["get", k]),
            Op::Exists(k) => json!(["exists", k]),
            Op::List(p) => json!(["list", p]),
            Op::Prefetch(ks) => json!(["prefetch", ks]),
            Op::GetMany(ks) => json!(["get_many", ks]),
            Op::SetMany(es) => json!([
                "set_many",
                es.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()
            ]),
            Op::RemoveMany(ks) => json!(["remove_many", ks]),
            Op::Fail => json!(["fail"]),
        }
    }
}

/// Every event of the test has the key "e": the plugin's state calls work in its scope, whose
/// entries the host stores (and counts against the quotas) under `1:e/<key>`.
const SCOPE: &str = "1:e/";

fn scoped(k: &str) -> String {
    format!("{SCOPE}{k}")
}

/// The host's state rules: a map (of scoped keys) with quotas.
#[derive(Debug, Clone, Default)]
struct Model {
    map: BTreeMap<String, String>,
    max_keys: usize,
    max_bytes: usize,
    max_value: usize,
}

impl Model {
    fn bytes(&self) -> usize {
        self.map.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    fn set(&mut self, k: &str, v: &str) -> bool {
        let k = &scoped(k);
        let old = self.map.get(k).map(|o| k.len() + o.len());
        let bytes = self.bytes();
        let new_total = bytes - old.unwrap_or(0) + k.len() + v.len();
        if v.len() > self.max_value
            || (old.is_none() && self.map.len() >= self.max_keys)
            || (new_total > self.max_bytes && new_total > bytes)
        {
            return false;
        }
        self.map.insert(k.into(), v.into());
        true
    }

    fn apply(&mut self, op: &Op) -> Value {
        let written = |ok: bool| json!(if ok { "ok" } else { "refused" });
        match op {
            Op::Set(k, v) => written(self.set(k, v)),
            Op::Remove(k) => json!(self.map.remove(&scoped(k)).is_some()),
            Op::Discard(k) => {
                self.map.remove(&scoped(k));
                json!("ok")
            }
            Op::Get(k) => json!(self.map.get(&scoped(k))),
            Op::Exists(k) => json!(self.map.contains_key(&scoped(k))),
            Op::List(p) => json!(
                self.map
                    .keys()
                    .filter(|k| k.starts_with(&scoped(p)))
                    .map(|k| &k[SCOPE.len()..])
                    .collect::<Vec<_>>()
            ),
            Op::Prefetch(_) => json!("ok"),
            Op::GetMany(ks) => json!(ks.iter().map(|k| self.map.get(&scoped(k))).collect::<Vec<_>>()),
            Op::SetMany(es) => written(es.iter().all(|(k, v)| self.set(k, v))),
            Op::RemoveMany(ks) => json!(
                ks.iter()
                    .filter(|k| self.map.remove(&scoped(k)).is_some())
                    .count()
            ),
            Op::Fail => Value::Null,
        }
    }
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a1", "a2", "a3", "b1", "b2", "c1", "c2", "d"]).prop_map(String::from)
}

fn value() -> impl Strategy<Value = String> {
    "[a-z]{0,14}"
}

fn op() -> impl Strategy<Value = Op> {
    let keys = || prop::collection::vec(key(), 0..5);
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::Discard),
        4 => key().prop_map(Op::Get),
        1 => key().prop_map(Op::Exists),
        1 => prop::sample::select(vec!["", "a", "b", "c"]).prop_map(|p| Op::List(p.into())),
        2 => keys().prop_map(Op::Prefetch),
        1 => keys().prop_map(Op::GetMany),
        1 => prop::collection::vec((key(), value()), 0..4).prop_map(Op::SetMany),
        1 => keys().prop_map(Op::RemoveMany),
        1 => Just(Op::Fail),
    ]
}

/// Batches of events, each event a list of operations; batch sizes straddle the SDK's
/// threshold for holding writes back.
fn batches() -> impl Strategy<Value = Vec<Vec<Vec<Op>>>> {
    let event = prop::collection::vec(op(), 1..6);
    prop::collection::vec(prop::collection::vec(event, 1..9), 1..6)
}

fn plugin_once() -> &'static Plugin {
    static P: OnceLock<Plugin> = OnceLock::new();
    P.get_or_init(|| Plugin::load(&Engine::new().unwrap(), plugin("state-model")).unwrap())
}

fn check(batches: Vec<Vec<Vec<Op>>>, quotas: (usize, usize, usize)) -> Result<(), TestCaseError> {
    let (max_keys, max_bytes, max_value) = quotas;
    let limits = Limits::default().with_state_quotas(max_keys as u64, max_bytes as u64, max_value as u64);
    let mut inst = plugin_once().operator().limits(limits).build().unwrap();
    let mut model = Model {
        max_keys,
        max_bytes,
        max_value,
        ..Model::default()
    };
    for events in batches {
        let before = model.clone();
        let mut want = Vec::new();
        let mut fails = false;
        'batch: for ops in &events {
            for op in ops {
                if let Op::Fail = op {
                    fails = true;
                    break 'batch;
                }
                want.push(model.apply(op));
            }
        }
        let mut input = Batch::new();
        for (i, ops) in events.iter().enumerate() {
            let text = Value::Array(ops.iter().map(Op::json).collect()).to_string();
            input.push("e", i as i64, text.as_bytes()).unwrap();
        }
        let result = inst.process_batch(&input);
        if fails {
            prop_assert!(result.is_err(), "a batch with a failing operation must fail");
            model = before;
        } else {
            let out = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<Value> = out
                .iter()
                .map(|e| serde_json::from_slice(e.value).unwrap())
                .collect();
            prop_assert_eq!(got, want);
        }
        let state: Vec<(String, String)> = inst
            .state()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let expected: Vec<(String, String)> = model.map.clone().into_iter().collect();
        prop_assert_eq!(state, expected);
        prop_assert_eq!(inst.state().bytes() as usize, model.bytes());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Tight quotas: many writes are refused, some only by the host's exact check.
    #[test]
    fn cache_matches_the_model_under_tight_quotas(b in batches()) {
        check(b, (5, 40, 10))?;
    }

    /// No quotas: every write is held back until the end of its call.
    #[test]
    fn cache_matches_the_model_without_quotas(b in batches()) {
        check(b, (usize::MAX >> 1, usize::MAX >> 1, usize::MAX >> 1))?;
    }
}
