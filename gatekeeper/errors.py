"""gatekeeper's one exception tree.

    GatekeeperError            every error gatekeeper raises on purpose
    ├── InputError             a tool call or batch line that is not a valid ToolCall
    ├── AnalysisError          the analyser could not produce facts
    ├── PolicyLoadError        policies or data failed to load or compile
    ├── EngineError            the policy engine failed to return a usable decision
    │   ├── EngineTimeout      ... in time
    │   │   └── BudgetExceeded ... within a budget shorter than its deadline (evaluate again)
    │   ├── EngineUnavailable  ... because it cannot be reached
    │   └── EngineResultError  ... because its result was undefined or malformed
    ├── AuditError             the audit log could not be written or does not verify
    └── ExecutionError         an allowed command could not be started

Every error carries a stable ``code`` from :class:`ErrorCode`; the same code appears in HTTP error
bodies (``{code, message}``), in deny decisions made because of the error, and in audit records.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_INPUT = "invalid_input"
    PARSE_ERROR = "parse_error"
    ANALYSIS_ERROR = "analysis_error"
    POLICY_LOAD_ERROR = "policy_load_error"
    NO_POLICY_LOADED = "no_policy_loaded"
    ENGINE_ERROR = "engine_error"
    ENGINE_TIMEOUT = "engine_timeout"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    ENGINE_HTTP_ERROR = "engine_http_error"
    WORKER_UNAVAILABLE = "worker_unavailable"
    UNDEFINED_RESULT = "undefined_result"
    MALFORMED_RESULT = "malformed_result"
    AUDIT_ERROR = "audit_error"
    EXECUTION_ERROR = "execution_error"
    INTERNAL_ERROR = "internal_error"
    # HTTP-level codes of the service (gatekeeper.server): the ``code`` of ``{code, message}`` bodies.
    BLOCKED = "blocked"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    NOT_SUPPORTED = "not_supported"
    APPROVAL_PENDING = "approval_pending"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_CONFLICT = "approval_conflict"
    TOO_MANY_APPROVALS = "too_many_approvals"


class GatekeeperError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class InputError(GatekeeperError):
    code = ErrorCode.INVALID_INPUT


class AnalysisError(GatekeeperError):
    code = ErrorCode.ANALYSIS_ERROR


class PolicyLoadError(GatekeeperError):
    code = ErrorCode.POLICY_LOAD_ERROR


class EngineError(GatekeeperError):
    code = ErrorCode.ENGINE_ERROR


class EngineTimeout(EngineError):
    code = ErrorCode.ENGINE_TIMEOUT


class BudgetExceeded(EngineTimeout):
    """An evaluation given a budget shorter than the engine's deadline (the wasm engine's
    ``evaluate_briefly``) needed more: the caller evaluates again with the whole deadline. Were it to
    escape, it is a timeout: a deny."""


class EngineUnavailable(EngineError):
    code = ErrorCode.ENGINE_UNAVAILABLE


class EngineResultError(EngineError):
    code = ErrorCode.MALFORMED_RESULT


class AuditError(GatekeeperError):
    code = ErrorCode.AUDIT_ERROR


class ExecutionError(GatekeeperError):
    code = ErrorCode.EXECUTION_ERROR
