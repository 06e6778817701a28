"""JSON out of gatekeeper (CLI output, HTTP answers) that any input string survives.

A request may carry a lone surrogate: ``"\\ud800"`` is a valid JSON escape, but no UTF-8 (or other)
text can hold the character it decodes to. Written escaped, it goes back out as it came in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
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


def canonical_json(value: Any, *, default: Callable[[Any], Any] | None = str) -> str:
    """The one serialisation the audit log hashes and writes: sorted keys, no spaces, ASCII.
    ``default=None`` makes a value JSON cannot hold an error instead of its ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=default)


# Stands in for a member whose canonical text is known already while the rest is encoded; random,
# so that no value can be mistaken for it.
_SLOT = f"gatekeeper-slot-{uuid.uuid4().hex}"
_SLOT_JSON = json.dumps(_SLOT)


def canonical_json_with(
    value: Mapping[str, Any], key: str, text: str, *, default: Callable[[Any], Any] | None = str
) -> str:
    """``canonical_json(value)`` when ``text`` is the canonical JSON of ``value[key]`` already: the
    other members are encoded around a placeholder, which the text then replaces."""
    rendered = canonical_json({**value, key: _SLOT}, default=default)
    return rendered.replace(_SLOT_JSON, text, 1)


class CanonicalObject(dict[str, Any]):
    """A JSON object that keeps its canonical text once :meth:`canonical` has made it
    (``canonical_text``): the facts of a cached decision, which the input of every call the cache
    answers holds and its audit record repeats (encoding them was the larger part of answering such
    a call). Nothing may change its members once the text is made."""

    __slots__ = ("canonical_text",)

    def __init__(self, *args: Any, **members: Any) -> None:
        super().__init__(*args, **members)
        self.canonical_text: str | None = None

    def canonical(self) -> str:
        """The canonical JSON of this object, made once; a value JSON cannot hold is an error
        (TypeError, ValueError)."""
        text = self.canonical_text
        if text is None:  # two threads may both make it: the same text
            text = self.canonical_text = self._encoded()
        return text

    def _encoded(self) -> str:
        return canonical_json(self, default=None)


class PolicyInput(CanonicalObject):
    """The policy input document, whose canonical text an engine makes (:func:`policy_input_json`)
    and the decision's audit record splices in rather than encoding the document a second time
    (three quarters of a record's encoding). Facts that keep their own text (a cached call's) are
    spliced into it in turn. Setting a member forgets the text; nothing changes the members' own
    contents once a call is analysed."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        self.canonical_text = None
        super().__setitem__(key, value)

    def _encoded(self) -> str:
        facts = self.get("facts")
        if isinstance(facts, CanonicalObject):
            return canonical_json_with(self, "facts", facts.canonical(), default=None)
        return super()._encoded()


def policy_input_json(document: dict[str, Any]) -> str:
    """The policy input ``document`` as JSON (ASCII, lone surrogates escaped). A session history
    that holds its own JSON text (PreEncoded) is spliced in as it is: encoding a 64-call history
    again for every call of the session took a third of gatekeeper's CPU for such a call. Any
    other document is written in canonical form, which a PolicyInput keeps for its audit record."""
    session = document.get("session")
    history = session.get("history") if isinstance(session, dict) else None
    if not isinstance(history, PreEncoded):
        if isinstance(document, PolicyInput):
            return document.canonical()
        return canonical_json(document, default=None)  # a value JSON cannot hold is an error here
    assert isinstance(session, dict)  # noqa: S101 - history came from it
    rest = json.dumps({key: value for key, value in document.items() if key != "session"})
    session_rest = json.dumps({key: value for key, value in session.items() if key != "history"})
    session_text = _with_member(session_rest, "history", history.json_text)
    return _with_member(rest, "session", session_text)


def _with_member(object_text: str, key: str, value_text: str) -> str:
    """The JSON object ``object_text`` with one more member, whose value is JSON text already."""
    member = json.dumps(key) + ":" + value_text
    return "{" + member + "}" if object_text == "{}" else object_text[:-1] + "," + member + "}"
