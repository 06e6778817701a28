"""JSON out of gatekeeper: text stays readable, and strings no encoding can hold are escaped."""

from __future__ import annotations

import json

from gatekeeper.jsonout import json_bytes


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
