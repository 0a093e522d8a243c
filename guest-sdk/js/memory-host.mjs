// The in-memory stand-in for Cairn's host functions (`cairn:operator/state`, `timers`, `log`),
// for running an operator under node (see testing.mjs). Scopes, byte-ordered key listing,
// (ts, key) timer order and refusals behave as the host's; the packed calls read and write the
// layouts of wit/README.md; there are no quotas.

export const mem = {
  entries: new Map(), // JSON [scope, key] -> Uint8Array (scope null: operator-wide)
  timers: new Set(), // JSON [ts, key]
  watermark: undefined, // BigInt
  logs: [],
  packed: [], // [call, request bytes, answer bytes] of each packed-state call
  gets: 0, // plain `get` calls
};

export function reset() {
  mem.entries = new Map();
  mem.timers = new Set();
  mem.watermark = undefined;
  mem.logs = [];
  mem.packed = [];
  mem.gets = 0;
}

const id = (scope, key) => JSON.stringify([scope ?? null, key]);
const invalid = (message) => Object.assign(new Error(message), { payload: { tag: "invalid", val: message } });

export function get(scope, key) {
  mem.gets++;
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

// ---- packed-state: the same entries, in the packed layouts (wit/README.md).
const ABSENT = 0xffffffff;
const text = new TextDecoder();

function reader(buf) {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  const u32 = () => ((at += 4), view.getUint32(at - 4, true));
  const bytes = () => {
    const n = u32();
    if (n === ABSENT) return null;
    if (at + n > buf.length) throw invalid(`a length at byte ${at - 4} runs past the end`);
    return buf.subarray((at += n) - n, at);
  };
  const name = () => {
    const scope = bytes();
    return [scope === null ? undefined : text.decode(scope), text.decode(bytes())];
  };
  return { u32, bytes, name, end: () => at === buf.length };
}

export function getManyPacked(request) {
  const r = reader(request);
  const parts = [];
  for (let n = r.u32(); n > 0; n--) {
    const [scope, key] = r.name();
    const v = mem.entries.get(id(scope, key));
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, v === undefined ? ABSENT : v.length, true);
    parts.push(len);
    if (v !== undefined) parts.push(v);
  }
  if (!r.end()) throw invalid("bytes left over after the request");
  const answer = Uint8Array.from(Buffer.concat(parts));
  mem.packed.push(["get-many-packed", Uint8Array.from(request), answer]);
  return answer;
}

export function writeManyPacked(writes) {
  const r = reader(writes);
  const all = [];
  for (let n = r.u32(); n > 0; n--) {
    const [scope, key] = r.name();
    all.push([scope, key, r.bytes()]);
  }
  if (!r.end()) throw invalid("bytes left over after the writes");
  mem.packed.push(["write-many-packed", Uint8Array.from(writes), null]);
  for (const [scope, key, value] of all) {
    if (value === null) remove(scope, key);
    else set(scope, key, value);
  }
}

export function usage() {
  const max = 1n << 62n;
  return { keys: BigInt(mem.entries.size), bytes: 0n, maxKeys: max, maxStateBytes: max, maxValueBytes: max };
}
