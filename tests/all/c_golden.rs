//! The C SDK's packed encoder and decoder against the codec's golden vectors
//! (`guest-sdk/golden/packed.txt`): `tests/conformance/golden.c` is built by `cairn build` and
//! its core module (before it becomes a component) is run here with the canonical ABI's
//! imports provided by the test, which records the bytes the SDK sends and answers with the
//! vectors' bytes.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use cairn_tests::repo_root;
use wasmtime::{Caller, Engine, Extern, Instance, Linker, Memory, Module, Store, TypedFunc};

use crate::languages::build_project;

fn golden() -> Result<HashMap<String, Vec<u8>>> {
    let text = fs::read_to_string(repo_root().join("guest-sdk/golden/packed.txt"))?;
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, hex) = line.split_once(' ').context("NAME HEX")?;
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        out.insert(name.to_string(), bytes);
    }
    Ok(out)
}

/// What the SDK sent through the packed calls.
#[derive(Default)]
struct Seen {
    requests: Vec<Vec<u8>>,
    writes: Vec<Vec<u8>>,
}

fn memory(caller: &mut Caller<'_, ()>) -> Memory {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => panic!("the module exports no memory"),
    }
}

fn read(caller: &mut Caller<'_, ()>, ptr: i32, len: i32) -> Vec<u8> {
    let m = memory(caller);
    m.data(&caller)[ptr as usize..(ptr + len) as usize].to_vec()
}

fn write(caller: &mut Caller<'_, ()>, at: i32, bytes: &[u8]) {
    let m = memory(caller);
    m.data_mut(caller)[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
}

/// Copy `bytes` into guest memory allocated by its `cabi_realloc`; the address.
fn alloc(caller: &mut Caller<'_, ()>, bytes: &[u8]) -> i32 {
    let realloc = caller
        .get_export("cabi_realloc")
        .and_then(Extern::into_func)
        .expect("cabi_realloc")
        .typed::<(i32, i32, i32, i32), i32>(&caller)
        .expect("its type");
    let ptr = realloc
        .call(&mut *caller, (0, 0, 1, bytes.len() as i32))
        .expect("cabi_realloc");
    write(caller, ptr, bytes);
    ptr
}

fn linker(engine: &Engine, seen: Arc<Mutex<Seen>>, answers: Vec<u8>) -> Result<Linker<()>> {
    let mut l = Linker::new(engine);
    const PACKED: &str = concat!("cairn:operator/packed-state@", cairn_codec::contract_version!());
    let s = seen.clone();
    l.func_wrap(
        PACKED,
        "get-many-packed",
        move |mut c: Caller<'_, ()>, ptr: i32, len: i32, ret: i32| {
            s.lock().unwrap().requests.push(read(&mut c, ptr, len));
            let at = alloc(&mut c, &answers);
            write(&mut c, ret, &[0, 0, 0, 0]); // ok
            write(&mut c, ret + 4, &at.to_le_bytes());
            write(&mut c, ret + 8, &(answers.len() as u32).to_le_bytes());
        },
    )?;
    l.func_wrap(
        PACKED,
        "write-many-packed",
        move |mut c: Caller<'_, ()>, ptr: i32, len: i32, ret: i32| {
            seen.lock().unwrap().writes.push(read(&mut c, ptr, len));
            write(&mut c, ret, &[0]); // ok
        },
    )?;
    l.func_wrap(PACKED, "usage", |mut c: Caller<'_, ()>, ret: i32| {
        // keys, bytes, max-keys, max-state-bytes, max-value-bytes
        for (i, v) in [0u64, 0, 1 << 40, 1 << 40, 1 << 20].into_iter().enumerate() {
            write(&mut c, ret + 8 * i as i32, &v.to_le_bytes());
        }
    })?;
    // Single reads: the operator-wide "x" holds "1"; everything else is absent.
    l.func_wrap(
        PACKED,
        "get-inline",
        |mut c: Caller<'_, ()>, has_scope: i32, _sp: i32, _sl: i32, kp: i32, kl: i32, ret: i32| {
            let key = read(&mut c, kp, kl);
            if has_scope == 0 && key == b"x" {
                write(&mut c, ret, &[1]); // inline
                write(&mut c, ret + 8, &1u32.to_le_bytes());
                write(&mut c, ret + 16, &u64::from(b'1').to_le_bytes());
            } else {
                write(&mut c, ret, &[0]); // absent
            }
        },
    )?;
    Ok(l)
}

