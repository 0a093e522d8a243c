"""The host's functions: the component's imports when running inside Cairn, or an in-memory
stand-in under plain CPython (for an operator's own tests; see `cairn_operator.testing`)."""

try:  # inside a component built by componentize-py
    from wit_world.imports import log as _log
    from wit_world.imports import state as _state
    from wit_world.imports import timers as _timers
    from wit_world.imports import types as _types
    from componentize_py_types import Err as _Err

    IN_HOST = True
except ImportError:  # plain CPython
    _log = _state = _timers = _types = None
    _Err = None
    IN_HOST = False
import io as _io
import pickle as _pickle

try:  # built for world `operator-pickled` (WIT 0.2.2) or `operator-bulk` (0.2.1): speed paths
    from wit_world.imports import packed_state as _packed
except ImportError:
    _packed = None
try:
    from wit_world.imports import pickled_state as _pickled
except ImportError:
    _pickled = None
try:
    from wit_world.imports import bulk_state as _bulk
except ImportError:
    _bulk = None


def dumps(items: list) -> bytes:
    """`items` pickled as the host reads them (`wit/README.md`): protocol 4 without memo."""
    f = _io.BytesIO()
    p = _pickle.Pickler(f, 4)
    p.fast = True
    p.dump(items)
    return f.getvalue()


loads = _pickle.loads


class StateError(Exception):
    """A state call the host refused. `kind` is `"quota-exceeded"` or `"invalid"`; `message`
    is the host's explanation (which limit, which value)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class QuotaExceeded(StateError):
    """A quota of the sandbox would be exceeded (raise it with the `--max-*` flag it names)."""

    def __init__(self, message: str):
        super().__init__("quota-exceeded", message)


class InvalidState(StateError):
    """The request was malformed (say, an empty key)."""

    def __init__(self, message: str):
        super().__init__("invalid", message)


def state_error(err) -> StateError:
    """The SDK's exception for a WIT `state-error` value."""
    if _types is not None and isinstance(err, _types.StateError_QuotaExceeded):
        return QuotaExceeded(err.value)
    return InvalidState(getattr(err, "value", str(err)))


class _Unbatched:
    """A backend whose calls go straight through: nothing to begin, send or discard."""

    def begin(self):
        pass

    def flush(self):
        pass

    def discard(self):
        pass

    def prefetch(self, names):
        pass


class Memory(_Unbatched):
    """The stand-in host: scoped entries, timers and a watermark, in dictionaries."""

    def __init__(self):
        self.entries = {}  # (scope, key) -> bytes
        self.timers = set()  # (ts, key)
        self.watermark = None
        self.logs = []

    def get(self, scope, key):
        return self.entries.get((scope, key))

    def set(self, scope, key, value):
        if not key:
            raise InvalidState("a state key must not be empty")
        self.entries[(scope, key)] = bytes(value)

    def remove(self, scope, key):
        return self.entries.pop((scope, key), None) is not None

    def exists(self, scope, key):
        return (scope, key) in self.entries

    def list_keys(self, scope, prefix, start_after, limit):
        keys = sorted(
            k.encode() for (s, k) in self.entries if s == scope and k.startswith(prefix)
        )
        if start_after is not None:
            keys = [k for k in keys if k > start_after.encode()]
        return [k.decode() for k in keys[:limit]]

    def register(self, key, ts):
        self.timers.add((ts, key))

    def delete(self, key, ts):
        if (ts, key) in self.timers:
            self.timers.discard((ts, key))
            return True
        return False

    def log(self, level, message):
        self.logs.append((level, message))


memory = Memory()


class Direct(_Unbatched):
    """The host's `state` functions, one call each (a component built for `operator-timers`)."""

    def get(self, scope, key):
        return _state.get(scope, key)

    def set(self, scope, key, value):
        try:
            _state.set(scope, key, value)
        except _Err as e:
            raise state_error(e.value) from None

    def remove(self, scope, key):
        return _state.remove(scope, key)

    def exists(self, scope, key):
        return _state.exists(scope, key)

    def list_keys(self, scope, prefix, start_after, limit):
        return _state.list_keys(scope, prefix, start_after, limit)


_MISSING = object()


