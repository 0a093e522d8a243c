"""Write Cairn stream operators in Python.

    import cairn_operator as cairn
    from cairn_operator.exports import *  # what the component exports

    @cairn.operator
    class Counter:
        def on_event(self, event, out):
            n = cairn.state.incr("count")          # this event's key's count
            out.emit_json(event.key, event.ts, {"count": n})

Build it with `cairn build` (componentize-py, world `operator-pickled` of the current WIT). The state
an operator touches while handling an event (or a timer) is that key's scope; `operator_state`
is the operator-wide scope and `state.of(key)` another key's. Every write is part of the
current call's transaction: an exception that escapes a handler fails the call, the host
discards its writes and applies the job's error policy (`--on-error`).
"""

from itertools import repeat as _repeat
from marshal import dumps as _marshal
from marshal import loads as _unmarshal
from operator import itemgetter as _item

try:  # CPython's descriptor for namedtuple fields: reads the item without a call
    from _collections import _tuplegetter as _field
except ImportError:  # pragma: no cover (other Pythons)

    def _field(index, doc):
        return property(_item(index), doc=doc)

from . import _host, _json
from ._host import InvalidState, QuotaExceeded, StateError

__all__ = [
    "REMOVE",
    "Entry",
    "Event",
    "InvalidState",
    "Output",
    "QuotaExceeded",
    "State",
    "StateError",
    "dumps",
    "log",
    "operator",
    "operator_state",
    "state",
    "timers",
]

dumps = _json.dumps

# The key whose scope `state` means: set while an event or a timer is handled.
_current = [None]
_CURRENT = object()
_MISSING = object()
# Where state calls go: the host (one call each, or batched) or the in-memory stand-in.
_b = _host.backend
# The batched backend's read cache, held writes and room (changed in place; see
# `_host.Batched`): `incr` uses them without a call. Other backends: always empty.
_reads = getattr(_b, "cache", {})
_held = getattr(_b, "dirty", {})
_room = getattr(_b, "room", [])


class Event(tuple):
    """One event: `key` (str), `ts` (event time, ms), `value` (bytes: JSON text on the CLI).
    A (key, ts, value) tuple, as the host hands events over."""

    __slots__ = ()

    def __new__(cls, key: str, ts: int, value):
        return tuple.__new__(cls, (key, ts, value.encode() if isinstance(value, str) else bytes(value)))

    key = _field(0, "Partitioning key.")
    ts = _field(1, "Event time, ms.")
    value = _field(2, "Payload bytes.")

    def json(self):
        """The value parsed as JSON."""
        return _json.loads(self[2])

    def __repr__(self):
        return f"Event({self[0]!r}, {self[1]}, {self[2]!r})"


_key_of = _item(0)
# An event as the host's tuple, without the checks of `Event(...)`.
_as_event = tuple.__new__


class Output:
    """The events a call emits, in order, as (key, ts, value bytes) tuples."""

    __slots__ = ("events",)

    def __init__(self):
        self.events = []

    def emit(self, key: str, ts: int, value):
        """Emit an event; `value` is bytes or str."""
        self.events.append((key, ts, value.encode() if isinstance(value, str) else bytes(value)))

    def emit_json(self, key: str, ts: int, value):
        """Emit an event whose value is `value` as JSON text (as the Rust SDK writes it).

        Inside Cairn (WIT 0.2.2 and later) the value is taken as it is now in CPython's `marshal` form,
        one C call, and the host writes the JSON text; a value marshal cannot take (a dict
        subclass, say) is written here. Values JSON cannot hold are refused either way."""
        if type(value) is not bytes:
            try:
                self.events.append((key, ts, (_marshal(value, 2),)))
                return
            except ValueError:
                pass
        self.events.append((key, ts, _json.dumps(value).encode()))


def _encoded(events):
    """`events` with every value as bytes: a value `emit_json` left marshalled is written as
    JSON text here (for the calls whose events cross as WIT values, and for the test harness)."""
    return [
        (k, ts, v if type(v) is bytes else _json.dumps(_unmarshal(v[0])).encode()) for (k, ts, v) in events
    ]


