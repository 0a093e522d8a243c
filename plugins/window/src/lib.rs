//! `window`: tumbling and sliding event-time windows per key, with the aggregates of a numeric
//! field (count, sum, min, max, avg, stddev).
//!
//! Config: `{"field": "temp", "size_ms": 60000, "slide_ms": 60000, "out_of_order_ms": 0,
//! "allowed_lateness_ms": 0}` (`slide_ms` defaults to `size_ms`: tumbling).
//!
//! * Windows are `[start, start + size_ms)` with `start` a multiple of `slide_ms`.
//! * The watermark is the highest event time seen (or given by the host) minus `out_of_order_ms`.
//! * A window is closed once `end + allowed_lateness_ms <= watermark`; it is then emitted (on
//!   the next watermark call) as an event with the window's key, `ts = end - 1` and value
//!   `{"start", "end", "count", "sum", "min", "max", "avg", "stddev"}`, and leaves state.
//! * An event all of whose windows are closed is late: dropped and counted (`late`).
//!
//! Which windows exist and what they hold depends only on the order of events, not on how
//! they were batched; open windows live in state and survive restarts.

use cairn_sdk::stats::{Stats, number_at};
use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, key, state};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    field: String,
    size_ms: i64,
    slide_ms: Option<i64>,
    #[serde(default)]
    out_of_order_ms: i64,
    #[serde(default)]
    allowed_lateness_ms: i64,
}

/// The operator.
pub struct Window {
    field: String,
    size: i64,
    slide: i64,
    ooo: i64,
    lateness: i64,
}

#[derive(Serialize)]
struct Emitted<'a> {
    start: i64,
    end: i64,
    #[serde(flatten)]
    summary: &'a cairn_sdk::stats::Summary,
}

const PAGE: u32 = 256;

fn max_ts() -> ValueState<i64> {
    ValueState::operator("max_ts")
}

fn late() -> ValueState<u64> {
    ValueState::operator("late")
}

/// A window of key `k`, in `k`'s scope.
fn window(k: &str, start: i64) -> ValueState<Stats> {
    ValueState::keyed(k, format!("win/{}", key::ordered_i64(start)))
}

fn index_key(end: i64, k: &str, start: i64) -> String {
    format!(
        "end/{}/{}/{}",
        key::ordered_i64(end),
        key::escape(k),
        key::ordered_i64(start)
    )
}

impl Window {
    fn watermark(&self) -> Result<Option<i64>, Error> {
        Ok(max_ts().get()?.map(|m| m.saturating_sub(self.ooo)))
    }

    fn closed(&self, end: i64, wm: Option<i64>) -> bool {
        wm.is_some_and(|w| end.saturating_add(self.lateness) <= w)
    }
}

impl Operator for Window {
    fn init(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        let slide = s.slide_ms.unwrap_or(s.size_ms);
        if s.size_ms <= 0 || slide <= 0 {
            return Err(Error::msg("size_ms and slide_ms must be positive"));
        }
        if s.out_of_order_ms < 0 || s.allowed_lateness_ms < 0 {
            return Err(Error::msg(
                "out_of_order_ms and allowed_lateness_ms must not be negative",
            ));
        }
        Ok(Self {
            field: s.field,
            size: s.size_ms,
            slide,
            ooo: s.out_of_order_ms,
            lateness: s.allowed_lateness_ms,
        })
    }

