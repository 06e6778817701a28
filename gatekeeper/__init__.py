"""gatekeeper: a policy-gated command mediation proxy for AI agents.

Every tool call an agent makes is analysed into neutral facts, decided by Rego policies, recorded in a
hash-chained audit log and, when allowed, executed. The public API is small::

    from gatekeeper import Gatekeeper, ToolCall
    with Gatekeeper() as gk:
        decision = gk.decide(ToolCall.shell("cp -r /models/llama /tmp/x"))
        decision.blocked  # True
"""

from gatekeeper._version import __version__
from gatekeeper.audit import AuditLog, verify_log
from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import ErrorCode, GatekeeperError
from gatekeeper.models import Decision, ExecResult, Mode, Outcome, ToolCall, Violation

__all__ = [
    "AuditLog",
    "Config",
    "Decision",
    "ErrorCode",
    "ExecResult",
    "Gatekeeper",
    "GatekeeperError",
    "Mode",
    "Outcome",
    "ToolCall",
    "Violation",
    "__version__",
    "verify_log",
]