class State:
    """Key-value state in one scope: the current key's (`state`), the operator's
    (`operator_state`) or a named key's (`state.of(key)`). Keys are non-empty strings; values
    are bytes, with JSON and integer helpers."""

    __slots__ = ("_scope",)

    def __init__(self, scope=_CURRENT):
        self._scope = scope

    def of(self, key: str) -> "State":
        """The state of stream key `key`."""
        return State(key)

    def get(self, name: str, default=None):
        """The bytes under `name`, or `default`."""
        v = _b.get(_current[0] if self._scope is _CURRENT else self._scope, name)
        return default if v is None else v

    def set(self, name: str, value):
        """Store bytes (or str) under `name`. Raises `QuotaExceeded` or `InvalidState`."""
        if not name:
            raise InvalidState("a state key must not be empty")
        _b.set(
            _current[0] if self._scope is _CURRENT else self._scope,
            name,
            value.encode() if isinstance(value, str) else bytes(value),
        )

    def remove(self, name: str) -> bool:
        """Delete `name`; whether it existed."""
        return _b.remove(_current[0] if self._scope is _CURRENT else self._scope, name)

    def exists(self, name: str) -> bool:
        return _b.exists(_current[0] if self._scope is _CURRENT else self._scope, name)

    def keys(self, prefix: str = "", start_after=None, page: int = 1000):
        """The keys starting with `prefix`, in byte order (fetched a page at a time)."""
        scope = _current[0] if self._scope is _CURRENT else self._scope
        while True:
            got = _b.list_keys(scope, prefix, start_after, page)
            yield from got
            if len(got) < page:
                return
            start_after = got[-1]

    def get_json(self, name: str, default=None):
        """The JSON value under `name`, or `default`."""
        v = _b.get(_current[0] if self._scope is _CURRENT else self._scope, name)
        return default if v is None else _json.loads(v)

    def set_json(self, name: str, value):
        """Store `value` as JSON text."""
        self.set(name, _json.dumps(value).encode())

    def get_int(self, name: str, default: int = 0) -> int:
        v = _b.get(_current[0] if self._scope is _CURRENT else self._scope, name)
        return default if v is None else int(v)

    def set_int(self, name: str, value: int):
        self.set(name, str(int(value)).encode())

    def incr(self, name: str, by: int = 1) -> int:
        """Add `by` to the integer under `name` (0 when absent); the new value."""
        scope = _current[0] if self._scope is _CURRENT else self._scope
        entry = (scope, name)
        v = _reads.get(entry, _MISSING)
        if v is _MISSING:
            v = _b.get(scope, name)
        n = (0 if v is None else int(v)) + by
        if not name:
            raise InvalidState("a state key must not be empty")
        value = str(n).encode()
        # `_host.Batched.set`, inlined: the write is held when it surely fits (see there).
        room = _room
        if room and room[0] > 0 and len(value) <= room[2]:
            cost = len(value) + 4 * (len(name) + (len(scope) if scope else 0)) + 24
            if room[1] >= cost:
                room[0] -= 1
                room[1] -= cost
                _reads[entry] = _held[entry] = value
                return n
        _b.set(scope, name, value)
        return n


state = State()
operator_state = State(None)


class _Timers:
    """Event-time timers: `register(key, ts)` asks for the operator's `on_timer(key, ts, out)`
    once the watermark reaches `ts` (in `key`'s scope); `delete(key, ts)`; `watermark()` is the
    host's watermark (None before the first event)."""

    @staticmethod
    def register(key: str, ts: int):
        _host.register_timer(key, ts)

    @staticmethod
    def delete(key: str, ts: int) -> bool:
        return _host.delete_timer(key, ts)

    @staticmethod
    def watermark():
        return _host.watermark()


timers = _Timers()


def log(level: str, message: str):
    """Log into the host's log ("trace", "debug", "info", "warn", "error")."""
    _host.log(level, message)


