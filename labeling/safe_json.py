"""JSON text from users, parsed with two guarantees Python's ``json`` does not give.

* **Bounded nesting.** ``json.loads`` recurses once per level, so a few hundred kilobytes
  of ``[[[[...`` end in a ``RecursionError`` (a 500 wherever it is not caught). The
  nesting depth is measured before parsing, in C-speed passes (regular expressions and
  numpy), and text nested deeper than ``MAX_DEPTH`` is refused.
* **Text a database can store.** A ``\\ud800`` escape decodes to a lone surrogate,
  which no UTF-8 database column accepts; such strings are refused with the path of the
  value at fault (``items[3].text``).

Both failures raise :class:`UnsafeJson` (a ``ValueError``) with a message naming where.
Pure: no Django.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64

# A JSON string literal (unrolled loop: linear, no nested quantifiers), so the brackets
# inside strings are not counted.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Any \uD800-\uDFFF escape: only then can a lone surrogate come out of the parser.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)


class UnsafeJson(ValueError):
    """JSON text nested too deeply or holding text that cannot be stored."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar).

    Brackets inside string literals do not count. For malformed text the figure is an
    upper bound of what a parser would reach before failing.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where(np.isin(codes, _OPEN), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())


def check_depth(text: str, *, max_depth: int = MAX_DEPTH, where: str = "the JSON") -> None:
    """Raise :class:`UnsafeJson` when ``text`` nests deeper than ``max_depth``."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise UnsafeJson(f"{where} is nested {depth} levels deep; at most {max_depth} allowed")


def surrogate_path(value: Any, path: str = "") -> str | None:
    """The path (``rows[2].comment``) of the first string in ``value`` holding a lone
    surrogate (in a key or a value), or None. Iterative: depth is not a concern here."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                return where or "(the value)"
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                if isinstance(key, str) and not _encodable(key):
                    return f"{where}.{key!r}" if where else repr(key)
                stack.append((child, f"{where}.{key}" if where else str(key)))
        elif isinstance(node, list):
            for i in range(len(node) - 1, -1, -1):
                stack.append((node[i], f"{where}[{i}]"))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_surrogate_escape(text: str) -> bool:
    """Whether ``text`` holds a ``\\uD800``-``\\uDFFF`` escape at all (the only way a
    lone surrogate can come out of the parser); when not, no walk is needed."""
    return _SURROGATE_ESCAPE.search(text) is not None


def check_text(value: Any, text: str, *, root: str = "") -> None:
    """Raise :class:`UnsafeJson` when ``value`` (parsed from ``text``) holds a lone
    surrogate; the costly walk only runs when ``text`` has a surrogate escape at all."""
    if not has_surrogate_escape(text):
        return
    where = surrogate_path(value, root)
    if where is not None:
        raise UnsafeJson(f"{where}: invalid text (a lone UTF-16 surrogate escape such as \\ud800)")


def loads(text: str, *, max_depth: int = MAX_DEPTH, where: str = "the JSON") -> Any:
    """``json.loads`` with the depth and text checks above, refusing ``NaN`` and
    ``Infinity`` as strict JSON does.

    Raises :class:`UnsafeJson` for any of these and ``json.JSONDecodeError`` for text
    that is not JSON (as ``json.loads`` does).
    """
    check_depth(text, max_depth=max_depth, where=where)
    value = json.loads(text, parse_constant=_refuse_constant)
    check_text(value, text)
    return value


def _refuse_constant(name: str):
    # NaN and Infinity are not JSON (Python's parser accepts them; DRF's strict mode not).
    raise UnsafeJson(f"{name} is not a JSON value")
