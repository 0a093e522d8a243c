//! Golden vectors: byte strings every SDK's encoder must produce and decoder must accept.
//! The tests of this crate check them against the codec; SDKs in other languages copy them.

/// One event `("a", 1, b"{}")` as a packed batch.
pub const BATCH_ONE_EVENT: &[u8] = &[
    1, 0, 0, 0, // count
    1, 0, 0, 0, b'a', // key
    1, 0, 0, 0, 0, 0, 0, 0, // ts
    2, 0, 0, 0, b'{', b'}', // value
];

/// `write-many-packed`: set `count` of scope `sensor-1` to `7` (the host stores it as
/// `8:sensor-1/count`), then remove operator-wide `x` (`*/x`).
pub const WRITES: &[u8] = &[
    2, 0, 0, 0, // count
    8, 0, 0, 0, b's', b'e', b'n', b's', b'o', b'r', b'-', b'1', // scope
    5, 0, 0, 0, b'c', b'o', b'u', b'n', b't', // key
    1, 0, 0, 0, b'7', // value
    0xff, 0xff, 0xff, 0xff, // operator-wide scope
    1, 0, 0, 0, b'x', // key
    0xff, 0xff, 0xff, 0xff, // removal
];

/// `packed-timers.register-packed` (0.2.4): the timers of `sensor-1` at 60000 and of `a` at
/// -1.
pub const TIMERS: &[u8] = &[
    2, 0, 0, 0, // count
    8, 0, 0, 0, b's', b'e', b'n', b's', b'o', b'r', b'-', b'1', // key
    0x60, 0xea, 0, 0, 0, 0, 0, 0, // ts 60000
    1, 0, 0, 0, b'a', // key
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // ts -1
];

/// A `get-many-packed` answer: `b"7"`, then an absent key.
pub const ANSWERS: &[u8] = &[1, 0, 0, 0, b'7', 0xff, 0xff, 0xff, 0xff];

/// `pickled-operator` (0.2.2): the host's pickle of the batch `[("a", 1700000000000, b"{}")]`.
pub const PICKLED_EVENTS_BY_HOST: &[u8] = &[
    0x80, 4, b']', b'(', // protocol 4, a list, MARK
    0x8c, 1, b'a', // SHORT_BINUNICODE "a"
    0x8a, 6, 0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, // LONG1 1700000000000
    b'C', 2, b'{', b'}', // SHORT_BINBYTES b"{}"
    0x87, b'e', b'.', // TUPLE3, APPENDS, STOP
];

/// `pickled-state` (0.2.2): the host's answer `[b"7", None]` to `get-entries-pickled`.
pub const PICKLED_ANSWERS_BY_HOST: &[u8] = &[0x80, 4, b']', b'(', b'C', 1, b'7', b'N', b'e', b'.'];

/// What CPython 3.11 writes for `[("a", 1700000000000, b"{}"), (None, "k", None)]` with
/// `p = pickle.Pickler(f, 4); p.fast = True; p.dump(...)`: a frame, no memo.
pub const PICKLED_FROM_CPYTHON: &[u8] = &[
    0x80, 0x04, 0x95, 0x1a, 0, 0, 0, 0, 0, 0, 0, 0x5d, 0x28, 0x8c, 0x01, 0x61, 0x8a, 0x06, 0x00, 0x68, 0xe5,
    0xcf, 0x8b, 0x01, 0x43, 0x02, 0x7b, 0x7d, 0x87, 0x4e, 0x8c, 0x01, 0x6b, 0x4e, 0x87, 0x65, 0x2e,
];