    fn on_event(&mut self, event: Event, _out: &mut Output) -> Result<(), Error> {
        let value: serde_json::Value = event.value_json()?;
        let Some(x) = number_at(&value, &self.field) else {
            return Ok(());
        };
        let wm = self.watermark()?;
        let ts = event.ts;
        let mut start = ts.div_euclid(self.slide) * self.slide;
        let mut assigned = false;
        while start > ts - self.size {
            let end = start + self.size;
            if !self.closed(end, wm) {
                let w = window(&event.key, start);
                let mut s = w.get()?.unwrap_or_default();
                if s.count == 0 {
                    // The cross-key index of window ends is operator-wide (until timers).
                    state::with_operator(|| state::set(&index_key(end, &event.key, start), b"0"))?;
                }
                s.add(x);
                w.set(&s)?;
                assigned = true;
            }
            start -= self.slide;
        }
        if !assigned {
            late().update(|n| n.unwrap_or(0) + 1)?;
        }
        max_ts().update(|m| m.map_or(ts, |m| m.max(ts)))?;
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<(), Error> {
        max_ts().update(|m| m.map_or(watermark, |m| m.max(watermark)))?;
        let wm = self.watermark()?;
        loop {
            let page = state::list_keys("end/", None, PAGE);
            let mut done = page.len() < PAGE as usize;
            for idx in &page {
                let mut parts = idx["end/".len()..].splitn(3, '/');
                let (Some(end), Some(k), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(Error::msg(format!("malformed window index key {idx:?}")));
                };
                let end = key::parse_ordered_i64(end).ok_or_else(|| Error::msg("bad window end"))?;
                if !self.closed(end, wm) {
                    done = true;
                    break;
                }
                let k = key::unescape(k).unwrap_or_default();
                let start = key::parse_ordered_i64(start).ok_or_else(|| Error::msg("bad window start"))?;
                let w = window(&k, start);
                let stats = w.get()?.unwrap_or_default();
                out.emit_json(
                    k,
                    end - 1,
                    &Emitted {
                        start,
                        end,
                        summary: &stats.summary(),
                    },
                )?;
                w.clear();
                state::remove(idx);
            }
            if done {
                return Ok(());
            }
        }
    }
}

cairn_sdk::export!(Window);

#[cfg(test)]
mod tests {
    use cairn_sdk::testing::{Harness, values};
    use serde_json::json;

    use super::*;

    #[test]
    fn tumbling_windows_close_on_the_watermark() {
        let mut h = Harness::<Window>::new(r#"{"field": "v", "size_ms": 10}"#).unwrap();
        for (ts, v) in [(1, 1.0), (4, 3.0), (12, 5.0)] {
            assert!(h.send("a", ts, json!({"v": v})).unwrap().is_empty());
        }
        let out = h.watermark(12).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].key.as_str(), out[0].ts), ("a", 9));
        let v = &values(&out)[0];
        assert_eq!(
            (v["start"].clone(), v["end"].clone(), v["count"].clone()),
            (json!(0), json!(10), json!(2))
        );
        assert_eq!(v["sum"], 4.0);
        assert_eq!(v["avg"], 2.0);
        assert_eq!(v["stddev"], 1.0);
        // The closed window left state; [10, 20) is still open.
        assert!(window("a", 0).get().unwrap().is_none());
        assert!(window("a", 10).get().unwrap().is_some());
        // A late event for [0, 10) is dropped and counted.
        h.send("a", 3, json!({"v": 100})).unwrap();
        assert_eq!(h.state_json("late"), Some(json!(1)));
        let out = h.watermark(25).unwrap();
        assert_eq!(values(&out)[0]["sum"], 5.0);
    }

    #[test]
    fn sliding_windows_and_out_of_order() {
        let cfg = r#"{"field": "", "size_ms": 10, "slide_ms": 5, "out_of_order_ms": 5}"#;
        let mut h = Harness::<Window>::new(cfg).unwrap();
        h.send("k", 7, 1).unwrap(); // windows [0,10) and [5,15)
        h.send("k", 12, 2).unwrap(); // [5,15) [10,20); watermark 7
        // Out of order but on time for [0,10); its other window [-5,5) had already closed
        // (end 5 <= watermark 12 - 5), so it is not created.
        h.send("k", 3, 4).unwrap();
        assert!(h.watermark(12).unwrap().is_empty()); // watermark 7: no window ends by then
        assert_eq!(h.state_json("late"), None);
        let out = h.watermark(30).unwrap(); // watermark 25: everything up to end 25
        let got: Vec<(i64, f64)> = values(&out)
            .iter()
            .map(|v| (v["start"].as_i64().unwrap(), v["sum"].as_f64().unwrap()))
            .collect();
        assert_eq!(got, vec![(0, 5.0), (5, 3.0), (10, 2.0)]);
    }

    #[test]
    fn open_windows_survive_a_restart() {
        let mut h = Harness::<Window>::new(r#"{"field": "", "size_ms": 100}"#).unwrap();
        h.send("a/b", 10, 1).unwrap();
        let mut h = h.restart().unwrap();
        h.send("a/b", 20, 2).unwrap();
        let out = h.watermark(100).unwrap();
        assert_eq!(out[0].key, "a/b");
        assert_eq!(values(&out)[0]["count"], 2);
    }
}
