//! Arbitrary bytes as a stored checkpoint: decoding must return a value or an error, never
//! panic, hang or allocate without bound. Also mutates a valid checkpoint's bytes.
#![no_main]

use cairn::checkpoint::codec::Placement;
use cairn::checkpoint::{
    CheckpointData, Codec, EncryptionKey, HostState, JsonlPosition, Kind, OperatorSnapshot,
};
use cairn::state::StateDelta;
use libfuzzer_sys::fuzz_target;

fn valid(codec: &Codec) -> Vec<u8> {
    let data = CheckpointData {
        host: HostState {
            job: "fuzz".into(),
            source: JsonlPosition {
                input: "in".into(),
                offset: 42,
                line: 2,
                batch_size: Some(100),
            }
            .to_source(),
            ..HostState::default()
        },
        operators: vec![OperatorSnapshot {
            name: "op".into(),
            plugin_digest: "00".into(),
            config: "{}".into(),
            key_groups: 128,
            parallelism: 1,
            expired: 0,
            state_version: 1,
            state: StateDelta {
                sets: vec![
                    ("1:k/a".into(), b"1".to_vec().into()),
                    ("*/b".into(), vec![0; 40].into()),
                ],
                deletes: vec!["c".into()],
            },
        }],
    };
    let at = Placement {
        id: 3,
        kind: Kind::Delta,
        base: 1,
        parent: Some(2),
    };
    codec.encode(at, 0, &data).unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let plain = Codec::plain();
    let enc = Codec::encrypted(&EncryptionKey::from_bytes([7; 32]));
    // Raw bytes under a few ids.
    for id in [0, 3, u64::MAX] {
        let _ = plain.decode(id, data);
        let _ = enc.decode(id, data);
        // Part of the key groups (format 5: the blocks of groups 0..64 only).
        let _ = plain.decode_part(id, data, &|_| Some(0..64), &mut Default::default());
        let _ = enc.layout(id, data);
    }
    // Valid checkpoints with the fuzz input XORed over them.
    for codec in [&plain, &enc] {
        let mut v = valid(codec);
        for (i, b) in data.iter().enumerate() {
            let n = v.len();
            if n == 0 {
                break;
            }
            v[i % n] ^= b;
        }
        if data.len() > 1 {
            v.truncate(v.len().saturating_sub(data[0] as usize % 8));
        }
        let _ = codec.decode(3, &v);
    }
});
