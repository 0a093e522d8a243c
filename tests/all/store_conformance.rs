//! One conformance suite for every checkpoint store (memory, file, RocksDB, Redis, S3), plain and
//! encrypted: commit, list, latest, restore, retention, damage detection and fallback, keys,
//! and copying between backends all behave the same.

use anyhow::Result;
use cairn::checkpoint::{
    CheckpointConfig, Checkpointer, Codec, HostState, KeyError, KeySource, OpenError, OperatorPart,
    copy_store, crypto, restore, savepoint,
};
use cairn::state::StateHolder;
#[cfg(feature = "rocksdb")]
use cairn::store::RocksStore;
use cairn::store::{CheckpointStore, FileStore, MemoryStore, RedisStore};
use cairn_tests::redis::RedisServer;
use cairn_tests::s3::S3Server;

const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

type Opener<'a> = Box<dyn Fn() -> Result<Box<dyn CheckpointStore>> + 'a>;

fn hex_key(value: &str) -> KeySource {
    KeySource::Hex {
        var: "TEST_KEY".into(),
        value: value.into(),
    }
}

fn part(state: &mut StateHolder) -> Vec<OperatorPart<'_>> {
    vec![OperatorPart::single("op", "ab".into(), "{}", state)]
}

fn entries(s: &StateHolder) -> Vec<(String, Vec<u8>)> {
    s.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
}

fn open_with(open: &Opener, key: &KeySource) -> Result<(Box<dyn CheckpointStore>, Codec), OpenError> {
    let mut store = open().map_err(|e| {
        OpenError::Store(cairn::store::StoreError::Backend {
            store: "?".into(),
            action: "open".into(),
            message: e.to_string(),
        })
    })?;
    let k = crypto::setup(store.as_mut(), key)?;
    Ok((store, Codec::with_key(k.as_ref())))
}

