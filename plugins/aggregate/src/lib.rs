//! `aggregate`: per key, count / sum / min / max / avg / stddev (population) of a numeric
//! field, emitting the updated aggregate for every event that has the field.
//!
//! Config: `{"field": "temp"}` (a field name or dotted path; `""` = the value itself).
//! Output value: `{"count", "sum", "min", "max", "avg", "stddev"}`.
//! Events whose field is missing or not a number are skipped (counted under `skipped/<key>`).

use cairn_sdk::stats::{Stats, number_at};
use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    field: String,
}

/// The operator.
pub struct Aggregate {
    field: String,
}

impl Operator for Aggregate {
    fn init(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        Ok(Self { field: s.field })
    }

    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error> {
        let value: serde_json::Value = event.value_json()?;
        let Some(x) = number_at(&value, &self.field) else {
            ValueState::<u64>::new("skipped").update(|n| n.unwrap_or(0) + 1)?;
            return Ok(());
        };
        let stats = ValueState::<Stats>::new("agg").update(|s| {
            let mut s = s.unwrap_or_default();
            s.add(x);
            s
        })?;
        out.emit_json(event.key, event.ts, &stats.summary())
    }
}

cairn_sdk::export!(Aggregate);

#[cfg(test)]
mod tests {
    use cairn_sdk::testing::{Harness, values};
    use serde_json::json;

    use super::*;

    #[test]
    fn hand_computed_aggregates() {
        let mut h = Harness::<Aggregate>::new(r#"{"field": "t"}"#).unwrap();
        h.send("a", 1, json!({"t": 2})).unwrap();
        h.send("b", 2, json!({"t": 10})).unwrap();
        h.send("a", 3, json!({"t": 4})).unwrap();
        let out = h.send("a", 4, json!({"t": 9})).unwrap();
        let v = &values(&out)[0];
        assert_eq!(v["count"], 3);
        assert_eq!(v["sum"], 15.0);
        assert_eq!(v["min"], 2.0);
        assert_eq!(v["max"], 9.0);
        assert_eq!(v["avg"], 5.0);
        // Population stddev of 2, 4, 9: sqrt(((9 + 1 + 16) / 3)) = sqrt(26/3)
        assert!((v["stddev"].as_f64().unwrap() - (26.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(h.send("a", 5, json!({"x": 1})).unwrap().is_empty());
        assert_eq!(h.keyed_json("a", "skipped"), Some(json!(1)));
        // Survives a restart: the aggregate is in state.
        let mut h = h.restart().unwrap();
        let v = values(&h.send("a", 6, json!({"t": 5})).unwrap())[0].clone();
        assert_eq!(v["count"], 4);
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(Harness::<Aggregate>::new("{}").is_err());
        assert!(Harness::<Aggregate>::new(r#"{"field": "t", "x": 1}"#).is_err());
    }
}
