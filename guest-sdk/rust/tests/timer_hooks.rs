//! `Operator::before_timers` sees each call's due timers, in (ts, key) order, before any
//! `on_timer` of that call runs (natively, through the testing harness, as in the plugin).

use std::cell::RefCell;

use cairn_sdk::testing::Harness;
use cairn_sdk::{Config, Error, Event, Operator, Output, timers};

thread_local! {
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(s: String) {
    SEEN.with(|l| l.borrow_mut().push(s));
}

struct Recorder;

impl Operator for Recorder {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(Recorder)
    }

    fn on_event(&mut self, event: Event, _: &mut Output) -> Result<(), Error> {
        timers::register(&event.key, event.ts + 10)?;
        Ok(())
    }

    fn before_timers(&mut self, timers: &[Event]) -> Result<(), Error> {
        let listed: Vec<String> = timers.iter().map(|t| format!("{}@{}", t.key, t.ts)).collect();
        assert!(timers.iter().all(|t| t.value.is_empty()));
        log(format!("before {}", listed.join(" ")));
        Ok(())
    }

    fn on_timer(&mut self, key: &str, ts: i64, _: &mut Output) -> Result<(), Error> {
        log(format!("timer {key}@{ts}"));
        Ok(())
    }
}

#[test]
fn before_timers_sees_the_due_timers_first_in_order() {
    let mut h = Harness::<Recorder>::new("{}").unwrap();
    h.feed(vec![
        Event::new("b", 5, b"1".to_vec()),
        Event::new("a", 5, b"1".to_vec()),
        Event::new("c", 1, b"1".to_vec()),
        Event::new("z", 100, b"1".to_vec()),
    ])
    .unwrap();
    h.watermark(20).unwrap();
    let seen = SEEN.with(|l| l.borrow().clone());
    assert_eq!(
        seen,
        ["before c@11 a@15 b@15", "timer c@11", "timer a@15", "timer b@15"]
    );
}
