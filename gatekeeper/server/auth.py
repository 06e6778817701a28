"""Bearer-token authentication with two roles.

- ``agent``: may decide, execute, read its session and poll an approval by id.
- ``admin``: everything an agent may do, plus list and resolve approvals and reload policies.

No route lets an agent change policies, modes or the audit log. Without agent tokens configured the
agent routes are open, which :meth:`ServiceConfig.check` allows on loopback addresses only; the admin
routes always need an admin token, so with none configured they are disabled. Tokens are compared in
constant time and never logged: a principal is named by its role and position (``agent#1``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from gatekeeper.errors import ErrorCode

Role = Literal["agent", "admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    name: str


@dataclass(frozen=True, slots=True)
class AuthFailure:
    status: int
    code: ErrorCode
    message: str


ANONYMOUS_AGENT = Principal("agent", "anonymous")


class TokenAuth:
    def __init__(self, agent_tokens: list[str], admin_tokens: list[str]) -> None:
        self._tokens: list[tuple[bytes, Principal]] = [
            (token.encode(), Principal("agent", f"agent#{i}")) for i, token in enumerate(agent_tokens, 1)
        ] + [(token.encode(), Principal("admin", f"admin#{i}")) for i, token in enumerate(admin_tokens, 1)]
        self.agent_open = not agent_tokens
        self.admin_enabled = bool(admin_tokens)

    def identify(self, authorization: str | None) -> Principal | None:
        """The principal a well-formed ``Authorization: Bearer <token>`` header names, else ``None``."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = token.strip().encode()
        found: Principal | None = None
        for known, principal in self._tokens:  # compare with every token: no early exit to time
            if hmac.compare_digest(known, presented) and found is None:
                found = principal
        return found

    def authorise(self, authorization: str | None, role: Role) -> Principal | AuthFailure:
        principal = self.identify(authorization)
        if role == "agent":
            if principal is not None:
                return principal
            if self.agent_open and not authorization:
                return ANONYMOUS_AGENT
            return _unauthorised(authorization)
        if not self.admin_enabled:
            return AuthFailure(
                403, ErrorCode.FORBIDDEN, "no admin token is configured: the admin API is disabled"
            )
        if principal is None:
            return _unauthorised(authorization)
        if principal.role != "admin":
            return AuthFailure(403, ErrorCode.FORBIDDEN, "this route needs an admin token")
        return principal


def _unauthorised(authorization: str | None) -> AuthFailure:
    if not authorization:
        return AuthFailure(
            401, ErrorCode.UNAUTHORIZED, "missing bearer token (Authorization: Bearer <token>)"
        )
    return AuthFailure(401, ErrorCode.UNAUTHORIZED, "invalid bearer token")
