"""The mediation service: FastAPI over ``Gatekeeper.decide`` with sessions, approvals, auth and metrics.

config   ServerSettings / ServiceConfig: the ``server`` section of the config file
service  Service: decide (with sessions), execute, approvals, reload; no HTTP
app      create_app(service) -> FastAPI, routes in agent_api / admin_api, plumbing in http;
         uvicorn_config: how uvicorn serves it
workers  serve --workers N: the supervisor, and which worker keeps which session
peers    how workers reach each other: forwarding, gathering metrics, reloading
"""

from gatekeeper.server.app import create_app, uvicorn_config
from gatekeeper.server.config import ServerSettings, ServiceConfig, load_service_config
from gatekeeper.server.service import Service

__all__ = [
    "ServerSettings",
    "Service",
    "ServiceConfig",
    "create_app",
    "load_service_config",
    "uvicorn_config",
]
