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
import * as wstate from "cairn:operator/state@0.2.1";
import * as wtimers from "cairn:operator/timers@0.2.1";
import { log as wlog } from "cairn:operator/log@0.2.1";

const cairn = (() => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const CURRENT = Symbol("current key");
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
    if (Array.isArray(v)) return "[" + v.map(dumps).join(",") + "]";
    return "{" + Object.keys(v).map((k) => JSON.stringify(k) + ":" + dumps(v[k])).join(",") + "}";
  }

  class Event {
    constructor(key, ts, value) {
      this.key = key;
      this.ts = ts;
      this.value = value; // Uint8Array
    }
    text() {
      return decoder.decode(this.value);
    }
    json() {
      return JSON.parse(this.text());
    }
  }

  class Output {
    constructor() {
      this.events = [];
    }
    emit(key, ts, value) {
      this.events.push({ key, ts: BigInt(ts), value: typeof value === "string" ? encoder.encode(value) : value });
    }
    emitJson(key, ts, value) {
      this.emit(key, ts, dumps(value));
    }
  }

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
    get(name) {
      return wstate.get(this.s(), name);
    }
    set(name, value) {
      try {
        wstate.set(this.s(), name, typeof value === "string" ? encoder.encode(value) : value);
      } catch (e) {
        throw refused(e);
      }
    }
    remove(name) {
      return wstate.remove(this.s(), name);
    }
    exists(name) {
      return wstate.exists(this.s(), name);
    }
    *keys(prefix = "", page = 1000) {
      let after;
      for (;;) {
        const got = wstate.listKeys(this.s(), prefix, after, page);
        yield* got;
        if (got.length < page) return;
        after = got[got.length - 1];
      }
    }
    getJson(name, dflt) {
      const v = this.get(name);
      return v === undefined ? dflt : JSON.parse(decoder.decode(v));
    }
    setJson(name, value) {
      this.set(name, dumps(value));
    }
    incr(name, by = 1) {
      const v = this.get(name);
      const n = (v === undefined ? 0 : Number(decoder.decode(v))) + by;
      this.set(name, String(n));
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
        const out = new Output();
        try {
          if (instance.onBatch) {
            instance.onBatch(batch.map((e) => new Event(e.key, Number(e.ts), e.value)), out);
          } else {
            for (const e of batch) {
              current = e.key;
              instance.onEvent(new Event(e.key, Number(e.ts), e.value), out);
            }
          }
        } catch (e) {
          throw failure("process", e);
        } finally {
          current = undefined;
        }
        return out.events;
      },
      onWatermark(wm) {
        const out = new Output();
        try {
          if (instance.onWatermark) instance.onWatermark(Number(wm), out);
        } catch (e) {
          throw failure("onWatermark", e);
        }
        return out.events;
      },
    },
    timerHandler: {
      onTimers(fired) {
        const out = new Output();
        try {
          for (const t of fired) {
            current = t.key;
            instance.onTimer(t.key, Number(t.ts), out);
          }
        } catch (e) {
          throw failure("onTimer", e);
        } finally {
          current = undefined;
        }
        return out.events;
      },
    },
  };

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
    exports,
  };
})();

export const operator = cairn.exports.operator;
export const timerHandler = cairn.exports.timerHandler;
