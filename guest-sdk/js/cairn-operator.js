// Write Cairn stream operators in JavaScript. `cairn build` puts this module in front of the
// project's app.js (componentize-js builds one module), so the app uses `cairn` directly:
//
//   cairn.operator(class Counter {
//     onEvent(event, out) {
//       const n = cairn.state.incr("count");          // this event's key's count
//       out.emitJson(event.key, event.ts, { count: n });
//     }
//   });
//
// The state an operator touches while handling an event (or a timer) is that key's scope;
// `cairn.operatorState` is the operator-wide scope and `cairn.state.of(key)` another key's. A
// refused state call throws `cairn.StateError` (kind "quota-exceeded" or "invalid"); an error
// that escapes a handler fails the call: the host discards its writes and applies the job's
// error policy (`--on-error`), with the message and the JS stack in the log.
//
// Speed (the author's API does not change): the component is built against world
// `operator-packed`, so a batch arrives and the emitted events leave in one buffer each
// (`process-packed`); within a call, state reads are cached, the names a class lists in
// `static prefetch = ["count"]` are read for the whole batch's keys in one `get-many-packed`,
// and writes are held back and sent in one `write-many-packed` when the call succeeds (written
// through instead when `usage` shows they might not fit a quota, so a refusal is still thrown
// by the call that made it). Every host call costs a JS component much; these make few.
import * as wstate from "cairn:operator/state@0.2.5";
import * as wpacked from "cairn:operator/packed-state@0.2.5";
import * as wtimers from "cairn:operator/timers@0.2.5";
import { log as wlog } from "cairn:operator/log@0.2.5";

