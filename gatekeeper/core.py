"""``Gatekeeper.decide``: the one core function every front end (CLI, server, adapters) wraps.

    call → parse → analyse → evaluate → Decision → audit (fsync) → return

Each step that can fail turns its failure into a ``deny`` carrying the error code; the decision is
returned only after its audit record is durable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper._version import __version__
from gatekeeper.analysis import AnalysisOptions, Facts, analyse_call, facts_to_dict
from gatekeeper.audit import AuditLog, utc_timestamp
from gatekeeper.config import Config
from gatekeeper.errors import AuditError, ErrorCode, GatekeeperError, InputError
from gatekeeper.jsonout import CanonicalObject, PolicyInput
from gatekeeper.models import Decision, ToolCall
from gatekeeper.policy.cache import MAX_CACHED_COMMANDS, DecisionCache
from gatekeeper.policy.engine import (
    AsyncPolicyEngine,
    PolicyEngine,
    decision_from_result,
    fail_closed,
    new_decision_id,
)
from gatekeeper.policy.loader import ENTRYPOINT

# Where the audit record names earlier calls instead of repeating them (an OPA decision-log
# `masked` path).
MASKED_HISTORY = "/input/session/history"


def build_engine(config: Config) -> PolicyEngine:
    """The engine ``config`` names; raises PolicyLoadError / EngineError when it cannot start."""
    if config.engine == "opa":
        from gatekeeper.policy.opa_server import OpaServerEngine  # noqa: PLC0415 - optional engine

        return OpaServerEngine(config.opa_url, timeout_s=config.opa_timeout_s)
    if config.engine == "wasm":
        from gatekeeper.policy.wasm import WasmEngine  # noqa: PLC0415 - wasmtime only for this engine

        return WasmEngine(config.policies_dir, timeout_s=config.embedded_timeout_s)
    from gatekeeper.policy.embedded import EmbeddedEngine  # noqa: PLC0415 - keeps regopy off the OPA path

    return EmbeddedEngine(config.policies_dir, timeout_s=config.embedded_timeout_s)


class Gatekeeper:
    """Decides tool calls with one policy engine and records every decision in one audit log.

    ``audit`` may be ``None`` for pure measurement (corpus evaluation, benchmarks); every front end
    that mediates real calls passes a log.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        engine: PolicyEngine | None = None,
        audit: AuditLog | None = None,
        remote_cache_max_age_s: float = 0.0,
    ) -> None:
        self.config = config or Config()
        self.engine = engine if engine is not None else build_engine(self.config)
        self.audit = audit
        self.instance_id = str(uuid.uuid4())
        self._analysis_options = AnalysisOptions(home=self.config.effective_home())
        self._context = self._build_context()
        # The embedded engine is cached; OPA only when a front end opts in with a maximum age (see
        # policy/cache.py): a cached answer must not hide that it is down or has new policies.
        self.cache = DecisionCache.for_engine(
            self.engine.name, self.config.decision_cache_size, remote_max_age_s=remote_cache_max_age_s
        )

    @classmethod
    def with_audit(cls, config: Config, *, engine: PolicyEngine | None = None) -> Gatekeeper:
        from gatekeeper.audit import default_audit_path  # noqa: PLC0415 - avoids a cycle at import

        path = config.audit_log or default_audit_path()
        return cls(config, engine=engine, audit=AuditLog(path))

    def _build_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {"headless": self.config.headless}
        if self.config.mode is not None:
            context["mode"] = self.config.mode.value
        if self.config.agent_home:
            context["agent_home"] = self.config.agent_home
        home = self.config.effective_home()
        if home:
            context["home"] = home
        return context

    # -- the core --------------------------------------------------------------------------------

    def decide(
        self, call: ToolCall | Mapping[str, Any], *, session: Mapping[str, Any] | None = None
    ) -> Decision:
        """Decide one tool call; never raises for bad input or engine failure (those are denies)."""
        decision, _facts = self.decide_with_facts(call, session=session)
        return decision

    def decide_with_facts(
        self, call: ToolCall | Mapping[str, Any], *, session: Mapping[str, Any] | None = None
    ) -> tuple[Decision, Facts | None]:
        """Like :meth:`decide`, also returning the facts (the service keeps them for sessions)."""
        decided = self._decide(call, session, only_cached=False, durable=True)
        assert isinstance(decided, tuple)  # noqa: S101 - only a cache-only lookup decides nothing
        return decided[0], decided[1]

    def decide_if_cached(self, call: ToolCall) -> tuple[Decision, int | None] | CacheMiss:
        """A call without a session whose answer is in the decision cache, decided and recorded but
        not yet durable: the decision and the audit record's ``seq``, which the caller must see
        :meth:`AuditLog.sync_through` cover before answering (None: nothing to wait for). When the
        answer is not cached, a :class:`CacheMiss`: decide the call with :meth:`start`, giving it
        the miss, or with :meth:`decide_with_facts`.

        Cheap and without waiting, so the service runs it on its event loop, sparing a cached call
        the hand-off to a deciding thread.
        """
        decided = self._decide(call, None, only_cached=True, durable=False)
        if isinstance(decided, CacheMiss):
            return decided
        assert decided is not None  # noqa: S101 - a lookup decides or misses
        return decided[0], decided[2]

    def start(
        self,
        call: ToolCall,
        *,
        session: Mapping[str, Any] | None = None,
        durable: bool = True,
        miss: CacheMiss | None = None,
    ) -> PendingDecision:
        """Decide ``call`` up to the engine's turn: parse, cache lookup, analysis.

        For a caller that asks the engine itself (the service awaits OPA on its event loop): give
        the engine's answer for :attr:`PendingDecision.document` to :meth:`PendingDecision.finish`,
        which decides and records the call. ``durable=False`` as for :meth:`decide_if_cached`, and
        ``miss`` what it returned for this call, which spares working the lookup out again.
        """
        return PendingDecision(self._steps(call, session, only_cached=False, durable=durable, miss=miss))

    def _decide(
        self,
        call: ToolCall | Mapping[str, Any],
        session: Mapping[str, Any] | None,
        *,
        only_cached: bool,
        durable: bool,
    ) -> Recorded | CacheMiss | None:
        pending = PendingDecision(self._steps(call, session, only_cached=only_cached, durable=durable))
        return pending.finish(None if pending.document is None else answer_of(self.engine, pending.document))

    def _steps(
        self,
        call: ToolCall | Mapping[str, Any],
        session: Mapping[str, Any] | None,
        *,
        only_cached: bool,
        durable: bool,
        miss: CacheMiss | None = None,
    ) -> DecisionSteps:
        """The whole decision, as a generator that yields once: the input document, when it needs
        the engine's answer, which the driver sends back in (a raised error as the value).

        The facts and the answer are pure functions of the revision and the input without facts,
        so a cache hit skips the analysis and the evaluation (its timing is then ``cache`` alone)
        and yields nothing. With ``only_cached``, a miss ends the steps with a CacheMiss, which
        the same call's steps can be given (``miss``) to skip dumping and keying it again.
        """
        started = time.perf_counter()
        decision_id: str | None = None
        # A ToolCall's JSON form is set below: the cache lookup that missed may have made it already.
        document: dict[str, Any] = PolicyInput(
            call=None if isinstance(call, ToolCall) else _raw_call(call),
            session=dict(session or {}),
            context=self._context,
        )
        facts: Facts | None = None
        result: Any = None
        timings: dict[str, float] = {}
        try:
            tool_call = call if isinstance(call, ToolCall) else ToolCall.parse(call)
            revision = self.engine.revision
            reuse = miss is not None and miss.call is tool_call and miss.revision == revision and not session
            if reuse:
                assert miss is not None  # noqa: S101 - checked just above
                document["call"], key, cacheable = miss.call_json, miss.key, bool(self.cache.size)
            else:
                document["call"] = tool_call.model_dump(mode="json", exclude_none=True)
                # A session's history names its earlier decisions by id, so an input with a history
                # never repeats: keying it (a dump of up to 64 calls) and storing it would only
                # evict answers that can be used again.
                cacheable = bool(self.cache.size) and not _session_history(document)
                key = self.cache.key(revision, document) if cacheable else None
            cached = self.cache.get(key, count_miss=not only_cached)
            if cached is None and only_cached:
                return CacheMiss(tool_call, document["call"], revision, key)
            decision_id = new_decision_id()
            if cached is not None:
                facts, document["facts"], result = cached
                timings["cache"] = _ms(time.perf_counter() - started)
            else:
                facts = analyse_call(tool_call, self._analysis_options)
                document["facts"] = facts_to_dict(facts)
                analysed = time.perf_counter()
                timings["analyse"] = _ms(analysed - started)
                result = yield document
                timings["evaluate"] = _ms(time.perf_counter() - analysed)
                if isinstance(result, Exception) and not isinstance(result, GatekeeperError):
                    raise result  # a bug, not an engine's refusal: the guard below makes it a deny
                if not isinstance(result, GatekeeperError):
                    self.cache.confirm()
                if cacheable and self.engine.revision != revision:
                    # A remote engine reports its revision with the answer: file it under that one.
                    key = self.cache.key(
                        self.engine.revision, {k: v for k, v in document.items() if k != "facts"}
                    )
                if len(facts.commands) <= MAX_CACHED_COMMANDS:
                    # Its facts keep their canonical text once made: every hit's record holds them.
                    self.cache.put(key, (facts, CanonicalObject(document["facts"]), result), result)
            decision = decision_from_result(
                result,
                call_id=tool_call.id,
                revision=self.engine.revision,
                decision_id=decision_id,
                timings_ms=timings,
            )
        except InputError as error:
            decision = fail_closed(
                error.code, error.message, id=_call_id(call), decision_id=decision_id or new_decision_id()
            )
        except Exception as error:  # noqa: BLE001 - the last guard: any failure is a deny, never an allow
            decision = fail_closed(
                ErrorCode.INTERNAL_ERROR,
                f"internal error while deciding: {type(error).__name__}: {error}",
                id=_call_id(call),
                decision_id=decision_id or new_decision_id(),
                policy_revision=self.engine.revision,
            )
        seq = None
        if self.audit is not None:
            decision, seq = self._record(decision, document, result, session, durable=durable)
        return decision, facts, seq

    def reject(self, raw: Any, code: ErrorCode, message: str, *, call_id: str | None = None) -> Decision:
        """Deny (and audit) input that is not even a tool call, such as a malformed batch line."""
        decision = fail_closed(code, message, id=call_id, policy_revision=self.engine.revision)
        if self.audit is not None:
            decision, _seq = self._record(decision, {"call": raw, "context": self._context}, None, None)
        return decision

    def _record(
        self,
        decision: Decision,
        document: dict[str, Any],
        result: Any,
        session: Mapping[str, Any] | None,
        *,
        durable: bool = True,
    ) -> tuple[Decision, int | None]:
        """The decision as recorded (a deny if it cannot be) and its record's seq."""
        fields = {
            "decision_id": decision.decision_id,
            "timestamp": utc_timestamp(),
            "path": ENTRYPOINT,
            "input": audited_input(document),
            "result": result if isinstance(result, dict) else None,
            "labels": {
                "app": "gatekeeper",
                "version": __version__,
                "engine": self.engine.name,
                "id": self.instance_id,
            },
            "metrics": {f"timer_{step}_ns": int(ms * 1e6) for step, ms in decision.timings_ms.items()},
            "bundles": {"gatekeeper": {"revision": decision.policy_revision}},
            "session_id": (session or {}).get("id") or _session_id(document["call"]),
            "call_id": decision.id,
            "decision": decision.decision.value,
            "policy_decision": decision.policy_decision.value if decision.policy_decision else None,
            "violations": [v.model_dump() for v in decision.violations],
            "mode": decision.mode.value,
            "error": decision.error.model_dump() if decision.error else None,
        }
        if fields["input"] is not document:
            fields["masked"] = [MASKED_HISTORY]
        assert self.audit is not None  # noqa: S101 - checked by the caller
        try:
            record = self.audit.append(fields, durable=durable)
        except AuditError as error:
            return unrecorded(decision, error), None
        return decision, int(record["seq"])

    def close(self) -> None:
        self.engine.close()
        if self.audit is not None:
            self.audit.close()

    def __enter__(self) -> Gatekeeper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class CacheMiss:
    """A call whose answer :meth:`Gatekeeper.decide_if_cached` did not find, with what the lookup
    worked out: the call's JSON form and cache key, valid for the policy revision it names."""

    call: ToolCall
    call_json: dict[str, Any]
    revision: str | None
    key: str | None


