//! `window`: tumbling and sliding event-time windows per key, with the aggregates of a numeric
//! field (count, sum, min, max, avg, stddev).
//!
//! Config: `{"field": "temp", "size_ms": 60000, "slide_ms": 60000, "out_of_order_ms": 0,
//! "allowed_lateness_ms": 0}` (`slide_ms` defaults to `size_ms`: tumbling).
//!
//! * Windows are `[start, start + size_ms)` with `start` a multiple of `slide_ms`.
//! * The window's watermark is the host's (the highest event time of the batches before)
//!   minus `out_of_order_ms`.
//! * A window is closed once `end + allowed_lateness_ms <= watermark`: an event timer of its
//!   key fires then, and the window is emitted as an event with the window's key,
//!   `ts = end - 1` and value `{"start", "end", "count", "sum", "min", "max", "avg", "stddev"}`,
//!   and leaves state.
//! * An event all of whose windows are closed is late: dropped and counted (`late`, in its
//!   key's state).
//!
//! Open windows and their timers live in the key's scope and survive restarts; for a given
//! batch size the output is the same however often the job was restarted.

use cairn_sdk::stats::{Stats, number_at};
use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, json, key, state, timers};
use serde::Deserialize;

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
    /// The closed window being emitted (reused).
    emitted: Vec<u8>,
}

/// A closed window as emitted — `{"start", "end", "count", "sum", "min", "max", "avg",
/// "stddev"}` — written into `out` as serde_json writes such a struct (integers by serde_json,
/// floats by `json::write_f64`, which writes serde_json's digits; `null` for `None`), without
/// its map machinery and key escaping.
fn write_emitted(
    out: &mut Vec<u8>,
    start: i64,
    end: i64,
    m: &cairn_sdk::stats::Summary,
) -> Result<(), Error> {
    out.clear();
    out.extend_from_slice(b"{\"start\":");
    serde_json::to_writer(&mut *out, &start)?;
    out.extend_from_slice(b",\"end\":");
    serde_json::to_writer(&mut *out, &end)?;
    out.extend_from_slice(b",\"count\":");
    serde_json::to_writer(&mut *out, &m.count)?;
    out.extend_from_slice(b",\"sum\":");
    json::write_f64(out, m.sum);
    for (name, x) in [
        (&b",\"min\":"[..], m.min),
        (b",\"max\":", m.max),
        (b",\"avg\":", m.avg),
        (b",\"stddev\":", m.stddev),
    ] {
        out.extend_from_slice(name);
        json::write_opt_f64(out, x);
    }
    out.push(b'}');
    Ok(())
}

/// Late events of the key being handled (per key, so that the operator keeps no
/// operator-wide state and can run split by key group).
fn late() -> ValueState<u64> {
    ValueState::new("late")
}

/// The state key of the window starting at `start` (in its stream key's scope).
fn window_key(start: i64) -> key::TimeKey {
    key::TimeKey::new("win/", start)
}

/// The window starting at `start` of the key whose scope the call is in (`on_event` and
/// `on_timer` run in their key's scope), if open. Windows are stored in the SDK's binary form
/// of `Stats` (`Stats::stored`, read back by `Stats::from_stored`).
fn get_window(k: &str, start: i64) -> Result<Option<Stats>, Error> {
    match state::get_with(&window_key(start), Stats::from_stored) {
        None => Ok(None),
        Some(stats) => stats
            .map(Some)
            .ok_or_else(|| Error::msg(format_args!("window {start} of key {k:?} holds no Stats"))),
    }
}

fn set_window(start: i64, s: &Stats) -> Result<(), Error> {
    state::set(&window_key(start), &s.stored())?;
    Ok(())
}

fn clear_window(start: i64) -> bool {
    state::remove(&window_key(start))
}

impl Window {
    /// The host's watermark less the allowance for out-of-order events.
    fn watermark(&self) -> Option<i64> {
        timers::watermark().map(|m| m.saturating_sub(self.ooo))
    }

    /// When the timer of a window ending at `end` fires: when it is closed.
    fn close_at(&self, end: i64) -> i64 {
        end.saturating_add(self.lateness).saturating_add(self.ooo)
    }

    /// The start of the window whose timer fires at `ts`.
    fn start_closed_at(&self, ts: i64) -> i64 {
        ts.saturating_sub(self.lateness).saturating_sub(self.ooo) - self.size
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
            emitted: Vec::new(),
        })
    }

    fn on_event(&mut self, event: Event, _out: &mut Output) -> Result<(), Error> {
        let Some(x) = event.value_at_json(&self.field)?.and_then(|v| number_at(&v, "")) else {
            return Ok(());
        };
        let wm = self.watermark();
        let ts = event.ts;
        let mut start = ts.div_euclid(self.slide) * self.slide;
        let mut assigned = false;
        while start > ts - self.size {
            let end = start + self.size;
            if !self.closed(end, wm) {
                let mut s = get_window(&event.key, start)?.unwrap_or_default();
                if s.count == 0 {
                    // One timer per window: a key's windows end at different times.
                    timers::register(&event.key, self.close_at(end))?;
                }
                s.add(x);
                set_window(start, &s)?;
                assigned = true;
            }
            start -= self.slide;
        }
        if !assigned {
            late().update(|n| n.unwrap_or(0) + 1)?;
        }
        Ok(())
    }

    /// The windows the timers close, read in one call per closing time (a tumbling window's
    /// keys all close at once).
    fn before_timers(&mut self, timers: &[Event]) -> Result<(), Error> {
        for group in timers.chunk_by(|a, b| a.ts == b.ts) {
            let key = window_key(self.start_closed_at(group[0].ts));
            state::prefetch(group.iter().map(|t| t.key.as_str()), &[&key]);
        }
        Ok(())
    }

    fn on_timer(&mut self, key: &str, ts: i64, out: &mut Output) -> Result<(), Error> {
        let start = self.start_closed_at(ts);
        let end = start + self.size;
        let Some(stats) = get_window(key, start)? else {
            return Ok(());
        };
        write_emitted(&mut self.emitted, start, end, &stats.summary())?;
        out.emit_bytes(key, end - 1, &self.emitted);
        clear_window(start);
        Ok(())
    }
}

