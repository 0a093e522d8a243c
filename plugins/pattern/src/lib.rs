//! `pattern`: per key, detect an event matching `first` followed by an event matching `then`
//! within `within_ms`, and emit each match with both events.
//!
//! Config: `{"first": {"field": "type", "equals": "A"}, "then": {"field": "type", "equals": "B"},
//! "within_ms": 10000}`. A predicate is `{"field": <path>, <op>: <value>}` with `<op>` one of
//! `equals`, `gt`, `gte`, `lt`, `lte` (numbers for the comparisons).
//!
//! * An event matching `first` becomes a partial match, kept in state.
//! * An event B matching `then` completes every partial A of its key with
//!   `A.ts <= B.ts <= A.ts + within_ms`; each is emitted once (as
//!   `{"first": {"ts", "value"}, "then": {"ts", "value"}}` with `ts = B.ts`) and consumed.
//!   (An event matching both predicates first completes, then starts a partial.)
//! * Partials expire (leave state) once the host's watermark passes `A.ts + within_ms` (a
//!   timer of their key fires then): a `then` event that arrives later than that, behind the
//!   watermark, no longer completes them. The watermark moves between batches, so for a given
//!   batch size the matches are the same however often the job was restarted.

use cairn_sdk::stats::value_at;
use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, key, state, timers};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Predicate {
    field: String,
    equals: Option<Value>,
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
}

impl Predicate {
    fn check(&self) -> Result<(), Error> {
        let n = [
            self.equals.is_some(),
            self.gt.is_some(),
            self.gte.is_some(),
            self.lt.is_some(),
            self.lte.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n == 0 {
            return Err(Error::msg(format!(
                "predicate on {:?} needs one of equals, gt, gte, lt, lte",
                self.field
            )));
        }
        Ok(())
    }

    fn matches(&self, v: &Value) -> bool {
        let Some(x) = value_at(v, &self.field) else {
            return false;
        };
        if let Some(e) = &self.equals
            && x != e
        {
            return false;
        }
        let num = x.as_f64();
        let cmp = |bound: Option<f64>, ok: fn(f64, f64) -> bool| {
            bound.is_none_or(|b| num.is_some_and(|n| ok(n, b)))
        };
        cmp(self.gt, |n, b| n > b)
            && cmp(self.gte, |n, b| n >= b)
            && cmp(self.lt, |n, b| n < b)
            && cmp(self.lte, |n, b| n <= b)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    first: Predicate,
    then: Predicate,
    within_ms: i64,
}

#[derive(Serialize, Deserialize, Clone)]
struct Side {
    ts: i64,
    value: Value,
}

#[derive(Serialize)]
struct Match<'a> {
    first: &'a Side,
    then: &'a Side,
}

/// The operator.
pub struct Pattern {
    first: Predicate,
    then: Predicate,
    within: i64,
}

/// Partial matches live in their key's scope under `pm/<ts>/<n>` (in time order), each with a
/// timer of its key at `ts + within_ms + 1`.
const PARTIAL: &str = "pm/";

fn seq() -> ValueState<u64> {
    ValueState::new("seq")
}

impl Operator for Pattern {
    fn init(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        s.first.check()?;
        s.then.check()?;
        if s.within_ms < 0 {
            return Err(Error::msg("within_ms must not be negative"));
        }
        Ok(Self {
            first: s.first,
            then: s.then,
            within: s.within_ms,
        })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let value: Value = event.value_json()?;
        let ts = event.ts;
        if self.then.matches(&value) {
            let keys = state::keys_with_prefix(PARTIAL);
            let partials = state::get_many(&keys);
            let then = Side {
                ts,
                value: value.clone(),
            };
            for (k, p) in keys.iter().zip(partials) {
                let Some(bytes) = p else { continue };
                let a: Side = serde_json::from_slice(&bytes)?;
                if a.ts <= ts && ts <= a.ts.saturating_add(self.within) {
                    out.emit_json(
                        event.key.clone(),
                        ts,
                        &Match {
                            first: &a,
                            then: &then,
                        },
                    )?;
                    state::remove(k);
                    // Its timer stays: it finds nothing left to expire.
                }
            }
        }
        if self.first.matches(&value) {
            let n = seq().update(|s| s.unwrap_or(0) + 1)?;
            let rest = format!("{}/{n:016x}", key::ordered_i64(ts));
            state::set_as(&format!("{PARTIAL}{rest}"), &Side { ts, value })?;
            timers::register(&event.key, ts.saturating_add(self.within).saturating_add(1))?;
        }
        Ok(())
    }

