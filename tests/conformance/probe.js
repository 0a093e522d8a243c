// The conformance probe (tests/all/languages.rs): each event's value names a state operation;
// the operator performs it and emits what it observed. Every SDK's probe must emit the same.
const text = (b) => (b === undefined ? null : new TextDecoder().decode(b));

cairn.operator(
  class Probe {
    onEvent(event, out) {
      const v = event.json();
      const st = cairn.state;
      let seen;
      switch (v.op) {
        case "put": {
          const had = st.exists(v.name);
          st.set(v.name, v.v);
          seen = { had };
          break;
        }
        case "get":
          seen = { value: text(st.get(v.name)) };
          break;
        case "del": {
          const removed = st.remove(v.name);
          seen = { removed, exists: st.exists(v.name) };
          break;
        }
        case "keys":
          seen = { keys: [...st.keys(v.prefix ?? "")] };
          break;
        case "other": {
          const other = st.of(v.target);
          other.set(v.name, v.v);
          seen = { value: text(other.get(v.name)) };
          break;
        }
        case "global":
          seen = { total: cairn.operatorState.incr("total") };
          break;
        case "fail":
          st.set("y", "boom");
          throw new Error("asked to fail");
        case "timer":
          cairn.timers.register(event.key, v.at);
          seen = { registered: v.at };
          break;
        default:
          throw new Error(`unknown op ${v.op}`);
      }
      out.emitJson(event.key, event.ts, seen);
    }
    onTimer(key, ts, out) {
      out.emitJson(key, ts, { fired: ts, y: cairn.state.getJson("y", null) });
    }
  },
);