const cairn = (() => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const CURRENT = Symbol("current key");
  // What `migrate` returns to remove an entry.
  const REMOVE = Symbol("remove");
  let current; // the key whose scope `state` means, or undefined
  let registered = null;
  let instance = null;

  class StateError extends Error {
    constructor(kind, message) {
      super(`${kind}: ${message}`);
      this.name = "StateError";
      this.kind = kind;
      this.detail = message;
    }
  }

  function refused(e) {
    const p = e && e.payload !== undefined ? e.payload : e;
    if (p && typeof p === "object" && "tag" in p) return new StateError(p.tag, String(p.val));
    return e;
  }

  // Numbers as serde_json (the Rust SDK) writes an f64: "2.0", "0.1", "1e+16", "1.5e-7".
  function formatFloat(x) {
    if (!Number.isFinite(x)) return "null";
    if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
    const sign = x < 0 ? "-" : "";
    const [mant, ex] = Math.abs(x).toExponential().split("e");
    let digits = mant.replace(".", "").replace(/0+$/, "");
    if (digits === "") digits = "0";
    const n = digits.length;
    const kk = parseInt(ex, 10) + 1;
    const k = kk - n;
    if (k >= 0 && kk <= 16) return sign + digits + "0".repeat(k) + ".0";
    if (kk > 0 && kk <= 16) return sign + digits.slice(0, kk) + "." + digits.slice(kk);
    if (kk > -5 && kk <= 0) return sign + "0." + "0".repeat(-kk) + digits;
    const e = kk - 1;
    const es = e > 0 ? `e+${e}` : `e${e}`;
    return sign + (n === 1 ? digits : digits[0] + "." + digits.slice(1)) + es;
  }

  // Compact JSON as serde_json writes it. A number is written as an integer when it is one
  // and `Number.isSafeInteger`, unless wrapped with `cairn.float(x)`.
  class Float {
    constructor(x) {
      this.x = x;
    }
  }
  function dumps(v) {
    if (v === null || v === undefined) return "null";
    if (v instanceof Float) return formatFloat(v.x);
    switch (typeof v) {
      case "boolean":
        return v ? "true" : "false";
      case "number":
        return Number.isSafeInteger(v) ? String(v) : formatFloat(v);
      case "bigint":
        return v.toString();
      case "string":
        return JSON.stringify(v);
    }
    let out;
    if (Array.isArray(v)) {
      out = "[";
      for (let i = 0; i < v.length; i++) out += (i === 0 ? "" : ",") + dumps(v[i]);
      return out + "]";
    }
    const keys = Object.keys(v);
    out = "{";
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      out += (i === 0 ? "" : ",") + JSON.stringify(k) + ":" + dumps(v[k]);
    }
    return out + "}";
  }

  // ---- buffers in the packed layouts (wit/README.md): little-endian, `bytes` = u32 length
  // then the bytes, ABSENT = 0xFFFFFFFF in place of a length.
  const ABSENT = 0xffffffff;
  const TWO32 = 4294967296;

  class Writer {
    constructor(size = 4096) {
      this.buf = new Uint8Array(size);
      this.view = new DataView(this.buf.buffer);
      this.at = 0;
    }
    room(n) {
      if (this.at + n <= this.buf.length) return;
      let size = this.buf.length * 2;
      while (size < this.at + n) size *= 2;
      const buf = new Uint8Array(size);
      buf.set(this.buf.subarray(0, this.at));
      this.buf = buf;
      this.view = new DataView(buf.buffer);
    }
    u32(n) {
      this.room(4);
      this.view.setUint32(this.at, n, true);
      this.at += 4;
    }
    i64(n) {
      let lo = n % TWO32;
      if (lo < 0) lo += TWO32;
      this.room(8);
      this.view.setUint32(this.at, lo, true);
      this.view.setInt32(this.at + 4, (n - lo) / TWO32, true);
      this.at += 8;
    }
    str(s) {
      this.room(4 + 3 * s.length);
      const n = encoder.encodeInto(s, this.buf.subarray(this.at + 4)).written;
      this.view.setUint32(this.at, n, true);
      this.at += 4 + n;
    }
    bytes(v) {
      if (v === null) return this.u32(ABSENT);
      if (typeof v === "string") return this.str(v);
      this.room(4 + v.length);
      this.view.setUint32(this.at, v.length, true);
      this.buf.set(v, this.at + 4);
      this.at += 4 + v.length;
    }
    scope(s) {
      if (s === undefined) this.u32(ABSENT);
      else this.str(s);
    }
    done() {
      return this.buf.subarray(0, this.at);
    }
  }

  // Building a buffer byte by byte costs a JS component dearly (every operation is
  // interpreted); one string joined and encoded in one native call is cheap. So a buffer whose
  // strings are all ASCII is written as text with zeroed placeholders where the binary fields
  // go (in ASCII, byte offsets are character offsets), encoded once, and the placeholders
  // filled in; anything else goes through `Writer`.
  const ASCII = /^[\x00-\x7f]*$/;
  const Z4 = "\0\0\0\0";
  const Z12 = "\0\0\0\0\0\0\0\0\0\0\0\0";

  function asBytes(v) {
    return typeof v === "string" ? encoder.encode(v) : v;
  }

  class Event {
    constructor(key, ts, batch, at, len) {
      this.key = key;
      this.ts = ts;
      this._batch = batch;
      this._at = at;
      this._len = len;
    }
    /** The value's bytes (a Uint8Array). */
    get value() {
      return this._batch.subarray(this._at, this._at + this._len);
    }
    text() {
      return decoder.decode(this.value);
    }
    json() {
      return JSON.parse(this.text());
    }
  }

  function eventOf(e) {
    return new Event(e.key, Number(e.ts), e.value, 0, e.value.length);
  }

  // The emitted events: [key, ts, value] kept as they come and packed once at the end.
  class Output {
    constructor() {
      this.keys = [];
      this.ts = [];
      this.values = [];
      this.text = true; // every value a string
    }
    emit(key, ts, value) {
      this.keys.push(String(key));
      this.ts.push(Number(ts));
      if (typeof value === "string") {
        this.values.push(value);
      } else if (value instanceof Uint8Array) {
        this.values.push(value);
        this.text = false;
      } else {
        this.values.push(String(value));
      }
    }
    emitJson(key, ts, value) {
      this.emit(key, ts, dumps(value));
    }
    packed() {
      const { keys, ts, values } = this;
      const n = keys.length;
      const parts = [Z4];
      if (this.text) for (let i = 0; i < n; i++) parts.push(Z4, keys[i], Z12, values[i]);
      const text = this.text ? parts.join("") : "";
      if (this.text && ASCII.test(text)) {
        const buf = encoder.encode(text);
        const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        view.setUint32(0, n, true);
        let at = 4;
        for (let i = 0; i < n; i++) {
          const k = keys[i].length;
          view.setUint32(at, k, true);
          at += 4 + k;
          const t = ts[i];
          let lo = t % TWO32;
          if (lo < 0) lo += TWO32;
          view.setUint32(at, lo, true);
          view.setInt32(at + 4, (t - lo) / TWO32, true);
          const v = values[i].length;
          view.setUint32(at + 8, v, true);
          at += 12 + v;
        }
        return buf;
      }
      const w = new Writer();
      w.u32(n);
      for (let i = 0; i < n; i++) {
        w.str(keys[i]);
        w.i64(ts[i]);
        w.bytes(values[i]);
      }
      return w.done();
    }
    records() {
      const events = [];
      for (let i = 0; i < this.keys.length; i++) {
        events.push({ key: this.keys[i], ts: BigInt(this.ts[i]), value: asBytes(this.values[i]) });
      }
      return events;
    }
  }

  // State within one call into the operator: reads cached, writes held (see the top). Per
  // entry name, a Map from scope (undefined: operator-wide) to the value: a Uint8Array, a
  // string (written as text), or null (absent). Loops index arrays: in a JS component `for
  // (... of ...)` costs several times an indexed loop.
  const held = {
    cache: new Map(), // name -> Map(scope -> value)
    // The held writes, in order (a later write of the same entry is sent after, and wins).
    scopes: [],
    names: [],
    values: [],
    room: null, // [keys, bytes, largest value] the held writes may still take
    begin() {
      this.cache = new Map();
      this.scopes = [];
      this.names = [];
      this.values = [];
      this.room = null;
    },
    of(name) {
      let m = this.cache.get(name);
      if (m === undefined) this.cache.set(name, (m = new Map()));
      return m;
    },
    get(scope, name) {
      const m = this.of(name);
      let v = m.get(scope);
      if (v === undefined) {
        v = wstate.get(scope, name);
        if (v === undefined) v = null;
        m.set(scope, v);
      }
      return v;
    },
    // Read `names` of every scope in `scopes` (repeats are harmless) in one host call.
    prefetch(scopes, names) {
      const ns = scopes.length;
      const nn = names.length;
      let request;
      const parts = [Z4];
      for (let i = 0; i < ns; i++) for (let j = 0; j < nn; j++) parts.push(Z4, scopes[i], Z4, names[j]);
      const text = parts.join("");
      if (ASCII.test(text)) {
        request = encoder.encode(text);
        const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
        view.setUint32(0, ns * nn, true);
        let at = 4;
        for (let i = 0; i < ns; i++) {
          const k = scopes[i].length;
          for (let j = 0; j < nn; j++) {
            view.setUint32(at, k, true);
            at += 4 + k;
            const n = names[j].length;
            view.setUint32(at, n, true);
            at += 4 + n;
          }
        }
      } else {
        const w = new Writer();
        w.u32(ns * nn);
        for (let i = 0; i < ns; i++) for (let j = 0; j < nn; j++) (w.str(scopes[i]), w.str(names[j]));
        request = w.done();
      }
      let answer;
      try {
        answer = wpacked.getManyPacked(request);
      } catch (e) {
        throw refused(e);
      }
      const view = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
      const maps = [];
      for (let j = 0; j < nn; j++) maps.push(this.of(names[j]));
      let at = 0;
      for (let i = 0; i < ns; i++) {
        const s = scopes[i];
        for (let j = 0; j < nn; j++) {
          const len = view.getUint32(at, true);
          at += 4;
          let v = null;
          if (len !== ABSENT) {
            v = answer.subarray(at, at + len);
            at += len;
          }
          const m = maps[j];
          if (!m.has(s)) m.set(s, v);
        }
      }
    },
    set(scope, name, value) {
      if (name === "") throw new StateError("invalid", "a state key must not be empty");
      let room = this.room;
      if (room === null) {
        const u = wpacked.usage();
        room = this.room = [
          Number(u.maxKeys - u.keys),
          Number(u.maxStateBytes - u.bytes),
          Number(u.maxValueBytes),
        ];
      }
      // Pessimistic: a new key, 4 bytes per character (UTF-8 takes at most 3) of the scoped
      // key and the value, and nothing freed.
      const len = typeof value === "string" ? 3 * value.length : value.length;
      const cost = len + 4 * (name.length + (scope === undefined ? 0 : scope.length)) + 24;
      if (room[0] > 0 && room[1] >= cost && len <= room[2]) {
        room[0] -= 1;
        room[1] -= cost;
        // (hold(), inlined: this is the hot path.)
        let m = this.cache.get(name);
        if (m === undefined) this.cache.set(name, (m = new Map()));
        m.set(scope, value);
        this.scopes.push(scope);
        this.names.push(name);
        this.values.push(value);
        return;
      }
      // It might not fit: send what is held, then let the host decide on this one.
      this.flush();
      try {
        wstate.set(scope, name, asBytes(value));
      } catch (e) {
        throw refused(e);
      }
      this.of(name).set(scope, value);
    },
    hold(scope, name, value) {
      this.of(name).set(scope, value);
      this.scopes.push(scope);
      this.names.push(name);
      this.values.push(value);
    },
    remove(scope, name) {
      const existed = this.get(scope, name) !== null;
      this.hold(scope, name, null);
      return existed;
    },
    flush() {
      this.room = null;
      const { scopes, names, values } = this;
      const n = scopes.length;
      if (n === 0) return;
      this.scopes = [];
      this.names = [];
      this.values = [];
      let text = true;
      const parts = [Z4];
      for (let i = 0; i < n; i++) {
        const v = values[i];
        const s = scopes[i];
        parts.push(Z4, s === undefined ? "" : s, Z4, names[i], Z4);
        if (typeof v === "string") parts.push(v);
        else if (v !== null) text = false;
      }
      const joined = text ? parts.join("") : "";
      let request;
      if (text && ASCII.test(joined)) {
        request = encoder.encode(joined);
        const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
        view.setUint32(0, n, true);
        let at = 4;
        for (let i = 0; i < n; i++) {
          const s = scopes[i];
          if (s === undefined) {
            view.setUint32(at, ABSENT, true);
            at += 4;
          } else {
            view.setUint32(at, s.length, true);
            at += 4 + s.length;
          }
          const k = names[i].length;
          view.setUint32(at, k, true);
          at += 4 + k;
          const v = values[i];
          if (v === null) {
            view.setUint32(at, ABSENT, true);
            at += 4;
          } else {
            view.setUint32(at, v.length, true);
            at += 4 + v.length;
          }
        }
      } else {
        const w = new Writer();
        w.u32(n);
        for (let i = 0; i < n; i++) {
          w.scope(scopes[i]);
          w.str(names[i]);
          w.bytes(values[i]);
        }
        request = w.done();
      }
      try {
        wpacked.writeManyPacked(request);
      } catch (e) {
        throw refused(e);
      }
    },
  };

  class State {
    constructor(scope) {
      this.scope = scope;
    }
    s() {
      return this.scope === CURRENT ? current : this.scope;
    }
    of(key) {
      return new State(key);
    }
    /** The value's bytes (a Uint8Array of its own), or undefined. */
    get(name) {
      const v = held.get(this.s(), name);
      return v === null ? undefined : typeof v === "string" ? encoder.encode(v) : v.slice();
    }
    /** Set to a string (written as UTF-8) or bytes (copied). */
    set(name, value) {
      held.set(this.s(), name, typeof value === "string" ? value : Uint8Array.from(value));
    }
    remove(name) {
      return held.remove(this.s(), name);
    }
    exists(name) {
      return held.get(this.s(), name) !== null;
    }
    *keys(prefix = "", page = 1000) {
      held.flush(); // the host lists what it holds
      let after;
      for (;;) {
        const got = wstate.listKeys(this.s(), prefix, after, page);
        yield* got;
        if (got.length < page) return;
        after = got[got.length - 1];
      }
    }
    text(name) {
      const v = held.get(this.s(), name);
      return v === null ? undefined : typeof v === "string" ? v : decoder.decode(v);
    }
    getJson(name, dflt) {
      const v = this.text(name);
      return v === undefined ? dflt : JSON.parse(v);
    }
    setJson(name, value) {
      held.set(this.s(), name, dumps(value));
    }
    incr(name, by = 1) {
      const s = this.scope === CURRENT ? current : this.scope;
      const v = held.get(s, name);
      const n = (v === null ? 0 : Number(typeof v === "string" ? v : decoder.decode(v))) + by;
      held.set(s, name, String(n));
      return n;
    }
  }

  const timers = {
    register(key, ts) {
      try {
        wtimers.register(key, BigInt(ts));
      } catch (e) {
        throw refused(e);
      }
    },
    delete(key, ts) {
      return wtimers.delete(key, BigInt(ts));
    },
    watermark() {
      const w = wtimers.currentWatermark();
      return w === undefined ? undefined : Number(w);
    },
  };

  function failure(what, e) {
    const text = e && e.stack ? `${e.name}: ${e.message}\n${e.stack}` : String(e);
    return `${what} failed: ${text}`;
  }

  // One call into the operator: held writes sent when `f` succeeds, dropped when it fails
  // (the host rolls back what was written through).
  function call(what, f) {
    held.begin();
    try {
      const result = f();
      held.flush();
      return result;
    } catch (e) {
      throw failure(what, e);
    } finally {
      current = undefined;
      held.begin();
    }
  }

  function handle(events, out) {
    if (instance.onBatch) {
      instance.onBatch(events, out);
    } else {
      const n = events.length;
      for (let i = 0; i < n; i++) {
        const e = events[i];
        current = e.key;
        instance.onEvent(e, out);
      }
      current = undefined;
    }
  }

  function prefetchNames() {
    const p = instance.constructor.prefetch;
    return Array.isArray(p) && p.length > 0 ? p : null;
  }

  const exports = {
    operator: {
      init(config) {
        if (!registered) throw "init failed: no operator: call cairn.operator(YourClass) in app.js";
        try {
          instance = new registered(JSON.parse(config || "{}"));
        } catch (e) {
          throw `init failed: ${e && e.message ? e.message : e}`;
        }
      },
      process(batch) {
        return call("process", () => {
          const out = new Output();
          handle(batch.map(eventOf), out);
          return out.records();
        });
      },
      onWatermark(wm) {
        return call("onWatermark", () => {
          const out = new Output();
          if (instance.onWatermark) instance.onWatermark(Number(wm), out);
          return out.records();
        });
      },
    },
    timerHandler: {
      onTimers(fired) {
        return call("onTimer", () => {
          const out = new Output();
          for (let i = 0; i < fired.length; i++) {
            const t = fired[i];
            current = t.key;
            instance.onTimer(t.key, Number(t.ts), out);
          }
          return out.records();
        });
      },
    },
    packedOperator: {
      processPacked(batch) {
        return call("process", () => {
          const [events, keys] = unpack(batch);
          const names = prefetchNames();
          if (names) held.prefetch(keys, names);
          const out = new Output();
          handle(events, out);
          return out.packed();
        });
      },
    },
    // State an older state version wrote, a page at a time (WIT 0.2.5): each entry in its
    // scope to the operator's `migrate(fromVersion, entry)`, which returns the new bytes,
    // undefined (keep) or cairn.REMOVE.
    migration: {
      migrate(fromVersion, page) {
        return call("migrate", () => {
          if (!instance.migrate) {
            throw new Error(
              `the operator declares a new state version but defines no migrate(fromVersion, entry): state of version ${fromVersion} cannot be read`,
            );
          }
          const out = [];
          for (let i = 0; i < page.length; i++) {
            const e = page[i];
            const entry = { scope: e.scope === null ? undefined : e.scope, key: e.key, value: e.value };
            current = entry.scope;
            const r = instance.migrate(fromVersion, entry);
            if (r === undefined || r === null) out.push({ tag: "keep" });
            else if (r === REMOVE) out.push({ tag: "remove" });
            else if (r instanceof Uint8Array) out.push({ tag: "set", val: r });
            else if (typeof r === "string") out.push({ tag: "set", val: encoder.encode(r) });
            else throw new Error(`migrate returned ${typeof r} for key ${JSON.stringify(e.key)}: return a Uint8Array or string, undefined (keep) or cairn.REMOVE`);
          }
          return out;
        });
      },
    },
    // The fired timers as a packed batch of events with empty values (WIT 0.2.3).
    packedTimerHandler: {
      onTimersPacked(fired) {
        return call("onTimer", () => {
          const [timers] = unpack(fired);
          const out = new Output();
          for (let i = 0; i < timers.length; i++) {
            const t = timers[i];
            current = t.key;
            instance.onTimer(t.key, t.ts, out);
          }
          return out.packed();
        });
      },
    },
  };

  // The events of a packed batch, and their keys. Read inline: in the interpreter each method
  // call costs thousands.
  function unpack(batch) {
    const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    const events = [];
    const keys = [];
    let at = 4;
    for (let n = view.getUint32(0, true); n > 0; n--) {
      const k = view.getUint32(at, true);
      const key = decoder.decode(batch.subarray(at + 4, at + 4 + k));
      at += 4 + k;
      const ts = view.getInt32(at + 4, true) * TWO32 + view.getUint32(at, true);
      const len = view.getUint32(at + 8, true);
      events.push(new Event(key, ts, batch, at + 12, len));
      keys.push(key);
      at += 12 + len;
    }
    return [events, keys];
  }

  return {
    StateError,
    Event,
    Output,
    State,
    state: new State(CURRENT),
    operatorState: new State(undefined),
    timers,
    dumps,
    float: (x) => new Float(x),
    formatFloat,
    log(level, message) {
      wlog(level, String(message));
    },
    operator(cls) {
      registered = cls;
      return cls;
    },
    REMOVE,
    exports,
  };
})();

export const operator = cairn.exports.operator;
export const timerHandler = cairn.exports.timerHandler;
export const packedOperator = cairn.exports.packedOperator;
export const packedTimerHandler = cairn.exports.packedTimerHandler;
export const migration = cairn.exports.migration;
