"""With nobody to approve, ``ask`` is ``deny``: a PolicyEngine layer that makes it so.

The policies see ``context.headless`` and normally turn ``ask`` into ``deny`` themselves; this layer is
the service's guarantee when they do not. It rewrites the engine's answer *before* it becomes a
Decision, so the audit record, the metrics and the caller all see the same ``deny``. The policy's own
``ask`` violations stay in the decision, and one more names the reason.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.errors import PolicyLoadError
from gatekeeper.policy.engine import AsyncPolicyEngine, InlinePolicyEngine, PolicyEngine

HEADLESS_RULE = "gatekeeper.headless_ask"
HEADLESS_MESSAGE = "this call needs a human's approval and no approver is configured, so ask is deny"


class HeadlessAskEngine:
    """Wraps ``inner``; when ``headless`` is true an ``ask`` answer becomes ``deny``."""

    def __init__(self, inner: PolicyEngine, *, headless: bool) -> None:
        self.inner = inner
        self.headless = headless
        self.name = inner.name

    @property
    def revision(self) -> str | None:
        return self.inner.revision

    def evaluate(self, document: dict[str, Any]) -> Any:
        return self._rewritten(self.inner.evaluate(document))

    @property
    def can_evaluate_async(self) -> bool:
        """Whether the inner engine answers :meth:`evaluate_async` (the OPA engine, on loopback)."""
        return bool(getattr(self.inner, "can_evaluate_async", False))

    async def evaluate_async(self, document: dict[str, Any]) -> Any:
        """The inner engine's :meth:`evaluate_async`, rewritten the same way (see can_evaluate_async)."""
        inner: AsyncPolicyEngine = self.inner  # type: ignore[assignment]
        return self._rewritten(await inner.evaluate_async(document))

    @property
    def can_evaluate_inline(self) -> bool:
        """Whether the inner engine answers :meth:`evaluate_briefly` (the wasm engine)."""
        return bool(getattr(self.inner, "can_evaluate_inline", False))

    def evaluate_briefly(self, document: dict[str, Any], budget_s: float) -> Any:
        """The inner engine's :meth:`evaluate_briefly`, rewritten the same way (see can_evaluate_inline)."""
        inner: InlinePolicyEngine = self.inner  # type: ignore[assignment]
        return self._rewritten(inner.evaluate_briefly(document, budget_s))

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if callable(aclose):
            await aclose()

    def _rewritten(self, result: Any) -> Any:
        if self.headless and isinstance(result, dict) and result.get("decision") == "ask":
            violations = result.get("violations")
            rewritten = dict(result)
            rewritten["decision"] = "deny"
            rewritten["policy_decision"] = "deny"
            rewritten["headless_rewrote"] = "ask"
            rewritten["violations"] = [
                *(violations if isinstance(violations, list) else []),
                {
                    "rule": HEADLESS_RULE,
                    "family": "gatekeeper",
                    "action": "deny",
                    "message": HEADLESS_MESSAGE,
                },
            ]
            return rewritten
        return result

    @property
    def can_reload(self) -> bool:
        return callable(getattr(self.inner, "reload", None))

    def reload(self) -> str | None:
        """Reload the inner engine's policies; PolicyLoadError (old policies kept) if they do not load."""
        reload = getattr(self.inner, "reload", None)
        if not callable(reload):
            raise PolicyLoadError(f"the {self.name} engine cannot reload policies itself")
        reload()
        return self.inner.revision

    @property
    def can_prepare(self) -> bool:
        return callable(getattr(self.inner, "prepare", None))

    def prepare(self) -> None:
        """Get the calling thread ready to evaluate, for an inner engine that compiles per thread."""
        prepare = getattr(self.inner, "prepare", None)
        if callable(prepare):
            prepare()

    def close(self) -> None:
        self.inner.close()