# The operator class registered by @operator, and its instance once `init` ran.
_registered = [None]


def operator(cls):
    """Register `cls` as this component's operator. It is built with the configuration (a
    dict, `{}` when none was given) and may define `on_event(event, out)`, `on_batch(events,
    out)`, `on_timer(key, ts, out)` and `on_watermark(watermark, out)`. A class attribute
    `prefetch = ("name", ...)` names entries of the event's key that the operator reads for
    (nearly) every event: they are read for the whole batch in one host call.

    An operator whose state layout changed declares `state_version = N` in cairn.toml and
    defines `migrate(from_version, entry)`: called for every entry of state an older version
    wrote (an `Entry(scope, key, value)`, in the entry's scope), before any event, it returns
    the new bytes, `None` to keep the entry, or `REMOVE`."""
    _registered[0] = cls
    return cls


def _instantiate(config_text: str):
    cls = _registered[0]
    if cls is None:
        raise RuntimeError(
            "no operator registered: decorate your operator class with @cairn_operator.operator"
        )
    config = _json.loads(config_text or "{}")
    if cls.__init__ is object.__init__:  # no __init__: nothing to configure
        return cls()
    return cls(config)


def _on_batch(op, events, out):
    names = getattr(op, "prefetch", None)
    if names:
        keys = list(map(_key_of, events))
        for n in names:
            _b.prefetch(list(zip(keys, _repeat(n))))
    on_batch = getattr(op, "on_batch", None)
    if on_batch is not None:
        on_batch(events, out)
        return
    on_event = op.on_event
    cur = _current
    try:
        for e in events:
            cur[0] = e[0]
            on_event(e, out)
    finally:
        cur[0] = None


def _on_timers(op, fired, out):
    on_timer = getattr(op, "on_timer", None)
    if on_timer is None:
        raise RuntimeError(f"{type(op).__name__} registered timers but defines no on_timer(key, ts, out)")
    cur = _current
    try:
        for key, ts in fired:
            cur[0] = key
            on_timer(key, ts, out)
    finally:
        cur[0] = None


def _on_watermark(op, wm, out):
    f = getattr(op, "on_watermark", None)
    if f is not None:
        f(wm, out)


class Entry(tuple):
    """One entry of state as an older version of the operator wrote it: `scope` (the stream
    key, or None for the operator-wide scope), `key`, `value` (bytes)."""

    __slots__ = ()
    scope = _field(0, "The stream key whose scope holds it (None: operator-wide).")
    key = _field(1, "The key within the scope.")
    value = _field(2, "The stored bytes.")

    def __new__(cls, scope, key: str, value: bytes):
        return tuple.__new__(cls, (scope, key, value))

    def json(self):
        """The value decoded from JSON."""
        return _json.loads(self.value)

    def __repr__(self):
        return f"Entry(scope={self.scope!r}, key={self.key!r}, value={self.value!r})"


class _Remove:
    def __repr__(self):
        return "REMOVE"


# What `migrate` returns to remove an entry.
REMOVE = _Remove()


def _migrate(op, from_version, entries):
    """Each entry's rewrite: None (keep), REMOVE, or the new bytes."""
    f = getattr(op, "migrate", None)
    if f is None:
        raise RuntimeError(
            f"{type(op).__name__} declares a new state version but defines no migrate(from_version, entry): "
            f"state of version {from_version} cannot be read"
        )
    out = []
    cur = _current
    try:
        for e in entries:
            cur[0] = e[0]
            r = f(from_version, e)
            if r is None or r is REMOVE:
                out.append(r)
            elif isinstance(r, (bytes, bytearray, memoryview)):
                out.append(bytes(r))
            else:
                raise TypeError(
                    f"migrate returned {type(r).__name__} for key {e[1]!r} of scope {e[0]!r}: "
                    "return bytes, None (keep) or cairn_operator.REMOVE"
                )
    finally:
        cur[0] = None
    return out
