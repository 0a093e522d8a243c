//! The binding conformance table: one scenario per state rule (key-group ownership, quota
//! refusal, state TTL, rollback of a failed batch), run through every binding of a guest's
//! state — WIT `state`, `packed-state`, `bulk-state`, `pickled-state` (with `timers` and
//! `packed-timers` for timer registrations) and `wasi:keyvalue` — by the `binding-probe`
//! fixture. Each binding runs the part it can express (wasi:keyvalue has no keyed scopes);
//! the 0.2 bindings must give the same answers, the same refusal messages and the same state
//! bytes, since every rule lives in the state core once.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, anyhow};
use cairn::state::KeyGroups;
use cairn::{Engine, Event, Limits, OperatorInstance, Plugin, StateHolder};
use cairn_tests::plugin;
use serde_json::{Value, json};

/// The keyed bindings, and wasi:keyvalue (operator-wide only).
const KEYED: [&str; 4] = ["state", "packed", "bulk", "pickled"];
const ALL: [&str; 5] = ["state", "packed", "bulk", "pickled", "kv"];

fn probe() -> &'static Plugin {
    static P: OnceLock<Plugin> = OnceLock::new();
    P.get_or_init(|| {
        Plugin::load(&Engine::new().expect("an engine"), plugin("binding-probe")).expect("the probe loads")
    })
}

fn instance(limits: Limits, groups: KeyGroups) -> OperatorInstance {
    probe()
        .operator()
        .limits(limits)
        .build_owning(StateHolder::new(), groups)
        .expect("the probe starts")
}

/// One operation through `via` in scope `scope` at event time `ts`.
fn op(via: &str, name: &str, scope: &str, key: &str, value: &str, ts: i64) -> Event {
    let cmd = json!({"via": via, "op": name, "key": key, "value": value});
    Event::new(scope, ts, cmd.to_string())
}

/// What a batch gave: the answers, or the message the call failed with.
fn run(inst: &mut OperatorInstance, batch: &[Event]) -> Result<Vec<Value>, String> {
    inst.process(batch)
        .map(|out| {
            out.iter()
                .map(|e| serde_json::from_slice(&e.value).unwrap_or(Value::Null))
                .collect()
        })
        .map_err(|e| e.to_string())
}

fn one(inst: &mut OperatorInstance, e: Event) -> Result<Value, String> {
    run(inst, &[e]).map(|mut v| v.pop().unwrap_or(Value::Null))
}

