"""The OPA builtins a compiled Wasm policy asks its host for, answering exactly as OPA (Go) does.

``opa build -t wasm`` compiles most builtins into the module, but ``regex.replace``, ``regex.split`` and
``sprintf`` are imported (``opa_builtinN``) and must be evaluated here. A decision must not depend on the
engine, so each one reproduces OPA v1.22.2 (Go 1.26) to the byte, including its odd corners:

* regex (``goregexp``): Go's ``regexp`` is RE2 syntax, so patterns run on RE2 (``google-re2``). Go differs
  from RE2 C++ in a few places, which ``goregexp`` rewrites or rejects: ``\\C``, non-ASCII group names, and
  ``\\p{...}`` names (Go matches them case- and ``_``-insensitively, knows aliases like ``Letter`` and
  ``Ascii``). The match loops (empty matches, ``$name`` templates) are ports of Go's ``ReplaceAllString``
  and ``Split``.
* sprintf (``gofmt``): OPA turns each value into a Go ``int64``, ``*big.Int``, ``float64`` or ``string``
  (anything else becomes its Rego text, ``regovalues``: sorted sets and object keys, Go-quoted strings,
  numbers as written), then calls ``fmt.Sprintf``; ``gofmt`` and ``gostrconv`` port the parts of Go's fmt,
  strconv and math/big those types reach.

Known gaps (the first two are strict xfails in tests/test_wasm_builtins.py): ``%p`` of a big integer
prints a memory address in Go; ``[\\p{Cn}]``, ``[\\P{LC}]`` and ``[\\P{Assigned}]`` inside brackets have no
RE2 spelling, so they are undefined here. A Rego set passed as sprintf's whole ``values`` operand
(possible only where the type checker cannot see it, e.g. through ``object.get``'s default) is undefined
in OPA but arrives here as a JSON array and is formatted: telling them apart would cost a
``rego_text()`` on every call. Character tables follow Go's Unicode 15.0 for ``%q`` escaping (patched
for Python 3.11 to 3.13); RE2's class tables are its own, a Unicode version apart at the edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from gatekeeper.policy.wasm_builtins import gofmt, goregexp

__all__ = ["HOST_BUILTINS", "UNDEFINED_RESULT", "Operand", "call_host_builtin"]


class Operand(Protocol):
    """One argument of a builtin call, as the engine reads it from Wasm memory."""

    @property
    def value(self) -> Any:
        """The JSON-decoded value (Rego sets arrive as JSON arrays)."""
        ...

    def rego_text(self) -> str:
        """The value in Rego syntax from the module's ``opa_value_dump`` (sets as ``{..}``); may be costly."""
        ...


class _Undefined:
    """OPA's non-strict mode turns a builtin error (bad regex, wrong operand type) into undefined."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED_RESULT"


UNDEFINED_RESULT: Final = _Undefined()


def call_host_builtin(name: str, operands: Sequence[Operand]) -> Any:
    """The builtin's result as a JSON-encodable value, or UNDEFINED_RESULT where OPA would be undefined.

    An unknown name raises KeyError and a wrong operand count ValueError: the engine checks the names a
    module imports when it loads it, and OPA's type checker the counts, so either is a programming
    error, not a policy outcome (the engine denies the call).
    """
    implementation, arity = _BUILTINS[name]
    if len(operands) != arity:
        raise ValueError(f"{name} takes {arity} operands, got {len(operands)}")
    result = implementation(operands)
    return UNDEFINED_RESULT if result is None else result  # no builtin here has null as a result


def _regex_replace(operands: Sequence[Operand]) -> str | None:
    s, pattern, value = (operand.value for operand in operands)
    return goregexp.regex_replace(s, pattern, value)


def _regex_split(operands: Sequence[Operand]) -> list[str] | None:
    pattern, s = (operand.value for operand in operands)
    return goregexp.regex_split(pattern, s)


def _sprintf(operands: Sequence[Operand]) -> str | None:
    format_operand, values_operand = operands
    return gofmt.sprintf(format_operand.value, values_operand.value, values_operand.rego_text)


_BUILTINS: Final[dict[str, tuple[Callable[[Sequence[Operand]], str | list[str] | None], int]]] = {
    "regex.replace": (_regex_replace, 3),
    "regex.split": (_regex_split, 2),
    "sprintf": (_sprintf, 2),
}
HOST_BUILTINS: Final = frozenset(_BUILTINS)
