"""The component's exports, for componentize-py: import `Operator` and `TimerHandler` into the
operator's module (`from cairn_operator.exports import Operator, TimerHandler`). They run the
class registered with `@cairn_operator.operator`, turn an exception that escapes it into the
call's error (message and Python traceback, for the host's log and error policy) instead of a
trap, and convert events between the WIT records and `cairn_operator.Event`."""

import traceback

import cairn_operator as _cairn

try:
    from componentize_py_types import Err
    from wit_world import exports as _exports
    from wit_world.imports import types as _types
except ImportError:  # plain CPython (an operator's own tests): nothing is exported
    _exports = None

if _exports is None:
    Operator = TimerHandler = None
else:
    _op = [None]


    def _failure(what: str) -> Err:
        return Err(f"{what}: {traceback.format_exc().rstrip()}")


    # Emitted events are WIT records from the start, and the batch's records are handed to the
    # operator as they are, with `json()` added: no copies either way.
    _cairn._make_event[0] = _types.Event
    _types.Event.json = lambda self: _cairn._json.loads(self.value)

    def _run(what, handler):
        """Run `handler(out)`; the events it emitted, or the call's error with the traceback."""
        out = _cairn.Output()
        try:
            handler(out)
        except Exception:
            raise _failure(f"{what} failed") from None
        return out.events


    class Operator(_exports.Operator):
        def init(self, config: str) -> None:
            try:
                _op[0] = _cairn._instantiate(config)
            except Exception as e:
                raise Err(f"init failed: {type(e).__name__}: {e}") from None

        def process(self, batch):
            return _run("process", lambda out: _cairn._on_batch(_op[0], batch, out))

        def on_watermark(self, watermark: int):
            return _run("on_watermark", lambda out: _cairn._on_watermark(_op[0], watermark, out))


    class TimerHandler(_exports.TimerHandler):
        def on_timers(self, fired):
            return _run("on_timer", lambda out: _cairn._on_timers(_op[0], [(t.key, t.ts) for t in fired], out))
