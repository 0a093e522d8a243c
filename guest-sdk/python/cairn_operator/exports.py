"""The component's exports, for componentize-py: `from cairn_operator.exports import *` in the
operator's module. They run the class registered with `@cairn_operator.operator`, turn an
exception that escapes it into the call's error (message and Python traceback, for the host's
log and error policy) instead of a trap, and hand events over as the host's tuples.

Built for world `operator-pickled` (WIT 0.2.2 and later; `cairn build` uses the current one) the component exports
`PickledOperator` too, which the host calls instead of `Operator.process`: the batch and the
emitted events cross as one pickle each, and state calls go through the batched backend
(`_host.Pickled`). Built for `operator-bulk` (0.2.1) it exports `BulkOperator` instead, with
lists of tuples (`_host.Batched`). Built for `operator-timers` it runs the same
operator with a host call per state call. From WIT 0.2.5 `operator-pickled` exports
`Migration` too: the host hands it the state an older state version wrote, and the operator's
`migrate(from_version, entry)` rewrites it."""

import gc
import traceback
from itertools import repeat as _repeat

import cairn_operator as _cairn
from cairn_operator import _host

try:
    from componentize_py_types import Err
    from wit_world import exports as _exports
    from wit_world.imports import types as _types
except ImportError:  # plain CPython (an operator's own tests): nothing is exported
    _exports = None

__all__ = ["Operator", "TimerHandler", "BulkOperator", "PickledOperator", "Migration"]

if _exports is None:
    Operator = TimerHandler = BulkOperator = PickledOperator = Migration = None
else:
    _op = [None]
    _map = map
    _backend = _host.backend
    _record = _types.Event

    def _run(what, handler, encode=True):
        """Run `handler(out)` as one call: the events it emitted (tuples; with `encode`, every
        value as bytes), or the call's error with the traceback. Writes held back are sent
        before the call returns."""
        out = _cairn.Output()
        _host.begin_call()
        # No cycle collection while the call runs: every event and emitted tuple it holds would
        # be traversed again at each collection. Garbage it makes is collected after it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            handler(out)
            _backend.flush()
            events = _cairn._encoded(out.events) if encode else out.events
        except Exception:
            _backend.discard()
            raise Err(f"{what} failed: {traceback.format_exc().rstrip()}") from None
        finally:
            if collecting:
                gc.enable()
        return events

    def _records(events):
        return [_record(k, ts, v) for (k, ts, v) in events]

    def _batch(events):
        return list(_map(_cairn._as_event, _repeat(_cairn.Event), events))

    class Operator(_exports.Operator):
        def init(self, config: str) -> None:
            try:
                _op[0] = _cairn._instantiate(config)
            except Exception as e:
                raise Err(f"init failed: {type(e).__name__}: {e}") from None

        def process(self, batch):
            events = _batch((e.key, e.ts, e.value) for e in batch)
            return _records(_run("process", lambda out: _cairn._on_batch(_op[0], events, out)))

        def on_watermark(self, watermark: int):
            return _records(_run("on_watermark", lambda out: _cairn._on_watermark(_op[0], watermark, out)))

    class TimerHandler(_exports.TimerHandler):
        def on_timers(self, fired):
            timers = [(t.key, t.ts) for t in fired]
            return _records(_run("on_timer", lambda out: _cairn._on_timers(_op[0], timers, out)))

    if hasattr(_exports, "BulkOperator"):

        class BulkOperator(_exports.BulkOperator):
            def process_bulk(self, batch):
                events = _batch(batch)
                return _run("process", lambda out: _cairn._on_batch(_op[0], events, out))

    else:
        BulkOperator = None

    if hasattr(_exports, "PickledOperator"):

        class PickledOperator(_exports.PickledOperator):
            def process_pickled(self, batch):
                events = _batch(_host.loads(batch))
                run = _run("process", lambda out: _cairn._on_batch(_op[0], events, out), encode=False)
                return _host.dumps(run)

    else:
        PickledOperator = None

    if hasattr(_exports, "Migration"):
        from wit_world.exports import migration as _migration

        _KEEP = _migration.Rewrite_Keep()
        _REMOVE = _migration.Rewrite_Remove()

        class Migration(_exports.Migration):
            def migrate(self, from_version, page):
                entries = [_cairn.Entry(e.scope, e.key, e.value) for e in page]
                done = []
                _run("migrate", lambda out: done.extend(_cairn._migrate(_op[0], from_version, entries)))
                return [
                    _KEEP if r is None else _REMOVE if r is _cairn.REMOVE else _migration.Rewrite_Set(r)
                    for r in done
                ]

    else:
        Migration = None
