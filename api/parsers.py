"""The JSON parser of every API view: nesting depth and text checked at parse time.

DRF's ``JSONParser`` hands the body to ``json.load``, which recurses once per level:
deeply nested bodies end in a ``RecursionError`` (a 500, on anonymous endpoints too), and
``\\ud800`` escapes yield strings no database stores. This parser refuses both with a
400 naming the place (``labeling.safe_json``).
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from labeling import safe_json


class BoundedJSONParser(JSONParser):
    """``application/json`` bodies, at most ``safe_json.MAX_DEPTH`` levels deep and with
    text that can be stored; otherwise a ``ParseError`` (400) saying why and where."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"JSON parse error - the body is not {encoding} text (byte {exc.start})"
            ) from exc
        try:
            return safe_json.loads(text, where="the request body")
        except safe_json.UnsafeJson as exc:
            raise ParseError(str(exc)) from exc
        except json.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
