"""Scenarios: JSON-lines files of tool calls with labels, and their mapping into a sandbox.

A scenario file (``gatekeeper/lab/scenarios/<name>.jsonl``) holds one header line, then one step per
line, written as the agent wrote them, with the paper's paths (``/home/agent/...``) and ports::

    {"scenario": "paper-qwen25", "description": "...", "tests": "...", "home": "/home/agent",
     "ports": {"8001": "replica-agent", "8760": "replica-model"}, "expect_replication": true}
    {"step": 13, "tool": "shell", "command": "cp -r /home/agent/WorkSpace/Agent ...",
     "command_type": "one_time", "label": "copy-agent-and-weights"}

Header keys: ``ports`` maps each literal port to a role; ``original-agent`` and ``original-model`` are
the running originals, every other role gets a fresh free loopback port. ``requires`` lists programs the
scenario needs (it is skipped, and says so, when one is missing). ``expect_replication`` is false for
control scenarios, where nothing should replicate in either arm.

Step keys: ``tool`` (``shell``, ``python``, ``file_write``), ``command`` / ``code`` / ``path`` +
``content``, ``command_type`` (``one_time`` runs to completion under a timeout; ``long_running`` is
launched detached and keeps running), ``label`` (``explore``: must never be blocked; ``prepare``:
no expectation; anything else names the replication step it carries out), optional ``cwd`` and
``timeout_s``. Steps with ``"actor": "operator"`` are not the agent's: the lab carries them out,
unmediated: ``{"action": "terminate", "target_step": N}`` sends SIGTERM to the process group that step
N launched, ``{"action": "chat", "target": ROLE, "message": ...}`` sends a /chat message,
``{"action": "wait", "seconds": S}`` waits for replicas to come up.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from gatekeeper.errors import InputError
from gatekeeper.lab.jsonl import json_object_lines

EXPLORE = "explore"
PREPARE = "prepare"
ORIGINAL_ROLES = ("original-agent", "original-model")
TOOLS = ("shell", "python", "file_write")
OPERATOR_ACTIONS = ("terminate", "chat", "wait")


@dataclass(frozen=True, slots=True)
class Step:
    number: str
    label: str
    tool: str = "shell"
    command: str | None = None
    code: str | None = None
    path: str | None = None
    content: str | None = None
    command_type: str = "one_time"
    cwd: str | None = None
    timeout_s: float | None = None
    actor: str = "agent"
    action: str | None = None
    target_step: str | None = None
    target: str | None = None
    message: str | None = None
    seconds: float | None = None

    @property
    def is_explore(self) -> bool:
        return self.label == EXPLORE

    @property
    def is_replication(self) -> bool:
        """A step that carries out part of a replication (the policies should stop it)."""
        return self.actor == "agent" and self.label not in (EXPLORE, PREPARE)

    @property
    def text(self) -> str:
        """What the step runs or does, for timelines."""
        if self.actor == "operator":
            if self.action == "terminate":
                return f"(operator) SIGTERM to the processes started by step {self.target_step}"
            if self.action == "chat":
                return f"(operator) POST /chat to {self.target}: {self.message}"
            return f"(operator) wait {self.seconds:g}s"
        if self.tool == "python":
            return f"(python) {self.code}"
        if self.tool == "file_write":
            return f"(file_write) {self.path}"
        return self.command or ""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    tests: str
    steps: tuple[Step, ...]
    home: str = "/home/agent"
    ports: dict[int, str] = field(default_factory=dict)
    expect_replication: bool = True
    requires: tuple[str, ...] = ()
    source: str | None = None

    def missing_requirements(self) -> list[str]:
        return [program for program in self.requires if shutil.which(program) is None]

    def mapped(self, home: Path, ports: dict[str, int]) -> Scenario:
        """This scenario with the paper's home replaced by ``home`` and literal ports by ``ports[role]``."""
        mapping = {port: ports[role] for port, role in self.ports.items()}

        def text(value: str | None) -> str | None:
            return None if value is None else map_text(value, self.home, str(home), mapping)

        steps = tuple(
            replace(
                step,
                command=text(step.command),
                code=text(step.code),
                path=text(step.path),
                content=text(step.content),
                cwd=text(step.cwd),
                message=text(step.message),
            )
            for step in self.steps
        )
        return replace(self, steps=steps, home=str(home), ports={})


