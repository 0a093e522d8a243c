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


class Memory:
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


def get(scope, key):
    if IN_HOST:
        return _state.get(scope, key)
    return memory.get(scope, key)


def set_(scope, key, value):
    if IN_HOST:
        try:
            _state.set(scope, key, value)
        except _Err as e:
            raise state_error(e.value) from None
    else:
        memory.set(scope, key, value)


def remove(scope, key):
    return _state.remove(scope, key) if IN_HOST else memory.remove(scope, key)


def exists(scope, key):
    return _state.exists(scope, key) if IN_HOST else memory.exists(scope, key)


def list_keys(scope, prefix, start_after, limit):
    if IN_HOST:
        return _state.list_keys(scope, prefix, start_after, limit)
    return memory.list_keys(scope, prefix, start_after, limit)


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


def watermark():
    return _timers.current_watermark() if IN_HOST else memory.watermark


_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level: str, message: str):
    if level not in _LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(_LEVELS)}")
    if IN_HOST:
        _log.log(_log.Level[level.upper()], message)
    else:
        memory.log(level, message)
