// window: tumbling and sliding event-time windows per key with the aggregates of a numeric
// field (count, sum, min, max, avg, stddev); the same configuration and byte-identical output
// as the Rust `window` plugin. Config: {"field": "temp", "size_ms": 60000, "slide_ms": 60000,
// "out_of_order_ms": 0, "allowed_lateness_ms": 0}.

const SETTINGS = ["field", "size_ms", "slide_ms", "out_of_order_ms", "allowed_lateness_ms"];

// A timestamp as text whose byte order is numeric order.
function ordered(v) {
  return (BigInt.asUintN(64, BigInt(v)) ^ (1n << 63n)).toString(16).padStart(16, "0");
}

// The number at a dotted path ("" = the value itself); numeric strings count.
function numberAt(value, path) {
  if (path !== "") {
    for (const part of path.split(".")) {
      if (Array.isArray(value)) {
        if (!/^[0-9]+$/.test(part)) return undefined;
        value = value[Number(part)];
      } else if (value !== null && typeof value === "object") {
        value = Object.prototype.hasOwnProperty.call(value, part) ? value[part] : undefined;
      } else {
        return undefined;
      }
    }
  }
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    const t = value.trim();
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$/i.test(t)) return undefined;
    const l = t.toLowerCase().replace(/^\+/, "");
    if (l === "inf" || l === "infinity") return Infinity;
    if (l === "-inf" || l === "-infinity") return -Infinity;
    if (l.endsWith("nan")) return NaN;
    return Number(t);
  }
  return undefined;
}

cairn.operator(
  class Window {
    constructor(config) {
      for (const k of Object.keys(config)) {
        if (!SETTINGS.includes(k)) throw new Error(`unknown setting: ${k}`);
      }
      if (typeof config.field !== "string" || config.size_ms === undefined) {
        throw new Error("field and size_ms are required");
      }
      this.field = config.field;
      this.size = config.size_ms;
      this.slide = config.slide_ms ?? this.size;
      this.ooo = config.out_of_order_ms ?? 0;
      this.lateness = config.allowed_lateness_ms ?? 0;
      if (this.size <= 0 || this.slide <= 0) throw new Error("size_ms and slide_ms must be positive");
      if (this.ooo < 0 || this.lateness < 0) {
        throw new Error("out_of_order_ms and allowed_lateness_ms must not be negative");
      }
    }

    onEvent(event, out) {
      const x = numberAt(event.json(), this.field);
      if (x === undefined) return;
      let wm = cairn.timers.watermark();
      if (wm !== undefined) wm -= this.ooo;
      const ts = event.ts;
      let assigned = false;
      for (let start = Math.floor(ts / this.slide) * this.slide; start > ts - this.size; start -= this.slide) {
        const end = start + this.size;
        if (wm !== undefined && end + this.lateness <= wm) continue; // closed
        const name = "win/" + ordered(start);
        let w = cairn.state.getJson(name);
        if (w === undefined) {
          // one timer per window: it closes at end + lateness (+ out-of-order)
          cairn.timers.register(event.key, end + this.lateness + this.ooo);
          w = [0, 0, null, null, 0, 0];
        }
        let [n, sum, lo, hi, mean, m2] = w;
        n += 1;
        sum += x;
        lo = lo === null ? x : Math.min(lo, x);
        hi = hi === null ? x : Math.max(hi, x);
        const delta = x - mean;
        mean += delta / n;
        m2 += delta * (x - mean);
        cairn.state.setJson(name, [n, cairn.float(sum), cairn.float(lo), cairn.float(hi), cairn.float(mean), cairn.float(m2)]);
        assigned = true;
      }
      if (!assigned) cairn.state.incr("late"); // late events of this key
    }

    onTimer(key, ts, out) {
      const end = ts - this.lateness - this.ooo;
      const start = end - this.size;
      const name = "win/" + ordered(start);
      const w = cairn.state.getJson(name);
      if (w === undefined) return;
      const [n, sum, lo, hi, mean, m2] = w;
      const f = cairn.float;
      out.emitJson(key, end - 1, {
        start,
        end,
        count: n,
        sum: f(sum),
        min: f(lo),
        max: f(hi),
        avg: f(mean),
        stddev: f(Math.sqrt(Math.max(m2 / n, 0))),
      });
      cairn.state.remove(name);
    }
  },
);
