// The JavaScript SDK under node (`node --test guest-sdk/js/tests`): JSON as serde_json writes
// it (the golden vectors), scoped state, timers, rollback and refusals, and the repository's
// JavaScript operators through the test harness.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { load } from "../testing.mjs";

const ROOT = new URL("../../../", import.meta.url).pathname;

function app(source) {
  const dir = mkdtempSync(join(tmpdir(), "cairn-js-"));
  const path = join(dir, "app.js");
  writeFileSync(path, source);
  return path;
}

test("floats are written as serde_json writes them", async () => {
  const h = await load(join(ROOT, "plugins/js/counter/app.js"));
  const view = new DataView(new ArrayBuffer(8));
  let n = 0;
  for (const line of readFileSync(join(ROOT, "guest-sdk/golden/json-floats.txt"), "utf8").split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [bits, want] = line.split(/\s+/);
    view.setBigUint64(0, BigInt(`0x${bits}`), true);
    assert.equal(h.cairn.formatFloat(view.getFloat64(0, true)), want, bits);
    n++;
  }
  assert.ok(n > 300);
  assert.equal(h.cairn.dumps({ a: [1, h.cairn.float(2), null, true], é: 'x"\n' }), '{"a":[1,2.0,null,true],"é":"x\\"\\n"}');
});

test("the counter counts per key, and an operator-wide entry is shared", async () => {
  const h = await load(
    app(`cairn.operator(class {
      onEvent(event, out) {
        const n = cairn.state.incr("count");
        cairn.operatorState.incr("total");
        if (event.json().fail) throw new RangeError("asked to fail");
        out.emitJson(event.key, event.ts, { count: n });
      }
    });`),
  );
  const out = h.sendAll([["a", 1, {}], ["b", 2, {}], ["a", 3, {}]]);
  assert.deepEqual(
    out.map((e) => [e.key, e.ts, e.value]),
    [["a", 1, '{"count":1}'], ["b", 2, '{"count":1}'], ["a", 3, '{"count":2}']],
  );
  assert.deepEqual([h.state("a"), h.state(undefined)], [{ count: "2" }, { total: "3" }]);
  // A failed batch leaves nothing: its writes are rolled back, the error names the cause.
  assert.throws(() => h.sendAll([["a", 4, {}], ["c", 5, { fail: true }]]), /RangeError: asked to fail/);
  assert.deepEqual([h.state("a"), h.state("c"), h.state(undefined)], [{ count: "2" }, {}, { total: "3" }]);
});

test("the repository's counter gives the Rust counter's output", async () => {
  const h = await load(join(ROOT, "plugins/js/counter/app.js"));
  const out = h.sendAll([["sensor-1", 10, { temp: 1 }], ["sensor-1", 11, { temp: 2 }]]);
  assert.deepEqual(out.map((e) => e.value), ['{"count":1}', '{"count":2}']);
});

test("the repository's window closes a window on the watermark, with its aggregates", async () => {
  const h = await load(join(ROOT, "plugins/js/window/app.js"), { field: "temp", size_ms: 10 });
  assert.deepEqual(h.feed([["a", 1, { temp: 3 }], ["a", 4, { temp: 5.5 }], ["b", 12, { temp: 1 }]]), [
    { key: "a", ts: 9, value: '{"start":0,"end":10,"count":2,"sum":8.5,"min":3.0,"max":5.5,"avg":4.25,"stddev":1.25}' },
  ]);
  assert.deepEqual(h.timers(), [[20, "b"]]);
  assert.deepEqual(h.watermark(25).map((e) => e.key), ["b"]);
  assert.deepEqual([h.timers(), h.state("a"), h.state("b")], [[], {}, {}]);
});

test("timers fire in (ts, key) order, and a refused write is a StateError", async () => {
  const h = await load(
    app(`cairn.operator(class {
      onEvent(event, out) {
        cairn.timers.register(event.key, event.ts + 5);
        try {
          cairn.state.set("", "x");
        } catch (e) {
          if (!(e instanceof cairn.StateError)) throw e;
          out.emitJson(event.key, event.ts, { refused: e.kind });
        }
      }
      onTimer(key, ts, out) {
        out.emitJson(key, ts, { fired: cairn.timers.watermark() });
      }
    });`),
  );
  assert.deepEqual(h.sendAll([["b", 1, 0], ["a", 1, 0], ["c", 0, 0]]).map((e) => e.value), [
    '{"refused":"invalid"}',
    '{"refused":"invalid"}',
    '{"refused":"invalid"}',
  ]);
  assert.deepEqual(h.watermark(6).map((e) => [e.key, e.ts, e.value]), [
    ["c", 5, '{"fired":6}'],
    ["a", 6, '{"fired":6}'],
    ["b", 6, '{"fired":6}'],
  ]);
});

test("the SDK packs as an npm package with the harness", async () => {
  const { execFileSync } = await import("node:child_process");
  const dir = new URL("..", import.meta.url).pathname;
  const [pack] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: dir, encoding: "utf8" }));
  assert.equal(pack.name, "cairn-operator");
  assert.deepEqual(
    pack.files.map((f) => f.path).sort(),
    ["README.md", "cairn-operator.js", "hooks.mjs", "memory-host.mjs", "package.json", "testing.mjs"],
  );
});