/// The suite. `open` must return a handle on the same (initially empty) store each time.
fn suite(open: Opener, key: KeySource) -> Result<()> {
    // Empty store.
    let (store, codec) = open_with(&open, &key)?;
    assert!(store.list()?.is_empty());
    assert_eq!(store.latest()?, None);
    assert!(restore(store.as_ref(), &codec, None)?.is_none());

    // Seven checkpoints, a full every third: 1F 2D 3D 4F 5D 6D 7F.
    let mut live = StateHolder::new();
    let mut snapshots = Vec::new();
    let mut ck = Checkpointer::start(
        store,
        codec.clone(),
        CheckpointConfig {
            full_every: 2,
            max_retained: 2,
        },
        None,
    )?;
    for round in 0..7u64 {
        for i in 0..50u64 {
            let k = format!("k{}", (i * 7 + round * 13) % 120);
            if (i + round) % 9 == 0 {
                live.remove(&k);
            } else {
                live.set(&k, format!("{round}-{i}").into_bytes())?;
            }
        }
        let host = HostState {
            events_in: round + 1,
            ..HostState::default()
        };
        let info = ck.checkpoint_now(host, part(&mut live), None)?;
        assert_eq!(info.id, round + 1);
        snapshots.push(entries(&live));
    }
    drop(ck); // closes the store (RocksDB holds a lock)

    // Retention: the two newest (7, 6) and 6's chain (4, 5); never a base a delta needs.
    let (store, codec) = open_with(&open, &key)?;
    assert_eq!(store.list()?, vec![4, 5, 6, 7]);
    assert_eq!(store.latest()?, Some(7));
    let r = restore(store.as_ref(), &codec, None)?.expect("a checkpoint");
    assert_eq!((r.id, r.chain.clone()), (7, vec![7]));
    assert_eq!(entries(&r.operators[0].state), snapshots[6]);
    assert_eq!(r.host.events_in, 7);
    // Point in time: 6 = 4 + 5 + 6.
    let r6 = restore(store.as_ref(), &codec, Some(6))?.expect("checkpoint 6");
    assert_eq!(r6.chain, vec![4, 5, 6]);
    assert_eq!(entries(&r6.operators[0].state), snapshots[5]);
    // A savepoint of 6: one self-contained full checkpoint, beside the chain (not in it).
    let mut store = store;
    let sp = savepoint::pin(store.as_mut(), &codec, Some(6), "before-seven")?;
    assert_eq!(sp.checkpoint, 6);
    assert_eq!(
        store.list()?,
        vec![4, 5, 6, 7],
        "a savepoint is not a checkpoint of the chain"
    );
    let err = savepoint::pin(store.as_mut(), &codec, Some(5), "before-seven").expect_err("taken");
    assert!(err.to_string().contains("exists already"), "{err}");
    assert!(
        savepoint::pin(store.as_mut(), &codec, None, "42").is_err(),
        "all digits"
    );
    let err = restore(store.as_ref(), &codec, Some(2))
        .expect_err("2 was retired")
        .to_string();
    assert!(err.contains("checkpoint 2 does not exist"), "{err}");

    // Copy everything to a fresh memory store, byte for byte (encryption kept): it restores
    // the same state there.
    let mut copy = MemoryStore::new();
    assert_eq!(copy_store(store.as_ref(), &mut copy)?, vec![4, 5, 6, 7]);
    let mut copy_box: Box<dyn CheckpointStore> = Box::new(copy.clone());
    let copy_key = crypto::setup(copy_box.as_mut(), &key)?;
    assert_eq!(copy_key.is_some(), codec.is_encrypted());
    let rc = restore(&copy, &codec, None)?.expect("copied");
    assert_eq!(
        (rc.id, entries(&rc.operators[0].state)),
        (7, snapshots[6].clone())
    );

    // Damage the newest: detected, and restore falls back to 6.
    let mut store = store;
    let mut bytes = store.get(7)?.expect("7 exists");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    store.commit(7, &bytes, &[])?;
    let r = restore(store.as_ref(), &codec, None)?.expect("fallback");
    assert_eq!(r.id, 6);
    assert_eq!(entries(&r.operators[0].state), snapshots[5]);
    assert_eq!(r.skipped.len(), 1);
    let why = &r.skipped[0];
    assert!(
        why.contains("checkpoint 7") && why.contains(&store.describe()),
        "{why}"
    );
    if codec.is_encrypted() {
        assert!(why.contains("decryption failed"), "{why}");
    } else {
        assert!(why.contains("checksum mismatch"), "{why}");
    }
    // Truncation, too.
    let bytes = store.get(6)?.expect("6 exists");
    store.commit(6, &bytes[..bytes.len() - 3], &[])?;
    let err = restore(store.as_ref(), &codec, Some(6))
        .expect_err("truncated")
        .to_string();
    assert!(err.contains("checkpoint 6") && err.contains("truncated"), "{err}");

    // Keys.
    drop(store);
    match &key {
        KeySource::None => {
            let e = open_with(&open, &hex_key(HEX_KEY)).err().expect("mixing refused");
            assert!(matches!(e, OpenError::Key(KeyError::PlainStore(_))), "{e}");
        }
        _ => {
            let e = open_with(&open, &KeySource::None).err().expect("needs a key");
            assert!(e.to_string().contains("is encrypted and no key was given"), "{e}");
            let wrong = match &key {
                KeySource::Passphrase { .. } => KeySource::Passphrase {
                    var: "P".into(),
                    value: "not the passphrase".into(),
                },
                _ => hex_key(OTHER_KEY),
            };
            let e = open_with(&open, &wrong).err().expect("wrong key");
            let msg = e.to_string();
            assert!(msg.contains("wrong key"), "{msg}");
            assert!(
                !msg.contains(HEX_KEY) && !msg.contains(OTHER_KEY),
                "keys must not leak: {msg}"
            );
            // A plain codec cannot read an encrypted checkpoint.
            let (store, _) = open_with(&open, &key)?;
            let err = restore(store.as_ref(), &Codec::plain(), Some(5))
                .expect_err("needs key")
                .to_string();
            assert!(err.contains("is encrypted"), "{err}");
        }
    }

    // A damaged source is not copied: the truncated 6 is detectable even without the key.
    let (store, _) = open_with(&open, &key)?;
    let mut dst = MemoryStore::new();
    let e = copy_store(store.as_ref(), &mut dst)
        .expect_err("damaged source refused")
        .to_string();
    assert!(e.contains("checkpoint 6") && e.contains("truncated"), "{e}");

    // The savepoint of 6 still restores 6's state (its chain is damaged now), until unpinned.
    let mut store = store;
    let any = &|_: &str| None;
    let r = savepoint::load(
        store.as_ref(),
        &codec,
        "before-seven",
        any,
        &mut Default::default(),
    )?;
    assert_eq!((r.id, entries(&r.operators[0].state)), (6, snapshots[5].clone()));
    assert_eq!(r.host.events_in, 6);
    assert_eq!(savepoint::list(store.as_ref())?.len(), 1);
    savepoint::unpin(store.as_mut(), "before-seven")?;
    assert!(savepoint::list(store.as_ref())?.is_empty());
    let err = savepoint::load(
        store.as_ref(),
        &codec,
        "before-seven",
        any,
        &mut Default::default(),
    )
    .expect_err("released")
    .to_string();
    assert!(err.contains("there is no savepoint \"before-seven\""), "{err}");
    Ok(())
}

