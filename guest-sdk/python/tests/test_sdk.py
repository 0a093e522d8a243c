"""The Python SDK under plain CPython: JSON as serde_json writes it, scoped state, timers,
rollback, and the repository's Python operators through the test harness."""

import os
import pathlib
import struct
import sys

import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, ".."))

import cairn_operator as cairn  # noqa: E402
from cairn_operator import _json  # noqa: E402
from cairn_operator.testing import Harness  # noqa: E402


def test_floats_are_written_as_serde_json_writes_them():
    path = os.path.join(HERE, "..", "..", "golden", "json-floats.txt")
    n = 0
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            bits, want = line.split()
            x = struct.unpack("<d", struct.pack("<Q", int(bits, 16)))[0]
            assert _json.format_float(x) == want, bits
            n += 1
    assert n > 300


def test_dumps_is_compact_and_keeps_non_ascii():
    assert cairn.dumps({"a": [1, 2.0, None, True], "é": "x\"\n"}) == '{"a":[1,2.0,null,true],"é":"x\\"\\n"}'
    assert cairn.dumps({1: 2, None: True}) == '{"1":2,"null":true}'  # as json.dumps names them
    with pytest.raises(TypeError):
        cairn.dumps({(1, 2): 3})
    with pytest.raises(TypeError):
        cairn.dumps({"a": object()})


def test_the_c_encoders_fast_path_writes_what_the_python_path_writes():
    import random

    rng = random.Random(7)

    def value(depth):
        kind = rng.randrange(9 if depth < 3 else 6)
        if kind == 0:
            return rng.choice([0.0, -0.0, 1e-5, 9.99e-5, 1e-4, 1e15, 1e16, 1.5e-7, float("nan"), float("inf")])
        if kind == 1:
            return struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if kind == 2:
            return rng.uniform(-1e6, 1e6)
        if kind == 3:
            return rng.randrange(-(1 << 63), 1 << 63)
        if kind == 4:
            return "".join(rng.choice("ae+-\\\"\n\x01é€") for _ in range(rng.randrange(6)))
        if kind == 5:
            return rng.choice([None, True, False])
        if kind == 6:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 7:
            return tuple(value(depth + 1) for _ in range(rng.randrange(3)))
        return {rng.choice(["a", "e-1", "é", "k"]) + str(i): value(depth + 1) for i in range(rng.randrange(4))}

    for _ in range(3000):
        v = value(0)
        assert _json.dumps(v) == _json._dumps(v), v


@cairn.operator
class Counter:
    def on_event(self, event, out):
        n = cairn.state.incr("count")
        cairn.operator_state.incr("total")
        if event.json().get("fail"):
            raise ValueError("asked to fail")
        out.emit_json(event.key, event.ts, {"count": n})


def test_state_is_the_events_key_and_a_failed_batch_leaves_nothing():
    h = Harness(Counter)
    out = h.send_all([("a", 1, {}), ("b", 2, {}), ("a", 3, {})])
    assert [(e.key, e.value) for e in out] == [
        ("a", b'{"count":1}'),
        ("b", b'{"count":1}'),
        ("a", b'{"count":2}'),
    ]
    assert h.state("a") == {"count": b"2"} and h.state(None) == {"total": b"3"}
    with pytest.raises(ValueError, match="asked to fail"):
        h.send_all([("a", 4, {}), ("c", 5, {"fail": True})])
    assert h.state("a") == {"count": b"2"} and h.state("c") == {}


def test_keys_page_in_byte_order_and_other_scopes_are_reachable():
    h = Harness(Counter)
    s = cairn.state.of("k")
    for i in range(25):
        s.set(f"x/{i:03}", b"v")
    s.set("y", "w")
    assert list(s.keys("x/", page=10)) == [f"x/{i:03}" for i in range(25)]
    assert s.get("y") == b"w" and s.remove("y") and not s.exists("y")
    assert cairn.state.of("other").get_json("nothing", 7) == 7
    assert h.state("k")["x/000"] == b"v"


