"""JSON from outside (webhooks, API bodies, forms), parsed strictly and checked before it is trusted or stored.

`json.loads` accepts what the database then refuses or what later code trips over: `NaN` and `1e999`
(infinity) are not JSON to PostgreSQL, a NUL character cannot be stored in `jsonb` or a text column, a lone
surrogate (`"\\ud800"`) is not UTF-8 and cannot be sent to the database at all, and nesting a few thousand
levels deep raises RecursionError. Each is found here with the path of the value and the reason, so the
caller answers 400 instead of failing later with a 500. Everything here is iterative: a deep value cannot
exhaust the stack.
"""

import json
import math
import re
from typing import Any

# Deep enough for any Stripe event (expanded objects nest about ten levels).
MAX_DEPTH = 64
NUL = "Null characters are not allowed."
SURROGATE = "Unpaired surrogates (\\ud800–\\udfff) are not allowed."
OUT_OF_RANGE = "The number is out of range."


class UnsafeJSON(ValueError):
    """Not JSON, or JSON that cannot be stored as it is. `str()` is a sentence for the sender."""


def _no_constants(name: str) -> None:
    raise UnsafeJSON(f"{name} is not a number JSON allows.")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise UnsafeJSON(f"The number {text[:40]} is out of range.")
    return number


def _nested(max_depth: int) -> str:
    return f"The JSON is nested more than {max_depth} levels deep."


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` (UTF-8 when bytes) and check it with `find()`. Raises UnsafeJSON."""
    try:
        value = json.loads(data, parse_constant=_no_constants, parse_float=_finite)
    except UnsafeJSON:
        raise
    except RecursionError:
        raise UnsafeJSON(_nested(max_depth)) from None
    except UnicodeDecodeError:
        raise UnsafeJSON("The body is not UTF-8 text.") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise UnsafeJSON(f"Not valid JSON: {exc}".split(": line")[0]) from None
    if _escapes_or_surrogates(data):
        found = find(value, max_depth=max_depth)
    elif _brackets(data) <= max_depth:  # fewer containers than the depth allowed: nothing to check
        found = None
    else:  # no string can hold a NUL or a lone surrogate: only the nesting is left to check, a faster walk
        found = ("", _nested(max_depth)) if depth_exceeds(value, max_depth) else None
    if found is not None:
        path, reason = found
        raise UnsafeJSON(f"{path}: {reason}" if path else reason)
    return value


# \u0000 and the surrogates \ud800–\udfff (an escaped backslash before one only costs the full check).
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _escapes_or_surrogates(data: str | bytes) -> bool:
    """Whether a string parsed from `data` may hold a NUL or a lone surrogate. JSON text has no raw NUL in a
    string (json.loads refuses control characters), so only a \\u0000 or \\ud800–\\udfff escape, or a str that
    already holds a surrogate, can bring one in. Bytes may be UTF-16, where json.loads lets surrogates through:
    always checked."""
    if isinstance(data, bytes):
        return True
    if _RISKY_ESCAPE.search(data):
        return True
    try:
        data.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _brackets(data: str | bytes) -> int:
    """How many containers the JSON text can hold at most (a bracket inside a string counts too)."""
    if isinstance(data, bytes):
        return data.count(b"{") + data.count(b"[")
    return data.count("{") + data.count("[")


def _printable(key: Any) -> str:
    return str(key).encode("utf-8", "backslashreplace").decode().replace("\x00", "\\u0000")


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return NUL
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return SURROGATE
    return ""


def find(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, reason) of the first value that cannot be stored as it is — nesting past `max_depth`, a NUL
    in a key or a string, a number that is not finite — or None. Paths read `data.object.name`, `items[2]`;
    "" is the whole value."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            reason = _text_problem(item)
            if reason:
                return path, reason
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, OUT_OF_RANGE
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return "", _nested(max_depth)
            if isinstance(item, list):
                stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))
                continue
            for key, child in item.items():
                child_path = f"{path}.{_printable(key)}" if path else _printable(key)
                reason = _text_problem(str(key))
                if reason:
                    return child_path, reason
                stack.append((child, child_path, depth + 1))
    return None


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` nests lists and objects more than `max_depth` levels deep."""
    if not isinstance(value, dict | list):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
