"""``gatekeeper serve``: run the mediation service (FastAPI on uvicorn)."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import structlog
import typer

from gatekeeper.cli.options import (
    AgentHome,
    AuditLogPath,
    ConfigFile,
    EmbeddedTimeout,
    EngineName,
    ModeOption,
    OpaTimeout,
    OpaUrl,
    PoliciesDir,
    fail,
)
from gatekeeper.errors import GatekeeperError

if TYPE_CHECKING:
    import socket
    from types import FrameType

    from gatekeeper.policy.reload import PolicyWatcher, ReloadResult
    from gatekeeper.server import Service, ServiceConfig
    from gatekeeper.server.workers import WorkerPlan


def serve(
    config_file: ConfigFile = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8700).", min=0, max=65535)] = None,
    approvals: Annotated[
        bool | None,
        typer.Option(
            "--approvals/--no-approvals", help="Let an admin approve ask decisions (needs an admin token)."
        ),
    ] = None,
    on_ask: Annotated[
        str | None,
        typer.Option("--on-ask", help="With approvals: wait (block /v1/execute) or pending (202)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="Threads deciding new calls, per worker (default: the CPU count for the embedded "
            "engine, 16 for OPA).",
            min=1,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes sharing the port (default 1); sessions stay with one worker.",
            min=1,
            max=64,
        ),
    ] = None,
    max_body: Annotated[
        int | None, typer.Option("--max-body", help="Request body limit, bytes.", min=1024)
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="Log every request (JSON, stderr).")
    ] = None,
    opa_cache_max_age: Annotated[
        float | None,
        typer.Option(
            "--opa-cache-max-age",
            help="With --engine opa: answer repeated calls from the cache while OPA answered within "
            "this many seconds (default 0: every call asks OPA).",
            min=0,
            max=60,
        ),
    ] = None,
    policies: PoliciesDir = None,
    engine: EngineName = None,
    opa_url: OpaUrl = None,
    opa_timeout: OpaTimeout = None,
    embedded_timeout: EmbeddedTimeout = None,
    mode: ModeOption = None,
    watch_policies: Annotated[
        bool,
        typer.Option(
            "--watch-policies/--no-watch-policies",
            help="Reload the embedded engine's policies when a file under them changes.",
        ),
    ] = True,
    agent_home: AgentHome = None,
    audit_log: AuditLogPath = None,
) -> None:
    """Serve the HTTP API: /v1/decide, /v1/execute, /v1/data/gatekeeper/decision, approvals, /metrics.

    Tokens come from the config file's server section or GATEKEEPER_AGENT_TOKENS and
    GATEKEEPER_ADMIN_TOKENS (comma-separated). Without an agent token the server only listens on a
    loopback address.
    """
    from gatekeeper.server import load_service_config  # noqa: PLC0415 - only this command needs it

    server_overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": threads,
        "workers": workers,
        "max_body_bytes": max_body,
        "access_log": access_log,
        "opa_cache_max_age_s": opa_cache_max_age,
    }
    try:
        config = load_service_config(
            config_file,
            core_overrides={
                "policies_dir": policies,
                "engine": engine,
                "opa_url": opa_url,
                "opa_timeout_s": opa_timeout,
                "embedded_timeout_s": embedded_timeout,
                "mode": mode,
                "agent_home": agent_home,
                "audit_log": audit_log,
            },
            server_overrides=server_overrides,
        )
        if approvals is not None or on_ask is not None:
            update: dict[str, Any] = {}
            if approvals is not None:
                update["enabled"] = approvals
            if on_ask is not None:
                if on_ask not in ("wait", "pending"):
                    raise fail("--on-ask must be wait or pending")
                update["on_ask"] = on_ask
            config.server.approvals = config.server.approvals.model_copy(update=update)
        config.check()
    except GatekeeperError as error:
        raise fail(error) from error
    configure_logging()
    if config.server.workers > 1:
        from gatekeeper.server.workers import Supervisor  # noqa: PLC0415

        try:
            status = Supervisor(config, watch_policies=watch_policies).run()
        except GatekeeperError as error:
            raise fail(error) from error
        raise typer.Exit(status)
    try:
        run_service(config, watch_policies=watch_policies)
    except GatekeeperError as error:
        raise fail(error) from error


def run_service(
    config: ServiceConfig,
    *,
    watch_policies: bool,
    sockets: list[socket.socket] | None = None,
    plan: WorkerPlan | None = None,
) -> None:
    """Build the service and serve it until SIGINT/SIGTERM: on its own address, or on ``sockets``
    handed over by the supervisor of ``--workers``. GatekeeperError when it cannot start."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server stack

    from gatekeeper.server import Service, create_app, uvicorn_config  # noqa: PLC0415
    from gatekeeper.server.collector import tune_for_service  # noqa: PLC0415

    service = Service(config, plan=plan)
    settings = config.server
    structlog.get_logger("gatekeeper.server").info(
        "server_starting",
        host=settings.host,
        port=sockets[0].getsockname()[1] if sockets else settings.port,
        engine=service.engine.name,
        policy_revision=service.engine.revision,
        mode=config.core.mode.value if config.core.mode else None,
        audit_log=str(service.audit.path),
        agent_auth="token" if settings.agent_tokens else "open (loopback only)",
        admin_api="enabled" if settings.admin_tokens else "disabled",
        headless=service.headless,
    )
    server = uvicorn.Server(uvicorn_config(create_app(service), settings))
    watcher = _watch_policies(service) if watch_policies else None
    tune_for_service()
    # uvicorn stops gracefully on SIGTERM, then raises it again: this handler turns that into a
    # normal exit, so the cleanup below runs (the default action would end the process first).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run(sockets=sockets)
    finally:
        if watcher is not None:
            watcher.stop()
        service.close()
        structlog.get_logger("gatekeeper.server").info("server_stopped")


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _watch_policies(service: Service) -> PolicyWatcher | None:
    """Hot reload for the embedded engine; an OPA server reloads itself (``opa run --watch``)."""
    from gatekeeper.policy.reload import watch_engine  # noqa: PLC0415

    def reloaded(results: list[ReloadResult]) -> None:
        for result in results:
            if result.changed:
                service.record_reload(result.previous, result.revision)
            elif result.error is not None:
                structlog.get_logger("gatekeeper.server").error(
                    "policy_reload_rejected", revision=result.previous, error=result.error.message
                )

    return watch_engine(service.engine, on_reload=reloaded)


def configure_logging(level: Literal["info", "warning"] = "info", *, worker: int | None = None) -> None:
    """Structured JSON log lines on stderr for the service's own events (naming the worker, if one)."""

    def add_worker(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if worker is not None:
            event.setdefault("worker", worker)
        return event

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            add_worker,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if level == "info" else logging.WARNING
        ),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),  # one write per line (workers share it)
        cache_logger_on_first_use=True,
    )
