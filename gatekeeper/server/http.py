"""HTTP plumbing shared by the routes: the request context, errors as ``{code, message}``, bounded
body reading, and the request log.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from gatekeeper.errors import ErrorCode
from gatekeeper.jsonout import json_bytes
from gatekeeper.models import Decision
from gatekeeper.server.auth import AuthFailure, Principal, Role, TokenAuth
from gatekeeper.server.service import Service

if TYPE_CHECKING:
    from gatekeeper.server.peers import Peers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STATUS_CODES = {
    400: ErrorCode.INVALID_INPUT,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}

log = structlog.get_logger("gatekeeper.server")


class ApiError(Exception):
    """An error answer: HTTP status, ``{code, message}`` and optional extra fields (the decision)."""

    def __init__(self, status: int, code: ErrorCode | str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = str(code)
        self.message = message
        self.extra = extra
        self.headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None


class BodyTooLarge(Exception):
    def __init__(self, limit: int, size: int | None) -> None:
        super().__init__(limit)
        self.message = (
            f"request body of {size} bytes exceeds the limit of {limit} bytes"
            if size is not None
            else f"request body exceeds the limit of {limit} bytes"
        )


@dataclass(slots=True)
class ApiContext:
    """What every route needs: the service, authentication, the execution thread limiter, and the
    other workers (``None`` when this process is the only one)."""

    service: Service
    auth: TokenAuth
    exec_limiter: anyio.CapacityLimiter
    peers: Peers | None = None

    @classmethod
    def for_service(cls, service: Service, *, peers: Peers | None = None) -> ApiContext:
        settings = service.settings
        return cls(
            service=service,
            auth=TokenAuth(settings.agent_tokens, settings.admin_tokens),
            exec_limiter=anyio.CapacityLimiter(settings.max_concurrent_executions),
            peers=peers,
        )

    def peers_for(self, request: Request) -> Peers | None:
        """The other workers, when ``request`` may be passed on to them: not when this process is the
        only one, nor when a peer sent it (a request is passed on once, never in a loop)."""
        if self.peers is None or self.peers.is_peer(request):
            return None
        return self.peers

    def session_owner(self, request: Request, session_id: Any) -> tuple[Peers, int] | None:
        """The other worker that keeps ``session_id``, when ``request`` should go to it (see
        :meth:`peers_for`); None to answer here."""
        peers = self.peers_for(request)
        owner = peers.owner_elsewhere(session_id) if peers is not None else None
        return None if peers is None or owner is None else (peers, owner)

    def authorise(self, request: Request, role: Role) -> Principal:
        outcome = self.auth.authorise(request.headers.get("authorization"), role)
        if isinstance(outcome, AuthFailure):
            raise ApiError(outcome.status, outcome.code, outcome.message)
        request.state.principal = outcome.name
        return outcome

    async def read_body(self, request: Request) -> bytes:
        """The body, refused (BodyTooLarge) as soon as it is known to exceed the limit."""
        limit = self.service.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ApiError(400, ErrorCode.INVALID_INPUT, "Content-Length is not a number") from None
            if size > limit:
                raise BodyTooLarge(limit, size)
        chunks: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge(limit, None)
            chunks.append(chunk)
        return b"".join(chunks)

    async def in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run blocking deciding work (engine, fsync'd audit) on the service's deciding threads.

        The event loop's own executor hand-off: anyio's ``to_thread`` (limiter, cancel scope, task
        bookkeeping) took about a fifth of the interpreter's time per cached decision (py-spy).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.service.decide_threads, functools.partial(function, *args))


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    data = json_bytes(body, default=str)
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def decision_json(decision: Decision) -> bytes:
    """The Decision as an answer body: pydantic's faster encoder, unless a lone surrogate stops it."""
    try:
        return decision.model_dump_json().encode()
    except PydanticSerializationError:
        return json_bytes(dump(decision))


def dump(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(mode="json")


def decision_error(
    request: Request, status: int, code: ErrorCode, message: str, decision: Decision
) -> ApiError:
    """An error answer about a decision (which the audit log already holds)."""
    request.state.decision_id = decision.decision_id
    return ApiError(status, code, message, decision=dump(decision))


def api_error_response(error: ApiError) -> Response:
    body = {"code": error.code, "message": error.message, **error.extra}
    return json_response(error.status, body, error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error, including the framework's own (404, 405), as ``{code, message}``."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> Response:
        return api_error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(error.status_code, ErrorCode.INVALID_INPUT)
        headers = error.headers
        if error.status_code == 405:
            routes = getattr(app.state, "method_routes", app.routes)
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(routes, request.scope))}
        return json_response(error.status_code, {"code": code, "message": str(error.detail)}, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        return json_response(400, {"code": ErrorCode.INVALID_INPUT, "message": problems or "invalid request"})

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> Response:
        log.error("request_failed", error=f"{type(error).__name__}: {error}")
        body = {"code": ErrorCode.INTERNAL_ERROR, "message": "internal error; see the server log"}
        return json_response(500, body)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route of this path answers, for the ``Allow`` header of a 405.

    Starlette's own names the methods of the first route of the path only, and the agent and admin
    APIs each have a route on ``/v1/approvals/{approval_id}`` (GET and POST).
    """
    methods: set[str] = set()
    for route in routes:
        match, _child = route.matches(scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


class RequestLogMiddleware:
    """Counts every request by route template and status, and logs it (``request_handled``)."""

    def __init__(self, app: ASGIApp, *, service: Service, logger: Any, enabled: bool) -> None:
        self.app = app
        self.requests = service.metrics.requests
        self.logger = logger
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(route, str(status)).inc()
            if self.enabled:
                state = scope.get("state") or {}
                client = scope.get("client")
                extra = {"forwarded_to": state["forwarded_to"]} if "forwarded_to" in state else {}
                self.logger.info(
                    "request_handled",
                    method=scope["method"],
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    client=f"{client[0]}:{client[1]}" if client else None,
                    principal=state.get("principal"),
                    decision_id=state.get("decision_id"),
                    **extra,
                )
