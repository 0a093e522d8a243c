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

/// A `get-many-packed` answer: `b"7"`, then an absent key.
pub const ANSWERS: &[u8] = &[1, 0, 0, 0, b'7', 0xff, 0xff, 0xff, 0xff];

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
    use crate::state::{Answers, Writes};

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
        let mut a = Answers::new(ANSWERS);
        assert_eq!(a.next_answer().unwrap(), Some(&b"7"[..]));
        assert_eq!(a.next_answer().unwrap(), None);
        assert!(!KEY_GROUPS.is_empty());
    }

    /// `guest-sdk/golden/packed.txt`, which the SDKs in other languages read, holds these
    /// vectors.
    #[test]
    fn the_language_neutral_file_holds_the_same_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk/golden/packed.txt");
        let text = std::fs::read_to_string(path).expect("guest-sdk/golden/packed.txt");
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
            ]
        );
    }
}