/// Call export `name` with `arg` (a list<u8> or string) as the canonical ABI does; the
/// result's (tag, payload bytes).
fn call(store: &mut Store<()>, instance: &Instance, name: &str, arg: &[u8]) -> Result<(u8, Vec<u8>)> {
    let memory = instance.get_memory(&mut *store, "memory").context("memory")?;
    let realloc: TypedFunc<(i32, i32, i32, i32), i32> =
        instance.get_typed_func(&mut *store, "cabi_realloc")?;
    let ptr = realloc.call(&mut *store, (0, 0, 1, arg.len() as i32))?;
    memory.data_mut(&mut *store)[ptr as usize..ptr as usize + arg.len()].copy_from_slice(arg);
    let f: TypedFunc<(i32, i32), i32> = instance.get_typed_func(&mut *store, name)?;
    let ret = f.call(&mut *store, (ptr, arg.len() as i32))? as usize;
    let data = memory.data(&*store);
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let (tag, p, n) = (data[ret], word(ret + 4), word(ret + 8));
    Ok((tag, data.get(p..p + n).unwrap_or_default().to_vec()))
}

#[test]
fn the_c_sdk_reads_and_writes_the_golden_vectors() -> Result<()> {
    let g = golden()?;
    let dir = tempfile::tempdir()?;
    let source = fs::read_to_string(repo_root().join("tests/conformance/golden.c"))?;
    build_project(dir.path(), "golden-c", "c", "operator.c", &source)?;
    let core = dir.path().join("golden-c/.cairn/core.wasm");

    let engine = Engine::default();
    let module = Module::from_file(&engine, &core)?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut linker = linker(&engine, seen.clone(), g["answers"].clone())?;
    // Everything else (WASI, the plain state calls, timers, log) must not be called.
    linker.define_unknown_imports_as_traps(&module)?;
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module)?;
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
        init.call(&mut store, ())?;
    }
    let (tag, err) = call(
        &mut store,
        &instance,
        concat!(
            "cairn:operator/operator@",
            cairn_codec::contract_version!(),
            "#init"
        ),
        b"{}",
    )?;
    ensure!(tag == 0, "init failed: {}", String::from_utf8_lossy(&err));

    // The golden batch decodes, and the event emitted back encodes to the same bytes.
    let process = concat!(
        "cairn:operator/packed-operator@",
        cairn_codec::contract_version!(),
        "#process-packed"
    );
    let (tag, out) = call(&mut store, &instance, process, &g["batch-one-event"])?;
    ensure!(tag == 0, "process failed: {}", String::from_utf8_lossy(&out));
    assert_eq!(out, g["batch-one-event"]);
    // Its writes went in one write-many-packed: the golden `writes`, whose two entries the
    // SDK may send in either order (it walks its hash table).
    let w = &g["writes"];
    let swapped = [&w[..4], &w[30..], &w[4..30]].concat();
    let writes = std::mem::take(&mut seen.lock().unwrap().writes);
    match writes.as_slice() {
        [one] if *one == *w || *one == swapped => {}
        other => bail!("the writes sent were {other:02x?}, not the golden vector"),
    }
    // (It prefetched the batch's one key; the answer's second entry went unread.)
    let requests = std::mem::take(&mut seen.lock().unwrap().requests);
    assert_eq!(
        requests,
        [[&[1, 0, 0, 0, 1, 0, 0, 0, b'a', 5, 0, 0, 0][..], b"count"].concat()]
    );

    // Two events: one get-many-packed for their "count", answered with the golden `answers`
    // ("7", then absent), which the SDK reads back.
    let mut batch = 2u32.to_le_bytes().to_vec();
    for (key, ts) in [("sensor-1", 2i64), ("z", 3)] {
        batch.extend((key.len() as u32).to_le_bytes());
        batch.extend(key.as_bytes());
        batch.extend(ts.to_le_bytes());
        batch.extend(2u32.to_le_bytes());
        batch.extend(b"{}");
    }
    let (tag, out) = call(&mut store, &instance, process, &batch)?;
    ensure!(tag == 0, "process failed: {}", String::from_utf8_lossy(&out));
    let mut want = 2u32.to_le_bytes().to_vec();
    for (key, ts, value) in [("sensor-1", 2i64, "7"), ("z", 3, "absent")] {
        want.extend((key.len() as u32).to_le_bytes());
        want.extend(key.as_bytes());
        want.extend(ts.to_le_bytes());
        want.extend((value.len() as u32).to_le_bytes());
        want.extend(value.as_bytes());
    }
    assert_eq!(out, want);
    let requests = std::mem::take(&mut seen.lock().unwrap().requests);
    let mut request = 2u32.to_le_bytes().to_vec();
    for scope in ["sensor-1", "z"] {
        request.extend((scope.len() as u32).to_le_bytes());
        request.extend(scope.as_bytes());
        request.extend(5u32.to_le_bytes());
        request.extend(b"count");
    }
    assert_eq!(requests, [request]);
    Ok(())
}
