"""The HTTP API: a FastAPI application over one :class:`~gatekeeper.server.service.Service`.

    GET  /health                          open     liveness, policy revision, mode
    GET  /metrics                         open*    Prometheus text (*agent token when configured so)
    POST /v1/decide                       agent    ToolCall → Decision; nothing runs
    POST /v1/execute                      agent    decide, and run the command if allowed
    POST /v1/data/gatekeeper/decision     agent    OPA Data API: {"input": ToolCall} → {"result": …}
    GET  /v1/sessions/{id}                agent    the session's recent calls and decisions
    GET  /v1/approvals/{id}               agent    one approval (poll it after a 202)
    GET  /v1/approvals                    admin    approvals, ?status=pending
    POST /v1/approvals/{id}               admin    {"action": "approve"|"deny", "reason": ...}
    POST /v1/admin/reload                 admin    re-read and compile the policies

Errors are ``{code, message}`` with a code from :class:`~gatekeeper.errors.ErrorCode`; an answer
about a decision also carries the ``decision``. Bodies are read with a size limit before parsing, and
the decision routes audit every request they answer, unreadable and oversize ones included.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gatekeeper._version import __version__
from gatekeeper.server.admin_api import AdminApi
from gatekeeper.server.agent_api import AgentApi
from gatekeeper.server.config import ServerSettings
from gatekeeper.server.fastpath import DecisionFastPath
from gatekeeper.server.http import (
    ApiContext,
    RequestLogMiddleware,
    install_error_handlers,
    json_response,
    log,
)
from gatekeeper.server.metrics import CONTENT_TYPE, merge_worker_metrics
from gatekeeper.server.openapi import PROMETHEUS_TEXT, HealthAnswer, answers, install_openapi
from gatekeeper.server.peers import PeerApi, PeerError, Peers
from gatekeeper.server.service import Service


def fastapi_telemetry(*, enabled: bool) -> dict[str, Any]:
    """FastAPI's keyword for its own OpenTelemetry instrumentation (FastAPI 0.16x and later): left
    as it is when ``enabled``, else off. gatekeeper has its own metrics and request log; FastAPI
    looks for configured OpenTelemetry providers (environment variables included) on every request
    even when there are none: 3-4% of the CPU of a decision answered from the cache."""
    if enabled or "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(service: Service) -> FastAPI:
    """The ASGI application serving ``service`` (which the caller owns and closes)."""
    peers = (
        Peers(service.plan, forward_timeout_s=service.config.exec.timeout_s + 60.0)
        if service.plan is not None
        else None
    )
    ctx = ApiContext.for_service(service, peers=peers)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Before the first request is taken: no early call waits for a deciding thread's compile.
        await asyncio.gather(*(asyncio.wrap_future(f) for f in service.prepare_deciding_threads()))
        yield
        await service.engine.aclose()  # the OPA engine's connections belong to this loop
        if peers is not None:
            peers.close()

    app = FastAPI(
        title="gatekeeper",
        version=__version__,
        description="Policy-gated command mediation: every tool call is analysed, decided and audited.",
        lifespan=lifespan,
        **fastapi_telemetry(enabled=service.settings.opentelemetry),
    )
    install_error_handlers(app)
    install_openapi(app)

    @app.get("/health", tags=["service"], responses=answers(HealthAnswer))
    async def health() -> Response:
        """Liveness, and which policies answer (with ``--workers``: the worker that answered)."""
        body: dict[str, object] = {
            "status": "ok",
            "version": __version__,
            "engine": service.engine.name,
            "policy_revision": service.engine.revision,
            "mode": service.config.mode.value if service.config.mode else None,
            "headless": service.headless,
        }
        if service.plan is not None:
            body |= {"worker": service.plan.index, "workers": service.plan.count}
        return json_response(200, body)

    @app.get("/metrics", tags=["service"], responses=PROMETHEUS_TEXT)
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition."""
        if service.settings.metrics_require_token:
            ctx.authorise(request, "agent")
        if peers is None:
            return Response(service.metrics.render(), media_type=CONTENT_TYPE)
        texts = {peers.plan.index: service.metrics.render().decode()}
        for index, answer in (await peers.ask_others("GET", "/internal/metrics")).items():
            if isinstance(answer, PeerError) or answer.status != 200:
                why = answer if isinstance(answer, PeerError) else f"HTTP {answer.status}"
                log.warning("worker_metrics_missing", worker=index, error=str(why))
                continue
            texts[index] = answer.body.decode()
        return Response(merge_worker_metrics(texts), media_type=CONTENT_TYPE)

    agent = AgentApi(ctx)
    routers = [agent.router(), AdminApi(ctx).router()]
    if peers is not None:
        routers.append(PeerApi(service, peers).router())
    for router in routers:
        app.include_router(router)
    # The routes with methods, for the Allow header of a 405 (app.routes holds each included router
    # as one route).
    app.state.method_routes = [
        *(route for route in app.routes if getattr(route, "methods", None)),
        *(route for router in routers for route in router.routes),
    ]
    # Added before the request log, so it runs inside it (add_middleware wraps what came earlier).
    app.add_middleware(
        DecisionFastPath,
        handlers={"/v1/decide": agent.decide, "/v1/data/gatekeeper/decision": agent.data_api},
    )
    access_log = structlog.wrap_logger(
        structlog.WriteLogger(sys.stderr),  # one write per line: workers share stderr
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )
    app.add_middleware(
        RequestLogMiddleware, service=service, logger=access_log, enabled=service.settings.access_log
    )
    return app


def uvicorn_config(app: FastAPI, settings: ServerSettings) -> uvicorn.Config:
    """How uvicorn serves ``app`` on the settings' address (or on sockets handed to ``run``)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,  # gatekeeper logs requests itself, as structured events
        server_header=False,
        # The request log names the peer that connected: a client on loopback (an agent) must not
        # rename itself with X-Forwarded-For, which uvicorn would otherwise believe from 127.0.0.1.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