#[test]
fn memory_plain() -> Result<()> {
    let m = MemoryStore::new();
    suite(Box::new(move || Ok(Box::new(m.clone()))), KeySource::None)
}

#[test]
fn memory_encrypted() -> Result<()> {
    let m = MemoryStore::new();
    suite(Box::new(move || Ok(Box::new(m.clone()))), hex_key(HEX_KEY))
}

#[test]
fn file_plain() -> Result<()> {
    let d = tempfile::tempdir()?;
    let p = d.path().to_path_buf();
    suite(
        Box::new(move || Ok(Box::new(FileStore::open(&p)?))),
        KeySource::None,
    )
}

#[test]
fn file_encrypted_with_passphrase() -> Result<()> {
    let d = tempfile::tempdir()?;
    let p = d.path().to_path_buf();
    let key = KeySource::Passphrase {
        var: "P".into(),
        value: "correct horse battery staple".into(),
    };
    suite(Box::new(move || Ok(Box::new(FileStore::open(&p)?))), key)
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_plain() -> Result<()> {
    let d = tempfile::tempdir()?;
    let p = d.path().join("db");
    suite(
        Box::new(move || Ok(Box::new(RocksStore::open(&p)?))),
        KeySource::None,
    )
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_encrypted() -> Result<()> {
    let d = tempfile::tempdir()?;
    let p = d.path().join("db");
    suite(
        Box::new(move || Ok(Box::new(RocksStore::open(&p)?))),
        hex_key(HEX_KEY),
    )
}

#[test]
fn redis_plain() -> Result<()> {
    let server = RedisServer::start()?;
    let url = server.url("plain");
    let server_url = format!("redis://127.0.0.1:{}/0", server.port());
    suite(
        Box::new(move || Ok(Box::new(RedisStore::open(&url, &server_url, "plain", None)?))),
        KeySource::None,
    )
}

#[test]
fn redis_encrypted_with_ttl() -> Result<()> {
    let server = RedisServer::start()?;
    let url = server.url("enc");
    let server_url = format!("redis://127.0.0.1:{}/0", server.port());
    suite(
        Box::new(move || Ok(Box::new(RedisStore::open(&url, &server_url, "enc", Some(3600))?))),
        hex_key(HEX_KEY),
    )
}

#[test]
fn s3_plain() -> Result<()> {
    let server = S3Server::start()?;
    let url = server.url("plain", "");
    suite(Box::new(move || Ok(cairn::store::open(&url)?)), KeySource::None)
}

#[test]
fn s3_encrypted_with_passphrase() -> Result<()> {
    let server = S3Server::start()?;
    let url = server.url("enc", "");
    let key = KeySource::Passphrase {
        var: "P".into(),
        value: "correct horse battery staple".into(),
    };
    suite(Box::new(move || Ok(cairn::store::open(&url)?)), key)
}

#[test]
fn redis_passphrase_store_refuses_a_raw_key() -> Result<()> {
    let server = RedisServer::start()?;
    let url = server.url("kinds");
    let (_s, codec) = cairn::checkpoint::open_store(
        &url,
        &KeySource::Passphrase {
            var: "P".into(),
            value: "pw".into(),
        },
    )?;
    assert!(codec.is_encrypted());
    let e = cairn::checkpoint::open_store(&url, &hex_key(HEX_KEY))
        .err()
        .expect("refused");
    assert!(
        e.to_string()
            .contains("was encrypted with a passphrase, not with a raw key"),
        "{e}"
    );
    Ok(())
}

#[test]
fn unreachable_redis_is_a_clear_error() {
    let e = cairn::store::open("redis://127.0.0.1:1/0")
        .err()
        .expect("nothing listens on port 1");
    let msg = e.to_string();
    assert!(
        msg.contains("redis://127.0.0.1:1/0") && msg.contains("is the Redis server"),
        "{msg}"
    );
}