class Batched(Direct):
    """The speed path of `operator-bulk` (WIT 0.2.1; `Pickled` for 0.2.2): within one call into the operator, reads
    are cached (and the names the operator declares in `prefetch` are read for the whole batch
    in one `get-entries`), writes are held back and sent in one `write-entries` when the call
    ends. A held write is accepted only while the state's usage, read once per call, shows
    that every held write fits the quotas even if each added a new key; otherwise the writes
    so far are sent and this one goes through `state.set`, so that a refusal is raised by the
    call that made it, as without the cache.

    `cache`, `dirty` and `room` are changed in place only: `State` reads them directly on its
    hot paths (`cairn_operator.State.incr`), without a call per read or held write."""

    def __init__(self):
        self.cache = {}  # (scope, key) -> bytes, or None when absent: this call's reads and writes
        self.dirty = {}  # (scope, key) -> bytes, or None to remove: the writes held back
        # [keys, bytes, largest value] the held writes may still take; empty: not read yet
        self.room = []

    def begin(self):
        self.cache.clear()
        self.dirty.clear()
        del self.room[:]

    def discard(self):
        self.cache.clear()
        self.dirty.clear()

    def flush(self):
        dirty = self.dirty
        if dirty:
            # (scope, key) + (value,) for each held write, without a Python-level loop
            writes = list(map(tuple.__add__, dirty, zip(dirty.values())))
            dirty.clear()
            try:
                self._write(writes)
            except _Err as e:
                raise state_error(e.value) from None
        del self.room[:]

    def prefetch(self, names):
        try:
            self.cache.update(zip(names, self._read(names)))
        except _Err as e:
            raise state_error(e.value) from None

    # The host calls that move many entries: lists of tuples in `operator-bulk`.
    @staticmethod
    def _read(names):
        return _bulk.get_entries(names)

    @staticmethod
    def _write(writes):
        _bulk.write_entries(writes)

    def get(self, scope, key):
        v = self.cache.get((scope, key), _MISSING)
        if v is _MISSING:
            v = self.cache[(scope, key)] = _state.get(scope, key)
        return v

    def set(self, scope, key, value):
        room = self.room
        if not room:
            u = _packed.usage()
            room[:] = [u.max_keys - u.keys, u.max_state_bytes - u.bytes, u.max_value_bytes]
        # Pessimistic: a new key, 4 bytes per character of the scoped key, and nothing freed.
        cost = len(value) + 4 * (len(key) + (len(scope) if scope else 0)) + 24
        if room[0] > 0 and room[1] >= cost and len(value) <= room[2]:
            room[0] -= 1
            room[1] -= cost
            self.cache[(scope, key)] = self.dirty[(scope, key)] = value
            return
        # It might not fit: send what is held, then let the host decide on this one.
        self.flush()
        self.cache.pop((scope, key), None)
        Direct.set(self, scope, key, value)
        self.cache[(scope, key)] = value

    def remove(self, scope, key):
        existed = self.get(scope, key) is not None
        self.cache[(scope, key)] = self.dirty[(scope, key)] = None
        return existed

    def exists(self, scope, key):
        return self.get(scope, key) is not None

    def list_keys(self, scope, prefix, start_after, limit):
        self.flush()  # the host lists what it holds
        return _state.list_keys(scope, prefix, start_after, limit)


class Pickled(Batched):
    """`Batched` over the pickled calls of `operator-pickled` (WIT 0.2.2): the prefetched
    names, their answers and the held writes each cross as one pickle, which CPython reads
    and writes in C."""

    @staticmethod
    def _read(names):
        return loads(_pickled.get_entries_pickled(dumps(names)))

    @staticmethod
    def _write(writes):
        _pickled.write_entries_pickled(dumps(writes))


if not IN_HOST:
    backend = memory
elif _pickled is not None:
    backend = Pickled()
elif _bulk is not None:
    backend = Batched()
else:
    backend = Direct()


def register_timer(key, ts):
    if IN_HOST:
        try:
            _timers.register(key, ts)
        except _Err as e:
            raise state_error(e.value) from None
    else:
        memory.register(key, ts)


def delete_timer(key, ts):
    return _timers.delete(key, ts) if IN_HOST else memory.delete(key, ts)


# The host's watermark, read once per call into the operator: it moves between calls, never
# inside one. Empty: not read in this call yet.
_watermark = []


def begin_call():
    """A call into the operator begins: nothing cached from an earlier call is used."""
    backend.begin()
    del _watermark[:]


def watermark():
    if not IN_HOST:
        return memory.watermark
    wm = _watermark
    if not wm:
        wm.append(_timers.current_watermark())
    return wm[0]


_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level: str, message: str):
    if level not in _LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(_LEVELS)}")
    if IN_HOST:
        _log.log(_log.Level[level.upper()], message)
    else:
        memory.log(level, message)