test("held writes: bytes are copied when set, the last write wins, non-ASCII takes the byte writer", async () => {
  const h = await load(
    app(`cairn.operator(class {
      static prefetch = ["n", "ü"];
      onEvent(event, out) {
        const buf = new Uint8Array([1, 2]);
        cairn.state.set("bytes", buf);
        buf[0] = 9; // after set: the held value must not change
        cairn.state.set("n", "1");
        cairn.state.set("n", "2");
        cairn.state.set("ü", "é" + event.key);
        if (cairn.state.remove("gone") !== false) throw new Error("removed what was not there");
        out.emit(event.key, event.ts, cairn.state.get("bytes"));
        out.emitJson(event.key + "ß", event.ts, { n: cairn.state.text("n"), u: cairn.state.text("ü") });
      }
    });`),
  );
  const out = h.sendAll([["k", 1, {}], ["ö", -2, {}]]);
  assert.deepEqual(
    out.map((e) => [e.key, e.ts, e.value]),
    [["k", 1, "\u0001\u0002"], ["kß", 1, '{"n":"2","u":"ék"}'], ["ö", -2, "\u0001\u0002"], ["öß", -2, '{"n":"2","u":"éö"}']],
  );
  assert.deepEqual(h.state("ö"), { bytes: "\u0001\u0002", n: "2", ü: "éö" });
});

test("timestamps keep their sign and size through the packed batch both ways", async () => {
  const h = await load(join(ROOT, "plugins/js/counter/app.js"));
  const ts = [-5, 0, 2 ** 40 + 3, -(2 ** 50) - 1, Number.MAX_SAFE_INTEGER];
  const out = h.sendAll(ts.map((t) => ["a", t, {}]));
  assert.deepEqual(out.map((e) => e.ts), ts);
});

test("the packed layouts are the codec's golden vectors, on the ASCII and the byte-writer paths", async () => {
  const golden = {};
  for (const line of readFileSync(join(ROOT, "guest-sdk/golden/packed.txt"), "utf8").split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [name, hex] = line.split(" ");
    golden[name] = Uint8Array.from(Buffer.from(hex, "hex"));
  }
  const { mem } = await import("../memory-host.mjs");
  for (const bytes of [false, true]) {
    const h = await load(
      app(`cairn.operator(class {
        static prefetch = ["count"];
        onEvent(event, out) {
          const bytes = ${bytes};
          if (event.key === "a") {
            out.emit(event.key, event.ts, bytes ? event.value : event.text());
            cairn.state.of("sensor-1").set("count", bytes ? new Uint8Array([0x37]) : "7");
            cairn.operatorState.remove("x");
          } else {
            out.emit(event.key, event.ts, cairn.state.text("count") ?? "absent");
          }
        }
      });`),
    );
    const label = bytes ? "byte writer" : "ASCII";
    // The batch decodes and the emitted event encodes to the same bytes.
    assert.deepEqual(h.mod.packedOperator.processPacked(golden["batch-one-event"]), golden["batch-one-event"], label);
    assert.deepEqual(mem.packed.at(-1), ["write-many-packed", golden.writes, null], label);
    // A batch of sensor-1 and z: one get-many-packed whose answer is the golden one, read
    // without another host call.
    const gets = mem.gets;
    const out = h.sendAll([["sensor-1", 2, {}], ["z", 3, {}]]);
    assert.deepEqual(mem.packed.at(-1)[2], golden.answers, label);
    assert.equal(mem.gets, gets, label);
    assert.deepEqual(out.map((e) => e.value), ["7", "absent"], label);
  }
});

test("migrate rewrites each entry of an older state version in its scope", async () => {
  const h = await load(
    app(`cairn.operator(class {
      onEvent(event, out) {
        cairn.state.set("count", new Uint8Array([7, 0, 0, 0]));
        cairn.state.set("old", "x");
        cairn.state.set("kept", "y");
      }
      migrate(fromVersion, entry) {
        if (cairn.state.get(entry.key) === undefined) throw new Error("not in the entry's scope");
        if (entry.key === "count") return JSON.stringify({ n: new DataView(entry.value.buffer, entry.value.byteOffset).getUint32(0, true) });
        if (entry.key === "old") return cairn.REMOVE;
        return undefined;
      }
    });`),
  );
  h.sendAll([["a", 1, {}]]);
  const four = new Uint8Array([7, 0, 0, 0]);
  assert.deepEqual(
    h.migrate(1, [["a", "count", four], ["a", "old", "x"], ["a", "kept", "y"]]),
    [{ tag: "set", val: '{"n":7}' }, { tag: "remove" }, { tag: "keep" }],
  );
  assert.throws(() => h.migrate(1, [["b", "count", four]]), /not in the entry's scope/);
  const plain = await load(app(`cairn.operator(class { onEvent() {} });`));
  assert.throws(() => plain.migrate(1, [["a", "count", four]]), /defines no migrate/);
});
