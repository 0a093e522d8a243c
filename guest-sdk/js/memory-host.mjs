// The in-memory stand-in for Cairn's host functions (`cairn:operator/state`, `timers`, `log`),
// for running an operator under node (see testing.mjs). Scopes, byte-ordered key listing,
// (ts, key) timer order and refusals behave as the host's; there are no quotas.

export const mem = {
  entries: new Map(), // JSON [scope, key] -> Uint8Array (scope null: operator-wide)
  timers: new Set(), // JSON [ts, key]
  watermark: undefined, // BigInt
  logs: [],
};

export function reset() {
  mem.entries = new Map();
  mem.timers = new Set();
  mem.watermark = undefined;
  mem.logs = [];
}

const id = (scope, key) => JSON.stringify([scope ?? null, key]);
const invalid = (message) => Object.assign(new Error(message), { payload: { tag: "invalid", val: message } });

export function get(scope, key) {
  const v = mem.entries.get(id(scope, key));
  return v === undefined ? undefined : v.slice();
}

export function set(scope, key, value) {
  if (key === "") throw invalid("a state key must not be empty");
  mem.entries.set(id(scope, key), Uint8Array.from(value));
}

export function remove(scope, key) {
  return mem.entries.delete(id(scope, key));
}

export function exists(scope, key) {
  return mem.entries.has(id(scope, key));
}

const utf8 = new TextEncoder();
function byteOrder(a, b) {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

export function listKeys(scope, prefix, startAfter, limit) {
  const s = scope ?? null;
  const keys = [];
  for (const k of mem.entries.keys()) {
    const [ks, key] = JSON.parse(k);
    if (ks === s && key.startsWith(prefix)) keys.push(key);
  }
  keys.sort(byteOrder);
  const after = startAfter === undefined ? keys : keys.filter((k) => byteOrder(k, startAfter) > 0);
  return after.slice(0, limit);
}

export function register(key, ts) {
  mem.timers.add(JSON.stringify([String(ts), key]));
}

function del(key, ts) {
  return mem.timers.delete(JSON.stringify([String(ts), key]));
}
export { del as delete };

export function currentWatermark() {
  return mem.watermark;
}

export function log(level, message) {
  mem.logs.push([level, message]);
}
