"""``gatekeeper serve`` as a separate process, for tests that must kill it (-9) or load it from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from service_helpers import free_port

REPO = Path(__file__).resolve().parents[2]
# Decision content does not matter to the load and fault tests; a one-rule policy keeps them fast.
ALLOW_ALL_POLICY = """package gatekeeper

decision := {"decision": "allow", "violations": [], "mode": "enforce"}
"""


def allow_all_policies(directory: Path) -> Path:
    (directory / "gatekeeper").mkdir(parents=True, exist_ok=True)
    (directory / "gatekeeper" / "main.rego").write_text(ALLOW_ALL_POLICY)
    return directory


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill_hard(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no close; reaped before returning."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def serve_process(
    workdir: Path, audit_log: Path, policies: Path, *extra: str, startup_s: float = 60.0
) -> Iterator[ServeProcess]:
    """Start ``gatekeeper serve`` on a free loopback port; always stopped (and reaped) afterwards."""
    port = free_port()
    command = [
        sys.executable, "-m", "gatekeeper", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--audit-log", str(audit_log), "--policies", str(policies), "--no-access-log", *extra,
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEKEEPER_")}
    log_path = workdir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=workdir)
    served = ServeProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gatekeeper serve exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(served.url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gatekeeper serve did not answer within {startup_s:g}s")
            time.sleep(0.05)
        yield served
    finally:
        served.stop()


def audit_verify(audit_log: Path) -> subprocess.CompletedProcess[str]:
    """``gatekeeper audit verify`` exactly as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", "audit", "verify", str(audit_log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
