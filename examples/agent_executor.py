"""A tiny agent-side tool executor that runs shell commands through a gatekeeper service.

Instead of ``subprocess.run(command, shell=True)``, an agent loop calls :func:`run_shell`, which
posts the call to ``POST /v1/execute``. gatekeeper analyses and decides it, records the decision in its
audit log and, only if allowed, runs it and returns the output. What comes back is always a string
the model can read: the command's output, or the refusal gatekeeper wrote for the model.

    gatekeeper serve &                                   # loopback, no token needed
    python examples/agent_executor.py "ls -la"
    python examples/agent_executor.py --session s1 "cp -r ~/models/llama /tmp/x"

Standard library only, so it drops into any agent code base. Settings: ``--url`` (default
``$GATEKEEPER_URL`` or http://127.0.0.1:8700) and ``--token`` (default ``$GATEKEEPER_AGENT_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any


class Gateway:
    """Where the agent's tool calls go."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout_s: float = 120.0) -> None:
        self.url = (url or os.environ.get("GATEKEEPER_URL") or "http://127.0.0.1:8700").rstrip("/")
        self.token = token or os.environ.get("GATEKEEPER_AGENT_TOKEN")
        self.timeout_s = timeout_s

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:  # 4xx/5xx still carry a JSON {code, message, ...}
            return error.code, json.load(error)


def run_shell(gateway: Gateway, command: str, *, session_id: str, cwd: str | None = None) -> str:
    """Run ``command`` through gatekeeper; the text to hand back to the model as the tool result."""
    call = {
        "id": str(uuid.uuid4()),
        "tool": "shell",
        "arguments": {"command": command},
        "session_id": session_id,
        "cwd": cwd or os.getcwd(),
    }
    status, body = gateway.post("/v1/execute", call)
    if status == 200:
        result = body["result"]
        text = result["stdout"] + (f"\n[stderr]\n{result['stderr']}" if result["stderr"] else "")
        notes = [f"exit code {result['exit_code']}"]
        if result["timed_out"]:
            notes.append("timed out and was killed")
        if result["truncated"]:
            notes.append("output truncated")
        if body.get("notice"):
            notes.append(body["notice"])
        return f"{text}\n[{'; '.join(notes)}]"
    if status == 403:  # blocked by policy (or an approval was denied or expired): nothing ran
        return f"[refused] {body['message']}"
    if status == 202:  # a human must approve it first; the agent may poll the approval and move on
        return f"[waiting for approval] {body['message']}"
    # 400/401/413/422/5xx: a problem with the call or the setup, not a policy decision.
    raise RuntimeError(f"gatekeeper answered {status}: {body.get('code')}: {body.get('message')}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one shell command through gatekeeper.")
    parser.add_argument("command")
    parser.add_argument("--session", default=f"example-{os.getpid()}", help="session id")
    parser.add_argument("--url")
    parser.add_argument("--token")
    args = parser.parse_args()
    gateway = Gateway(args.url, args.token)
    try:
        print(run_shell(gateway, args.command, session_id=args.session))
    except (RuntimeError, OSError) as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