/// What CPython 3.11's `marshal.dumps(v, 2)` writes for
/// `{"count": 5, "x": [1.5, None, True, "é", (1, 2)], "big": -2**100, 7: "k"}`: an emitted
/// event's value (`out.emit_json`) as the Python SDK hands it over for the host to write as
/// JSON.
pub const MARSHALLED_FROM_CPYTHON: &[u8] = &[
    0x7b, 0x75, 0x05, 0x00, 0x00, 0x00, 0x63, 0x6f, 0x75, 0x6e, 0x74, 0x69, 0x05, 0x00, 0x00, 0x00, 0x75,
    0x01, 0x00, 0x00, 0x00, 0x78, 0x5b, 0x05, 0x00, 0x00, 0x00, 0x67, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xf8, 0x3f, 0x4e, 0x54, 0x75, 0x02, 0x00, 0x00, 0x00, 0xc3, 0xa9, 0x28, 0x02, 0x00, 0x00, 0x00, 0x69,
    0x01, 0x00, 0x00, 0x00, 0x69, 0x02, 0x00, 0x00, 0x00, 0x75, 0x03, 0x00, 0x00, 0x00, 0x62, 0x69, 0x67,
    0x6c, 0xf9, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x04, 0x69, 0x07, 0x00, 0x00, 0x00, 0x75, 0x01, 0x00, 0x00, 0x00, 0x6b, 0x30,
];

/// `(scope, groups, key_group(scope, groups))`.
pub const KEY_GROUPS: &[(&str, u32, u32)] = &[
    ("", 128, 38),
    ("", 7, 1),
    ("sensor-1", 128, 71),
    ("sensor-1", 7, 2),
    ("sensor-2", 128, 72),
    ("sensor-2", 7, 0),
    ("a", 128, 91),
    ("user/42", 128, 125),
    ("user/42", 7, 5),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, EventRef};
    use crate::state::{Answers, TimerList, Writes};

    #[test]
    fn vectors_match_the_codec() {
        assert_eq!(
            batch::encode([EventRef {
                key: "a",
                ts: 1,
                value: b"{}"
            }]),
            BATCH_ONE_EVENT
        );
        let mut w = Writes::new();
        w.set(Some(b"sensor-1"), b"count", b"7");
        w.remove(None, b"x");
        assert_eq!(w.as_bytes(), WRITES);
        let mut t = TimerList::new();
        t.push(b"sensor-1", 60_000);
        t.push(b"a", -1);
        assert_eq!(t.as_bytes(), TIMERS);
        assert_eq!(
            crate::state::read_timers(TIMERS).unwrap(),
            [("sensor-1", 60_000), ("a", -1)]
        );
        let mut a = Answers::new(ANSWERS);
        assert_eq!(a.next_answer().unwrap(), Some(&b"7"[..]));
        assert_eq!(a.next_answer().unwrap(), None);
        assert!(!KEY_GROUPS.is_empty());
        let mut p = crate::pickle::Writer::new(0);
        p.str("a");
        p.int(1_700_000_000_000);
        p.bytes(b"{}");
        p.tuple(3);
        assert_eq!(p.finish(), PICKLED_EVENTS_BY_HOST);
        let mut p = crate::pickle::Writer::new(0);
        p.opt_bytes(Some(b"7"));
        p.opt_bytes(None);
        assert_eq!(p.finish(), PICKLED_ANSWERS_BY_HOST);
    }

    /// `guest-sdk/golden/packed.txt`, which the SDKs in other languages read, holds these
    /// vectors.
    #[test]
    fn the_language_neutral_file_holds_the_same_vectors() {
        // The package's directory as cargo runs the test (a build shared between clones may
        // have been compiled in another one).
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let path = format!("{dir}/../../guest-sdk/golden/packed.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let lines: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split_once(' ').expect("NAME HEX"))
            .collect();
        assert_eq!(
            lines,
            [
                ("batch-one-event", hex(BATCH_ONE_EVENT).as_str()),
                ("writes", hex(WRITES).as_str()),
                ("answers", hex(ANSWERS).as_str()),
                ("timers", hex(TIMERS).as_str()),
                ("pickled-events-by-host", hex(PICKLED_EVENTS_BY_HOST).as_str()),
                ("pickled-answers-by-host", hex(PICKLED_ANSWERS_BY_HOST).as_str()),
                ("pickled-from-cpython", hex(PICKLED_FROM_CPYTHON).as_str()),
                ("marshalled-from-cpython", hex(MARSHALLED_FROM_CPYTHON).as_str()),
            ]
        );
    }
}
