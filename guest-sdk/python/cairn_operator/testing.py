"""Run an operator under plain CPython, against in-memory state, timers and watermark that
behave as Cairn's (scopes, (ts, key) timer order, a failed call's writes rolled back):

    h = Harness(Window, {"field": "temp", "size_ms": 10})
    h.feed([("a", 1, {"temp": 3})])     # one batch, then the watermark moves as in the host
    out = h.watermark(20)              # timers due, then on_watermark
"""

import cairn_operator as _cairn

from . import _host, _json


def _event(e):
    if isinstance(e, _cairn.Event):
        return e
    key, ts, value = e
    if not isinstance(value, (bytes, str)):
        value = _json.dumps(value)
    return _cairn.Event(key, ts, value)


class Harness:
    """One operator instance over a fresh in-memory host."""

    def __init__(self, cls, config=None):
        _host.memory.__init__()
        _cairn._registered[0] = cls
        self.op = _cairn._instantiate(_json.dumps(config if config is not None else {}))

    def _call(self, f):
        """Run `f(out)` as one transaction; the emitted events."""
        saved = (dict(_host.memory.entries), set(_host.memory.timers))
        out = _cairn.Output()
        try:
            f(out)
        except BaseException:
            _host.memory.entries, _host.memory.timers = saved
            raise
        return [_cairn.Event(k, ts, v) for (k, ts, v) in _cairn._encoded(out.events)]

    def send_all(self, events):
        """Process one batch (events or (key, ts, value) tuples; a value that is not bytes or
        str is written as JSON); the emitted events. The watermark does not move."""
        batch = [_event(e) for e in events]
        return self._call(lambda out: _cairn._on_batch(self.op, batch, out))

    def send(self, key, ts, value):
        return self.send_all([(key, ts, value)])

    def watermark(self, wm):
        """Move event time to `wm`: due timers in (ts, key) order (including ones registered
        meanwhile), then `on_watermark`; the emitted events."""
        mem = _host.memory

        def step(out):
            mem.watermark = wm if mem.watermark is None else max(mem.watermark, wm)
            while True:
                due = sorted((ts, k) for (ts, k) in mem.timers if ts <= wm)
                if not due:
                    break
                for t in due:
                    mem.timers.discard(t)
                _cairn._on_timers(self.op, [(k, ts) for (ts, k) in due], out)
            _cairn._on_watermark(self.op, wm, out)

        return self._call(step)

    def feed(self, events):
        """`send_all`, then the watermark moves to the batch's highest ts, as the host moves it."""
        batch = [_event(e) for e in events]
        out = self.send_all(batch)
        if batch:
            out += self.watermark(max(e.ts for e in batch))
        return out

    def migrate(self, from_version, entries=None):
        """Hand state to the operator's `migrate` as the host does when it resumes state of an
        older state version: `entries` ((scope, key, value) tuples), or by default every entry
        the in-memory host holds. Applies the rewrites (bytes: set, REMOVE: remove, None: keep)
        and returns them; on an error nothing changes."""
        mem = _host.memory
        if entries is None:
            entries = sorted(((s, k, v) for (s, k), v in mem.entries.items()), key=lambda e: (e[0] is not None, e[0] or "", e[1]))
        page = [_cairn.Entry(*e) for e in entries]
        saved = (dict(mem.entries), set(mem.timers))
        try:
            rewrites = _cairn._migrate(self.op, from_version, page)
        except BaseException:
            mem.entries, mem.timers = saved
            raise
        for e, r in zip(page, rewrites):
            if r is _cairn.REMOVE:
                mem.entries.pop((e.scope, e.key), None)
            elif r is not None:
                mem.entries[(e.scope, e.key)] = r
        return rewrites

    def state(self, key=None):
        """The entries of `key`'s scope (None: the operator-wide scope), as a dict."""
        return {k: v for (s, k), v in _host.memory.entries.items() if s == key}

    def timers(self):
        """The pending timers, as sorted (ts, key) pairs."""
        return sorted(_host.memory.timers)

    def logs(self):
        return list(_host.memory.logs)
