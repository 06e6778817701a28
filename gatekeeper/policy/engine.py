"""The policy engine protocol and the one function that turns an engine's answer into a Decision.

Every engine (embedded regopy, OPA over REST) returns the raw value of ``data.gatekeeper.decision``
or raises an :class:`~gatekeeper.errors.EngineError`. :func:`decision_from_result` is the only place
that interprets that value, and it fails closed: an error, an undefined result, a result of the wrong
shape or an unknown outcome all become ``deny`` with the reason named.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from gatekeeper.errors import ErrorCode, GatekeeperError
from gatekeeper.models import Decision, ErrorBody, Mode, Outcome, Violation

# The engines that compile the policies inside gatekeeper's process: their answers are cached, and
# they reload the policies themselves.
IN_PROCESS_ENGINES = frozenset({"embedded", "wasm"})

# Marks "the engine answered, but the document was undefined" apart from a JSON null result.
UNDEFINED: Any = type("Undefined", (), {"__repr__": lambda self: "UNDEFINED"})()


@runtime_checkable
class PolicyEngine(Protocol):
    """Evaluates the policy input document; knows nothing of tool calls or HTTP."""

    name: str

    @property
    def revision(self) -> str | None:
        """The revision of the policies that answer, ``None`` when none are loaded."""
        ...

    def evaluate(self, document: dict[str, Any]) -> Any:
        """The value of ``data.gatekeeper.decision`` for ``document``, or ``UNDEFINED``.

        Raises EngineError (or a subclass) when no answer could be obtained.
        """
        ...

    def close(self) -> None: ...


class AsyncPolicyEngine(PolicyEngine, Protocol):
    """An engine that can also be awaited on an event loop (the OPA engine)."""

    @property
    def can_evaluate_async(self) -> bool:
        """Whether :meth:`evaluate_async` answers exactly as :meth:`evaluate` would."""
        ...

    async def evaluate_async(self, document: dict[str, Any]) -> Any:
        """:meth:`PolicyEngine.evaluate` without blocking the event loop."""
        ...

    async def aclose(self) -> None:
        """Release what :meth:`evaluate_async` holds, from the loop that used it."""
        ...


class InlinePolicyEngine(PolicyEngine, Protocol):
    """An engine that answers a typical call in well under a millisecond, in this process (the wasm
    engine): the service evaluates short calls on its event loop, as a thread hand-off would cost
    more than the evaluation."""

    @property
    def can_evaluate_inline(self) -> bool: ...

    def evaluate_briefly(self, document: dict[str, Any], budget_s: float) -> Any:
        """:meth:`PolicyEngine.evaluate` stopped after ``budget_s``, raising
        :class:`~gatekeeper.errors.BudgetExceeded` then."""
        ...


def new_decision_id() -> str:
    """A random (version 4) UUID, written as ``str(uuid.uuid4())`` writes it in less than half the
    time: one is made for every decision."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def decision_from_result(
    result: Any,
    *,
    call_id: str | None,
    revision: str | None,
    decision_id: str | None = None,
    timings_ms: dict[str, float] | None = None,
) -> Decision:
    """Build the Decision for one engine answer; anything but a clean decision object is ``deny``.

    ``result`` is what ``PolicyEngine.evaluate`` returned, or the GatekeeperError it raised.
    """
    common: dict[str, Any] = {
        "id": call_id,
        "decision_id": decision_id or new_decision_id(),
        "policy_revision": revision,
        "timings_ms": timings_ms or {},
    }
    if isinstance(result, GatekeeperError):
        return fail_closed(result.code, result.message, **common)
    if result is UNDEFINED:
        return fail_closed(
            ErrorCode.UNDEFINED_RESULT, "the policy returned no decision (undefined result)", **common
        )
    if not isinstance(result, dict):
        return fail_closed(
            ErrorCode.MALFORMED_RESULT,
            f"the policy decision is a {type(result).__name__}, not an object",
            **common,
        )
    try:
        outcome = Outcome(result["decision"])
        policy_outcome = Outcome(
            result["policy_decision"] if "policy_decision" in result else result["decision"]
        )
        mode = Mode(result.get("mode", Mode.ENFORCE))
        raw_violations = result.get("violations", [])
        if not isinstance(raw_violations, list):
            raise TypeError("violations is not an array")
        violations = [Violation.model_validate(v) for v in raw_violations]
    except (KeyError, ValueError, TypeError, ValidationError) as error:
        return fail_closed(
            ErrorCode.MALFORMED_RESULT,
            f"the policy decision does not match the Decision schema: {_short(error)}",
            **common,
        )
    if mode is Mode.ENFORCE and outcome is not (expected := _enforced_outcome(violations, policy_outcome)):
        # In enforce mode the decision follows from the violations enforced (all of them unless a
        # per-rule mode says otherwise); a policy that answers anything else is broken.
        return fail_closed(
            ErrorCode.MALFORMED_RESULT,
            f"enforce-mode decision {outcome.value} does not follow from the violations ({expected.value})",
            **common,
        )
    return Decision(
        decision=outcome,
        policy_decision=policy_outcome,
        mode=mode,
        violations=violations,
        **common,
    )


_STRICTNESS = (Outcome.DENY, Outcome.ASK, Outcome.WARN)


def _enforced_outcome(violations: list[Violation], policy_outcome: Outcome) -> Outcome:
    """The decision an enforce-mode policy must give: the strictest action among the violations
    not relaxed by a per-rule mode; ``policy_outcome`` when no violation says its mode."""
    modes = [getattr(v, "mode", None) for v in violations]
    if all(m is None for m in modes):
        return policy_outcome
    actions = {v.action for v, m in zip(violations, modes, strict=True) if m in (None, Mode.ENFORCE.value)}
    return next((o for o in _STRICTNESS if o.value in actions), Outcome.ALLOW)


def fail_closed(code: ErrorCode | str, message: str, **fields: Any) -> Decision:
    """A deny made because something went wrong; the reason travels in ``error``."""
    fields.setdefault("decision_id", new_decision_id())
    return Decision(
        decision=Outcome.DENY,
        policy_decision=Outcome.DENY,
        error=ErrorBody(code=str(code), message=message),
        **fields,
    )


def _short(error: Exception) -> str:
    text = str(error).splitlines()
    return text[0] if text else type(error).__name__
