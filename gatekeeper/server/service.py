"""The service without HTTP: decide (with sessions), execute, approvals, reload, metrics.

Every route in :mod:`gatekeeper.server.app` is a thin shell over one method here, and every method is
a thin shell over ``Gatekeeper.decide_with_facts`` and ``run_command``: the same core and the same
executor as ``gatekeeper check`` and ``gatekeeper exec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from gatekeeper.audit import AuditLog, default_audit_path
from gatekeeper.core import (
    CacheMiss,
    Gatekeeper,
    PendingDecision,
    answer_of,
    answer_of_async,
    build_engine,
    unrecorded,
)
from gatekeeper.errors import AuditError, BudgetExceeded, ErrorCode, ExecutionError, InputError
from gatekeeper.execute import run_command
from gatekeeper.models import Decision, ExecResult, ToolCall
from gatekeeper.policy.engine import PolicyEngine
from gatekeeper.server.approvals import Approval, ApprovalStore
from gatekeeper.server.config import ServiceConfig, deciding_threads
from gatekeeper.server.durability import DurableWaits
from gatekeeper.server.headless import HeadlessAskEngine
from gatekeeper.server.metrics import ServiceMetrics
from gatekeeper.server.sessions import SessionHandle, SessionStore
from gatekeeper.server.workers import WorkerPlan

log = structlog.get_logger("gatekeeper.server")

_PREPARE_WAIT_S = 30.0
# OPA queries a worker awaits at once (fewer if it has fewer deciding threads). Beyond a few per core
# they only queue inside OPA, where the wait counts against the engine's timeout: with 16 per worker
# and two workers on 2 cores, 73 of 6,000 new calls timed out (denied); with 8, 0 and 1 in two runs,
# and one worker's p99 went from 245 to 150-165 ms at about the same throughput (docs/service.md).
AWAITED_QUERIES = 8
# A call whose arguments hold this much text at most is analysed on the event loop: the hand-off to
# a deciding thread and back cost more than the analysis (0.1 ms for a typical command), and new
# calls on OPA went from 707-743 to 774-833/s. At this size the slowest shape measured (xargs
# pipelines) took 2.8 ms.
INLINE_ANALYSIS_CHARS = 512
# An engine that can evaluate on the event loop (wasm) gets this long there; a call that needs more
# is evaluated again on a deciding thread, with the engine's whole deadline. The pack takes well
# under a millisecond for a typical call, and wasmtime's epochs make the budget good to 10 ms.
INLINE_EVALUATION_S = 0.05


@dataclass(frozen=True, slots=True)
class Decided:
    """One decided request: the parsed call (``None`` when the input was not a valid ToolCall)."""

    call: ToolCall | None
    decision: Decision


class Service:
    def __init__(
        self,
        config: ServiceConfig,
        *,
        engine: PolicyEngine | None = None,
        audit: AuditLog | None = None,
        plan: WorkerPlan | None = None,
    ) -> None:
        self.settings = config.server
        self.plan = plan  # one of several workers (``--workers``), or None for the only process
        self.headless = not config.server.approver_configured
        core = config.core.model_copy(update={"headless": self.headless})
        self.config = core
        inner = engine if engine is not None else build_engine(core)
        self.engine = HeadlessAskEngine(inner, headless=self.headless)
        audit_log = audit if audit is not None else AuditLog(core.audit_log or default_audit_path())
        self.gatekeeper = Gatekeeper(
            core,
            engine=self.engine,
            audit=audit_log,
            remote_cache_max_age_s=config.server.opa_cache_max_age_s,
        )
        self.audit = audit_log
        self.sessions = SessionStore(config.server.sessions)
        self.approvals = ApprovalStore(config.server.approvals, on_resolved=self._record_verdict)
        self.metrics = ServiceMetrics()
        self.metrics.set_policy(self.engine.revision, self.engine.name)
        self.metrics.bind_gauges(
            pending=lambda: float(self.approvals.pending_count()),
            sessions=lambda: float(self.sessions.stats()[0]),
            session_bytes=lambda: float(self.sessions.stats()[1]),
            cache_hits=lambda: float(self.gatekeeper.cache.hits),
            cache_misses=lambda: float(self.gatekeeper.cache.misses),
            overdue=lambda: float(getattr(self.engine.inner, "overdue", 0)),
        )
        self._exec_slots = threading.BoundedSemaphore(config.server.max_concurrent_executions)
        # Threads that decide (analysis, evaluation, fsync'd audit): concurrent decisions share fsyncs.
        self.deciding_thread_count = deciding_threads(config.server.threads, self.engine.name)
        self.decide_threads = ThreadPoolExecutor(self.deciding_thread_count, thread_name_prefix="gk-decide")
        self._engine_queries = asyncio.Semaphore(min(self.deciding_thread_count, AWAITED_QUERIES))
        # Its own thread: the fsync of a cached call must not queue behind policy evaluations.
        self._fsync_thread = ThreadPoolExecutor(1, thread_name_prefix="gk-fsync")
        self._durable = DurableWaits(audit_log, self._fsync_thread)
        self.default_cwd = os.getcwd()

    # -- deciding ----------------------------------------------------------------------------------

    def prepare_deciding_threads(self) -> list[Future[None]]:
        """Have every deciding thread compile its copy of the policies now: at start-up, and after a
        reload to a new revision. Otherwise the first calls each thread takes wait for its compile
        (about half a second for the pack on the embedded engine). One future per thread; none for
        an engine that compiles nothing per thread.
        """
        if not self.engine.can_prepare:
            return []
        # Each task waits for the others before it returns, so no thread takes two tasks and every
        # thread gets one. The wait is bounded: a thread busy for longer compiles at its next call.
        arrived = threading.Barrier(self.deciding_thread_count, timeout=_PREPARE_WAIT_S)

        def prepare() -> None:
            try:
                self.engine.prepare()
            except Exception as error:  # noqa: BLE001 - the thread compiles at its next call instead
                log.error("deciding_thread_not_prepared", error=f"{type(error).__name__}: {error}")
            with contextlib.suppress(threading.BrokenBarrierError):
                arrived.wait()

        return [self.decide_threads.submit(prepare) for _ in range(self.deciding_thread_count)]

    async def decide_async(self, raw: Any) -> Decided:
        """Decide one request body from the event loop; never raises.

        A call without a session whose answer is cached is decided and recorded right here and
        answered once its record is durable: it needs neither the analysis nor the policies, and
        the deciding threads' hand-off and lock turns were most of its cost. A new call, with an
        engine that can be awaited (OPA) or evaluates in well under a millisecond (wasm), is
        analysed here when it is short (else on a deciding thread) and its engine asked here, each
        step after the other ready calls have taken it (:func:`_after_the_others`); a call of a
        session holds the session from before its analysis until its record is durable and in the
        history, and waits for a busy session on a deciding thread. Anything else (bad input,
        the embedded engine) is decided on a deciding thread by :meth:`decide`.
        """
        started = time.perf_counter()
        call = self._valid_call(raw)
        if call is not None:
            miss: CacheMiss | None = None
            if not call.session_id and self.gatekeeper.cache.size:
                cached = self.gatekeeper.decide_if_cached(call)
                if isinstance(cached, CacheMiss):
                    miss = cached
                else:
                    decision, seq = cached
                    return Decided(call, await self._answered(decision, seq, started))
            if self.engine.can_evaluate_async or self.engine.can_evaluate_inline:
                # Shielded: a client that hangs up does not cancel a decision half made; it is
                # recorded all the same (and its session released), as on a deciding thread.
                return await asyncio.shield(self._decide_awaiting_engine(call, started, miss))
        loop = asyncio.get_running_loop()
        work = call if call is not None else raw
        decided: Decided = await loop.run_in_executor(self.decide_threads, self.decide, work)
        return decided

    async def _decide_awaiting_engine(
        self, call: ToolCall, started: float, miss: CacheMiss | None
    ) -> Decided:
        loop = asyncio.get_running_loop()
        session: SessionHandle | None = None
        short = _short_enough_to_analyse_inline(call)
        # Taken step by step with the other calls on the loop; a session's call holds its session
        # meanwhile, so it goes straight on.
        together = short and not call.session_id
        try:
            if call.session_id:
                session = self.sessions.try_acquire(call.session_id)
            if call.session_id and session is None:
                # A busy session: wait for it on a deciding thread (a wait that blocks), analyse there.
                begin = functools.partial(self._begin_awaited_decision, call)
                session, pending = await loop.run_in_executor(self.decide_threads, begin)
            elif short:
                if together:
                    await _after_the_others()
                pending = self._start(call, session, miss)
                if together:
                    await _after_the_others()
            else:
                start = functools.partial(self._start, call, session, miss)
                pending = await loop.run_in_executor(self.decide_threads, start)
            answer = None
            if pending.document is not None:
                answer = await self._engine_answer(pending.document, short=short)
                if together:
                    await _after_the_others()
            recorded = pending.finish(answer)
            assert isinstance(recorded, tuple)  # noqa: S101 - only a cache-only lookup decides nothing
            decision, facts, seq = recorded
            decision = await self._answered(decision, seq, started)
            if session is not None:
                session.record(call, decision, facts)
        finally:
            if session is not None:
                session.release()
        return Decided(call, decision)

    async def _engine_answer(self, document: dict[str, Any], *, short: bool) -> Any:
        """The engine's answer (or the error it raised), from the loop: awaited (OPA); or, for a
        short call, evaluated here within INLINE_EVALUATION_S, else on a deciding thread (wasm).
        A long call goes to the thread at once: a stream of them, each taking the budget first,
        would keep the loop from everyone else's calls."""
        if self.engine.can_evaluate_async:
            async with self._engine_queries:  # a wait here does not count against the timeout
                return await answer_of_async(self.engine, document)
        if short:
            try:
                return self.engine.evaluate_briefly(document, INLINE_EVALUATION_S)
            except BudgetExceeded:
                self.metrics.inline_budget_exceeded.inc()
            except Exception as error:  # noqa: BLE001 - handed to the decision, which denies
                return error
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.decide_threads, answer_of, self.engine, document)

    def _begin_awaited_decision(self, call: ToolCall) -> tuple[SessionHandle, PendingDecision]:
        """On a deciding thread: wait for the session's earlier calls, then analyse. The caller
        releases the session."""
        assert call.session_id is not None  # noqa: S101 - only calls of a session wait
        session = self.sessions.acquire(call.session_id)
        try:
            return session, self._start(call, session)
        except BaseException:
            session.release()
            raise

    def _start(
        self, call: ToolCall, session: SessionHandle | None, miss: CacheMiss | None = None
    ) -> PendingDecision:
        history = session.policy_input if session is not None else None
        return self.gatekeeper.start(call, session=history, durable=False, miss=miss)

    async def _answered(self, decision: Decision, seq: int | None, started: float) -> Decision:
        """``decision`` once its audit record (``seq``) is durable; a deny if it cannot be."""
        if seq is not None:
            try:
                await self._durable.wait(seq)
            except AuditError as error:
                decision = unrecorded(decision, error)
        self.metrics.observe_decision(decision, time.perf_counter() - started)
        return decision

    @staticmethod
    def _valid_call(raw: Any) -> ToolCall | None:
        """The call, or None when the body is not a valid ToolCall (decided, as an audited deny, on
        a deciding thread like every other call)."""
        if not isinstance(raw, dict):
            return None
        try:
            return ToolCall.parse(raw)
        except InputError:
            return None

    def decide(self, raw: Any) -> Decided:
        """Decide one request body; never raises (bad input and failures are audited denies)."""
        started = time.perf_counter()
        try:
            call = raw if isinstance(raw, ToolCall) else ToolCall.parse(raw)
        except InputError:
            decision = self.gatekeeper.decide(raw)  # audits the invalid input as a deny
            self.metrics.observe_decision(decision, time.perf_counter() - started)
            return Decided(None, decision)
        if call.session_id:
            with self.sessions.hold(call.session_id) as session:
                decision, facts = self.gatekeeper.decide_with_facts(call, session=session.policy_input)
                session.record(call, decision, facts)
        else:
            decision, _facts = self.gatekeeper.decide_with_facts(call)
        self.metrics.observe_decision(decision, time.perf_counter() - started)
        return Decided(call, decision)

    def reject(self, raw: Any, code: ErrorCode, message: str) -> Decision:
        """An audited deny for a request that is not even a tool call (unreadable, oversize)."""
        started = time.perf_counter()
        decision = self.gatekeeper.reject(raw, code, message)
        self.metrics.observe_decision(decision, time.perf_counter() - started)
        return decision

    # -- executing ---------------------------------------------------------------------------------

    def execute(self, call: ToolCall, decision: Decision, *, approval: Approval | None = None) -> ExecResult:
        """Run an allowed (or approved) shell call exactly as analysed; ExecutionError if it cannot start.

        Blocks (run it in a worker thread); at most ``max_concurrent_executions`` run at once.
        """
        command = call.arguments.get("command")
        if call.tool != "shell" or not isinstance(command, str):
            raise ExecutionError("only shell calls can be executed", code=ErrorCode.NOT_SUPPORTED)
        if decision.blocked and not _approved(approval, decision):
            raise ExecutionError("refusing to execute a blocked call")  # a bug upstream, never a run
        with self._exec_slots:
            try:
                result = run_command(command, self.config.exec, cwd=call.cwd or self.default_cwd)
            except ExecutionError as error:
                self.metrics.executions.labels("error").inc()
                self._append_quietly(
                    {
                        "decision_id": decision.decision_id,
                        "error": {"code": error.code, "message": error.message},
                    },
                    event="execution_failed",
                )
                raise
        outcome = "timeout" if result.timed_out else ("ok" if result.exit_code == 0 else "nonzero")
        self.metrics.executions.labels(outcome).inc()
        self._append_quietly(
            {
                "decision_id": decision.decision_id,
                "session_id": call.session_id,
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "truncated": result.truncated,
                "duration_ms": result.duration_ms,
            },
            event="execution_finished",
        )
        return result

    # -- approvals and administration --------------------------------------------------------------

    def _record_verdict(self, approval: Approval) -> None:
        self.metrics.approvals.labels(approval.status).inc()
        try:
            self.audit.append(
                {
                    "decision_id": approval.id,
                    "approval_id": approval.id,
                    "session_id": approval.call.session_id,
                    "status": approval.status,
                    "by": approval.resolved_by,
                    "reason": approval.reason,
                },
                event="approval_resolved",
            )
            approval.recorded = True
        except AuditError as error:
            log.error("approval_not_recorded", approval_id=approval.id, error=error.message)

    def reload(self) -> tuple[str | None, str | None]:
        """Reload the policies; (previous, current) revision. PolicyLoadError keeps the old ones."""
        previous = self.engine.revision
        current = self.engine.reload()
        self.record_reload(previous, current)
        return previous, current

    def record_reload(self, previous: str | None, current: str | None) -> None:
        """Metrics, audit event and log line for a reload (admin API or the policy watcher); after a
        new revision, the deciding threads compile it in the background."""
        self.metrics.set_policy(current, self.engine.name)
        if current != previous:
            self.prepare_deciding_threads()  # in the background: the reload answers now
        self._append_quietly({"previous_revision": previous, "revision": current}, event="policy_reloaded")
        log.info("policy_reloaded", previous_revision=previous, revision=current)

    def _append_quietly(self, fields: dict[str, Any], *, event: str) -> None:
        try:
            self.audit.append(fields, event=event)
        except AuditError as error:
            log.error("audit_append_failed", audit_event=event, error=error.message)

    def close(self) -> None:
        self.decide_threads.shutdown(wait=True)  # decisions under way finish and are recorded
        self._fsync_thread.shutdown(wait=True)
        self.gatekeeper.close()


