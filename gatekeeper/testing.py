"""Helpers for testing code that uses gatekeeper (and for gatekeeper's own tests).

- :func:`shell_call` and friends build ToolCalls tersely.
- :func:`capture_audit` swaps a Gatekeeper's audit log for a temporary one and hands back its records.
- :class:`StaticEngine` is a PolicyEngine that returns a fixed answer (or raises), for testing how
  callers handle each kind of engine result without writing a policy.
- :data:`GROWING_COMMANDS` builds shell commands of a chosen size, to see how policy work grows.
- :data:`SLOW_POLICY` (:func:`write_slow_policy`) takes as long as its call asks, for tests of the
  embedded engine's evaluation deadline.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatekeeper.audit import AuditLog
from gatekeeper.core import Gatekeeper
from gatekeeper.models import ToolCall

if TYPE_CHECKING:  # regopy only for the caller that has an embedded engine already
    from gatekeeper.policy.embedded import EmbeddedEngine

# Shell commands that repeat one part n times: a command, a pipeline stage, an operand, a
# redirection, a substitution, a python call. tests/test_policy_scaling.py and
# benchmarks/scaling.py measure how the policies' work grows with n.
GROWING_COMMANDS: dict[str, Callable[[int], str]] = {
    "sequence": lambda n: "\n".join(["ls -la /tmp/x"] * n),
    "pipeline": lambda n: " | ".join(["grep x"] * n),
    "and_list": lambda n: " && ".join(f"mkdir -p d{i}" for i in range(n)),
    "operands": lambda n: "cp " + " ".join(f"f{i}" for i in range(n)) + " /tmp/d",
    "redirects": lambda n: "echo hi " + " ".join(f"> /tmp/o{i}" for i in range(n)),
    "substitutions": lambda n: "echo " + " ".join(f"$(cat f{i})" for i in range(n)),
    "find_exec": lambda n: "\n".join(f"find d{i} -name '*.txt' -exec cp {{}} /tmp \\;" for i in range(n)),
    "xargs": lambda n: "\n".join(f"find d{i} | xargs cp -t /tmp/x" for i in range(n)),
    "copy_and_launch": lambda n: "\n".join(
        f"cp -r /home/agent/WorkSpace/Agent /tmp/c{i}; python /tmp/c{i}/main.py &" for i in range(n)
    ),
    "stream_to_host": lambda n: "\n".join(
        f"tar czf - /home/agent/WorkSpace/Agent | ssh h{i} 'tar xzf -'" for i in range(n)
    ),
    "python": lambda n: 'python3 -c "' + "; ".join(f"open('f{i}').read()" for i in range(n)) + '"',
}


def shell_call(command: str, **fields: Any) -> ToolCall:
    return ToolCall.shell(command, **fields)


def python_call(code: str, **fields: Any) -> ToolCall:
    return ToolCall(tool="python", arguments={"code": code}, **fields)


def file_write_call(path: str, content: str = "", **fields: Any) -> ToolCall:
    return ToolCall(tool="file_write", arguments={"path": path, "content": content}, **fields)


@contextlib.contextmanager
def capture_audit(gatekeeper: Gatekeeper) -> Iterator[list[dict[str, Any]]]:
    """Record ``gatekeeper``'s decisions in a temporary log; the list is filled when the block ends."""
    records: list[dict[str, Any]] = []
    previous = gatekeeper.audit
    with tempfile.TemporaryDirectory(prefix="gatekeeper-audit-") as directory:
        path = Path(directory) / "audit.jsonl"
        log = AuditLog(path)
        gatekeeper.audit = log
        try:
            yield records
        finally:
            gatekeeper.audit = previous
            log.close()
            records.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())


class StaticEngine:
    """A PolicyEngine whose answer is fixed: a value to return, or an exception to raise."""

    name = "static"

    def __init__(self, answer: Any, *, revision: str | None = "static") -> None:
        self.answer = answer
        self._revision = revision
        self.documents: list[dict[str, Any]] = []

    @property
    def revision(self) -> str | None:
        return self._revision

    def evaluate(self, document: dict[str, Any]) -> Any:
        self.documents.append(document)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def close(self) -> None:
        return None


# A policy whose work is the square of the number in the shell command (a comprehension over two
# numbers.range): about 1.7 s for 800 on rego-cpp, a minute for 5000, a few milliseconds for 10, and
# little memory. For tests of the evaluation deadline.
SLOW_POLICY = """package gatekeeper

decision := {"decision": "allow", "violations": [], "work": count(spent)}

n := to_number(input.call.arguments.command)

spent := [x | some x in numbers.range(1, n); some y in numbers.range(1, n); x == y]
"""


# Commands for it: past a deadline of a tenth of a second, within it, and about a minute of work.
SLOW_COMMAND, FAST_COMMAND, MINUTE_COMMAND = "800", "10", "5000"


def write_slow_policy(directory: Path) -> Path:
    """Write :data:`SLOW_POLICY` as a policy directory at ``directory``; returns it."""
    (directory / "gatekeeper").mkdir(parents=True)
    (directory / "gatekeeper" / "main.rego").write_text(SLOW_POLICY, encoding="utf-8")
    return directory


def wait_until_nothing_overdue(engine: EmbeddedEngine, timeout_s: float = 60.0) -> int:
    """Wait (at most ``timeout_s``) for the embedded engine's queries past their deadline, which run
    on after the deny, to end; returns how many still run."""
    deadline = time.monotonic() + timeout_s
    while engine.overdue and time.monotonic() < deadline:
        time.sleep(0.02)
    return engine.overdue