# A decision, the facts it was made on (None when the call did not parse) and its audit record's seq.
Recorded = tuple[Decision, Facts | None, int | None]
DecisionSteps = Generator[dict[str, Any], Any, Recorded | CacheMiss | None]


class PendingDecision:
    """A decision at the engine's turn: :attr:`document` is the input to evaluate (None when the
    decision needs no engine: a cache hit, or input that is not a tool call); :meth:`finish` takes
    the engine's answer and returns the decision as recorded. Finish it from any one thread."""

    def __init__(self, steps: DecisionSteps) -> None:
        self._steps = steps
        self._outcome: Recorded | CacheMiss | None = None
        try:
            self.document: dict[str, Any] | None = next(steps)
        except StopIteration as done:
            self.document, self._outcome = None, done.value

    def finish(self, answer: Any = None) -> Recorded | CacheMiss | None:
        """The decision for ``answer`` (the engine's result, or the exception it raised)."""
        if self.document is None:
            return self._outcome
        try:
            self._steps.send(answer)
        except StopIteration as done:
            outcome: Recorded | CacheMiss | None = done.value
            return outcome
        raise RuntimeError("a decision asked its engine twice")  # pragma: no cover - _steps yields once


def answer_of(engine: PolicyEngine, document: dict[str, Any]) -> Any:
    """The engine's answer to ``document``, or the exception it raised (a decision's steps turn it
    into a deny)."""
    try:
        return engine.evaluate(document)
    except Exception as error:  # noqa: BLE001 - handed to the decision, which denies
        return error


