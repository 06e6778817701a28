"""Run the pinned ``opa`` binary as a local policy server on a loopback port, and stop it cleanly.

Used by ``gatekeeper opa run`` and by the test fixtures. The server is ``opa run --server`` bound to
``127.0.0.1:PORT``, loaded with the given paths (normally one gatekeeper bundle, so decisions carry
the bundle's revision in their provenance). :meth:`OpaProcess.start` returns only once ``GET /health``
answers 200 (with ``?bundles`` when bundles are loaded); :meth:`OpaProcess.stop` sends SIGTERM,
then SIGKILL after a grace period, and always reaps the child, so no ``opa`` outlives its owner.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gatekeeper.errors import EngineUnavailable
from gatekeeper.policy.bundle import bundle_bytes, replace_atomically
from gatekeeper.policy.loader import load_policy_source
from gatekeeper.policy.opa_binary import find_opa

LOOPBACK = "127.0.0.1"
# Go's garbage collector target for the OPA child. At Go's default (100) collection took about a
# quarter of OPA's CPU on the pack's decisions; 400 saves most of that for about 40 MB more
# memory (docs/opa.md, "OPA's garbage collector"). A GOGC in gatekeeper's environment wins.
OPA_GOGC = "400"
_INSTALL_HINT = (
    "run scripts/install-opa.sh (it runs `go install github.com/open-policy-agent/opa@$(cat OPA_VERSION)`) "
    "or set GATEKEEPER_OPA to an opa binary"
)


class OpaProcessError(EngineUnavailable):
    """The local OPA server could not be started (binary missing, bad policies, port taken)."""


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on loopback now (with SO_REUSEADDR, as Go's listener does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def free_loopback_port() -> int:
    """A loopback TCP port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def opa_environment() -> dict[str, str]:
    """The environment an OPA child runs with: this process's, plus ``GOGC`` if it has none."""
    environment = dict(os.environ)
    environment.setdefault("GOGC", OPA_GOGC)
    return environment


def opa_child_pids(parent: int | None = None) -> list[int]:
    """Ids of ``opa`` processes whose parent is ``parent`` (default: this process), zombies included.

    Linux only (reads ``/proc``); used to prove that no OPA outlives its owner.
    """
    parent = parent or os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may itself contain spaces and parentheses.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and comm == "opa":
            found.append(int(entry.name))
    return found


