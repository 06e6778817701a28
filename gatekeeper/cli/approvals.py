"""``gatekeeper approvals list|approve|deny``: answer ``ask`` decisions of a running service."""

from __future__ import annotations

import os
from typing import Annotated, Any

import httpx
import typer

from gatekeeper.cli.options import fail, print_json

DEFAULT_URL = "http://127.0.0.1:8700"

app = typer.Typer(help="List, approve and deny pending approvals of a running gatekeeper service.")

Url = Annotated[
    str | None, typer.Option("--url", help=f"Service address (default $GATEKEEPER_URL or {DEFAULT_URL}).")
]
Token = Annotated[
    str | None,
    typer.Option("--token", help="Admin token (default $GATEKEEPER_ADMIN_TOKEN).", show_default=False),
]
Reason = Annotated[str | None, typer.Option("--reason", help="Why; recorded in the audit log.")]
ApprovalId = Annotated[str, typer.Argument(help="The approval id (the ask decision's decision_id).")]


@app.command("list")
def list_approvals(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, approved, denied or expired (default: pending).")
    ] = "pending",
    all_: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON answer.")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List approvals, oldest first: id, status, session and the command."""
    params = {} if all_ or not status else {"status": status}
    body = _request("GET", "/v1/approvals", url, token, params=params)
    approvals = body.get("approvals", [])
    if as_json:
        print_json(body, pretty=True)
        return
    if not approvals:
        typer.echo("no approvals")
    for approval in approvals:
        call = approval.get("call") or {}
        what = (call.get("arguments") or {}).get("command") or call.get("tool")
        rules = ",".join(v.get("rule", "?") for v in (approval.get("decision") or {}).get("violations", []))
        typer.echo(
            f"{approval['id']}  {approval['status']:8}  session={call.get('session_id') or '-'}  "
            f"rules={rules or '-'}  {what}"
        )


@app.command("approve")
def approve(approval_id: ApprovalId, reason: Reason = None, url: Url = None, token: Token = None) -> None:
    """Approve: the waiting /v1/execute call runs (or, in pending mode, gatekeeper runs it now)."""
    _resolve(approval_id, "approve", reason, url, token)


@app.command("deny")
def deny(approval_id: ApprovalId, reason: Reason = None, url: Url = None, token: Token = None) -> None:
    """Deny: the call is refused and the agent is told why."""
    _resolve(approval_id, "deny", reason, url, token)


def _resolve(approval_id: str, action: str, reason: str | None, url: str | None, token: str | None) -> None:
    body = _request(
        "POST", f"/v1/approvals/{approval_id}", url, token, json={"action": action, "reason": reason}
    )
    typer.echo(f"{body['id']}: {body['status']}")


def _request(method: str, path: str, url: str | None, token: str | None, **kwargs: Any) -> dict[str, Any]:
    base = url or os.environ.get("GATEKEEPER_URL") or DEFAULT_URL
    secret = token or os.environ.get("GATEKEEPER_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        response = httpx.request(method, base.rstrip("/") + path, headers=headers, timeout=10.0, **kwargs)
    except httpx.HTTPError as error:
        raise fail(f"cannot reach {base}: {error}") from error
    try:
        body: Any = response.json()
    except ValueError:
        body = {"message": response.text}
    if response.status_code >= 400:
        code = 1 if response.status_code in (404, 409) else 2
        raise fail(f"{response.status_code} {body.get('code', '')}: {body.get('message', '')}", code=code)
    return body if isinstance(body, dict) else {"value": body}
