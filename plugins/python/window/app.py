"""window: tumbling and sliding event-time windows per key with the aggregates of a numeric
field (count, sum, min, max, avg, stddev); the same operator, configuration and output as the
Rust `window` plugin.

Config: {"field": "temp", "size_ms": 60000, "slide_ms": 60000, "out_of_order_ms": 0,
"allowed_lateness_ms": 0}.
"""

import math

import cairn_operator as cairn
from cairn_operator.exports import *  # noqa: F401,F403 (the component's exports)

SETTINGS = {"field", "size_ms", "slide_ms", "out_of_order_ms", "allowed_lateness_ms"}


def ordered(v: int) -> str:
    """A timestamp as text whose byte order is numeric order."""
    return format((v & 0xFFFFFFFFFFFFFFFF) ^ (1 << 63), "016x")


def number_at(value, path: str):
    """The number at a dotted path ("" = the value itself); numeric strings count."""
    if path:
        for part in path.split("."):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


@cairn.operator
class Window:
    def __init__(self, config):
        unknown = set(config) - SETTINGS
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "field" not in config or "size_ms" not in config:
            raise ValueError("field and size_ms are required")
        self.field = config["field"]
        self.size = config["size_ms"]
        self.slide = config.get("slide_ms") or self.size
        self.ooo = config.get("out_of_order_ms", 0)
        self.lateness = config.get("allowed_lateness_ms", 0)
        if self.size <= 0 or self.slide <= 0:
            raise ValueError("size_ms and slide_ms must be positive")
        if self.ooo < 0 or self.lateness < 0:
            raise ValueError("out_of_order_ms and allowed_lateness_ms must not be negative")

    def on_event(self, event, out):
        x = number_at(event.json(), self.field)
        if x is None:
            return
        wm = cairn.timers.watermark()
        wm = None if wm is None else wm - self.ooo
        ts = event.ts
        start = (ts // self.slide) * self.slide
        assigned = False
        while start > ts - self.size:
            end = start + self.size
            if wm is None or end + self.lateness > wm:
                name = "win/" + ordered(start)
                w = cairn.state.get_json(name)
                if w is None:
                    # one timer per window: it closes at end + lateness (+ out-of-order)
                    cairn.timers.register(event.key, end + self.lateness + self.ooo)
                    w = [0, 0.0, None, None, 0.0, 0.0]
                n, total, lo, hi, mean, m2 = w
                n += 1
                total += x
                lo = x if lo is None else min(lo, x)
                hi = x if hi is None else max(hi, x)
                delta = x - mean
                mean += delta / n
                m2 += delta * (x - mean)
                cairn.state.set_json(name, [n, total, lo, hi, mean, m2])
                assigned = True
            start -= self.slide
        if not assigned:
            cairn.state.incr("late")  # late events of this key

    def on_timer(self, key, ts, out):
        end = ts - self.lateness - self.ooo
        start = end - self.size
        name = "win/" + ordered(start)
        w = cairn.state.get_json(name)
        if w is None:
            return
        n, total, lo, hi, mean, m2 = w
        out.emit_json(
            key,
            end - 1,
            {
                "start": start,
                "end": end,
                "count": n,
                "sum": total,
                "min": lo,
                "max": hi,
                "avg": mean if n else None,
                "stddev": math.sqrt(max(m2 / n, 0.0)) if n else None,
            },
        )
        cairn.state.remove(name)
