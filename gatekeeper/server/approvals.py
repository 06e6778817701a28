"""Pending approvals: an ``ask`` decision on ``/v1/execute`` waits here for a human's verdict.

An approval's id is the decision id of the ``ask`` it answers, so the audit log links the decision,
the verdict (``approval_resolved``) and the execution (``execution_finished``) by one id.

States: ``pending`` → ``approved`` | ``denied`` | ``expired``; a resolved approval never changes again.
The store is bounded: at most ``max_pending`` pending approvals (a further ``ask`` is refused) and the
``keep_resolved`` most recent resolved ones. Waiters are asyncio tasks of the serving loop; a verdict
given from any thread wakes them through the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gatekeeper.errors import ErrorCode, GatekeeperError
from gatekeeper.models import Decision, ToolCall
from gatekeeper.server.config import ApprovalSettings

Status = Literal["pending", "approved", "denied", "expired"]
Verdict = Literal["approve", "deny"]


class ApprovalError(GatekeeperError):
    """An approval that does not exist, is already resolved, or cannot be created."""


@dataclass(slots=True)
class Approval:
    id: str
    call: ToolCall
    decision: Decision
    on_ask: str
    created_at: float
    expires_at: float
    status: Status = "pending"
    resolved_at: float | None = None
    resolved_by: str | None = None
    reason: str | None = None
    execution: dict[str, Any] | None = None
    recorded: bool = False  # the verdict is in the audit log (an unrecorded approval runs nothing)
    _event: asyncio.Event | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def public(self, *, full: bool = True) -> dict[str, Any]:
        """The JSON form; ``full=False`` (the agent's view) leaves out who resolved it."""
        view: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "resolved_at": self.resolved_at,
            "reason": self.reason,
            "call": self.call.model_dump(mode="json", exclude_none=True),
            "decision": self.decision.model_dump(mode="json"),
            "execution": self.execution,
        }
        if full:
            view["resolved_by"] = self.resolved_by
        return view


class ApprovalStore:
    """Thread-safe, bounded store of approvals."""

    def __init__(
        self, settings: ApprovalSettings, *, on_resolved: Callable[[Approval], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_resolved = on_resolved
        self._pending: dict[str, Approval] = {}
        self._resolved: OrderedDict[str, Approval] = OrderedDict()
        self._finished: list[Approval] = []
        self._lock = threading.Lock()

    def create(self, call: ToolCall, decision: Decision) -> Approval:
        """A pending approval for ``decision`` (call from the serving loop, so waiters can be woken)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        now = time.time()
        approval = Approval(
            id=decision.decision_id,
            call=call,
            decision=decision,
            on_ask=self.settings.on_ask,
            created_at=now,
            expires_at=now + self.settings.ttl_s,
            _event=asyncio.Event() if loop is not None else None,
            _loop=loop,
        )
        with self._lock:
            self._expire_locked(now)
            if len(self._pending) >= self.settings.max_pending:
                raise ApprovalError(
                    f"{len(self._pending)} approvals are already pending (limit {self.settings.max_pending})",
                    code=ErrorCode.TOO_MANY_APPROVALS,
                )
            self._pending[approval.id] = approval
        self._report()
        return approval

    def get(self, approval_id: str) -> Approval | None:
        with self._lock:
            self._expire_locked(time.time())
            approval = self._pending.get(approval_id) or self._resolved.get(approval_id)
        self._report()
        return approval

    def list(self, status: str | None = None) -> list[Approval]:
        with self._lock:
            self._expire_locked(time.time())
            everything = [*self._pending.values(), *self._resolved.values()]
        self._report()
        chosen = [a for a in everything if status is None or a.status == status]
        return sorted(chosen, key=lambda a: a.created_at)

    def pending_count(self) -> int:
        with self._lock:
            self._expire_locked(time.time())
            count = len(self._pending)
        self._report()
        return count

    def resolve(self, approval_id: str, verdict: Verdict, *, by: str, reason: str | None = None) -> Approval:
        """Approve or deny a pending approval; ApprovalError if unknown or no longer pending."""
        status: Status = "approved" if verdict == "approve" else "denied"
        try:
            with self._lock:
                self._expire_locked(time.time())
                approval = self._pending.get(approval_id)
                if approval is None:
                    known = self._resolved.get(approval_id)
                    if known is None:
                        raise ApprovalError(f"no approval {approval_id}", code=ErrorCode.NOT_FOUND)
                    raise ApprovalError(
                        f"approval {approval_id} is already {known.status}", code=ErrorCode.APPROVAL_CONFLICT
                    )
                self._finish_locked(approval, status, by=by, reason=reason)
        finally:
            self._report()
        return approval

    def expire(self, approval_id: str, *, reason: str) -> Approval | None:
        """Expire ``approval_id`` if still pending (a waiter gave up); the approval as it now stands."""
        with self._lock:
            approval = self._pending.get(approval_id)
            if approval is not None:
                self._finish_locked(approval, "expired", by="gatekeeper", reason=reason)
            else:
                approval = self._resolved.get(approval_id)
        self._report()
        return approval

    async def wait(self, approval: Approval, timeout_s: float) -> Status:
        """Wait until ``approval`` is resolved or ``timeout_s`` passes; its status then."""
        remaining = min(timeout_s, approval.expires_at - time.time())
        if approval.status == "pending" and approval._event is not None and remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(approval._event.wait(), timeout=remaining)
        if approval.status == "pending":
            self.expire(approval.id, reason=f"no verdict within {timeout_s:g}s")
        return approval.status

    # -- internals ---------------------------------------------------------------------------------

    def _report(self) -> None:
        """Tell ``on_resolved`` (the audit log) of approvals finished under the lock, then wake waiters."""
        with self._lock:
            finished, self._finished = self._finished, []
        for approval in finished:
            # Record the verdict first: a waiter that wakes may act on it at once.
            if self.on_resolved is not None:
                self.on_resolved(approval)
            event, loop = approval._event, approval._loop
            if event is not None and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def _finish_locked(self, approval: Approval, status: Status, *, by: str, reason: str | None) -> None:
        self._finished.append(approval)
        approval.status = status
        approval.resolved_at = time.time()
        approval.resolved_by = by
        approval.reason = reason
        self._pending.pop(approval.id, None)
        if self.settings.keep_resolved:
            self._resolved[approval.id] = approval
            while len(self._resolved) > self.settings.keep_resolved:
                self._resolved.popitem(last=False)

    def _expire_locked(self, now: float) -> None:
        for approval in [a for a in self._pending.values() if a.expires_at <= now]:
            self._finish_locked(approval, "expired", by="gatekeeper", reason="no verdict before it expired")
