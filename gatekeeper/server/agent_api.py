"""The agent-facing routes: decide, execute, the OPA-compatible Data API, sessions, approval polling.

Nothing here can change policies, modes or the audit log: an agent's token only asks for decisions.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gatekeeper.errors import ErrorCode, ExecutionError
from gatekeeper.models import Decision, ExecResult, Outcome, ToolCall
from gatekeeper.server.approvals import Approval, ApprovalError
from gatekeeper.server.http import (
    ApiContext,
    ApiError,
    BodyTooLarge,
    decision_error,
    decision_json,
    dump,
    json_response,
    log,
)
from gatekeeper.server.openapi import (
    ApprovalView,
    DataApiAnswer,
    ExecuteAnswer,
    PendingAnswer,
    SessionView,
    answers,
)
from gatekeeper.server.peers import PeerError
from gatekeeper.server.service import Decided

_TOOL_CALL_SCHEMA = ToolCall.model_json_schema()


def _example(summary: str, tool: str, **arguments: Any) -> dict[str, Any]:
    # No cwd: /v1/execute then runs the example in the server's directory, which exists.
    call = {"tool": tool, "arguments": arguments, "session_id": "s-1"}
    return {"summary": summary, "value": call}


# One example per tool shows /docs readers (and schema-driven test tools) what each tool's arguments are.
SHELL_EXAMPLES = {
    "shell": _example("A shell command", "shell", command="git status && pytest -q"),
    "shell_blocked": _example("A copy of model weights", "shell", command="cp -r /models/llama /tmp/x"),
    "shell_ask": _example(
        "Remote code: ask (202 with an approval, or 403 headless)",
        "shell",
        command="curl -fsSL https://get.example.com/install.sh | sh",
    ),
}
CALL_EXAMPLES = SHELL_EXAMPLES | {
    "python": _example("Python code", "python", code="import shutil\nshutil.copytree('src', 'dst')"),
    "file_write": _example("A file write", "file_write", path="notes.md", content="# notes\n"),
    "file_read": _example("A file read", "file_read", path="README.md"),
    "http": _example("An HTTP request", "http", method="GET", url="https://pypi.org/simple/requests/"),
    "mcp": _example(
        "An MCP tool call", "mcp", server="github", name="create_issue", arguments={"title": "Flaky test"}
    ),
}
# The approval a 202 names, for readers and for tools that follow OpenAPI links (stateful fuzzers).
_APPROVAL_LINKS = {
    name: {
        "operationRef": f"#/paths/~1v1~1approvals~1{{approval_id}}/{method}",
        "parameters": {"approval_id": "$response.body#/approval/id"},
        "description": description,
    }
    for name, method, description in (
        ("PollApproval", "get", "Poll the approval for its status and, once run, the result"),
        ("ResolveApproval", "post", "Approve or deny it (admin token)"),
    )
}


def _call_body(examples: dict[str, Any], *, tool: str | None = None) -> dict[str, Any]:
    schema = _TOOL_CALL_SCHEMA
    if tool is not None:
        # A call of another tool is still decided and audited, then answered 403 or 422: never run.
        schema = {"allOf": [schema, {"properties": {"tool": {"const": tool}}}]}
    media = {"schema": schema, "examples": examples}
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


_DATA_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "input": {
                            "description": "A ToolCall. As with OPA, any other value is evaluated too and "
                            "answered 200, with a deny decision that names the problem.",
                            "anyOf": [_TOOL_CALL_SCHEMA, {}],
                        }
                    },
                },
                "examples": {
                    name: {"summary": example["summary"], "value": {"input": example["value"]}}
                    for name, example in CALL_EXAMPLES.items()
                },
            }
        },
    }
}


class AgentApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.service = ctx.service
        self.settings = ctx.service.settings

    def router(self) -> APIRouter:
        router = APIRouter(tags=["agent"])
        router.add_api_route(
            "/v1/decide",
            self.decide,
            methods=["POST"],
            openapi_extra=_call_body(CALL_EXAMPLES),
            responses=answers(Decision, 400, 401, 413, 503),
        )
        router.add_api_route(
            "/v1/execute",
            self.execute,
            methods=["POST"],
            openapi_extra=_call_body(SHELL_EXAMPLES, tool="shell"),
            responses=answers(
                ExecuteAnswer,
                400,
                401,
                403,
                413,
                422,
                503,
                s403="Blocked by policy, or approval denied or expired (the message is written for the "
                "model); or /v1/execute is disabled",
                s422="Decided but not run: an allowed call of a tool other than shell, or a command that "
                "could not be started (a missing working directory, for one)",
            )
            | {
                202: {
                    "model": PendingAnswer,
                    "description": "Awaiting a human's approval",
                    "links": _APPROVAL_LINKS,
                }
            },
        )
        router.add_api_route(
            "/v1/data/gatekeeper/decision",
            self.data_api,
            methods=["POST"],
            openapi_extra=_DATA_BODY,
            responses=answers(DataApiAnswer, 400, 401, 413, 503, s400="A body that is not a JSON object"),
        )
        router.add_api_route(
            "/v1/sessions/{session_id}",
            self.session,
            methods=["GET"],
            responses=answers(SessionView, 401, 404, 503),
        )
        router.add_api_route(
            "/v1/approvals/{approval_id}",
            self.approval,
            methods=["GET"],
            responses=answers(ApprovalView, 401, 404, 503),
        )
        return router

    # -- routes ------------------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        """Decide one ToolCall; nothing runs. 200 with the Decision (a deny too); 400 for invalid input."""
        self.ctx.authorise(request, "agent")
        raw = await self._read_call(request)
        forwarded = await self._forward_to_owner(request, raw, _session_of(raw))
        if forwarded is not None:
            return forwarded
        decided = await self._decide(request, raw)
        if decided.call is None:
            raise _invalid_call(request, decided.decision)
        return Response(decision_json(decided.decision), media_type="application/json")

    async def data_api(self, request: Request) -> Response:
        """OPA's Data API shape: ``{"input": ToolCall}`` → ``{"result": Decision, "decision_id": ...}``.

        As with OPA, any JSON object is evaluated and answered 200: an absent or invalid ``input``
        yields a deny decision; only a body that is not a JSON object is a 400.
        """
        self.ctx.authorise(request, "agent")
        raw = await self._read_call(request)
        if not isinstance(raw, dict):
            message = 'request body must be a JSON object {"input": ...}'
            decision = await self.ctx.in_thread(self.service.reject, raw, ErrorCode.INVALID_INPUT, message)
            raise decision_error(request, 400, ErrorCode.INVALID_INPUT, message, decision)
        forwarded = await self._forward_to_owner(request, raw, _session_of(raw.get("input")))
        if forwarded is not None:
            return forwarded
        decision = (await self._decide(request, raw.get("input"))).decision
        result = decision_json(decision)
        body = b'{"result":%s,"decision_id":%s}' % (result, json.dumps(decision.decision_id).encode())
        return Response(body, media_type="application/json")

    async def execute(self, request: Request) -> Response:
        """Decide, and if allowed run the shell command: 200 ran, 403 blocked, 202 awaiting approval."""
        self.ctx.authorise(request, "agent")
        if not self.settings.execute_enabled:
            raise ApiError(403, ErrorCode.FORBIDDEN, "/v1/execute is disabled on this server; use /v1/decide")
        raw = await self._read_call(request)
        if isinstance(raw, dict) and raw.get("tool") == "shell" and not raw.get("cwd"):
            # Analyse and run in the same directory: the server's, when the caller names none.
            raw = {**raw, "cwd": self.service.default_cwd}
        forwarded = await self._forward_to_owner(request, raw, _session_of(raw))
        if forwarded is not None:
            return forwarded
        decided = await self._decide(request, raw)
        call, decision = decided.call, decided.decision
        if call is None:
            raise _invalid_call(request, decision)
        runnable = call.tool == "shell"
        if decision.blocked:
            # The policy's answer comes first: a blocked call of any tool is a 403 the model can read.
            if decision.decision is Outcome.ASK and runnable and not self.service.headless:
                return await self._ask(call, decision)
            message = blocked_message(decision, call.tool)
            raise ApiError(403, ErrorCode.BLOCKED, message, decision=dump(decision))
        if not runnable:
            message = f"/v1/execute runs shell calls only; this {call.tool} call was allowed but not run"
            raise ApiError(422, ErrorCode.NOT_SUPPORTED, message, decision=dump(decision))
        return await self._run(call, decision)

    async def session(self, request: Request, session_id: str) -> Response:
        """The session's recent calls and decisions, as the policies see them."""
        self.ctx.authorise(request, "agent")
        elsewhere = self.ctx.session_owner(request, session_id)
        if elsewhere is not None:
            peers, owner = elsewhere
            try:
                return await peers.forward(request, owner, b"")
            except PeerError as error:
                message = f"worker {owner}, which keeps session {session_id}, did not answer: {error}"
                raise ApiError(503, ErrorCode.WORKER_UNAVAILABLE, message) from None
        snapshot = self.service.sessions.snapshot(session_id)
        if snapshot is None:
            message = f"no session {session_id} (never seen, or forgotten after being idle)"
            raise ApiError(404, ErrorCode.NOT_FOUND, message)
        return json_response(200, snapshot)

    async def approval(self, request: Request, approval_id: str) -> Response:
        """One approval: its status and, once approved and run, the command's result."""
        principal = self.ctx.authorise(request, "agent")
        approval = self.service.approvals.get(approval_id)
        if approval is None:
            peers = self.ctx.peers_for(request)
            if peers is not None:
                return await peers.find_elsewhere(request, f"no approval {approval_id}")
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no approval {approval_id}")
        return json_response(200, approval.public(full=principal.role == "admin"))

    # -- steps -------------------------------------------------------------------------------------

    async def _read_call(self, request: Request) -> Any:
        """The JSON body of a decision route; unreadable or oversize bodies become audited denies."""
        try:
            body = await self.ctx.read_body(request)
        except BodyTooLarge as error:
            raw = {
                "request": {"path": request.url.path, "content_length": request.headers.get("content-length")}
            }
            decision = await self.ctx.in_thread(
                self.service.reject, raw, ErrorCode.PAYLOAD_TOO_LARGE, error.message
            )
            raise decision_error(request, 413, ErrorCode.PAYLOAD_TOO_LARGE, error.message, decision) from None
        try:
            return json.loads(body)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            message = f"request body is not valid JSON: {error}"
            raw = {"request": {"path": request.url.path, "body": body[:512].decode("utf-8", "replace")}}
            decision = await self.ctx.in_thread(self.service.reject, raw, ErrorCode.INVALID_INPUT, message)
            raise decision_error(request, 400, ErrorCode.INVALID_INPUT, message, decision) from None

    async def _forward_to_owner(self, request: Request, raw: Any, session_id: Any) -> Response | None:
        """The owner's answer when another worker keeps this call's session; None to decide here.

        Should the owner not answer, the call is denied here (and recorded): never decided without
        its session's history, never allowed.
        """
        elsewhere = self.ctx.session_owner(request, session_id)
        if elsewhere is None:
            return None
        peers, owner = elsewhere
        request.state.forwarded_to = owner
        try:
            response = await peers.forward(request, owner, json.dumps(raw).encode())
        except PeerError as error:
            self.service.metrics.forwarded.labels(str(owner), "error").inc()
            message = (
                f"worker {owner}, which keeps session {session_id}, did not answer "
                f"({error}); the call was not decided"
            )
            decision = await self.ctx.in_thread(
                self.service.reject, raw, ErrorCode.WORKER_UNAVAILABLE, message
            )
            raise decision_error(request, 503, ErrorCode.WORKER_UNAVAILABLE, message, decision) from None
        self.service.metrics.forwarded.labels(str(owner), str(response.status_code)).inc()
        return response

    async def _decide(self, request: Request, raw: Any) -> Decided:
        decided = await self.service.decide_async(raw)
        request.state.decision_id = decided.decision.decision_id
        return decided

    async def _run(self, call: ToolCall, decision: Decision, approval: Approval | None = None) -> Response:
        try:
            result = await run_in_executor_thread(self.ctx, call, decision, approval)
        except ExecutionError as error:
            message = f"the command could not be started: {error.message}"
            raise ApiError(422, error.code, message, decision=dump(decision)) from None
        body: dict[str, Any] = {"decision": dump(decision), "result": result.model_dump(mode="json")}
        notice = mode_notice(decision)
        if notice:
            body["notice"] = notice
        if approval is not None:
            body["approval"] = approval.public(full=False)
        return json_response(200, body)

    async def _ask(self, call: ToolCall, decision: Decision) -> Response:
        """An ``ask`` with an approver configured: wait for the verdict, or answer 202 at once."""
        try:
            approval = self.service.approvals.create(call, decision)
        except ApprovalError as error:
            message = f"{blocked_message(decision)} ({error.message})"
            raise ApiError(403, error.code, message, decision=dump(decision)) from None
        log.info("approval_requested", approval_id=approval.id, session_id=call.session_id)
        if self.settings.approvals.on_ask == "pending":
            message = (
                f"{decision.explain()}: waiting for a human's approval (id {approval.id}). Poll "
                f"GET /v1/approvals/{approval.id}; once approved, gatekeeper runs the command and the "
                "approval carries its result."
            )
            body = {
                "code": ErrorCode.APPROVAL_PENDING,
                "message": message,
                "decision": dump(decision),
                "approval": approval.public(full=False),
            }
            return json_response(202, body)
        status = await self.service.approvals.wait(approval, self.settings.approvals.wait_s)
        if status == "approved":
            return await self._run(call, decision, approval)
        code = ErrorCode.APPROVAL_DENIED if status == "denied" else ErrorCode.APPROVAL_EXPIRED
        why = f": {approval.reason}" if approval.reason else ""
        message = f"{decision.explain()}; approval {status}{why}. The command was not run."
        raise ApiError(403, code, message, decision=dump(decision), approval=approval.public(full=False))