class OpaProcess:
    """One ``opa run --server`` child process on a loopback port.

    ``paths`` are what OPA loads (``--bundle`` when ``bundle`` is true, the default); ``watch`` adds
    ``--watch`` so OPA reloads them when they change on disk. Use as a context manager, or call
    :meth:`start` and :meth:`stop`. OPA's own log goes to ``log`` (a file object) or, by default, to a
    temporary file whose tail is quoted when OPA fails to start.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        port: int | None = None,
        bundle: bool = True,
        watch: bool = False,
        binary: str | os.PathLike[str] | None = None,
        log: IO[bytes] | None = None,
        log_level: str = "error",
        extra_args: Sequence[str] = (),
        ready_timeout_s: float = 15.0,
    ) -> None:
        found = Path(binary) if binary is not None else find_opa()
        if found is None:
            raise OpaProcessError(f"the opa binary is not installed: {_INSTALL_HINT}")
        self.binary = found
        self.paths = [Path(p) for p in paths]
        self.bundle = bundle
        self.watch = watch
        self.requested_port = port
        self.port = port or 0
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self._log = log
        self._own_log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The exact ``opa run`` command line (for logs and docs)."""
        argv = [
            str(self.binary),
            "run",
            "--server",
            "--addr",
            f"{LOOPBACK}:{self.port}",
            "--skip-version-check",
            "--log-level",
            self.log_level,
            # A short grace period: a stopped gatekeeper-managed OPA has no clients left to drain.
            "--shutdown-grace-period",
            "1",
        ]
        if self.bundle:
            argv.append("--bundle")
        if self.watch:
            argv.append("--watch")
        argv.extend(self.extra_args)
        argv.extend(str(path) for path in self.paths)
        return argv

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> OpaProcess:
        """Start OPA and wait until it is healthy; raises OpaProcessError (and leaves nothing running)."""
        if self.running:
            return self
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            if not self.requested_port:
                self.port = free_loopback_port()
            elif not port_is_free(self.port):
                # Checked first: another server on the port would answer our health check.
                raise OpaProcessError(f"cannot listen on {LOOPBACK}:{self.port}: address already in use")
            try:
                self._spawn()
                self._wait_until_healthy()
                return self
            except OpaProcessError as error:
                log_tail = self.log_tail()
                self.stop()
                # Another process may take a "free" port between probe and bind: try a fresh one.
                if "address already in use" in log_tail and attempt + 1 < attempts:
                    continue
                raise OpaProcessError(f"{error.message}\n{log_tail}".rstrip()) from None
        raise OpaProcessError("opa could not bind a loopback port")  # pragma: no cover - loop returns

    def _spawn(self) -> None:
        if self._log is None and self._own_log is None:
            self._own_log = tempfile.TemporaryFile(prefix="gatekeeper-opa-", suffix=".log")  # noqa: SIM115
        sink = self._log if self._log is not None else self._own_log
        if sink is self._own_log and self._own_log is not None:
            self._own_log.seek(0)
            self._own_log.truncate()
        try:
            self._process = subprocess.Popen(
                self.command(),
                env=opa_environment(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                # Its own session: a Ctrl-C in the terminal reaches gatekeeper, which stops OPA in order.
                start_new_session=True,
            )
        except OSError as error:
            raise OpaProcessError(f"cannot start {self.binary}: {error}") from error

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        health = f"{self.url}/health" + ("?bundles" if self.bundle else "")
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self._process is not None  # noqa: S101 - set by _spawn
            code = self._process.poll()
            if code is not None:
                raise OpaProcessError(f"opa exited with code {code} before it was ready")
            try:
                with urllib.request.urlopen(health, timeout=1.0) as response:  # noqa: S310 - loopback http
                    # Only our opa counts: one that failed to bind exits, whoever else answered.
                    if response.status == 200 and self._process.poll() is None:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                last = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(0.05)
        raise OpaProcessError(f"opa was not healthy at {health} within {self.ready_timeout_s:g}s ({last})")

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait for OPA to exit (after a signal sent by someone else); returns its exit code."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 5.0) -> int | None:
        """Stop OPA (SIGTERM, then SIGKILL after ``grace_s``) and reap it; returns its exit code."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                    # A SIGSTOPped process only acts on SIGTERM once continued.
                    process.send_signal(signal.SIGCONT)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait()
            code = process.returncode
        return code

    def close(self) -> None:
        self.stop()
        if self._own_log is not None:
            self._own_log.close()
            self._own_log = None

    def log_tail(self, limit: int = 2000) -> str:
        """The end of OPA's own log (when gatekeeper owns the log file)."""
        if self._own_log is None:
            return ""
        self._own_log.flush()
        self._own_log.seek(0, os.SEEK_END)
        size = self._own_log.tell()
        self._own_log.seek(max(0, size - limit))
        return self._own_log.read().decode("utf-8", "replace").strip()

    def __enter__(self) -> OpaProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Last resort only; owners call stop()/close(). Never leave an opa child behind.
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()
                process.wait(timeout=5)


class ManagedOpa:
    """The policy pack served by a gatekeeper-managed OPA.

    The policies are written as a bundle (``.manifest`` revision = the pack's revision) into a
    private run directory, ``<run>/bundle/gatekeeper.tar.gz``, and OPA serves that one file
    (``opa run --server --bundle FILE``, plus ``--watch`` when ``watch``). A later version of the
    pack is published by replacing the file atomically (see :mod:`gatekeeper.policy.reload`); OPA
    then activates it in one transaction, or keeps the previous bundle if it does not load.
    """

    BUNDLE_FILE = "gatekeeper.tar.gz"

    def __init__(
        self,
        policy_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        watch: bool = False,
        binary: str | os.PathLike[str] | None = None,
        log: IO[bytes] | None = None,
        log_level: str = "error",
        run_dir: str | os.PathLike[str] | None = None,
        ready_timeout_s: float = 15.0,
    ) -> None:
        self.policy_dir = policy_dir
        self.watch = watch
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gatekeeper-opa-")
            run_dir = self._tmp.name
        self.run_dir = Path(run_dir)
        self.bundle_path = self.run_dir / "bundle" / self.BUNDLE_FILE
        # Staged bundles are written outside the directory OPA watches, then renamed into it.
        self.staging_dir = self.run_dir / "staging"
        self.revision: str | None = None
        self.process = OpaProcess(
            [self.bundle_path],
            port=port,
            watch=watch,
            binary=binary,
            log=log,
            log_level=log_level,
            ready_timeout_s=ready_timeout_s,
        )

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def binary(self) -> Path:
        return self.process.binary

    def start(self) -> ManagedOpa:
        """Write the bundle of the current policies and start OPA on it (PolicyLoadError, OpaProcessError)."""
        source = load_policy_source(self.policy_dir)
        self.bundle_path.parent.mkdir(parents=True, exist_ok=True)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        replace_atomically(self.bundle_path, bundle_bytes(source), staging_dir=self.staging_dir)
        try:
            self.process.start()
        except OpaProcessError:
            self.close()
            raise
        self.revision = source.revision
        return self

    def stop(self) -> None:
        self.process.stop()

    def close(self) -> None:
        self.process.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ManagedOpa:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()
