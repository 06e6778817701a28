"""Entry point of the analyser: one ToolCall in, one Facts out, never an exception for bad input."""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.analysis.facts import Facts
from gatekeeper.models import ToolCall


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Limits and environment for one analysis.

    ``home`` expands ``~`` in paths; ``max_bytes`` bounds the command text analysed (larger input is
    an ``opaque`` ``too_large`` fact); ``max_depth`` bounds nesting of shells, substitutions and payloads.
    """

    home: str | None = None
    max_bytes: int = 256 * 1024
    max_depth: int = 12


def analyse_call(call: ToolCall, options: AnalysisOptions | None = None) -> Facts:
    raise NotImplementedError
