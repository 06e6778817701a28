"""The models at gatekeeper's edges: what comes in (ToolCall) and what goes out (Decision, ExecResult).

These are pydantic v2 models because they cross process boundaries (CLI batch files, HTTP, hooks) and
must reject bad input with a clear message. The analyser's internal facts are plain dataclasses in
``gatekeeper.analysis.facts``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gatekeeper.errors import InputError

KNOWN_TOOLS = ("shell", "python", "file_write", "file_read", "http", "mcp")

# The arguments each known tool must carry as non-empty strings.
REQUIRED_STRING_ARGUMENTS = {
    "shell": ("command",),
    "python": ("code",),
    "file_write": ("path",),
    "file_read": ("path",),
    "http": ("url",),
    "mcp": ("server", "name"),
}


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"
    WARN = "warn"

    @property
    def blocked(self) -> bool:
        """``deny`` and ``ask`` stop the call; ``warn`` lets it run, flagged."""
        return self in (Outcome.DENY, Outcome.ASK)


class Mode(StrEnum):
    ENFORCE = "enforce"
    DRY_RUN = "dry-run"
    OBSERVE = "observe"


# Batch files often carry numeric ids: a ToolCall takes them and keeps them as text
# (``ToolCall._ids_are_strings``), and its JSON schema for requests says so.
TextId = Annotated[
    str | None,
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}, mode="validation"),
]


def _required_arguments_schema(schema: dict[str, Any]) -> None:
    """Say in the JSON schema what ``_known_tool_arguments_are_present`` checks, tool by tool."""
    schema["allOf"] = [
        {
            "if": {"properties": {"tool": {"const": tool}}, "required": ["tool"]},
            "then": {
                "required": ["arguments"],
                "properties": {
                    "arguments": {
                        "required": list(names),
                        # not blank: at least one character that str.strip() keeps
                        "properties": {name: {"type": "string", "pattern": "\\S"} for name in names},
                    }
                },
            },
        }
        for tool, names in REQUIRED_STRING_ARGUMENTS.items()
    ]


class ToolCall(BaseModel):
    """One tool call proposed by an agent.

    ``tool`` is normally one of ``KNOWN_TOOLS``; any other string is accepted here and decided by
    policy (default deny), so an unknown tool is a decision, not a crash.
    ``arguments`` depends on the tool: ``shell`` → ``{"command": str}``, ``python`` → ``{"code": str}``,
    ``file_write`` → ``{"path": str, "content": str}``, ``file_read`` → ``{"path": str}``,
    ``http`` → ``{"method": str, "url": str, "body": str?}``, ``mcp`` → ``{"server", "name", "arguments"}``.
    """

    model_config = ConfigDict(
        extra="allow", str_strip_whitespace=False, json_schema_extra=_required_arguments_schema
    )

    id: TextId = None
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    session_id: TextId = None
    agent_id: TextId = None
    cwd: str | None = None

    @field_validator("id", "session_id", "agent_id", mode="before")
    @classmethod
    def _ids_are_strings(cls, value: Any) -> Any:
        # Batch files often carry numeric ids; keep them, as text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _known_tool_arguments_are_present(self) -> ToolCall:
        for name in REQUIRED_STRING_ARGUMENTS.get(self.tool, ()):
            value = self.arguments.get(name)
            if not isinstance(value, str):
                shown = "missing" if value is None else f"a {type(value).__name__}"
                raise ValueError(f"{self.tool} call needs arguments.{name} as a string, got {shown}")
            if not value.strip():
                raise ValueError(f"{self.tool} call has an empty arguments.{name}")
        return self

    @classmethod
    def shell(cls, command: str, **fields: Any) -> ToolCall:
        return cls(tool="shell", arguments={"command": command}, **fields)

    @classmethod
    def parse(cls, data: Any) -> ToolCall:
        """Validate ``data`` (a dict) into a ToolCall, raising InputError with every problem named."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise InputError(describe_validation_error(error)) from error


class Violation(BaseModel):
    model_config = ConfigDict(extra="allow")

    rule: str
    family: str
    action: Literal["deny", "ask", "warn"]
    message: str


class Decision(BaseModel):
    """The answer for one tool call; the same JSON from the CLI, HTTP and hooks.

    ``decision`` is what the caller must do. ``policy_decision`` is what the policy said before the
    mode was applied: in ``dry-run`` and ``observe`` modes ``decision`` is ``allow`` while
    ``policy_decision`` keeps the would-be ``deny``/``ask``. ``error`` names the failure when the
    decision was made because something went wrong (fail closed).
    """

    id: str | None = None
    decision_id: str
    decision: Outcome
    violations: list[Violation] = Field(default_factory=list)
    mode: Mode = Mode.ENFORCE
    policy_decision: Outcome | None = None
    policy_revision: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    error: ErrorBody | None = None

    @property
    def blocked(self) -> bool:
        return self.decision.blocked

    def explain(self) -> str:
        """A one-paragraph reason, written for a human or a model reading a refusal."""
        if not self.violations:
            if self.error is not None:
                return f"blocked: {self.error.message}"
            return f"{self.decision.value}: no policy rule matched"
        reasons = "; ".join(f"{v.rule}: {v.message}" for v in self.violations)
        verb = "blocked by policy" if self.blocked else f"{self.decision.value} by policy"
        return f"{verb} {reasons}"


class ErrorBody(BaseModel):
    """``{code, message}``: the error shape shared by HTTP bodies, decisions and audit records."""

    code: str
    message: str


class ExecResult(BaseModel):
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    timed_out: bool = False
    duration_ms: float = 0.0


Decision.model_rebuild()


def describe_validation_error(error: ValidationError) -> str:
    """pydantic's errors as one readable line: ``tool: Field required; arguments: Input should be ...``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "invalid tool call: " + "; ".join(parts)
