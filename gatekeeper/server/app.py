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

import sys

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gatekeeper._version import __version__
from gatekeeper.server.admin_api import AdminApi
from gatekeeper.server.agent_api import AgentApi
from gatekeeper.server.fastpath import DecisionFastPath
from gatekeeper.server.http import ApiContext, RequestLogMiddleware, install_error_handlers, json_response
from gatekeeper.server.metrics import CONTENT_TYPE
from gatekeeper.server.service import Service


def create_app(service: Service) -> FastAPI:
    """The ASGI application serving ``service`` (which the caller owns and closes)."""
    ctx = ApiContext.for_service(service)
    app = FastAPI(
        title="gatekeeper",
        version=__version__,
        description="Policy-gated command mediation: every tool call is analysed, decided and audited.",
    )
    install_error_handlers(app)

    @app.get("/health", tags=["service"])
    async def health() -> Response:
        """Liveness, and which policies answer."""
        return json_response(
            200,
            {
                "status": "ok",
                "version": __version__,
                "engine": service.engine.name,
                "policy_revision": service.engine.revision,
                "mode": service.config.mode.value if service.config.mode else None,
                "headless": service.headless,
            },
        )

    @app.get("/metrics", tags=["service"])
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition."""
        if service.settings.metrics_require_token:
            ctx.authorise(request, "agent")
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    agent = AgentApi(ctx)
    app.include_router(agent.router())
    app.include_router(AdminApi(ctx).router())
    # Added before the request log, so it runs inside it (add_middleware wraps what came earlier).
    app.add_middleware(
        DecisionFastPath,
        handlers={"/v1/decide": agent.decide, "/v1/data/gatekeeper/decision": agent.data_api},
    )
    access_log = structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )
    app.add_middleware(
        RequestLogMiddleware, service=service, logger=access_log, enabled=service.settings.access_log
    )
    return app
