//! Test fixture: a plugin that breaks the packed encodings. It writes state on every batch,
//! then returns from `process-packed` a batch that announces two events but breaks off
//! (`"garbage"` in the input) or one whose key is not UTF-8 (`"badutf8"`), makes a packed
//! state write that breaks off (`"badstate"`) or names a scope that is not UTF-8 (`"badscope"`),
//! or a packed timer registration whose second timer breaks off (`"badtimers"`), and fails
//! with the host's answer, or else returns one well-formed event. The host must
//! refuse each, roll the batch back and keep running.

wit_bindgen::generate!({
    path: "../../../wit/0.2.4",
    world: "operator-packed",
});

use cairn::operator::types::Event;
use cairn::operator::{packed_state, packed_timers, state, timers};
use exports::cairn::operator::{operator, packed_operator, packed_timer_handler, timer_handler};

struct Liar;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl operator::Guest for Liar {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(_batch: Vec<Event>) -> Result<Vec<Event>, String> {
        Err("this fixture is only called through process-packed".into())
    }

    fn on_watermark(_watermark: i64) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

impl timer_handler::Guest for Liar {
    fn on_timers(_fired: Vec<timer_handler::Timer>) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

impl packed_timer_handler::Guest for Liar {
    fn on_timers_packed(_fired: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(vec![0, 0, 0, 0])
    }
}

impl packed_operator::Guest for Liar {
    fn process_packed(batch: Vec<u8>) -> Result<Vec<u8>, String> {
        let seen = state::get(None, "seen").map_or(0, |v| v.len());
        state::set(None, "seen", &vec![b'x'; seen + 1]).map_err(|e| format!("{e:?}"))?;
        if contains(&batch, b"garbage") {
            // Two events announced, then a key length far past the end.
            return Ok(vec![2, 0, 0, 0, 255, 255, 255, 255]);
        }
        if contains(&batch, b"badstate") {
            // A packed state write that announces an entry and breaks off.
            let e = packed_state::write_many_packed(&[1, 0, 0, 0, 9, 0, 0, 0, b'k']);
            return Err(format!("the host answered {e:?}"));
        }
        if contains(&batch, b"badtimers") {
            // Two timers announced: a whole one, then one that breaks off. Neither may be
            // registered (the call is checked whole first).
            let mut b = vec![2, 0, 0, 0, 1, 0, 0, 0, b'k'];
            b.extend_from_slice(&5i64.to_le_bytes());
            b.extend_from_slice(&[1, 0, 0, 0, b'k', 1, 2, 3, 4, 5, 6, 7]);
            let e = packed_timers::register_packed(&b);
            let left = timers::delete("k", 5);
            return Err(format!(
                "the host answered {e:?}; the whole timer was registered: {left}"
            ));
        }
        if contains(&batch, b"badscope") {
            // A call whose one entry's scope is not UTF-8.
            let e = packed_state::get_many_packed(&[1, 0, 0, 0, 1, 0, 0, 0, 0xff, 1, 0, 0, 0, b'k']);
            return Err(format!("the host answered {e:?}"));
        }
        if contains(&batch, b"badutf8") {
            let mut b = vec![1, 0, 0, 0, 1, 0, 0, 0, 0xff];
            b.extend_from_slice(&7i64.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            return Ok(b);
        }
        // One well-formed event: key "ok", ts 0, value "1".
        let mut b = vec![1, 0, 0, 0, 2, 0, 0, 0, b'o', b'k'];
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&[1, 0, 0, 0, b'1']);
        Ok(b)
    }
}

export!(Liar);
