// counter: for each event, increments a per-key count in state and emits
// {"key": <key>, "ts": <ts>, "value": {"count": n}} (as the Rust counter does).
cairn.operator(
  class Counter {
    onEvent(event, out) {
      const n = cairn.state.incr("count"); // this event's key's count
      out.emitJson(event.key, event.ts, { count: n });
    }
  },
);