@cairn.operator
class Alarm:
    """Emits each key's events once the watermark passes ts + 10."""

    def on_event(self, event, out):
        cairn.state.set_json("pending", cairn.state.get_json("pending", []) + [event.ts])
        cairn.timers.register(event.key, event.ts + 10)

    def on_timer(self, key, ts, out):
        out.emit_json(key, ts, {"due": cairn.state.get_json("pending"), "wm": cairn.timers.watermark()})
        cairn.state.remove("pending")


def test_timers_fire_in_ts_then_key_order_in_their_keys_scope():
    h = Harness(Alarm)
    assert h.feed([("b", 5, 0), ("a", 5, 0), ("a", 1, 0)]) == []
    assert h.timers() == [(11, "a"), (15, "a"), (15, "b")]
    out = h.watermark(15)
    assert [(e.key, e.ts, e.json()) for e in out] == [
        ("a", 11, {"due": [5, 1], "wm": 15}),
        ("a", 15, {"due": None, "wm": 15}),
        ("b", 15, {"due": [5], "wm": 15}),
    ]
    assert h.timers() == []


def test_the_repository_operators_run_in_the_harness():
    root = os.path.join(HERE, "..", "..", "..", "plugins", "python")
    sys.path.insert(0, os.path.join(root, "window"))
    try:
        import app as window_app
    finally:
        sys.path.pop(0)
    h = Harness(window_app.Window, {"field": "v", "size_ms": 10})
    for ts, v in [(1, 1.0), (4, 3.0), (12, 5.0)]:
        assert h.send("a", ts, {"v": v}) == []
    out = h.watermark(12)
    assert [(e.key, e.ts) for e in out] == [("a", 9)]
    assert out[0].value == b'{"start":0,"end":10,"count":2,"sum":4.0,"min":1.0,"max":3.0,"avg":2.0,"stddev":1.0}'
    h.send("a", 3, {"v": 100})
    assert h.state("a").get("late") == b"1"  # late events are counted in the key's state
    assert h.state(None) == {}  # and nothing is operator-wide
    with pytest.raises(ValueError, match="size_ms and slide_ms must be positive"):
        Harness(window_app.Window, {"field": "v", "size_ms": 0})


def test_the_sdk_builds_as_a_wheel_that_installs_and_runs(tmp_path):
    import subprocess
    import zipfile

    import shutil

    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    sdk = tmp_path / "src"
    shutil.copytree(os.path.join(HERE, ".."), sdk, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), sdk],
        check=True,
    )
    (wheel,) = tmp_path.glob("cairn_operator-0.2.5-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("__init__", "_host", "_json", "exports", "testing"):
        assert f"cairn_operator/{module}.py" in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
    )
    # Imported from the installed wheel alone (not this checkout), an operator runs in the harness.
    script = (
        "import cairn_operator as cairn, os\n"
        "from cairn_operator.testing import Harness\n"
        "assert os.path.dirname(cairn.__file__).startswith(os.environ['SITE'])\n"
        "@cairn.operator\n"
        "class C:\n"
        "    def on_event(self, e, out):\n"
        "        out.emit_json(e.key, e.ts, {'n': cairn.state.incr('n')})\n"
        "print([e.value for e in Harness(C).send_all([('a', 1, {}), ('a', 2, {})])])\n"
    )
    got = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(site), "SITE": str(site)},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert got.stdout.strip() == "[b'{\"n\":1}', b'{\"n\":2}']"


