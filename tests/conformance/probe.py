"""The conformance probe (tests/all/languages.rs): each event's value names a state operation;
the operator performs it and emits what it observed. Every SDK's probe must emit the same."""

import cairn_operator as cairn
from cairn_operator.exports import *  # noqa: F401,F403 (the component's exports)


@cairn.operator
class Probe:
    def on_event(self, event, out):
        v = event.json()
        op, st = v["op"], cairn.state
        if op == "put":
            had = st.exists(v["name"])
            st.set(v["name"], v["v"])
            seen = {"had": had}
        elif op == "get":
            got = st.get(v["name"])
            seen = {"value": None if got is None else got.decode()}
        elif op == "del":
            removed = st.remove(v["name"])
            seen = {"removed": removed, "exists": st.exists(v["name"])}
        elif op == "keys":
            seen = {"keys": list(st.keys(v.get("prefix", "")))}
        elif op == "other":
            other = st.of(v["target"])
            other.set(v["name"], v["v"])
            seen = {"value": other.get(v["name"]).decode()}
        elif op == "global":
            seen = {"total": cairn.operator_state.incr("total")}
        elif op == "fail":
            st.set("y", "boom")
            raise ValueError("asked to fail")
        elif op == "timer":
            cairn.timers.register(event.key, v["at"])
            seen = {"registered": v["at"]}
        else:
            raise ValueError(f"unknown op {op!r}")
        out.emit_json(event.key, event.ts, seen)

    def on_timer(self, key, ts, out):
        out.emit_json(key, ts, {"fired": ts, "y": cairn.state.get_json("y")})
