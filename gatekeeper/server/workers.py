"""Several worker processes behind one port: ``gatekeeper serve --workers N``.

One Python process decides on about one core (the interpreter lock is shared by the event loop and
the deciding threads), so using more cores takes more processes. The supervisor binds N listening
sockets to the same address with ``SO_REUSEPORT`` (the kernel spreads new connections over them),
starts one worker process per socket, and restarts a worker that dies.

What a single process guaranteed still holds:

- **Sessions**: a session belongs to one worker (CRC-32 of its id, modulo N). A call that reaches
  another worker is forwarded to the owner over a private Unix socket (:mod:`gatekeeper.server.peers`),
  so sequence rules see the whole history and the calls of a session are decided one at a time.
- **The audit log**: every worker appends to the same hash chain (``flock`` and chain catch-up, see
  :mod:`gatekeeper.audit`); each decision is recorded once, by the worker that made it.
- **Metrics**: ``/metrics`` on any worker gathers every worker's samples, labelled ``worker``.
- **Reloads**: an admin reload reaches every worker; the policy watcher runs in each.
- **Approvals** are kept by the worker that decided the call; the approval routes ask the other
  workers for an approval they do not have, so a verdict reaches (and wakes) the worker waiting on it.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

from gatekeeper.errors import InputError
from gatekeeper.server.config import ServiceConfig

log = structlog.get_logger("gatekeeper.server")

# A worker that keeps dying is not restarted forever: more than this many exits within the window stop
# the whole service (a broken policy directory or audit log would otherwise spin).
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
# A worker's exit status when the service cannot be built (policies do not compile, audit log not
# writable): restarting it would fail the same way, so the supervisor stops instead.
CANNOT_START = 3


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """Which worker this process is, and how to reach the others (picklable, passed to each worker)."""

    count: int
    index: int
    runtime_dir: str
    peer_token: str

    def owner_of(self, session_id: str) -> int:
        """The worker that keeps ``session_id``: the same answer in every process (unlike ``hash``)."""
        return zlib.crc32(session_id.encode("utf-8", "surrogatepass")) % self.count

    def socket_path(self, index: int) -> str:
        return os.path.join(self.runtime_dir, f"worker-{index}.sock")

    def peers(self) -> list[int]:
        return [index for index in range(self.count) if index != self.index]

    def for_worker(self, index: int) -> WorkerPlan:
        return WorkerPlan(self.count, index, self.runtime_dir, self.peer_token)


def bind_listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one address (``SO_REUSEPORT``); port 0 picks one free port for all."""
    try:
        family, _type, _proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise InputError(f"cannot resolve {host}: {error}") from error
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            listener = socket.socket(family, socket.SOCK_STREAM)
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind(address)
            listener.listen(2048)
            address = listener.getsockname()  # the first socket fixes the port for the rest
            listener.set_inheritable(True)
    except OSError as error:
        for listener in listeners:
            listener.close()
        raise InputError(f"cannot listen on {host}:{port}: {error}") from error
    return listeners


class Supervisor:
    """Starts the workers, restarts one that dies, and stops them all on SIGINT or SIGTERM."""

    def __init__(self, config: ServiceConfig, *, watch_policies: bool) -> None:
        self.config = config
        self.watch_policies = watch_policies
        self.count = config.server.workers
        self._stop = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess | None] = [None] * self.count
        self._exits: list[float] = []

    def run(self) -> int:
        """Serve until told to stop; the exit status for the command (0, or 1 when workers kept dying)."""
        settings = self.config.server
        listeners = bind_listeners(settings.host, settings.port, self.count)
        runtime_dir = tempfile.mkdtemp(prefix="gatekeeper-workers-")  # 0700: only this user reaches it
        plan = WorkerPlan(self.count, 0, runtime_dir, secrets.token_urlsafe(32))
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            port = listeners[0].getsockname()[1]
            for index in range(self.count):
                self._start(plan.for_worker(index), listeners[index])
            log.info("workers_started", workers=self.count, port=port, pids=self._pids())
            while not self._stop.wait(0.2):
                for index, process in enumerate(self._processes):
                    if process is None or process.is_alive() or self._stop.is_set():
                        continue
                    log.error("worker_exited", worker=index, pid=process.pid, exit_code=process.exitcode)
                    if process.exitcode == CANNOT_START:
                        log.error("workers_cannot_start", worker=index, reason="see worker_cannot_start")
                        status = 1
                        self._stop.set()
                        break
                    if not self._may_restart():
                        log.error("workers_failing", restarts=len(self._exits), window_s=RESTART_WINDOW_S)
                        status = 1
                        self._stop.set()
                        break
                    self._start(plan.for_worker(index), listeners[index])
        finally:
            self._stop_workers()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for listener in listeners:
                listener.close()
            shutil.rmtree(runtime_dir, ignore_errors=True)
            log.info("server_stopped", workers=self.count)
        return status

    def _start(self, plan: WorkerPlan, listener: socket.socket) -> None:
        process = self._context.Process(
            target=run_worker,
            args=(plan, self.config, listener, self.watch_policies, os.getpid()),
            name=f"gatekeeper-worker-{plan.index}",
        )
        process.start()
        self._processes[plan.index] = process
        log.info("worker_started", worker=plan.index, pid=process.pid)

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._exits = [at for at in self._exits if now - at < RESTART_WINDOW_S] + [now]
        return len(self._exits) <= MAX_RESTARTS

    def _pids(self) -> list[int | None]:
        return [process.pid if process is not None else None for process in self._processes]

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._stop.set()

    def _stop_workers(self) -> None:
        """SIGTERM (uvicorn finishes the requests under way, each decision is recorded), then wait."""
        running = [process for process in self._processes if process is not None and process.is_alive()]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 20.0
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker_killed", pid=process.pid, reason="did not stop within 20 s")
                process.kill()
                process.join()


def run_worker(
    plan: WorkerPlan,
    config: ServiceConfig,
    listener: socket.socket,
    watch_policies: bool,
    supervisor_pid: int,
) -> None:
    """One worker process: the whole service on the shared port and on its own Unix socket."""
    from gatekeeper.cli.serve import configure_logging, run_service  # noqa: PLC0415 - in the child only
    from gatekeeper.errors import GatekeeperError  # noqa: PLC0415

    configure_logging(worker=plan.index)
    _stop_with_supervisor(supervisor_pid)
    peer_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = plan.socket_path(plan.index)
    if os.path.exists(path):
        os.unlink(path)  # left by this worker's previous life
    peer_socket.bind(path)
    peer_socket.listen(1024)
    try:
        run_service(config, sockets=[listener, peer_socket], plan=plan, watch_policies=watch_policies)
    except GatekeeperError as error:
        log.error("worker_cannot_start", error=error.message)
        raise SystemExit(CANNOT_START) from None


def _stop_with_supervisor(supervisor_pid: int) -> None:
    """Stop gracefully (SIGTERM to itself) once the supervisor is gone, even if it was killed -9."""

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="gk-supervisor-watch", daemon=True).start()
