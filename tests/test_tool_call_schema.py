"""The ToolCall JSON schema (served in the OpenAPI document) accepts exactly what validation accepts."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from gatekeeper.models import REQUIRED_STRING_ARGUMENTS, ToolCall

SCHEMA = Draft202012Validator(ToolCall.model_json_schema())

CALLS: list[dict[str, Any]] = [
    {"tool": "shell", "arguments": {"command": "ls"}},
    {"tool": "shell"},
    {"tool": "shell", "arguments": {}},
    {"tool": "shell", "arguments": {"command": 5}},
    {"tool": "shell", "arguments": {"command": ""}},
    {"tool": "shell", "arguments": {"command": " \t\n\x1c\x85\u3000"}},
    {"tool": "shell", "arguments": {"command": " x "}},
    {"tool": "python", "arguments": {"code": "print(1)"}},
    {"tool": "python", "arguments": {"command": "ls"}},
    {"tool": "mcp", "arguments": {"server": "fs", "name": "read"}},
    {"tool": "mcp", "arguments": {"server": "fs"}},
    {"tool": "mcp", "arguments": {"code": "x"}},
    {"tool": "http", "arguments": {"url": 5}},
    {"tool": "file_write", "arguments": {"path": "a", "content": "b"}},
    {"tool": "teleport"},
    {"tool": "teleport", "arguments": {"to": "mars"}},
    {"tool": ""},
    {"arguments": {"command": "ls"}},
    {"tool": "shell", "arguments": {"command": "ls"}, "id": 7, "session_id": "s", "extra": True},
    {"tool": "shell", "arguments": {"command": "ls"}, "id": 1.5},
]


def model_accepts(call: dict[str, Any]) -> bool:
    try:
        ToolCall.model_validate(call)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("call", CALLS, ids=[repr(call)[:60] for call in CALLS])
def test_schema_and_validation_agree(call):
    assert SCHEMA.is_valid(call) == model_accepts(call)


def test_every_known_tool_states_its_required_arguments():
    stated = {
        rule["if"]["properties"]["tool"]["const"]: rule["then"]["properties"]["arguments"]["required"]
        for rule in ToolCall.model_json_schema()["allOf"]
    }
    assert stated == {tool: list(names) for tool, names in REQUIRED_STRING_ARGUMENTS.items()}
