"""JSON text exactly as the Rust SDK writes it (serde_json): compact, non-ASCII kept, and
floats in the shortest form that reads back, laid out as the `ryu` crate does (`1.0`, `0.001`,
`1e+16`, `1.5e-7`); NaN and infinities become `null`. Operators written in any language then
emit byte-identical output."""

import json as _json
import math

_encode_str = _json.encoder.encode_basestring  # escapes as serde_json does (non-ASCII kept)


def format_float(x: float) -> str:
    """`x` as serde_json writes an f64."""
    text = repr(x)
    if "e" not in text and text[-1] not in "nf":
        # Python's positional form (1e-4 <= |x| < 1e16, and 0) is serde_json's too.
        return text
    if not math.isfinite(x):
        return "null"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    text = repr(abs(x))  # the shortest digits that read back
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # value = 0.<digits> shifted: position of the decimal point relative to digits' start
    point = len(whole.lstrip("0")) if whole.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    point += int(exp) if exp else 0
    digits = digits.rstrip("0")
    n = len(digits)
    k = point - n  # value = digits * 10^k
    kk = point
    if 0 <= k and kk <= 16:
        return sign + digits + "0" * k + ".0"
    if 0 < kk <= 16:
        return sign + digits[:kk] + "." + digits[kk:]
    if -5 < kk <= 0:
        return sign + "0." + "0" * (-kk) + digits
    e = kk - 1
    exp = f"e+{e}" if e > 0 else f"e{e}"
    if n == 1:
        return f"{sign}{digits}{exp}"
    return f"{sign}{digits[0]}.{digits[1:]}{exp}"


try:  # CPython's C encoder: compact, non-ASCII kept, NaN and infinities refused
    _c_encode = _json.encoder.c_make_encoder(
        None, None, _encode_str, None, ":", ",", False, False, False
    )
except (AttributeError, TypeError):  # no C accelerator
    _c_encode = None


def dumps(value) -> str:
    """`value` (dict, list, tuple, str, int, float, bool, None) as compact JSON text."""
    if _c_encode is not None:
        try:
            text = "".join(_c_encode(value, 0))
        except (ValueError, TypeError):  # NaN or an infinity (null here), or not JSON
            return _dumps(value)
        # CPython writes floats as serde_json does except in exponent form (1e-05, 1e+16):
        # text that may hold one is written again here.
        if "e-" in text or "e+" in text:
            return _dumps(value)
        return text
    return _dumps(value)


def _key(k) -> str:
    """An object key as JSON text: str, or int, float, bool and None as json.dumps writes them."""
    if type(k) is str:
        return _encode_str(k)
    if k is True or k is False or k is None:
        return '"' + ("true" if k is True else "false" if k is False else "null") + '"'
    if isinstance(k, int):
        return '"' + int.__repr__(k) + '"'
    if isinstance(k, float):
        return '"' + format_float(k) + '"'
    if isinstance(k, str):
        return _encode_str(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def _dumps(value) -> str:
    out = []
    _write(value, out)
    return "".join(out)


def _write(v, out):
    t = type(v)
    if t is str:
        out.append(_encode_str(v))
    elif t is int:
        out.append(str(v))
    elif t is float:
        out.append(format_float(v))
    elif t is dict:
        out.append("{")
        first = True
        for k, x in v.items():
            if not first:
                out.append(",")
            first = False
            out.append(_key(k))
            out.append(":")
            _write(x, out)
        out.append("}")
    elif t is list or t is tuple:
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _write(x, out)
        out.append("]")
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, float):
        out.append(format_float(v))
    elif isinstance(v, str):
        out.append(_encode_str(v))
    elif isinstance(v, dict):
        _write(dict(v), out)
    elif isinstance(v, (list, tuple)):
        _write(list(v), out)
    else:
        raise TypeError(f"{type(v).__name__} is not JSON serializable")


# CPython's C scanner, called directly: `json.loads` of bytes first guesses the encoding and
# decodes in Python (~4x the cost of the scan itself for a small value).
_scan = _json.JSONDecoder().scan_once


def loads(text):
    """Parse JSON text (str or bytes), as `json.loads` does (and failing as it does)."""
    s = text
    if type(s) is bytes:
        try:
            s = s.decode()
        except UnicodeDecodeError:
            return _json.loads(text)  # UTF-16 or -32, or not text: json's own path
    try:
        value, end = _scan(s, 0)
    except (StopIteration, TypeError):
        return _json.loads(text)  # leading whitespace, or not JSON: json's own answer
    if end != len(s):
        return _json.loads(text)  # trailing whitespace or more: json's own answer
    return value
