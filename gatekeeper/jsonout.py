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
