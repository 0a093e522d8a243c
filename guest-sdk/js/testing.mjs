// Run a JavaScript operator under node, against in-memory state, timers and watermark that
// behave as Cairn's (scopes, (ts, key) timer order, a failed call's writes rolled back), with
// node's own test runner:
//
//   import { load } from "./.cairn/sdk/testing.mjs";   // written by `cairn build`
//   const h = await load("app.js", { field: "temp", size_ms: 10 });
//   h.feed([["a", 1, { temp: 3 }]]);   // one batch, then the watermark moves as in the host
//   h.watermark(20);                   // timers due, then onWatermark; the emitted events
//
// The operator runs exactly as componentize-js runs it: this SDK followed by app.js, driven
// through the same exports the host calls (a batch through `process-packed`, in its layout).
import { readFileSync } from "node:fs";
import { register } from "node:module";
import { resolve as resolvePath } from "node:path";

import * as host from "./memory-host.mjs";

register("./hooks.mjs", import.meta.url);

const SDK = readFileSync(new URL("./cairn-operator.js", import.meta.url), "utf8");
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let loads = 0;

function bytes(v) {
  if (v instanceof Uint8Array) return v;
  return encoder.encode(typeof v === "string" ? v : JSON.stringify(v));
}

function u32(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

/** A packed batch (wit/README.md) as { key, ts (BigInt), value } records. */
function unpack(buf) {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  const next = (n) => buf.subarray((at += n) - n, at);
  const events = [];
  for (let n = view.getUint32((at += 4) - 4, true); n > 0; n--) {
    const key = decoder.decode(next(view.getUint32((at += 4) - 4, true)));
    const ts = view.getBigInt64((at += 8) - 8, true);
    events.push({ key, ts, value: next(view.getUint32((at += 4) - 4, true)) });
  }
  return events;
}

/** An emitted event as plain values: { key, ts (number), value (string) }. */
function plain(e) {
  return { key: e.key, ts: Number(e.ts), value: decoder.decode(e.value) };
}

export class Harness {
  constructor(mod) {
    this.mod = mod;
    /** The SDK object the operator sees as `cairn`. */
    this.cairn = mod.__cairn;
  }

  /** Run `f` as one call: the emitted events; on an error the call's writes are undone. */
  call(f) {
    const saved = [new Map(host.mem.entries), new Set(host.mem.timers)];
    try {
      return f().map(plain);
    } catch (e) {
      [host.mem.entries, host.mem.timers] = saved;
      throw typeof e === "string" ? new Error(e) : e;
    }
  }

  /** Process one batch of [key, ts, value] (a value that is not bytes or a string is written
   * as JSON); the emitted events. The watermark does not move. */
  sendAll(events) {
    const batch = [u32(events.length)];
    for (const [key, ts, value] of events) {
      const k = encoder.encode(key);
      const v = bytes(value);
      const t = new Uint8Array(8);
      new DataView(t.buffer).setBigInt64(0, BigInt(ts), true);
      batch.push(u32(k.length), k, t, u32(v.length), v);
    }
    return this.call(() => unpack(this.mod.packedOperator.processPacked(Uint8Array.from(Buffer.concat(batch)))));
  }

  /** Hand `entries` ([scope, key, value]; scope undefined: operator-wide) to the operator's
   * `migrate` as the host does when it resumes state of an older state version; the
   * rewrites ({tag: "keep" | "set" | "remove", val}). On an error nothing is kept. */
  migrate(fromVersion, entries) {
    const page = entries.map(([scope, key, value]) => ({ scope, key, value: bytes(value) }));
    const saved = [new Map(host.mem.entries), new Set(host.mem.timers)];
    let rewrites;
    try {
      rewrites = this.mod.migration.migrate(fromVersion, page);
    } catch (e) {
      [host.mem.entries, host.mem.timers] = saved;
      throw typeof e === "string" ? new Error(e) : e;
    }
    return rewrites.map((r) => (r.tag === "set" ? { tag: "set", val: new TextDecoder().decode(r.val) } : { tag: r.tag }));
  }

  /** Move event time to `wm`: due timers in (ts, key) order (and ones registered meanwhile),
   * then onWatermark; the emitted events. */
  watermark(wm) {
    return this.call(() => {
      const w = BigInt(wm);
      host.mem.watermark = host.mem.watermark === undefined || w > host.mem.watermark ? w : host.mem.watermark;
      const out = [];
      for (;;) {
        const due = this.timers().filter(([ts]) => BigInt(ts) <= w);
        if (due.length === 0) break;
        for (const [ts, key] of due) host.mem.timers.delete(JSON.stringify([String(ts), key]));
        out.push(...this.mod.timerHandler.onTimers(due.map(([ts, key]) => ({ key, ts: BigInt(ts) }))));
      }
      out.push(...this.mod.operator.onWatermark(w));
      return out;
    });
  }

  /** `sendAll`, then the watermark moves to the batch's highest ts, as the host moves it. */
  feed(events) {
    const out = this.sendAll(events);
    if (events.length === 0) return out;
    return out.concat(this.watermark(Math.max(...events.map((e) => Number(e[1])))));
  }

  /** The entries of `key`'s scope (undefined: operator-wide) as { name: text }. */
  state(key) {
    const out = {};
    for (const [k, v] of host.mem.entries) {
      const [scope, name] = JSON.parse(k);
      if (scope === (key ?? null)) out[name] = decoder.decode(v);
    }
    return out;
  }

  /** The pending timers as [ts, key] pairs, in (ts, key) order. */
  timers() {
    return [...host.mem.timers]
      .map((t) => JSON.parse(t))
      .map(([ts, key]) => [Number(ts), key])
      .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  }

  logs() {
    return host.mem.logs.slice();
  }
}

/** Load the operator in `appPath` (an app.js: a path, or a file URL) over a fresh in-memory
 * host and run its init with `config`. */
export async function load(appPath, config = {}) {
  host.reset();
  const app = readFileSync(appPath instanceof URL ? appPath : resolvePath(appPath), "utf8");
  const code = `${SDK}\n// ---- app.js ----\n${app}\nexport { cairn as __cairn };\n// load ${++loads}\n`;
  const mod = await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
  mod.operator.init(JSON.stringify(config));
  return new Harness(mod);
}
