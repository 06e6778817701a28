"""``gatekeeper opa run`` (a local OPA loaded with the policy pack) and ``gatekeeper policies build``."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import structlog
import typer

from gatekeeper.cli.options import PoliciesDir, fail
from gatekeeper.errors import GatekeeperError
from gatekeeper.policy.bundle import DEFAULT_BUNDLE_NAME, build_bundle
from gatekeeper.policy.opa_binary import find_opa

if TYPE_CHECKING:
    from gatekeeper.policy.reload import ReloadResult

app = typer.Typer(help="Run the pinned OPA as a local policy server.", no_args_is_help=True)
policies_app = typer.Typer(help="Package the policy pack for OPA.", no_args_is_help=True)


@app.command("run")
def run(
    port: Annotated[
        int, typer.Option("--port", "-p", help="Loopback port (0: any free port).", min=0, max=65535)
    ] = 8181,
    policies: PoliciesDir = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Reload when a file under the policy directory changes.")
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="OPA's log level: debug, info, error.")
    ] = "error",
) -> None:
    """Serve the policy pack with the pinned opa on 127.0.0.1:PORT until interrupted.

    The pack is loaded as a bundle whose revision is the pack's revision, so decisions made through
    `gatekeeper check --engine opa` carry the same revision as the embedded engine's. With --watch a
    policy that does not compile is rejected and the last good revision keeps answering.
    """
    from gatekeeper.policy.opa_process import ManagedOpa  # noqa: PLC0415 - only this command needs it
    from gatekeeper.policy.reload import OpaBundleReloader, PolicyWatcher  # noqa: PLC0415

    # Reload outcomes are this command's output: readable lines on stderr (the compiler's message
    # keeps its line breaks), instead of the structured events a service would log.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    )
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    opa = ManagedOpa(policies, port=port or None, watch=watch, log=sys.stderr.buffer, log_level=log_level)
    watcher: PolicyWatcher | None = None
    try:
        try:
            opa.start()
            if watch:
                watcher = PolicyWatcher(policies, [OpaBundleReloader(opa)], on_reload=report_reload)
                watcher.start()
        except GatekeeperError as error:
            raise fail(error) from error
        typer.echo(
            f"opa {opa.binary} serving revision {opa.revision} at {opa.url} (pid {opa.pid})"
            + (", watching for policy changes" if watch else ""),
            err=True,
        )
        typer.echo(f"decide with: gatekeeper check --engine opa --opa-url {opa.url} '<command>'", err=True)
        while not stop.wait(0.5):
            if not opa.process.running:
                raise fail("opa exited unexpectedly")
    finally:
        if watcher is not None:
            watcher.stop()
        opa.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("opa stopped", err=True)


def report_reload(results: list[ReloadResult]) -> None:
    """Say on stderr what a reload did; nothing when an edit left the policies unchanged."""
    for result in results:
        if result.changed or not result.ok:
            typer.echo(result.describe(), err=True)


@policies_app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Bundle file to write.")] = Path(
        DEFAULT_BUNDLE_NAME
    ),
    policies: PoliciesDir = None,
    opa_check: Annotated[
        bool,
        typer.Option(
            "--opa-check/--no-opa-check", help="Also have the opa binary check the bundle, if found."
        ),
    ] = True,
) -> None:
    """Write the policy pack as an OPA bundle (.tar.gz with a .manifest revision) for an OPA fleet.

    Serve it from any bundle server, or try it locally with: opa run --server --bundle FILE
    """
    try:
        binary = find_opa() if opa_check else None
        info = build_bundle(policies, output, opa_binary=binary)
    except GatekeeperError as error:
        raise fail(error) from error
    checked = "compiled by regopy" + (f" and checked by {binary}" if binary is not None else "")
    typer.echo(
        f"wrote {info.path}: revision {info.revision}, {len(info.files)} files, {info.size} bytes ({checked})"
    )
