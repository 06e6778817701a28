"""JSON out of gatekeeper: text stays readable, and strings no encoding can hold are escaped."""

from __future__ import annotations

import json

from gatekeeper.jsonout import (
    CanonicalObject,
    PolicyInput,
    PreEncoded,
    canonical_json,
    canonical_json_with,
    json_bytes,
    policy_input_json,
)


def test_text_the_encoding_can_hold_is_written_as_is():
    assert json_bytes({"id": "café 日本"}) == '{"id": "café 日本"}'.encode()


def test_a_lone_surrogate_is_escaped_and_reads_back_as_it_came():
    data = json_bytes({"id": "\ud800", "note": "café"})
    assert b"\\ud800" in data
    assert json.loads(data) == {"id": "\ud800", "note": "café"}


def test_an_encoding_without_the_character_gets_escapes():
    assert json_bytes(["é"], encoding="ascii") == b'["\\u00e9"]'


def test_default_and_indent_are_passed_on():
    assert json_bytes({"n": {1}}, default=sorted, indent=1) == b'{\n "n": [\n  1\n ]\n}'


def _document() -> dict:
    return {"call": {"tool": "shell", "arguments": {"command": "ls é"}}, "facts": {"b": 1, "a": [2.5]}}


def test_policy_input_json_is_canonical_and_a_policy_input_keeps_it():
    document = PolicyInput(_document())
    text = policy_input_json(document)
    assert text == canonical_json(_document()) == policy_input_json(_document())
    assert document.canonical_text == text
    document["session"] = {}  # a changed document forgets the text made of it
    assert document.canonical_text is None


def test_an_input_json_with_a_pre_encoded_history_is_not_kept():
    history = PreEncoded([{"decision_id": "d1"}], '[{"decision_id":"d1"}]')
    document = PolicyInput(_document(), session={"id": "s", "history": history})
    assert json.loads(policy_input_json(document))["session"]["history"] == [{"decision_id": "d1"}]
    assert document.canonical_text is None


def test_facts_that_keep_their_text_are_spliced_into_the_input_as_if_encoded_again():
    facts = CanonicalObject(_document()["facts"])
    document = PolicyInput(_document(), facts=facts)
    assert policy_input_json(document) == canonical_json(_document(), default=None)
    assert facts.canonical() is facts.canonical()  # made once


def test_canonical_json_with_a_member_known_already_is_canonical_json():
    value = {"b": [1, "é"], "input": {"z": 1, "a": None}, "a": "x"}
    assert canonical_json_with(value, "input", canonical_json(value["input"])) == canonical_json(value)
    assert value["input"] == {"z": 1, "a": None}  # the caller's mapping is left as it was
