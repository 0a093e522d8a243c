"""counter: for each event, increments a per-key count in state and emits
{"key": <key>, "ts": <ts>, "value": {"count": n}} (as the Rust counter does)."""

import cairn_operator as cairn
from cairn_operator.exports import *  # noqa: F401,F403 (the component's exports)


@cairn.operator
class Counter:
    prefetch = ("count",)  # read for the whole batch in one call: a speed hint, optional

    def on_event(self, event, out):
        n = cairn.state.incr("count")  # this event's key's count
        out.emit_json(event.key, event.ts, {"count": n})
