"""The terminal the sandbox's agents call: ``POST /tool`` on a loopback port, served by the lab.

The agent program sends each of its tool calls here (``tool_url`` in its config), and the lab runs it
exactly like a scenario step of the arm under test: decided first in the gatekeeper arm, then executed
by the same :class:`~gatekeeper.lab.terminal.Terminal`. So a replica told to replicate again is
mediated like the agent that made it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ToolHandler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_BODY = 1 << 20


class AgentTerminalServer:
    """A small HTTP server on 127.0.0.1 (free port) that hands each /tool request to ``handler``."""

    def __init__(self, handler: ToolHandler | None = None) -> None:
        self.handler = handler
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/tool":
                    self._reply(404, {"error": "not found"})
                    return
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._reply(400, {"error": "expected a JSON object"})
                    return
                if not isinstance(request, dict) or owner.handler is None:
                    self._reply(400 if owner.handler else 503, {"error": "no terminal"})
                    return
                self._reply(200, owner.handler(request))

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tool"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5.0)
        self._server.server_close()

    def __enter__(self) -> AgentTerminalServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
