"""Rego values as OPA holds and prints them: what ``sprintf`` formats for a non-scalar operand.

OPA hands ``fmt.Sprintf`` an array, object or set (or a number beyond float64) as its Rego text, Go's
``ast.Value.String()``: set elements and object keys sorted by ``ast.Compare``, strings Go-quoted, numbers
as written. The JSON operand has lost sets and number spellings, so the text is rebuilt from the module's
``opa_value_dump`` output, parsed here into a small tree (``Node``). ``go_string`` is the string Go's JSON
decoder makes of a string operand, for every builtin.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

from gatekeeper.policy.wasm_builtins.gostrconv import quote

_SURROGATES = re.compile("[\ud800-\udfff]")


def go_string(s: str) -> str:
    """Go's JSON decoder turns an unpaired surrogate escape into U+FFFD; Python keeps it."""
    return s if s.isascii() else _SURROGATES.sub("\ufffd", s)


@dataclass(slots=True)
class Number:
    text: str  # as written: OPA keeps "1.0" and "1e3" verbatim


@dataclass(slots=True)
class _SetNode:
    items: list[Node]


@dataclass(slots=True)
class _ObjectNode:
    items: list[tuple[Node, Node]]


Node: TypeAlias = "bool | str | Number | list[Node] | _SetNode | _ObjectNode | None"
_NUMBER_CHARS = re.compile(r"[-+0-9.eE]+")


def values_nodes(dump: Callable[[], str], values: list[Any]) -> list[Node]:
    """The Rego trees of ``values``, read from ``dump()`` (the operand's ``opa_value_dump`` text)."""
    try:
        node, _ = _parse_rego(dump(), 0)
    except (ValueError, IndexError):
        node = None
    if isinstance(node, list) and len(node) == len(values):
        return node
    return [_node_from_json(value) for value in values]  # unreadable dump: sets print as arrays


def _node_from_json(value: Any) -> Node:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return Number(json.dumps(value))
    if isinstance(value, list):
        return [_node_from_json(item) for item in value]
    return _ObjectNode([(key, _node_from_json(item)) for key, item in value.items()])


def _skip_spaces(text: str, i: int) -> int:
    while text[i] in " \n\t":
        i += 1
    return i


def _parse_rego(text: str, i: int) -> tuple[Node, int]:
    """One value of opa_value_dump's output (JSON plus ``{a, b}`` sets, ``set()`` and non-string keys)."""
    i = _skip_spaces(text, i)
    c = text[i]
    if c == '"':
        close = i + 1
        while True:
            close = text.index('"', close)
            backslashes = len(text[i + 1 : close]) - len(text[i + 1 : close].rstrip("\\"))
            if backslashes % 2 == 0:
                break
            close += 1
        return go_string(json.loads(text[i : close + 1], strict=False)), close + 1
    if c == "[":
        items, i = _parse_items(text, i + 1, "]")
        return items, i
    if c == "{":
        if text[_skip_spaces(text, i + 1)] == "}":
            return _ObjectNode([]), _skip_spaces(text, i + 1) + 1
        first, after = _parse_rego(text, i + 1)
        after = _skip_spaces(text, after)
        if text[after] != ":":
            rest, stop = _parse_items(text, after + 1, "}") if text[after] == "," else ([], after + 1)
            return _SetNode([first, *rest]), stop
        pairs: list[tuple[Node, Node]] = []
        key: Node = first
        while True:
            item, after = _parse_rego(text, after + 1)
            pairs.append((key, item))
            after = _skip_spaces(text, after)
            if text[after] == "}":
                return _ObjectNode(pairs), after + 1
            key, after = _parse_rego(text, after + 1)
            after = _skip_spaces(text, after)
    for word, word_value in (("set()", _SetNode([])), ("true", True), ("false", False), ("null", None)):
        if text.startswith(word, i):
            return word_value, i + len(word)
    number = _NUMBER_CHARS.match(text, i)
    if number is None:
        raise ValueError(f"unexpected {c!r} in Rego value dump")
    return Number(number.group()), number.end()


def _parse_items(text: str, i: int, close: str) -> tuple[list[Node], int]:
    items: list[Node] = []
    i = _skip_spaces(text, i)
    if text[i] == close:
        return items, i + 1
    while True:
        item, i = _parse_rego(text, i)
        items.append(item)
        i = _skip_spaces(text, i)
        if text[i] == close:
            return items, i + 1
        if text[i] != ",":
            raise ValueError(f"expected , or {close} in Rego value dump")
        i += 1


def rego_text(node: Node) -> str:
    if node is None:
        return "null"
    if node is True:
        return "true"
    if node is False:
        return "false"
    if isinstance(node, str):
        return quote(node)
    if isinstance(node, Number):
        return node.text
    if isinstance(node, list):
        return "[" + ", ".join(rego_text(item) for item in node) + "]"
    if isinstance(node, _SetNode):
        if not node.items:
            return "set()"
        return "{" + ", ".join(rego_text(item) for item in sorted(node.items, key=_rego_order)) + "}"
    pairs = sorted(node.items, key=lambda pair: _rego_order(pair[0]))
    return "{" + ", ".join(f"{rego_text(key)}: {rego_text(value)}" for key, value in pairs) + "}"


def _type_rank(node: Node) -> int:
    # ast.Compare's order: null < boolean < number < string < array < object < set
    if node is None:
        return 0
    if isinstance(node, bool):
        return 1
    if isinstance(node, Number):
        return 2
    if isinstance(node, str):
        return 3
    if isinstance(node, list):
        return 7
    if isinstance(node, _ObjectNode):
        return 8
    return 9


def _compare(a: Node, b: Node) -> int:
    """Go's ast.Compare, which orders set elements and object keys when OPA prints them."""
    rank_a, rank_b = _type_rank(a), _type_rank(b)
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if isinstance(a, Number) and isinstance(b, Number):
        try:
            x, y = Decimal(a.text), Decimal(b.text)
        except InvalidOperation:
            return (a.text > b.text) - (a.text < b.text)
        return (x > y) - (x < y)
    if isinstance(a, bool) and isinstance(b, bool):
        return int(a) - int(b)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)  # code point order is UTF-8 byte order, as Go compares
    if isinstance(a, list) and isinstance(b, list):
        return _compare_sequences(a, b)
    if isinstance(a, _SetNode) and isinstance(b, _SetNode):
        return _compare_sequences(sorted(a.items, key=_rego_order), sorted(b.items, key=_rego_order))
    if isinstance(a, _ObjectNode) and isinstance(b, _ObjectNode):
        pairs_a = sorted(a.items, key=lambda pair: _rego_order(pair[0]))
        pairs_b = sorted(b.items, key=lambda pair: _rego_order(pair[0]))
        for (key_a, value_a), (key_b, value_b) in zip(pairs_a, pairs_b, strict=False):
            result = _compare(key_a, key_b) or _compare(value_a, value_b)
            if result:
                return result
        return (len(pairs_a) > len(pairs_b)) - (len(pairs_a) < len(pairs_b))
    return 0


def _compare_sequences(a: Sequence[Node], b: Sequence[Node]) -> int:
    for x, y in zip(a, b, strict=False):
        result = _compare(x, y)
        if result:
            return result
    return (len(a) > len(b)) - (len(a) < len(b))


_rego_order: Callable[[Node], Any] = functools.cmp_to_key(_compare)
