"""The decision routes straight to their handlers, past FastAPI's router.

For a cached decision the framework's way to the handler was the larger part of the work: matching
the request against every route, building the endpoint's dependency context and wrapping it in
exception middleware took about 40% of the server's CPU per decision under load (1.8 → 1.1 ms with
``benchmarks/load.py --workload repeat``).
``POST /v1/decide`` and ``POST /v1/data/gatekeeper/decision`` are what agents call on every tool call,
so this layer sends exactly those two (method and path) to the same handler methods the router would
call, with the same ``{code, message}`` error answers; every other request goes through FastAPI.

It sits inside the application's outer layers (server error handling, the request log and metrics),
so those see the two routes as before: the route template is set on the scope as the router does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from fastapi import Request
from fastapi.responses import Response

from gatekeeper.server.http import ApiError, ASGIApp, Receive, Scope, Send, api_error_response

Handler = Callable[[Request], Awaitable[Response]]


class RouteTemplate(NamedTuple):
    """What the request log reads from ``scope["route"]``: the route's path template."""

    path: str


class DecisionFastPath:
    """ASGI middleware: ``POST`` to a path in ``handlers`` → that handler, without routing."""

    def __init__(self, app: ASGIApp, *, handlers: dict[str, Handler]) -> None:
        self.app = app
        self.handlers = {path: (handler, RouteTemplate(path)) for path, handler in handlers.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = (
            self.handlers.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if target is None:
            await self.app(scope, receive, send)
            return
        handler, route = target
        scope["route"] = route  # as the router sets it: the request log counts by route template
        try:
            response = await handler(Request(scope, receive))
        except ApiError as error:
            response = api_error_response(error)
        await response(scope, receive, send)