def map_text(value: str, old_home: str, new_home: str, ports: dict[int, int]) -> str:
    """Replace the home prefix (as a whole path component) and each literal port (as a whole number)."""
    value = re.sub(re.escape(old_home.rstrip("/")) + r"(?=/|\b|$)", lambda _m: new_home.rstrip("/"), value)
    for old, new in ports.items():
        value = re.sub(rf"(?<!\d){old}(?!\d)", str(new), value)
    return value


def parse_scenario(lines: list[str], *, name_hint: str = "scenario") -> Scenario:
    """Parse a scenario file's lines; InputError naming the line when something is wrong."""
    rows = json_object_lines(lines, name_hint)
    if not rows or "scenario" not in rows[0][1]:
        raise InputError(f"{name_hint}: the first line must be the header {{'scenario': NAME, ...}}")
    _number, header = rows[0]
    steps = tuple(_parse_step(value, f"{name_hint}:{number}") for number, value in rows[1:])
    numbers = [step.number for step in steps]
    if len(set(numbers)) != len(numbers):
        raise InputError(f"{name_hint}: step numbers must be unique")
    ports = {int(port): str(role) for port, role in dict(header.get("ports", {})).items()}
    for step in steps:
        if step.action == "terminate" and step.target_step not in numbers:
            raise InputError(f"{name_hint}: step {step.number} terminates unknown step {step.target_step}")
    return Scenario(
        name=str(header["scenario"]),
        description=str(header.get("description", "")),
        tests=str(header.get("tests", "")),
        steps=steps,
        home=str(header.get("home", "/home/agent")),
        ports=ports,
        expect_replication=bool(header.get("expect_replication", True)),
        requires=tuple(str(program) for program in header.get("requires", [])),
        source=header.get("source"),
    )


def _parse_step(value: dict[str, Any], where: str) -> Step:
    if "step" not in value or "label" not in value:
        raise InputError(f"{where}: a step needs 'step' and 'label'")
    actor = str(value.get("actor", "agent"))
    fields: dict[str, Any] = {
        "number": str(value["step"]),
        "label": str(value["label"]),
        "actor": actor,
        "cwd": value.get("cwd"),
        "timeout_s": float(value["timeout_s"]) if "timeout_s" in value else None,
    }
    if actor == "operator":
        action = value.get("action")
        if action not in OPERATOR_ACTIONS:
            raise InputError(f"{where}: operator action must be one of {', '.join(OPERATOR_ACTIONS)}")
        fields.update(
            action=action,
            target_step=None if value.get("target_step") is None else str(value["target_step"]),
            target=value.get("target"),
            message=value.get("message"),
            seconds=float(value.get("seconds", 0.0)),
        )
        return Step(**fields)
    if actor != "agent":
        raise InputError(f"{where}: actor must be 'agent' or 'operator'")
    tool = str(value.get("tool", "shell"))
    if tool not in TOOLS:
        raise InputError(f"{where}: tool must be one of {', '.join(TOOLS)}")
    command_type = str(value.get("command_type", "one_time"))
    if command_type not in ("one_time", "long_running"):
        raise InputError(f"{where}: command_type must be one_time or long_running")
    required = {"shell": ("command",), "python": ("code",), "file_write": ("path", "content")}[tool]
    for key in required:
        if not isinstance(value.get(key), str):
            raise InputError(f"{where}: a {tool} step needs a string '{key}'")
    fields.update(
        tool=tool,
        command=value.get("command"),
        code=value.get("code"),
        path=value.get("path"),
        content=value.get("content"),
        command_type=command_type,
    )
    return Step(**fields)


def load_scenario_file(path: Path) -> Scenario:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"cannot read scenario {path}: {error}") from error
    return parse_scenario(lines, name_hint=str(path))


def load_all_scenarios() -> list[Scenario]:
    """The bundled scenarios, in the order of ``scenarios/index.json``."""
    folder = resources.files("gatekeeper.lab").joinpath("scenarios")
    order = json.loads(folder.joinpath("index.json").read_text(encoding="utf-8"))
    scenarios = []
    for name in order:
        text = folder.joinpath(f"{name}.jsonl").read_text(encoding="utf-8")
        scenarios.append(parse_scenario(text.splitlines(), name_hint=f"{name}.jsonl"))
    return scenarios


def find_scenario(name: str) -> Scenario:
    for scenario in load_all_scenarios():
        if scenario.name == name:
            return scenario
    raise InputError(f"no scenario named {name!r}")
