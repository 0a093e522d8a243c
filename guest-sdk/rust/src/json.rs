//! One value inside a JSON document, found in one pass without building the rest.
//!
//! [`value_in`] gives what `stats::value_at(&serde_json::from_slice(json)?, path)` gives —
//! the same value, the same errors for a malformed document (numbers out of range included),
//! the last of duplicate keys — but only the value at `path` is built: the rest is parsed
//! and dropped as it goes, with no allocation for its maps, strings or numbers. An operator
//! reading one field of each event (a window's number, a dedup's id) saves the document tree
//! it would have built and freed per event.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod flat;
mod number;

pub use number::{write_f64, write_opt_f64};

/// `bytes` as a `str` if it is UTF-8, as `std::str::from_utf8` decides, checked a word at a
/// time when it is ASCII (JSON text that a plugin wrote, an id, a key), where `from_utf8` goes
/// byte by byte on short input.
///
/// ```
/// assert_eq!(cairn_sdk::json::utf8(b"89.5"), Ok("89.5"));
/// assert!(cairn_sdk::json::utf8(&[0xff]).is_err());
/// ```
pub fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    cairn_codec::utf8(bytes)
}

/// The JSON value at `path` in the document `json` (a field name, a dotted path `"a.b"`, an
/// array index `"items.0"`, or `""` for the whole document), or `None` when there is none.
/// Fails as `serde_json::from_slice` would on a malformed document.
pub fn value_in(json: &[u8], path: &str) -> Result<Option<serde_json::Value>, serde_json::Error> {
    // A field of a flat object (the usual event) is found by a scanner; it declines anything
    // whose result or error it could get wrong.
    if !path.is_empty()
        && !path.contains('.')
        && let Some(found) = flat::field_in(json, path)
    {
        return Ok(found.map(flat::scalar_value));
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let found = At((!path.is_empty()).then_some(path)).deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// The JSON text of the value at `path` in the document `json` (as [`value_in`] finds it), or
/// `None` when there is none: for keying or comparing by a field (a dedup's id) without
/// building the value and printing it again. A field of a flat object is its text as written
/// in the document, borrowed; anything else is written as `serde_json` writes the value
/// (`12.50` written in a nested document comes back as `12.5`).
///
/// ```
/// use cairn_sdk::json::text_in;
/// assert_eq!(text_in(br#"{"id": "a7", "n": 12.5}"#, "n").unwrap().as_deref(), Some("12.5"));
/// assert_eq!(text_in(br#"{"id": "a7"}"#, "id").unwrap().as_deref(), Some("\"a7\""));
/// assert_eq!(text_in(br#"{"a": {"b": [1, 2]}}"#, "a.b").unwrap().as_deref(), Some("[1,2]"));
/// assert_eq!(text_in(br#"{"id": 1}"#, "other").unwrap(), None);
/// ```
pub fn text_in<'j>(
    json: &'j [u8],
    path: &str,
) -> Result<Option<std::borrow::Cow<'j, str>>, serde_json::Error> {
    if !path.is_empty()
        && !path.contains('.')
        && let Some(found) = flat::field_in(json, path)
        // The scanner reads plain ASCII only.
        && let Ok(found) = found.map(utf8).transpose()
    {
        return Ok(found.map(std::borrow::Cow::Borrowed));
    }
    Ok(value_in(json, path)?.map(|v| std::borrow::Cow::Owned(v.to_string())))
}

/// Find the rest of the path (`None`: the value itself) in the value being read; its parts
/// are split off one at a time, as `path.split('.')` would give them.
struct At<'p>(Option<&'p str>);