cairn_sdk::export!(Window);

#[cfg(test)]
mod tests {
    use cairn_sdk::testing::{Harness, values};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_closed_window_is_written_as_serde_writes_the_struct() {
        #[derive(serde::Serialize)]
        struct Reference {
            start: i64,
            end: i64,
            count: u64,
            sum: f64,
            min: Option<f64>,
            max: Option<f64>,
            avg: Option<f64>,
            stddev: Option<f64>,
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::new();
        let specials = [
            0.0,
            -0.0,
            1.5,
            -2.25e-300,
            1e308,
            f64::NAN,
            f64::INFINITY,
            0.1 + 0.2,
        ];
        for i in 0..5000 {
            let mut f = || {
                let r = next();
                match r % 4 {
                    0 => None,
                    1 => Some(specials[(r >> 8) as usize % specials.len()]),
                    _ => Some(f64::from_bits(r >> 2) * if r & 2 == 0 { 1.0 } else { -1.0 }),
                }
            };
            let (sum, min, max, avg, stddev) = (f().unwrap_or(0.0), f(), f(), f(), f());
            let m = cairn_sdk::stats::Summary {
                count: next() >> (i % 64),
                sum,
                min,
                max,
                avg,
                stddev,
            };
            let (start, end) = (next() as i64, next() as i64 >> 3);
            write_emitted(&mut out, start, end, &m).unwrap();
            let want = serde_json::to_vec(&Reference {
                start,
                end,
                count: m.count,
                sum: m.sum,
                min: m.min,
                max: m.max,
                avg: m.avg,
                stddev: m.stddev,
            })
            .unwrap();
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
        }
    }

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
        assert!(state::with_key("a", || get_window("a", 0)).unwrap().is_none());
        assert!(state::with_key("a", || get_window("a", 10)).unwrap().is_some());
        // A late event for [0, 10) is dropped and counted.
        h.send("a", 3, json!({"v": 100})).unwrap();
        assert_eq!(h.keyed_json("a", "late"), Some(json!(1)));
        let out = h.watermark(25).unwrap();
        assert_eq!(values(&out)[0]["sum"], 5.0);
    }

    #[test]
    fn sliding_windows_and_out_of_order() {
        let cfg = r#"{"field": "", "size_ms": 10, "slide_ms": 5, "out_of_order_ms": 5}"#;
        let mut h = Harness::<Window>::new(cfg).unwrap();
        let one = |k: &str, ts, v: i32| vec![Event::json(k, ts, &v).unwrap()];
        h.feed(one("k", 7, 1)).unwrap(); // windows [0,10) and [5,15); watermark 7 - 5
        h.feed(one("k", 12, 2)).unwrap(); // [5,15) [10,20); watermark 12 - 5
        // Out of order but on time for [0,10); its other window [-5,5) had already closed
        // (end 5 <= watermark 12 - 5), so it is not created.
        assert!(h.feed(one("k", 3, 4)).unwrap().is_empty());
        assert_eq!(h.keyed_json("a", "late"), None);
        let out = h.watermark(30).unwrap(); // watermark 25: everything up to end 25
        let got: Vec<(i64, f64)> = values(&out)
            .iter()
            .map(|v| (v["start"].as_i64().unwrap(), v["sum"].as_f64().unwrap()))
            .collect();
        assert_eq!(got, vec![(0, 5.0), (5, 3.0), (10, 2.0)]);
        assert!(
            h.state().is_empty(),
            "windows and their timers are gone: {:?}",
            h.state()
        );
    }

    #[test]
    fn lateness_is_decided_by_the_host_watermark_not_by_the_batch() {
        // Within one batch the watermark does not move: the event at 3 after the one at 50 is
        // on time, as it would be in any other order within the batch.
        let mut h = Harness::<Window>::new(r#"{"field": "", "size_ms": 10}"#).unwrap();
        let batch = [("a", 50), ("a", 3)]
            .map(|(k, ts)| Event::json(k, ts, &1).unwrap())
            .to_vec();
        let out = h.feed(batch).unwrap();
        let starts: Vec<i64> = values(&out)
            .iter()
            .map(|v| v["start"].as_i64().unwrap())
            .collect();
        assert_eq!(
            starts,
            vec![0],
            "[0,10) closes at the batch's watermark 50; [50,60) stays open"
        );
        assert_eq!(h.keyed_json("a", "late"), None);
        // The next batch sees watermark 50: 3 is late now.
        h.feed(vec![Event::json("a", 4, &1).unwrap()]).unwrap();
        assert_eq!(h.keyed_json("a", "late"), Some(json!(1)));
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
