"""JSON out of gatekeeper (CLI output, HTTP answers) that any input string survives.

A request may carry a lone surrogate: ``"\\ud800"`` is a valid JSON escape, but no UTF-8 (or other)
text can hold the character it decodes to. Written escaped, it goes back out as it came in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def json_bytes(
    value: Any,
    *,
    encoding: str = "utf-8",
    indent: int | None = None,
    default: Callable[[Any], Any] | None = None,
) -> bytes:
    """``value`` as JSON in ``encoding``; strings it cannot encode are written as ``\\uXXXX`` escapes."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=indent, default=default).encode(encoding)
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, indent=indent, default=default).encode(encoding)


class PreEncoded(list[Any]):
    """A list that also holds its JSON text, encoded once: a session's history, which goes to the
    policies with every call of the session. An encoder that knows it (the OPA engine's request
    body) splices ``json_text`` in instead of encoding the items again; to anything else it is the
    list it holds."""

    __slots__ = ("json_text",)

    def __init__(self, items: list[Any], json_text: str) -> None:
        super().__init__(items)
        self.json_text = json_text
