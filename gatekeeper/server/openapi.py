"""What the OpenAPI document says each route answers: the bodies as pydantic models, and every status.

The routes build their answers by hand (the decision routes skip FastAPI's router for speed), so these
models describe the answers rather than produce them; ``tests/server/test_openapi.py`` checks the real
answers of a running server against this document.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from gatekeeper.models import Decision, ExecResult, ToolCall
from gatekeeper.server.approvals import Status


class ApprovalView(BaseModel):
    """One approval. ``resolved_by`` is shown to admins only."""

    id: str
    status: Status
    created_at: float
    expires_at: float
    resolved_at: float | None
    reason: str | None
    call: ToolCall
    decision: Decision
    execution: dict[str, Any] | None = Field(
        description='A call approved while nobody waited: {"state": "running", "finished" or "failed", ...}'
    )
    resolved_by: str | None = None


class ErrorAnswer(BaseModel):
    """Every error: a stable ``code`` and a ``message`` for people (and models) to read.

    A call that reached the decision step carries its ``decision`` (audited), and an ``ask`` its
    ``approval``.
    """

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    decision: Decision | None = None
    approval: ApprovalView | None = None


class ExecuteAnswer(BaseModel):
    decision: Decision
    result: ExecResult
    notice: str | None = Field(None, description="What dry-run would have blocked, or a warning")
    approval: ApprovalView | None = Field(None, description="When the call ran after a human approved it")


class PendingAnswer(BaseModel):
    """An ``ask`` answered at once (``on_ask = "pending"``): poll the approval for the result."""

    code: Literal["approval_pending"]
    message: str
    decision: Decision
    approval: ApprovalView


class DataApiAnswer(BaseModel):
    result: Decision
    decision_id: str


class SessionView(BaseModel):
    id: str
    calls: int
    history_bytes: int
    idle_s: float
    created_at: float
    history: list[dict[str, Any]] = Field(description="The recent calls and decisions, as input.session")


class ApprovalList(BaseModel):
    approvals: list[ApprovalView]
    unreachable_workers: list[int] | None = None


class WorkerRevision(BaseModel):
    worker: int
    revision: str | None = None
    error: str | None = None


class ReloadAnswer(BaseModel):
    previous_revision: str | None
    revision: str | None
    changed: bool
    workers: list[WorkerRevision] | None = None


class HealthAnswer(BaseModel):
    status: Literal["ok"]
    version: str
    engine: str
    policy_revision: str | None
    mode: str | None
    headless: bool
    worker: int | None = None
    workers: int | None = None


_WHY = {
    400: "Invalid input: a body that is not JSON, or not a tool call (audited as a deny)",
    401: "Missing or invalid bearer token",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Request body over the size limit (audited as a deny on the decision routes)",
    422: "Understood but not done",
    503: "The worker keeping the call's session did not answer (the call is denied)",
}


def answers(ok: type[BaseModel], *errors: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ``ok`` for 200 and :class:`ErrorAnswer` for each error status.

    ``why`` overrides the description of a status for this route (``s403="Blocked by policy"``).
    """
    documented: dict[int | str, dict[str, Any]] = {200: {"model": ok, "description": "OK"}}
    for status in errors:
        description = why.get(f"s{status}", _WHY[status])
        documented[status] = {"model": ErrorAnswer, "description": description}
    return documented


PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    401: {"model": ErrorAnswer, "description": _WHY[401] + " (when metrics need a token)"},
}


def install_openapi(app: FastAPI) -> None:
    """Generate the document as FastAPI does, minus its 422 for request validation.

    This app answers a request that fails validation with 400 and an :class:`ErrorAnswer`
    (``install_error_handlers``), so FastAPI's own 422 entry would document an answer never given.
    """

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI keeps it in app.openapi_schema
            for operation in _operations(document):
                validation = operation["responses"].get("422", {})
                if "HTTPValidationError" in str(validation.get("content")):
                    del operation["responses"]["422"]
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            return document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for path in document.get("paths", {}).values() for operation in path.values()]
