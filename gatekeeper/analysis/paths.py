"""Paths a command's words could name, as absolute normalised paths.

Deliberately naive and program-agnostic: every operand that does not start with ``-`` (except argv[0]),
and the value of every ``--opt=value`` and ``key=value`` word, joined to the command's working directory
when relative. Which of them a program really opens is for the policies to judge; a path that cannot be
known (an unknown word, a relative path with an unknown cwd, a URL, a multi-line word) is left out.
"""

from __future__ import annotations

import posixpath
import re

from gatekeeper.analysis.scope import normalise
from gatekeeper.analysis.words import Arg

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_KEY = re.compile(r"^[A-Za-z0-9_.:-]+$")


def absolute(path: str, cwd: str | None, home: str | None = None) -> str | None:
    """``path`` as an absolute normalised path, or None when it cannot be made absolute."""
    if not path or _URL.match(path):
        return None
    if path == "~" or path.startswith("~/"):
        if home is None:
            return None
        path = home + path[1:]
    elif path.startswith("~"):
        return None
    if path.startswith("/"):
        return normalise(path)
    if cwd is None:
        return None
    return normalise(posixpath.join(cwd, path))


def operand_paths(args: list[Arg], cwd: str | None, home: str | None) -> list[str]:
    """Absolute paths of the operands of a command (``args[0]`` is the program and is skipped)."""
    paths: list[str] = []
    for arg in args[1:]:
        if not arg.known or "\n" in arg.value:
            continue
        value = arg.value
        candidate: str | None
        if value.startswith("-"):
            name, eq, rest = value.partition("=")
            candidate = rest if eq and name.startswith("--") else None
        else:
            name, eq, rest = value.partition("=")
            candidate = rest if eq and _KEY.match(name) else value
        if candidate:
            path = absolute(candidate, cwd, home)
            if path is not None and path not in paths:
                paths.append(path)
    return paths