impl<'p> At<'p> {
    /// The next part and the rest.
    fn next(path: &'p str) -> (&'p str, At<'p>) {
        match path.split_once('.') {
            Some((part, rest)) => (part, At(Some(rest))),
            None => (path, At(None)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        match self.0 {
            None => serde::Deserialize::deserialize(de).map(Some),
            Some(_) => de.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for At<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (part, rest) = At::next(self.0.unwrap_or_default());
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(part))? {
            if hit {
                // As in a parsed document, the last of duplicate keys counts.
                found = map.next_value_seed(At(rest.0))?;
            } else {
                map.next_value_seed(Skip)?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (part, rest) = At::next(self.0.unwrap_or_default());
        let want = part.parse::<usize>().ok();
        let mut found = None;
        let mut i = 0;
        loop {
            if Some(i) == want {
                match seq.next_element_seed(At(rest.0))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element_seed(Skip)?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    // A scalar has nothing inside: the path does not lead anywhere.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Whether the map key being read is `.0` (compared where it lies: no `String`).
struct KeyIs<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// Read a value and drop it, checking it as `serde_json::Value` would (numbers are converted,
/// so one out of range fails here too), allocating nothing.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::value_in;
    use crate::stats::value_at;

    /// What `value_in` must equal: parse everything, then walk.
    fn reference(json: &[u8], path: &str) -> Result<Option<Value>, String> {
        let v: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        Ok(value_at(&v, path).cloned())
    }

    fn check(json: &str, path: &str) {
        let got = value_in(json.as_bytes(), path).map_err(|e| e.to_string());
        assert_eq!(got, reference(json.as_bytes(), path), "{json} at {path:?}");
    }

    #[test]
    fn finds_what_a_parsed_document_holds() {
        let doc = r#"{"a": {"b": [1, "2.5", {"c": null}]}, "t": 3, "s": "x\"y", "t": 4.5}"#;
        for path in [
            "", "a", "a.b", "a.b.1", "a.b.2.c", "a.b.3", "a.x", "t", "s", "t.x", "a.b.+1", "a..b",
        ] {
            check(doc, path);
        }
        assert_eq!(
            value_in(doc.as_bytes(), "t").unwrap(),
            Some(json!(4.5)),
            "last duplicate"
        );
        check(r#"{"k": {"v": 1}, "k": 2}"#, "k.v");
        check("[[1,2],[3]]", "1.0");
        check("7", "");
        check("7", "a");
    }

    #[test]
    fn fails_where_parsing_the_document_fails() {
        for bad in [
            r#"{"temp": 1, "x": 1e400}"#,
            r#"{"temp": 1,}"#,
            r#"{"temp": 1} x"#,
            r#"{"temp": "\q"}"#,
            r#"{"x": "\q", "temp": 2}"#,
            "",
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        ] {
            let got = value_in(bad.as_bytes(), "temp").map_err(|e| e.to_string());
            assert!(got.is_err(), "{bad}");
            assert_eq!(got, reference(bad.as_bytes(), "temp"), "{bad}");
        }
    }

    /// JSON text: scalars, arrays and objects (whose keys may repeat), nested a few deep.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| serde_json::to_string(&f).unwrap()),
            "[a-c\"\\\\ é]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[a-c]{0,2}", inner), 0..4).prop_map(|kv| {
                    let body: Vec<String> = kv
                        .iter()
                        .map(|(k, v)| format!("{}: {v}", serde_json::to_string(k).unwrap()))
                        .collect();
                    format!("{{{}}}", body.join(", "))
                }),
            ]
        })
    }

    /// Flat objects as events carry them, with the edges of the flat scanner's grammar
    /// (numbers long, short, with exponents and leading zeros; escapes; non-ASCII; nesting;
    /// trailing garbage).
    fn flat_text() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,3})?",
            2 => "-?[0-9]{1,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{1,3})?",
            3 => "\"[a-c é]{0,3}\"",
            1 => prop_oneof![
                Just(r#""x\"y""#.to_string()),
                Just(r#""\q""#.to_string()),
                Just("\"a\nb\"".to_string()),
            ],
            2 => prop_oneof![Just("null"), Just("true"), Just("false"), Just("tru"), Just("-")]
                .prop_map(str::to_string),
            1 => prop_oneof![Just("{}"), Just(r#"[1, {"a": 2}]"#), Just(r#"{"a": 1e400}"#)]
                .prop_map(str::to_string),
        ];
        let key = prop_oneof![9 => "[a-c]{0,2}", 1 => Just(r#"a\""#.to_string())];
        let entries = proptest::collection::vec((key, value, "[ \t\n]?"), 0..6);
        let tail = prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just(","), 1 => Just(" x")];
        (entries, tail).prop_map(|(entries, tail)| {
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v, ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                .collect();
            format!("{{{}}}{tail}", body.join(","))
        })
    }

    proptest! {
        #[test]
        fn agrees_on_flat_objects(text in flat_text(), path in "[a-c]{0,2}") {
            let got = value_in(text.as_bytes(), &path).map_err(|e| e.to_string());
            let want = reference(text.as_bytes(), &path);
            // As text too: `-0.0` and `0.0` are equal numbers but print apart.
            let shown = |r: &Result<Option<Value>, String>| format!("{:?}", r.as_ref().map(|v| v.as_ref().map(Value::to_string)));
            prop_assert_eq!(shown(&got), shown(&want), "{} at {:?}", text, path);
            prop_assert_eq!(got, want, "{} at {:?}", text, path);
        }

        #[test]
        fn agrees_with_parsing_everything(text in json_text(), path in "([a-c]{0,2}|[0-3])(\\.([a-c]{0,2}|[0-3])){0,2}") {
            let got = value_in(text.as_bytes(), &path).map_err(|e| e.to_string());
            prop_assert_eq!(got, reference(text.as_bytes(), &path), "{} at {:?}", text, path);
        }
    }
}
