"""The admin routes: list and resolve approvals, reload policies. Every one needs an admin token."""

from __future__ import annotations

import asyncio
import json
from typing import Any, get_args

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gatekeeper.errors import ErrorCode, GatekeeperError, PolicyLoadError
from gatekeeper.server.agent_api import run_in_executor_thread
from gatekeeper.server.approvals import Approval, ApprovalError, Status, Verdict
from gatekeeper.server.http import ApiContext, ApiError, BodyTooLarge, json_response, log
from gatekeeper.server.openapi import ApprovalList, ApprovalView, ReloadAnswer, answers
from gatekeeper.server.peers import PeerAnswer, PeerError

STATUSES: tuple[str, ...] = get_args(Status)
# Checked in the route, so that the answer names the allowed values; documented as an enum.
_STATUS_QUERY = Query(None, json_schema_extra={"enum": list(STATUSES)}, description="Only these approvals")
_VERDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["action"],
                    "properties": {
                        "action": {"enum": ["approve", "deny"]},
                        "reason": {"type": ["string", "null"]},
                    },
                }
            }
        },
    }
}


class AdminApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.service = ctx.service
        self._background: set[asyncio.Task[None]] = set()

    def router(self) -> APIRouter:
        router = APIRouter(tags=["admin"])
        router.add_api_route(
            "/v1/approvals",
            self.list_approvals,
            methods=["GET"],
            responses=answers(ApprovalList, 400, 401, 403),
        )
        router.add_api_route(
            "/v1/approvals/{approval_id}",
            self.resolve,
            methods=["POST"],
            openapi_extra=_VERDICT_BODY,
            responses=answers(
                ApprovalView, 400, 401, 403, 404, 409, 413, 503, s409="Already resolved or expired"
            ),
        )
        router.add_api_route(
            "/v1/admin/reload",
            self.reload,
            methods=["POST"],
            responses=answers(
                ReloadAnswer,
                401,
                403,
                409,
                422,
                s409="The engine cannot be reloaded by gatekeeper (OPA server)",
                s422="The policies did not load; the running revision stays",
            ),
        )
        return router

    async def list_approvals(self, request: Request, status: str | None = _STATUS_QUERY) -> Response:
        """Approvals, oldest first; ``?status=pending`` for those waiting for a verdict."""
        self.ctx.authorise(request, "admin")
        if status is not None and status not in STATUSES:
            raise ApiError(400, ErrorCode.INVALID_INPUT, f"status must be one of {', '.join(STATUSES)}")
        listed = [approval.public() for approval in self.service.approvals.list(status)]
        peers = self.ctx.peers_for(request)
        if peers is None:
            return json_response(200, {"approvals": listed})
        # Each worker keeps the approvals of the calls it decided: gather them, oldest first.
        missing = []
        for index, answer in (await peers.forward_to_others(request)).items():
            found = _json_field(answer, "approvals") if not isinstance(answer, PeerError) else None
            if not isinstance(found, list):
                log.warning("worker_approvals_missing", worker=index, error=str(answer))
                missing.append(index)
                continue
            listed += found
        body: dict[str, Any] = {"approvals": sorted(listed, key=lambda approval: approval["created_at"])}
        if missing:
            body["unreachable_workers"] = missing
        return json_response(200, body)

    async def resolve(self, request: Request, approval_id: str) -> Response:
        """Approve or deny a pending approval: ``{"action": "approve"|"deny", "reason": "..."}``."""
        principal = self.ctx.authorise(request, "admin")
        try:
            body = json.loads(await self.ctx.read_body(request))
        except BodyTooLarge as error:
            raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, error.message) from None
        except ValueError as error:
            raise ApiError(400, ErrorCode.INVALID_INPUT, f"request body is not valid JSON: {error}") from None
        action = body.get("action") if isinstance(body, dict) else None
        reason = body.get("reason") if isinstance(body, dict) else None
        if action not in ("approve", "deny") or not isinstance(reason, str | None):
            message = 'request body must be {"action": "approve" or "deny", "reason": "optional text"}'
            raise ApiError(400, ErrorCode.INVALID_INPUT, message)
        verdict: Verdict = "approve" if action == "approve" else "deny"
        try:
            approval = await anyio.to_thread.run_sync(
                lambda: self.service.approvals.resolve(approval_id, verdict, by=principal.name, reason=reason)
            )
        except ApprovalError as error:
            peers = self.ctx.peers_for(request)
            if error.code == ErrorCode.NOT_FOUND and peers is not None:
                # Kept by the worker that decided the call: the verdict goes there (and wakes the
                # request waiting for it, if any).
                return await peers.find_elsewhere(request, error.message, json.dumps(body).encode())
            raise ApiError(
                404 if error.code == ErrorCode.NOT_FOUND else 409, error.code, error.message
            ) from None
        log.info("approval_resolved", approval_id=approval_id, status=approval.status, by=principal.name)
        if approval.status == "approved" and approval.on_ask == "pending":
            # Nobody is waiting on the request: gatekeeper runs the command now and keeps the result.
            task = asyncio.get_running_loop().create_task(self._run_approved(approval))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return json_response(200, approval.public())

    async def reload(self, request: Request) -> Response:
        """Re-read and compile the policies; on failure the running revision stays."""
        self.ctx.authorise(request, "admin")
        engine = self.service.engine
        if not engine.can_reload:
            message = f"the {engine.name} engine cannot be reloaded by gatekeeper: reload the engine itself"
            raise ApiError(409, ErrorCode.NOT_SUPPORTED, message)
        try:
            previous, current = await anyio.to_thread.run_sync(self.service.reload)
        except PolicyLoadError as error:
            raise ApiError(422, error.code, f"{error.message} (still serving {engine.revision})") from None
        body: dict[str, Any] = {
            "previous_revision": previous,
            "revision": current,
            "changed": previous != current,
        }
        if self.ctx.peers is None:
            return json_response(200, body)
        # Every worker reloads; the answer names each one's revision, and any that failed.
        workers = [{"worker": self.ctx.peers.plan.index, "revision": current}]
        failures = []
        for index, answer in (await self.ctx.peers.ask_others("POST", "/internal/reload")).items():
            if isinstance(answer, PeerError):
                failure = str(answer)
            elif answer.status != 200:
                failure = str(_json_field(answer, "message") or f"HTTP {answer.status}")
            else:
                workers.append({"worker": index, "revision": _json_field(answer, "revision")})
                continue
            workers.append({"worker": index, "error": failure})
            failures.append(f"worker {index}: {failure}")
        body["workers"] = sorted(workers, key=lambda worker: int(str(worker["worker"])))
        if failures:
            message = f"reloaded here ({current}), but not by every worker: {'; '.join(failures)}"
            raise ApiError(422, ErrorCode.POLICY_LOAD_ERROR, message, workers=body["workers"])
        return json_response(200, body)

    async def _run_approved(self, approval: Approval) -> None:
        approval.execution = {"state": "running"}
        try:
            result = await run_in_executor_thread(self.ctx, approval.call, approval.decision, approval)
        except GatekeeperError as error:
            approval.execution = {
                "state": "failed",
                "error": {"code": str(error.code), "message": error.message},
            }
            return
        approval.execution = {"state": "finished", "result": result.model_dump(mode="json")}


def _json_field(answer: PeerAnswer | Response, name: str) -> Any:
    try:
        body = answer.json() if isinstance(answer, PeerAnswer) else json.loads(bytes(answer.body))
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