def _golden():
    """The golden vectors of `guest-sdk/golden/packed.txt` (NAME HEX per line)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "golden" / "packed.txt"
    lines = [l.split(" ", 1) for l in path.read_text().splitlines() if l and not l.startswith("#")]
    return {name: bytes.fromhex(hex_) for name, hex_ in lines}


def test_pickles_cross_as_the_host_writes_and_reads_them():
    """WIT 0.2.2's pickled calls: what the host writes loads as its meaning, and what the SDK
    writes is byte for byte what the host's decoder is tested against (no memo, a frame)."""
    from cairn_operator import _host

    golden = _golden()
    assert _host.loads(golden["pickled-events-by-host"]) == [("a", 1700000000000, b"{}")]
    assert _host.loads(golden["pickled-answers-by-host"]) == [b"7", None]
    written = _host.dumps([("a", 1700000000000, b"{}"), (None, "k", None)])
    assert written == golden["pickled-from-cpython"]


def test_emit_json_takes_the_value_as_it_is_when_emitted():
    """`emit_json` snapshots the value (marshal) for the host to write; a value marshal cannot
    take is written at once; mutating a value after emitting it changes nothing."""
    import collections

    out = cairn.Output()
    d = {"count": 1, "x": [1.5, None, True, "é", (1, 2)]}
    out.emit_json("k", 1, d)
    d["count"] = 2
    d["x"].append(3)
    out.emit_json("k", 2, collections.OrderedDict(a=1))
    out.emit_json("k", 3, float("nan"))
    assert [v for (_, _, v) in cairn._encoded(out.events)] == [
        b'{"count":1,"x":[1.5,null,true,"\xc3\xa9",[1,2]]}',
        b'{"a":1}',
        b"null",
    ]
    with pytest.raises(TypeError):
        cairn._encoded([("k", 4, (__import__("marshal").dumps({1, 2}, 2),))])


def test_migrate_rewrites_each_entry_in_its_scope():
    class V2:
        def migrate(self, from_version, entry):
            # It runs in the entry's scope: the entry reads back through `state`.
            assert cairn.state.get(entry.key) == entry.value
            if entry.key == "count":
                return cairn.dumps({"n": int.from_bytes(entry.value, "little")}).encode()
            if entry.key == "old":
                return cairn.REMOVE
            return None

    Harness(V2)  # installs the in-memory host
    four = (7).to_bytes(4, "little")
    for name, value in [("count", four), ("old", b"x"), ("kept", b"y")]:
        cairn.state.of("a").set(name, value)
    entries = [cairn.Entry("a", "count", four), cairn.Entry("a", "old", b"x"), cairn.Entry("a", "kept", b"y")]
    assert cairn._migrate(V2(), 1, entries) == [b'{"n":7}', cairn.REMOVE, None]
    assert entries[0].scope == "a" and entries[0].key == "count" and entries[1].value == b"x"

    class Wrong:
        def migrate(self, from_version, entry):
            return 42

    with pytest.raises(TypeError, match="return bytes, None"):
        cairn._migrate(Wrong(), 1, entries[:1])
    with pytest.raises(RuntimeError, match="defines no migrate"):
        cairn._migrate(object(), 1, entries[:1])


def test_the_harness_migrates_what_the_host_holds():
    class V2:
        def migrate(self, from_version, entry):
            return cairn.dumps({"n": int.from_bytes(entry.value, "little")}).encode()

    h = Harness(V2)
    cairn.state.of("a").set("count", (3).to_bytes(4, "little"))
    assert h.migrate(1) == [b'{"n":3}']
    assert h.state("a") == {"count": b'{"n":3}'}


def test_loads_answers_and_fails_as_json_loads_does():
    import json

    cases = [b'{"a":1}', "[1,2]", b" 1", b"1 ", b"\xef\xbb\xbf1", b"", b'{"a":1}x', '"\\ud800"', b"\xff",
             "NaN", b'{"a":1,"a":2}', "1e400", '"é"', "é".encode("utf-16"), b"[1,", "{}", b"null"]
    for text in cases:
        try:
            want = ("ok", json.loads(text))
        except Exception as e:  # noqa: BLE001 (the same exception, whichever it is)
            want = ("err", type(e), str(e))
        try:
            got = ("ok", _json.loads(text))
        except Exception as e:  # noqa: BLE001
            got = ("err", type(e), str(e))
        assert repr(got) == repr(want), text