async def answer_of_async(engine: AsyncPolicyEngine, document: dict[str, Any]) -> Any:
    """:func:`answer_of` for an engine awaited on an event loop."""
    try:
        return await engine.evaluate_async(document)
    except Exception as error:  # noqa: BLE001 - handed to the decision, which denies
        return error


def unrecorded(decision: Decision, error: AuditError) -> Decision:
    """A decision that cannot be recorded is not made: deny, and say why."""
    return fail_closed(
        error.code,
        error.message,
        id=decision.id,
        decision_id=decision.decision_id,
        policy_revision=decision.policy_revision,
    )


def audited_input(document: dict[str, Any]) -> dict[str, Any]:
    """The input as the audit log records it: a session's history as the decision ids of its calls.

    Each history entry is derived from an earlier record of the same log (its call, facts and
    decision), so repeating up to ``max_history`` of them in every record would only multiply the
    log's size and the cost of hashing it. An entry without a decision id is kept whole.
    """
    session = document.get("session")
    if not isinstance(session, dict):
        return document
    history = session.get("history")
    if not isinstance(history, list) or not history:
        return document
    ids = [_decision_id(entry) or entry for entry in history]
    return {**document, "session": {**session, "history": ids}}


def _session_history(document: Mapping[str, Any]) -> bool:
    session = document.get("session")
    return isinstance(session, Mapping) and bool(session.get("history"))


def _decision_id(entry: Any) -> str | None:
    value = entry.get("decision_id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _raw_call(call: Any) -> Any:
    """What a client sent, as the audit record shows it should it not parse as a tool call."""
    return dict(call) if isinstance(call, Mapping) else call


def _call_id(call: Any) -> str | None:
    if isinstance(call, ToolCall):
        return call.id
    if isinstance(call, Mapping):
        value = call.get("id")
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    return None


def _session_id(call: Any) -> Any:
    # The call may be anything a client sent (a list, a string): only a mapping has a session.
    return call.get("session_id") if isinstance(call, Mapping) else None


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 4)
