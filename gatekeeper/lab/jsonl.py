"""JSON Lines of objects (corpora, labels, scenarios), with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gatekeeper.errors import InputError


def json_object_lines(lines: Iterable[str], source: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; InputError at the first line that is not one."""
    rows = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise InputError(f"{source}:{number}: not valid JSON: {error}") from error
        if not isinstance(value, dict):
            raise InputError(f"{source}:{number}: expected a JSON object")
        rows.append((number, value))
    return rows
