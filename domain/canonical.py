"""The canonical bytes of a JSON value: RFC 8785, the JSON Canonicalization Scheme.

This module is the only place in casetrail that decides which bytes are hashed or
signed. Everything that hashes an event envelope or signs a tree head calls
`canonical_bytes`, and an independent verifier needs only RFC 8785 to agree with it.

Two paths produce the same bytes:

- the reference path follows the RFC literally: object members sorted by the
  UTF-16 code units of their names, strings escaped as ECMAScript's JSON.stringify
  does, numbers formatted as ECMAScript's Number.prototype.toString;
- the fast path hands the value to orjson when that is provably identical: orjson
  escapes strings exactly as RFC 8785 asks, but it sorts keys by code point (which
  differs from UTF-16 order above U+FFFF) and formats floats its own way, so it is
  used only for values whose keys are all ASCII and whose numbers are all integers
  within the double-exact range. Ledger envelopes always qualify.

The tests hold both paths to the RFC's vectors and to each other.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

MAX_EXACT_INTEGER = 2**53 - 1
"""Largest integer a double represents exactly; larger ones would change on a round trip."""

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
for _code in range(0x20):
    _ESCAPES.setdefault(chr(_code), f"\\u{_code:04x}")


class NotCanonicalizable(ValueError):
    """The value has no RFC 8785 form: NaN, an infinity, a lone surrogate, a non-JSON type."""


_MAY_SORT_DIFFERENTLY = re.compile(rb"[\xee-\xf4]")
"""UTF-8 lead bytes of U+E000 and above: only keys made of such characters can sort
differently by code point (orjson) and by UTF-16 code unit (RFC 8785)."""


def canonical_bytes(value: Any, *, json_safe: bool = False) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of `value`.

    `value` is made of dict (str keys), list, str, int, float, bool and None.
    Integers beyond ±(2**53 − 1) are refused rather than silently rounded, because a
    verifier parsing the bytes as doubles would read a different number.

    `json_safe=True` is the caller's promise that `value` holds no floats, no integers
    beyond the safe range and no lone surrogates (true of everything the strict request
    parser accepted). The key-order question is then settled by scanning orjson's output
    for the few characters that could sort differently, instead of walking the value.
    """
    if json_safe:
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if not _MAY_SORT_DIFFERENTLY.search(encoded):
            return encoded

    if _fast_path_applies(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: the reference path names the fault

    return _encode(value).encode("utf-8", errors="strict")


def canonical_bytes_reference(value: Any) -> bytes:
    """The literal RFC 8785 path, without the orjson shortcut (for tests and benchmarks)."""
    return _encode(value).encode("utf-8", errors="strict")


def _fast_path_applies(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)

        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -MAX_EXACT_INTEGER <= item <= MAX_EXACT_INTEGER:
                continue
            return False
        if kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return False
            stack.extend(item.values())
            continue
        if kind is list:
            stack.extend(item)
            continue
        return False

    return True


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, int):
        return _encode_integer(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        return _encode_object(value)
    raise NotCanonicalizable(f"{type(value).__name__} is not a JSON value")


def _encode_object(value: dict[Any, Any]) -> str:
    for key in value:
        if not isinstance(key, str):
            raise NotCanonicalizable(f"object key {key!r} is not a string")

    # RFC 8785 §3.2.3: sort by the UTF-16 code units of the names, not by code points.
    names = sorted(value, key=lambda name: name.encode("utf-16-be", errors="surrogatepass"))
    members = (_encode_string(name) + ":" + _encode(value[name]) for name in names)
    return "{" + ",".join(members) + "}"


def _encode_string(value: str) -> str:
    for char in value:
        if "\ud800" <= char <= "\udfff":
            raise NotCanonicalizable("string holds a lone surrogate, which is not valid Unicode")

    return '"' + "".join(_ESCAPES.get(char, char) for char in value) + '"'


def _encode_integer(value: int) -> str:
    if not -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER:
        raise NotCanonicalizable(
            f"integer {value} is beyond ±(2**53 − 1) and cannot be represented exactly"
        )
    return str(value)


def format_number(value: float) -> str:
    """Format a double as ECMAScript's Number.prototype.toString does (RFC 8785 §3.2.2.3)."""
    if math.isnan(value) or math.isinf(value):
        raise NotCanonicalizable(f"{value} has no JSON representation")
    if value == 0:
        return "0"

    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(abs(value))
    count = len(digits)

    # ECMA-262 Number::toString, steps for k digits with the decimal point after n.
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits

    exponent = point - 1
    mantissa = digits[0] if count == 1 else digits[0] + "." + digits[1:]
    return sign + mantissa + "e" + ("+" if exponent > 0 else "-") + str(abs(exponent))


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of a positive double and the decimal point position.

    Python's repr already yields the shortest string that round-trips, which is the
    digit string ECMAScript requires; only its layout differs.
    """
    text = repr(value)
    mantissa, _, exponent_text = text.partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = mantissa.partition(".")

    digits = (whole + fraction).lstrip("0")
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    point = len(whole) + exponent - leading_zeros
    digits = digits.rstrip("0")
    return digits, point
