//! `Operator::migrate` through the native harness: each entry in its own scope, its rewrite
//! applied, and nothing kept when one fails.

use cairn_sdk::migration::{Entry, Rewrite};
use cairn_sdk::testing::Harness;
use cairn_sdk::{Config, Error, Event, Operator, Output, state};

struct V2;

impl Operator for V2 {
    fn init(_: &Config) -> Result<Self, Error> {
        Ok(V2)
    }

    fn on_event(&mut self, e: Event, _out: &mut Output) -> Result<(), Error> {
        // What version 1 kept: a 4-byte count, and an entry version 2 drops.
        state::set("count", &7u32.to_le_bytes())?;
        state::set("old", b"x")?;
        if e.key == "bad" {
            state::set("count", b"not four bytes")?;
        }
        Ok(())
    }

    fn migrate(&mut self, from_version: u32, entry: &Entry) -> Result<Rewrite, Error> {
        // It runs in the entry's scope.
        assert_eq!(state::get(&entry.key).as_deref(), Some(&entry.value[..]));
        match (from_version, entry.key.as_str()) {
            (1, "count") => {
                let four: [u8; 4] = entry.value[..]
                    .try_into()
                    .map_err(|_| Error::msg("not 4 bytes"))?;
                Rewrite::set_json(&serde_json::json!({ "n": u32::from_le_bytes(four) }))
            }
            (1, "old") => Ok(Rewrite::Remove),
            _ => Ok(Rewrite::Keep),
        }
    }
}

#[test]
fn migrate_rewrites_every_entry_in_its_scope() {
    let mut h = Harness::<V2>::new("{}").unwrap();
    h.send("a", 1, ()).unwrap();
    h.send("b", 2, ()).unwrap();
    let rewrites = h.migrate(1).unwrap();
    assert_eq!(
        rewrites,
        vec![
            Rewrite::Set(br#"{"n":7}"#.to_vec()),
            Rewrite::Remove,
            Rewrite::Set(br#"{"n":7}"#.to_vec()),
            Rewrite::Remove,
        ]
    );
    assert_eq!(h.keyed_json("a", "count"), Some(serde_json::json!({ "n": 7 })));
    assert_eq!(h.state().len(), 2, "{:?}", h.state());
}

#[test]
fn a_failed_migration_keeps_nothing() {
    let mut h = Harness::<V2>::new("{}").unwrap();
    h.send("a", 1, ()).unwrap();
    h.send("bad", 2, ()).unwrap();
    let before = h.state();
    let e = h.migrate(1).unwrap_err();
    assert!(e.message().contains("not 4 bytes"), "{e}");
    assert_eq!(h.state(), before);
}

#[test]
fn an_operator_without_migrate_refuses() {
    struct V1;
    impl Operator for V1 {
        fn init(_: &Config) -> Result<Self, Error> {
            Ok(V1)
        }
        fn on_event(&mut self, _: Event, _: &mut Output) -> Result<(), Error> {
            state::set("count", b"1")?;
            Ok(())
        }
    }
    let mut h = Harness::<V1>::new("{}").unwrap();
    h.send("a", 1, ()).unwrap();
    let e = h.migrate(0).unwrap_err();
    assert!(e.message().contains("implement Operator::migrate"), "{e}");
}
