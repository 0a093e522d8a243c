// counter: for each event, increments a per-key count in state and emits
// {"key": <key>, "ts": <ts>, "value": {"count": n}} (as the Rust counter does).
cairn.operator(
  class Counter {
    static prefetch = ["count"]; // read for the whole batch's keys in one host call

    onEvent(event, out) {
      const n = cairn.state.incr("count"); // this event's key's count
      out.emitJson(event.key, event.ts, { count: n });
    }
  },
);
