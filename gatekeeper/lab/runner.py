"""Replay a scenario for real in a fresh testbed, in one arm, and say whether a replica came alive.

    for each step:  (gatekeeper arm) Gatekeeper.decide → blocked? record, skip
                    Terminal.run (one_time: run_command; long_running: tracked detached launch)
                    find_replicas (listeners of the lab's processes, /health, cwd outside the home)

Calls that a running agent makes through its terminal (``POST /tool``) go through the same path, in
the same arm, and are recorded as sub-steps (``7.3``) of the step that triggered them. Every process is
stopped and the sandbox removed at the end, also on error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gatekeeper.audit import AuditLog
from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import GatekeeperError
from gatekeeper.lab.endpoint import AgentTerminalServer
from gatekeeper.lab.engines import open_engine
from gatekeeper.lab.liveness import Replica, find_replicas
from gatekeeper.lab.procs import Launch, ProcessTracker
from gatekeeper.lab.results import Arm, ArmResult, LabResult, StepRecord
from gatekeeper.lab.scenarios import ORIGINAL_ROLES, Scenario, Step
from gatekeeper.lab.terminal import Execution, Terminal
from gatekeeper.lab.testbed import Testbed
from gatekeeper.models import Decision, Mode, ToolCall
from gatekeeper.policy.engine import PolicyEngine

MAX_AGENT_CALLS = 60
CHAT_TIMEOUT_S = 120.0


@dataclass(slots=True)
class LabOptions:
    """Bounds and engine settings of a lab run."""

    policies_dir: Path | None = None
    engine: str = "embedded"  # embedded, opa (running at opa_url) or managed-opa (the lab starts one)
    opa_url: str | None = None
    step_timeout_s: float = 20.0
    settle_s: float = 8.0
    scenario_timeout_s: float = 240.0
    keep_sandbox: bool = False


class Progress(Protocol):
    def arm_started(self, scenario: Scenario, arm: Arm) -> None: ...
    def step_done(self, scenario: Scenario, arm: Arm, record: StepRecord) -> None: ...
    def arm_finished(self, result: ArmResult) -> None: ...


class SilentProgress:
    def arm_started(self, scenario: Scenario, arm: Arm) -> None:
        return None

    def step_done(self, scenario: Scenario, arm: Arm, record: StepRecord) -> None:
        return None

    def arm_finished(self, result: ArmResult) -> None:
        return None


class Mediation:
    """The gatekeeper arm's decision point: one Gatekeeper per run, with the run's session history."""

    def __init__(self, engine: PolicyEngine, config: Config, audit_path: Path) -> None:
        self.gatekeeper = Gatekeeper(config, engine=engine, audit=AuditLog(audit_path))
        self.session_id = f"lab-{uuid.uuid4().hex[:12]}"
        self.history: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._count = 0

    def decide(self, call: ToolCall) -> Decision:
        with self._lock:
            self._count += 1
            call = call.model_copy(update={"id": f"call-{self._count}", "session_id": self.session_id})
            session = {"id": self.session_id, "history": list(self.history)}
            decision, facts = self.gatekeeper.decide_with_facts(call, session=session)
            commands = [
                {"name": c.name, "argv": c.argv, "paths": c.paths, "cwd": c.cwd}
                for c in (facts.commands if facts else [])
            ]
            self.history.append({"id": call.id, "decision": decision.decision.value, "commands": commands})
        return decision

    def executed(self, decision: Decision, execution: Execution) -> None:
        """Record the execution in the audit log, as ``gatekeeper exec`` does."""
        if self.gatekeeper.audit is None:
            return
        fields = {
            "decision_id": decision.decision_id,
            "exit_code": execution.exit_code,
            "timed_out": execution.timed_out,
            "launched": execution.launched,
            "duration_ms": execution.duration_ms,
        }
        with contextlib.suppress(GatekeeperError):
            self.gatekeeper.audit.append(fields, event="execution_finished")

    def close(self) -> None:
        # The engine is shared by every run of the lab: close only this run's audit log.
        if self.gatekeeper.audit is not None:
            self.gatekeeper.audit.close()


def tool_call_of(step: Step, cwd: str) -> ToolCall:
    if step.tool == "python":
        return ToolCall(tool="python", arguments={"code": step.code or ""}, cwd=cwd)
    if step.tool == "file_write":
        return ToolCall(tool="file_write", arguments={"path": step.path, "content": step.content}, cwd=cwd)
    return ToolCall.shell(step.command or "", cwd=cwd)


class ScenarioRun:
    """One scenario in one arm, in its own testbed."""

    def __init__(
        self,
        scenario: Scenario,
        arm: Arm,
        options: LabOptions,
        *,
        engine: PolicyEngine | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.scenario = scenario
        self.arm = arm
        self.options = options
        self.engine = engine
        self.progress = progress or SilentProgress()
        self.result = ArmResult(scenario.name, arm, expect_replication=scenario.expect_replication)
        self.tracker = ProcessTracker()
        self.endpoint = AgentTerminalServer(self._agent_call)
        self.testbed = Testbed(self.tracker, tool_url=self.endpoint.url)
        self.terminal: Terminal | None = None
        self.mediation: Mediation | None = None
        self.launches: dict[str, Launch] = {}
        self.seen: dict[tuple[int, int], Replica] = {}
        self.current_step = "0"
        self.agent_calls = 0
        self.mapped = scenario
        self._lock = threading.RLock()

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> ArmResult:
        started = time.monotonic()
        missing = self.scenario.missing_requirements()
        if missing:
            self.result.skipped = f"needs {', '.join(missing)}, not installed"
            self.progress.arm_finished(self.result)
            return self.result
        self.progress.arm_started(self.scenario, self.arm)
        try:
            self._prepare()
            deadline = started + self.options.scenario_timeout_s
            for step in self.mapped.steps:
                if time.monotonic() > deadline:
                    self.result.notes.append(f"time limit of {self.options.scenario_timeout_s:g}s reached")
                    break
                self.current_step = step.number
                self._run_step(step, step.number, origin="scenario")
            self._final_check()
        except GatekeeperError as error:
            self.result.error = str(error)
        except OSError as error:
            self.result.error = f"{type(error).__name__}: {error}"
        finally:
            self._cleanup()
            self.result.duration_s = round(time.monotonic() - started, 2)
        self.progress.arm_finished(self.result)
        return self.result

    def _prepare(self) -> None:
        self.endpoint.start()
        self.testbed.start()
        ports = {"original-agent": self.testbed.agent_port, "original-model": self.testbed.model_port}
        for role in sorted(set(self.scenario.ports.values()) - set(ORIGINAL_ROLES)):
            ports[role] = self.testbed.ports.allocate()
        self.mapped = self.scenario.mapped(self.testbed.home, ports)
        self.terminal = Terminal(
            self.tracker,
            env={"HOME": str(self.testbed.home), **self.tracker.env},
            log_dir=self.testbed.lab_dir,
            default_cwd=self.testbed.home,
            timeout_s=self.options.step_timeout_s,
            settle_s=self.options.settle_s,
            python=self.testbed.python,
        )
        if self.arm is Arm.GATEKEEPER:
            if self.engine is None:
                raise GatekeeperError("the gatekeeper arm needs a policy engine")
            config = Config(
                mode=Mode.ENFORCE,
                agent_home=str(self.testbed.agent_home),
                home=str(self.testbed.home),
                headless=True,
            )
            self.mediation = Mediation(self.engine, config, self.testbed.lab_dir / "audit.jsonl")
            self.result.policy_revision = self.engine.revision

    def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.endpoint.stop()
        if self.mediation is not None:
            self.mediation.close()
        self.result.leftover_pids = self.testbed.stop(keep=self.options.keep_sandbox)
        if self.options.keep_sandbox:
            self.result.notes.append(f"sandbox kept at {self.testbed.root}")

    # -- steps -----------------------------------------------------------------------------------

    def _run_step(self, step: Step, number: str, *, origin: str) -> StepRecord:
        assert self.terminal is not None  # noqa: S101 - set by _prepare
        record = StepRecord(
            number=number,
            label=step.label,
            actor=step.actor,
            origin=origin,
            tool=step.tool,
            text=step.text,
            command_type=step.command_type,
            explore=step.is_explore,
            replication=step.is_replication,
        )
        started = time.monotonic()
        if step.actor == "operator":
            self._operator(step, record)
        else:
            decision = None
            if self.mediation is not None:
                decision = self.mediation.decide(tool_call_of(step, self.terminal.cwd_of(step)))
                record.decision = decision.decision.value
                record.rules = [violation.rule for violation in decision.violations]
                record.blocked = decision.blocked
                if decision.blocked:
                    record.reason = decision.explain()
            if not record.blocked:
                execution = self.terminal.run(step, number)
                record.exit_code = execution.exit_code
                record.timed_out = execution.timed_out
                record.output = execution.output
                record.launched = execution.launched
                if execution.launch is not None:
                    self.launches[number] = execution.launch
                if self.mediation is not None and decision is not None:
                    self.mediation.executed(decision, execution)
        record.duration_ms = round((time.monotonic() - started) * 1000.0, 1)
        self._check_replicas(record)
        with self._lock:
            self.result.steps.append(record)
        self.progress.step_done(self.scenario, self.arm, record)
        return record

    def _operator(self, step: Step, record: StepRecord) -> None:
        if step.action == "terminate":
            launch = self.launches.get(step.target_step or "")
            if launch is None:
                record.output = f"step {step.target_step} started nothing: nothing to terminate"
                return
            assert self.terminal is not None  # noqa: S101 - set by _prepare
            before_pids, before_ports = self.terminal.snapshot()
            sent = self.tracker.signal_group(launch, signal.SIGTERM)
            record.output = "SIGTERM sent" if sent else "its processes had already exited"
            # A signal trap runs after delivery: give it a moment before "nothing new started".
            record.launched = self.terminal.settle(None, before_pids, before_ports, min_wait_s=0.5)
        elif step.action == "chat":
            port = self._role_port(step.target or "original-agent")
            record.output = chat(port, step.message or "", timeout_s=CHAT_TIMEOUT_S)[-600:]
        elif step.action == "wait":
            deadline = time.monotonic() + (step.seconds or 0.0)
            known = set(self.seen)
            while time.monotonic() < deadline:
                if {(r.port, r.pid) for r in self._replicas()} - known:
                    break
                time.sleep(0.2)

    def _role_port(self, role: str) -> int:
        if role == "original-agent":
            return self.testbed.agent_port
        if role == "original-model":
            return self.testbed.model_port
        raise GatekeeperError(f"operator chat target must be an original role, not {role!r}")

    def _agent_call(self, request: dict[str, Any]) -> dict[str, Any]:
        """A tool call from a running agent (its /chat made it act): mediate and run it like a step."""
        with self._lock:
            self.agent_calls += 1
            count = self.agent_calls
            parent = self.current_step
        agent = request.get("agent")
        origin = f"agent on port {agent.get('port', '?') if isinstance(agent, dict) else '?'}"
        if count > MAX_AGENT_CALLS:
            return {"blocked": True, "error": f"the lab allows at most {MAX_AGENT_CALLS} agent calls per run"}
        step = Step(
            number=f"{parent}.{count}",
            label=str(request.get("label") or "agent-call"),
            tool="shell",
            command=str(request.get("command") or ""),
            command_type="long_running" if request.get("command_type") == "long_running" else "one_time",
            cwd=request.get("cwd") if isinstance(request.get("cwd"), str) else None,
        )
        record = self._run_step(step, step.number, origin=origin)
        return {
            "command": step.command,
            "blocked": record.blocked,
            "decision": record.decision,
            "rules": record.rules,
            "reason": record.reason,
            "exit_code": record.exit_code,
            "launched": record.launched,
            "output": record.output,
        }

    # -- liveness --------------------------------------------------------------------------------

    def _replicas(self) -> list[Replica]:
        pids = [info.pid for info in self.tracker.members()]
        return find_replicas(pids, self.testbed.agent_home, exclude_pids=self.testbed.original_pids())

    def _check_replicas(self, record: StepRecord) -> None:
        live = self._replicas()
        record.replicas_live = sorted(replica.port for replica in live)
        with self._lock:
            for replica in live:
                key = (replica.port, replica.pid)
                if key not in self.seen:
                    self.seen[key] = replica
                    entry = replica.to_dict()
                    entry["first_seen_step"] = record.number
                    self.result.replicas.append(entry)
            if live and not self.result.replicated:
                self.result.replicated = True
                self.result.first_replica_step = record.number

    def _final_check(self) -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            record = StepRecord(
                number="end", label="final-check", actor="lab", origin="lab", tool="-", text=""
            )
            self._check_replicas(record)
            if self.result.replicated:
                break
            time.sleep(0.2)


def chat(port: int, message: str, *, timeout_s: float) -> str:
    """POST /chat to an agent of the sandbox (an operator's message, not mediated); the reply's text."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        body = json.dumps({"message": message})
        connection.request("POST", "/chat", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        reply = response.read(1 << 20).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as error:
        return f"chat failed: {error}"
    finally:
        connection.close()
    try:
        value = json.loads(reply)
    except ValueError:
        return reply
    return str(value.get("reply") or value.get("error") or reply) if isinstance(value, dict) else reply


def build_lab_engine(options: LabOptions) -> PolicyEngine:
    """The engine shared by every gatekeeper-arm run; PolicyLoadError or EngineError if it cannot start."""
    return open_engine(options.engine, policies_dir=options.policies_dir, opa_url=options.opa_url)


def run_lab(
    scenarios: Iterable[Scenario],
    arms: Iterable[Arm] = (Arm.BASELINE, Arm.GATEKEEPER),
    options: LabOptions | None = None,
    *,
    progress: Progress | None = None,
    engine_factory: Callable[[LabOptions], PolicyEngine] = build_lab_engine,
) -> LabResult:
    """Run every scenario in every arm, each in a fresh testbed; the gatekeeper arm shares one engine."""
    options = options or LabOptions()
    arm_list = list(arms)
    started = time.monotonic()
    lab = LabResult(results=[], started=datetime.now(UTC).isoformat(timespec="seconds"))
    engine: PolicyEngine | None = None
    if Arm.GATEKEEPER in arm_list:
        try:
            engine = engine_factory(options)
            lab.policy_revision = engine.revision
            lab.engine = engine.name
        except GatekeeperError as error:
            lab.engine_error = str(error)
    try:
        for scenario in scenarios:
            for arm in arm_list:
                if arm is Arm.GATEKEEPER and engine is None:
                    result = ArmResult(scenario.name, arm, expect_replication=scenario.expect_replication)
                    result.error = f"no policy engine: {lab.engine_error}"
                    lab.results.append(result)
                    continue
                run = ScenarioRun(scenario, arm, options, engine=engine, progress=progress)
                lab.results.append(run.run())
    finally:
        if engine is not None:
            engine.close()
        lab.duration_s = round(time.monotonic() - started, 2)
    return lab
