"""The decision routes' fast path: exactly POST to the two decision paths skips the router; anything else
(other methods, other paths, a mounted root path) still goes through the application."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from gatekeeper.server.fastpath import DecisionFastPath
from gatekeeper.server.http import ApiError


def run(layer: DecisionFastPath, method: str, path: str, root_path: str = "") -> tuple[list[Any], Any]:
    """Send one request through ``layer``; return the ASGI messages sent and the scope."""
    sent: list[Any] = []
    scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(layer(scope, receive, send))
    return sent, scope


def make_layer() -> tuple[DecisionFastPath, list[str]]:
    reached: list[str] = []

    async def app(scope: Any, _receive: Any, send: Any) -> None:
        reached.append(f"router {scope['method']} {scope['path']}")
        await Response("routed")(scope, _receive, send)

    async def decide(request: Request) -> Response:
        reached.append("decide")
        body = await request.body()
        return Response(body, media_type="application/json")

    async def refuse(_request: Request) -> Response:
        raise ApiError(401, "unauthorized", "missing bearer token")

    layer = DecisionFastPath(app, handlers={"/v1/decide": decide, "/v1/data/gatekeeper/decision": refuse})
    return layer, reached


def test_post_to_a_decision_path_reaches_its_handler_without_the_router():
    layer, reached = make_layer()
    sent, scope = run(layer, "POST", "/v1/decide")
    assert reached == ["decide"]
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"{}"
    assert scope["route"].path == "/v1/decide"  # the request log's route template


def test_other_methods_paths_and_mounts_go_through_the_application():
    layer, reached = make_layer()
    run(layer, "GET", "/v1/decide")
    run(layer, "POST", "/v1/decide/")
    run(layer, "POST", "/v1/execute")
    run(layer, "POST", "/v1/decide", root_path="/gk")
    assert reached == [
        "router GET /v1/decide",
        "router POST /v1/decide/",
        "router POST /v1/execute",
        "router POST /v1/decide",
    ]


def test_an_api_error_is_answered_as_the_application_answers_it():
    layer, _reached = make_layer()
    sent, _scope = run(layer, "POST", "/v1/data/gatekeeper/decision")
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 401
    assert headers[b"www-authenticate"] == b"Bearer"
    assert json.loads(sent[1]["body"]) == {"code": "unauthorized", "message": "missing bearer token"}