def _approved(approval: Approval | None, decision: Decision) -> bool:
    """An ``ask`` may run only with its own approval, approved, and that verdict in the audit log."""
    return (
        approval is not None
        and approval.id == decision.decision_id
        and approval.status == "approved"
        and approval.recorded
    )


async def _after_the_others() -> None:
    """Let the other calls ready on the loop take this step before this call goes on to the next.

    Under load a worker holds many calls at once. Taken call by call, the analysis, the evaluation
    and the audit record each push the others' code and data out of the processor's caches; each
    step taken for all the ready calls in turn keeps them there. In process, analysing and
    evaluating 2,400 corpus calls took 0.42 ms a call one by one, 0.385 ms eight at a time and
    0.37 ms 32 at a time. The service spends 0.92 times the CPU per new call (median of 14 pairs
    of load runs), and its p99 latency is lower.
    """
    await asyncio.sleep(0)


def _short_enough_to_analyse_inline(call: ToolCall) -> bool:
    """Whether a call's arguments, which its analysis grows with, hold at most INLINE_ANALYSIS_CHARS
    characters of text (nested values and keys included, one more per item); stops counting there."""
    size = 0
    pending: list[Any] = [call.arguments]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, dict):
            size += len(value)
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            size += len(value)
            pending.extend(value)
        if size > INLINE_ANALYSIS_CHARS:
            return False
    return True