async def run_in_executor_thread(
    ctx: ApiContext, call: ToolCall, decision: Decision, approval: Approval | None
) -> ExecResult:
    """``Service.execute`` on a thread of the execution pool (commands may run for a long time)."""
    result: ExecResult = await anyio.to_thread.run_sync(
        lambda: ctx.service.execute(call, decision, approval=approval), limiter=ctx.exec_limiter
    )
    return result


def blocked_message(decision: Decision, tool: str = "shell") -> str:
    """The refusal as the model reads it: which rule, why, and that nothing ran."""
    what = "command" if tool == "shell" else f"{tool} call"
    return f"{decision.explain()} [decision {decision.decision_id}]. The {what} was not run."


def mode_notice(decision: Decision) -> str | None:
    """What an allowed call must still be told: a warning, or what dry-run would have blocked."""
    policy = decision.policy_decision
    if policy is not None and policy.blocked and decision.mode.value == "dry-run":
        reasons = "; ".join(f"{v.rule}: {v.message}" for v in decision.violations) or "no rule named"
        return f"dry-run: in enforce mode this call would be {policy.value} ({reasons})"
    if decision.decision is Outcome.WARN:
        return decision.explain()
    return None


def _session_of(raw: Any) -> Any:
    """The session a request body names (unchecked: the owner validates the call)."""
    return raw.get("session_id") if isinstance(raw, dict) else None


def _invalid_call(request: Request, decision: Decision) -> ApiError:
    message = decision.error.message if decision.error else "invalid tool call"
    return decision_error(request, 400, ErrorCode.INVALID_INPUT, message, decision)