/// Every entry of the state, as text.
fn entries(inst: &OperatorInstance) -> Vec<(String, String)> {
    inst.state()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// A stream key in key group `in_owned ? 0..4 : 4..8` of 8.
fn scope_in(owned: bool) -> String {
    let all = KeyGroups::all(8);
    (0..)
        .map(|i| format!("sensor-{i}"))
        .find(|s| (all.group_of(s) < 4) == owned)
        .unwrap_or_default()
}

fn refusal(answer: &Value) -> Option<(&str, &str)> {
    Some((answer["refused"].as_str()?, answer["message"].as_str()?))
}

#[test]
fn a_key_of_a_group_the_instance_does_not_own_is_refused_through_every_binding() -> Result<()> {
    let (mine, theirs) = (scope_in(true), scope_in(false));
    let half = || KeyGroups::range(8, 0..4).expect("a range");
    let mut states = Vec::new();
    let mut messages = Vec::new();
    for via in KEYED {
        let mut inst = instance(Limits::default(), half());
        // Its own keys: writes, reads and timers as usual.
        assert_eq!(
            one(&mut inst, op(via, "set", &mine, "n", "1", 5)),
            Ok(json!({"ok": null})),
            "{via}"
        );
        assert_eq!(
            one(&mut inst, op(via, "get", &mine, "n", "", 5)),
            Ok(json!({"ok": "1"})),
            "{via}"
        );
        // A write of another group's key: refused as state-error.invalid, naming key, group
        // and range; the state is unchanged.
        let answer =
            one(&mut inst, op(via, "set", &theirs, "n", "2", 6)).map_err(|e| anyhow!("{via}: {e}"))?;
        let (kind, message) = refusal(&answer).ok_or_else(|| anyhow!("{via}: not refused: {answer}"))?;
        assert_eq!(kind, "invalid", "{via}");
        assert!(
            message.contains(&format!("{theirs:?}")) && message.contains("0..4"),
            "{via}: {message}"
        );
        assert!(message.contains(" of 8"), "{via}: {message}");
        messages.push(message.to_string());
        // A read: refused too — as an answer where the function has an error to give, else
        // by failing the call (and the batch with it).
        match (via, one(&mut inst, op(via, "get", &theirs, "n", "", 6))) {
            ("packed" | "pickled", Ok(answer)) => {
                assert_eq!(refusal(&answer).map(|r| r.0), Some("invalid"), "{via}: {answer}");
            }
            ("state" | "bulk", Err(message)) => {
                assert!(
                    message.contains(&format!("{theirs:?}")) && message.contains("0..4"),
                    "{via}: {message}"
                );
            }
            (_, other) => panic!("{via}: a read of another group's key gave {other:?}"),
        }
        // A timer of another group's key (state: timers.register; packed: register-packed).
        if via == "state" || via == "packed" {
            let answer =
                one(&mut inst, op(via, "timer", &theirs, "", "", 7)).map_err(|e| anyhow!("{via}: {e}"))?;
            assert_eq!(
                refusal(&answer).map(|r| r.0),
                Some("invalid"),
                "{via} timer: {answer}"
            );
            assert_eq!(
                one(&mut inst, op(via, "timer", &mine, "", "", 7)),
                Ok(json!({"ok": null}))
            );
        }
        // A write that refused, then a failing batch: the refused write left nothing, the
        // failed batch's own write was rolled back.
        let failed = run(
            &mut inst,
            &[
                op(via, "set", &mine, "n", "3", 8),
                op(via, "fail", &mine, "", "", 8),
            ],
        );
        assert!(failed.is_err(), "{via}");
        assert_eq!(
            one(&mut inst, op(via, "get", &mine, "n", "", 9)),
            Ok(json!({"ok": "1"})),
            "{via}"
        );
        states.push((via, entries(&inst)));
    }
    // The same rule, the same words and the same state bytes through every 0.2 binding.
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:#?}");
    let timers = |s: &[(String, String)]| s.iter().filter(|(k, _)| k.starts_with("!t/")).count();
    for (via, s) in &states {
        let without_timers: Vec<_> = s.iter().filter(|(k, _)| !k.starts_with("!t/")).collect();
        let first: Vec<_> = states[0]
            .1
            .iter()
            .filter(|(k, _)| !k.starts_with("!t/"))
            .collect();
        assert_eq!(without_timers, first, "{via}");
        assert_eq!(
            timers(s),
            usize::from(*via == "state" || *via == "packed"),
            "{via}"
        );
    }
    // wasi:keyvalue has no keyed scope: its entries are operator-wide, which one of several
    // instances may not write (such an operator runs at parallelism 1: `cairn run` refuses
    // more); reading is not refused.
    let mut inst = instance(Limits::default(), half());
    let wide = "write of operator-wide key \"n\" refused: operator-wide state needs parallelism 1 \
                (this instance owns key groups 0..4 of 8); keep the state in the key's scope, or run the \
                operator with parallelism 1";
    assert_eq!(
        one(&mut inst, op("kv", "set", &theirs, "n", "1", 5)),
        Ok(json!({"refused": "other", "message": wide}))
    );
    assert_eq!(
        one(&mut inst, op("kv", "get", &theirs, "n", "", 5)),
        Ok(json!({"ok": null}))
    );
    // All groups owned (the default): nothing refused.
    let mut all = instance(Limits::default(), KeyGroups::all(8));
    for via in KEYED {
        assert_eq!(
            one(&mut all, op(via, "set", &theirs, via, "1", 5)),
            Ok(json!({"ok": null})),
            "{via}"
        );
    }
    Ok(())
}

#[test]
fn a_quota_refuses_the_same_write_with_the_same_words_through_every_binding() -> Result<()> {
    let limits = Limits::default().with_state_quotas(2, u64::MAX, 8);
    let mut answers = Vec::new();
    for via in ALL {
        let mut inst = instance(limits.clone(), KeyGroups::default());
        let batch = [
            op(via, "set", "s", "a", "1", 1),
            op(via, "set", "s", "b", "2", 1),
            op(via, "set", "s", "c", "3", 1),
            op(via, "set", "s", "a", "123456789", 1),
            op(via, "get", "s", "c", "", 1),
        ];
        let got = run(&mut inst, &batch).map_err(|e| anyhow!("{via}: {e}"))?;
        assert_eq!(got[..2], [json!({"ok": null}), json!({"ok": null})], "{via}");
        let kind = if via == "kv" { "other" } else { "quota-exceeded" };
        let (k, keys) = refusal(&got[2]).ok_or_else(|| anyhow!("{via}: {}", got[2]))?;
        assert_eq!(k, kind, "{via}");
        assert!(keys.contains("max-keys = 2"), "{via}: {keys}");
        let (k, value) = refusal(&got[3]).ok_or_else(|| anyhow!("{via}: {}", got[3]))?;
        assert_eq!(k, kind, "{via}");
        assert!(value.contains("max-value-bytes = 8"), "{via}: {value}");
        assert_eq!(got[4], json!({"ok": null}), "{via}");
        assert_eq!(inst.state().len(), 2, "{via}");
        answers.push((keys.to_string(), value.to_string()));
    }
    // The keyed bindings name the same scoped key; keyvalue's is operator-wide.
    assert!(answers[..4].windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    Ok(())
}

#[test]
fn an_expired_scope_reads_as_empty_through_every_keyed_binding_and_keyvalue_never_expires() -> Result<()> {
    let limits = Limits::default().with_state_ttl(Some(Duration::from_millis(10)));
    let mut states = Vec::new();
    for via in ALL {
        let mut inst = instance(limits.clone(), KeyGroups::default());
        one(&mut inst, op(via, "set", "s", "n", "1", 100)).map_err(|e| anyhow!("{via}: {e}"))?;
        inst.on_watermark(105)?;
        assert_eq!(
            one(&mut inst, op(via, "get", "s", "n", "", 105)),
            Ok(json!({"ok": "1"})),
            "{via}"
        );
        // Stamped with its event time (100): expired once the watermark reaches 110.
        inst.on_watermark(110)?;
        let want = if via == "kv" {
            json!({"ok": "1"})
        } else {
            json!({"ok": null})
        };
        assert_eq!(
            one(&mut inst, op(via, "get", "s", "n", "", 111)),
            Ok(want),
            "{via}"
        );
        if via != "kv" {
            assert_eq!(inst.expired_keys(), 1, "{via}");
            // A write after expiry starts the scope afresh.
            one(&mut inst, op(via, "set", "s", "m", "2", 111)).map_err(|e| anyhow!("{via}: {e}"))?;
            assert_eq!(
                one(&mut inst, op(via, "get", "s", "m", "", 111)),
                Ok(json!({"ok": "2"})),
                "{via}"
            );
            states.push((via, entries(&inst)));
        }
    }
    assert!(states.windows(2).all(|w| w[0].1 == w[1].1), "{states:#?}");
    Ok(())
}

#[test]
fn a_failed_batch_leaves_the_state_as_it_was_through_every_binding() -> Result<()> {
    for via in ALL {
        let mut inst = instance(Limits::default(), KeyGroups::default());
        run(
            &mut inst,
            &[
                op(via, "set", "s", "n", "1", 1),
                op(via, "set", "s", "gone", "x", 1),
            ],
        )
        .map_err(|e| anyhow!("{via}: {e}"))?;
        let before = entries(&inst);
        let failed = run(
            &mut inst,
            &[
                op(via, "set", "s", "n", "2", 2),
                op(via, "remove", "s", "gone", "", 2),
                op(via, "set", "s", "new", "3", 2),
                op(via, "fail", "s", "", "", 2),
            ],
        );
        assert!(failed.is_err(), "{via}");
        assert_eq!(entries(&inst), before, "{via}");
        assert_eq!(
            one(&mut inst, op(via, "get", "s", "n", "", 3)),
            Ok(json!({"ok": "1"})),
            "{via}"
        );
    }
    Ok(())
}
