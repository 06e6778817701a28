"""Helpers for the service tests: a real uvicorn server on a loopback port, a real httpx client.

Most tests serve a :class:`ScriptedEngine` so each outcome (allow, deny, ask, warn, modes) can be
asked for by a marker in the command; the end-to-end tests serve the real policy pack.
The server runs in a thread of the test process (so a test can give it an engine object); the fault
test runs ``gatekeeper serve`` as a separate process it can kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from jsonschema import Draft202012Validator

from gatekeeper.audit import AuditLog
from gatekeeper.config import Config
from gatekeeper.server import ServerSettings, Service, ServiceConfig, create_app, uvicorn_config
from gatekeeper.server.workers import WorkerPlan

AGENT_TOKEN = "agent-secret-1"
ADMIN_TOKEN = "admin-secret-1"

DENY_VIOLATION = {
    "rule": "weights.copy",
    "family": "weights",
    "action": "deny",
    "message": "copies model weights /models/llama to /tmp/x",
}
ASK_VIOLATION = {"rule": "servers.listen", "family": "servers", "action": "ask", "message": "opens a port"}
WARN_VIOLATION = {"rule": "processes.nohup", "family": "processes", "action": "warn", "message": "detaches"}


def conforms(document: dict[str, Any], method: str, template: str, response: httpx.Response) -> None:
    """Assert that ``response`` is documented for the operation and its body fits the schema."""
    documented = document["paths"][template][method]["responses"]
    status = str(response.status_code)
    where = f"{method.upper()} {template} {status}"
    assert status in documented, f"{where} is not documented ({sorted(documented)})"
    media_type = response.headers["content-type"].split(";")[0].strip()
    content = documented[status].get("content", {})
    assert media_type in content, f"{where}: {media_type} is not documented ({sorted(content)})"
    if media_type == "application/json":
        schema = {**content[media_type]["schema"], "components": document["components"]}
        Draft202012Validator(schema).validate(response.json())


# Ordinary work and attacks of every family, for tests that compare decisions made two ways.
MIXED_COMMANDS = [
    "ls -la",
    "git status",
    "cp -r /models/llama /tmp/x",
    "python3 -m http.server 8000 &",
    "kill -9 1234",
    "grep -rn TODO src/ | wc -l",
    "echo Y3AgLXIgL21vZGVscyAvdG1w | base64 -d | sh",
    "tar czf /tmp/src.tgz src/",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ScriptedEngine:
    """A PolicyEngine deciding by markers in the command: ``#deny``, ``#ask``, ``#warn``, else allow.

    It applies ``input.context.mode`` the way the policy pack does (dry-run and observe allow and keep
    the would-be outcome in ``policy_decision``) and remembers every input document it was given.
    """

    name = "scripted"

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def revision(self) -> str | None:
        return "scripted-1"

    def evaluate(self, document: dict[str, Any]) -> Any:
        with self._lock:
            self.documents.append(document)
        command = str(document["call"].get("arguments", {}).get("command", ""))
        if "#deny" in command:
            outcome, violations = "deny", [DENY_VIOLATION]
        elif "#ask" in command:
            outcome, violations = "ask", [ASK_VIOLATION]
        elif "#warn" in command:
            outcome, violations = "warn", [WARN_VIOLATION]
        else:
            outcome, violations = "allow", []
        mode = document.get("context", {}).get("mode", "enforce")
        decision = outcome if mode == "enforce" or outcome not in ("deny", "ask") else "allow"
        return {"decision": decision, "policy_decision": outcome, "mode": mode, "violations": violations}

    def close(self) -> None:
        return None


class AwaitedScriptedEngine(ScriptedEngine):
    """The scripted engine, awaited on the service's event loop as OPA on loopback is; each query
    takes ``delay_s`` and the most queries at once are noted."""

    can_evaluate_async = True

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.running = 0
        self.most_at_once = 0

    async def evaluate_async(self, document: dict[str, Any]) -> Any:
        self.running += 1  # only ever touched on the event loop
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.delay_s)
            return self.evaluate(document)
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        return None


@dataclass
class Served:
    """A running server: its address, service, audit log path and clients for each role."""

    url: str
    service: Service
    audit_path: Path
    engine: Any
    server: uvicorn.Server
    thread: threading.Thread
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = AGENT_TOKEN, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kwargs)
        self.clients.append(client)
        return client

    @property
    def agent(self) -> httpx.Client:
        return self.client(AGENT_TOKEN)

    @property
    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def audit_records(self) -> list[dict[str, Any]]:
        import json  # noqa: PLC0415

        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.service.close()


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    *,
    engine: Any | None = None,
    core: dict[str, Any] | None = None,
    plan: WorkerPlan | None = None,
    **server: Any,
) -> Iterator[Served]:
    """Start a uvicorn server on a free loopback port serving a fresh Service; stop it afterwards."""
    engine = engine if engine is not None else ScriptedEngine()
    settings: dict[str, Any] = {
        "agent_tokens": [AGENT_TOKEN],
        "admin_tokens": [ADMIN_TOKEN],
        "access_log": False,
        "port": free_port(),
    }
    settings.update(server)
    audit_path = tmp_path / f"audit-{settings['port']}.jsonl"
    config = ServiceConfig(
        core=Config(audit_log=audit_path, **(core or {})), server=ServerSettings.model_validate(settings)
    )
    config.check()
    service = Service(config, engine=engine, audit=AuditLog(audit_path), plan=plan)
    uv = uvicorn.Server(uvicorn_config(create_app(service), config.server))  # as gatekeeper serve does
    thread = threading.Thread(target=uv.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    served = Served(
        url=f"http://127.0.0.1:{config.server.port}",
        service=service,
        audit_path=audit_path,
        engine=engine,
        server=uv,
        thread=thread,
    )
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as running:
        yield running


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start servers with custom settings inside a test: ``make_server(mode="dry-run", ...)``."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> Served:
            return stack.enter_context(serve(tmp_path, **kwargs))

        yield start


def shell(command: str, **fields: Any) -> dict[str, Any]:
    return {"tool": "shell", "arguments": {"command": command}, **fields}