    fn on_timer(&mut self, _key: &str, ts: i64, _out: &mut Output) -> Result<(), Error> {
        // Partials with `A.ts + within_ms < ts` can no longer complete: the first ones in
        // time order.
        let horizon = ts.saturating_sub(self.within);
        for k in state::keys_with_prefix(PARTIAL) {
            let t = k[PARTIAL.len()..]
                .split('/')
                .next()
                .and_then(key::parse_ordered_i64)
                .ok_or_else(|| Error::msg(format!("malformed partial key {k:?}")))?;
            if t >= horizon {
                break;
            }
            state::remove(&k);
        }
        Ok(())
    }
}

cairn_sdk::export!(Pattern);

#[cfg(test)]
mod tests {
    use cairn_sdk::testing::{Harness, values};
    use serde_json::json;

    use super::*;

    const CFG: &str =
        r#"{"first": {"field": "t", "equals": "A"}, "then": {"field": "t", "equals": "B"}, "within_ms": 10}"#;

    #[test]
    fn a_then_b_within_the_bound() {
        let mut h = Harness::<Pattern>::new(CFG).unwrap();
        assert!(h.send("k", 1, json!({"t": "A", "n": 1})).unwrap().is_empty());
        assert!(
            h.send("other", 2, json!({"t": "B"})).unwrap().is_empty(),
            "other keys do not match"
        );
        let out = h.send("k", 5, json!({"t": "B", "n": 2})).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ts, 5);
        assert_eq!(
            values(&out)[0],
            json!({"first": {"ts": 1, "value": {"t": "A", "n": 1}}, "then": {"ts": 5, "value": {"t": "B", "n": 2}}})
        );
        // Consumed: a second B does not match again.
        assert!(h.send("k", 6, json!({"t": "B"})).unwrap().is_empty());
    }

    #[test]
    fn too_late_and_expired_partials_do_not_match() {
        let mut h = Harness::<Pattern>::new(CFG).unwrap();
        let ev = |ts, t: &str| vec![Event::json("k", ts, &json!({ "t": t })).unwrap()];
        h.feed(ev(1, "A")).unwrap();
        h.feed(ev(2, "A")).unwrap();
        assert!(
            h.feed(ev(12, "B")).unwrap().len() == 1,
            "only the A at 2 is within 10"
        );
        assert!(
            h.state().keys().all(|k| !k.contains("/pm/")),
            "the A at 1 expired (its timer fired at watermark 12), the A at 2 was consumed: {:?}",
            h.state()
        );
        h.feed(ev(13, "C")).unwrap();
        assert!(
            h.state().keys().all(|k| !k.starts_with("!t/")),
            "every timer fired: {:?}",
            h.state()
        );
        // Numeric predicates.
        let cfg = r#"{"first": {"field": "x", "gt": 10}, "then": {"field": "x", "lte": 0}, "within_ms": 5}"#;
        let mut h = Harness::<Pattern>::new(cfg).unwrap();
        h.send("k", 1, json!({"x": 11})).unwrap();
        assert_eq!(h.send("k", 3, json!({"x": -1})).unwrap().len(), 1);
    }

    #[test]
    fn partials_survive_a_restart_and_bad_config_is_refused() {
        let mut h = Harness::<Pattern>::new(CFG).unwrap();
        h.send("k", 1, json!({"t": "A"})).unwrap();
        let mut h = h.restart().unwrap();
        assert_eq!(h.send("k", 3, json!({"t": "B"})).unwrap().len(), 1);
        assert!(
            Harness::<Pattern>::new(
                r#"{"first": {"field": "t"}, "then": {"field": "t", "equals": 1}, "within_ms": 1}"#
            )
            .is_err()
        );
    }
}
