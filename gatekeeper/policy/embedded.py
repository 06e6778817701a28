"""The embedded engine: policies compiled once by rego-cpp (regopy) and queried in-process.

regopy calls into a C++ library through ctypes, which releases the GIL, and an interpreter is not
safe to share between threads; each thread therefore keeps its own interpreter and compiled bundle,
built lazily from the one current :class:`PolicySource`. ``reload`` compiles a new source before it
swaps it in, so a policy that does not compile leaves the last good revision active.

rego-cpp cannot be interrupted, so the evaluation deadline (``timeout_s``) is kept by running each
query on a runner thread, one per calling thread. The runner uses the caller's interpreter while the
caller waits, so still one thread at a time. Past the deadline the caller denies (``engine_timeout``)
and leaves the runner and the interpreter to the query, which runs to its end; the caller's next call
gets a new runner and compiles a fresh interpreter. At most :data:`MAX_OVERDUE` such queries may
still be running; beyond that, calls are denied at once rather than adding to them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import re
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import regopy
from regopy.rego_shared import (
    rego_bundle_query_entrypoint,
    rego_free_output,
    rego_output_ok,
    rego_output_string,
)

from gatekeeper.errors import EngineError, EngineResultError, EngineTimeout, ErrorCode, PolicyLoadError
from gatekeeper.policy.engine import UNDEFINED
from gatekeeper.policy.loader import ENTRYPOINT, PolicySource, load_policy_source

_regopy_quiet = False

# The pack decides a call in tens of milliseconds and a call of a hundred `find | xargs` pipelines
# in about ten seconds (docs/opa.md); agents' own tool timeouts are usually a minute or less.
DEFAULT_TIMEOUT_S = 10.0
# Queries past their deadline that may still be running, each keeping a core busy.
MAX_OVERDUE = 4


def _silence_regopy() -> None:
    # rego-cpp logs compile errors itself; gatekeeper reports them through PolicyLoadError instead.
    global _regopy_quiet  # noqa: PLW0603 - one process-wide library setting, applied once
    if not _regopy_quiet:
        regopy.set_default_log_level("None")
        _regopy_quiet = True


class _Compiled:
    __slots__ = ("bundle", "interpreter", "revision")

    def __init__(self, source: PolicySource, *, verified: bool = False) -> None:
        self.interpreter, self.bundle = compile_bundle(source, capture=not verified)
        self.revision = source.revision


def compile_bundle(source: PolicySource, *, capture: bool = True) -> tuple[Any, Any]:
    """Compile ``source`` into a regopy bundle with the decision entrypoint; PolicyLoadError if it fails.

    ``capture=False`` is for a source that already compiled once in this process (another thread's
    copy): it cannot fail, and leaving file descriptor 1 alone keeps other threads' output safe.
    """
    _silence_regopy()
    interpreter = regopy.Interpreter()
    with _native_stdout_captured() if capture else contextlib.nullcontext(_Captured()) as captured:
        try:
            interpreter.add_data(source.data)
            for name, text in source.modules.items():
                interpreter.add_module(name, text)
            bundle = interpreter.build(None, [ENTRYPOINT])
            error = None
        except regopy.RegoError as raised:
            error = raised
    if error is not None:
        detail = captured.text.strip() or _first_lines(error)
        raise PolicyLoadError(f"policies in {source.directory} do not compile:\n{detail}") from error
    return interpreter, bundle


class _Captured:
    text = ""


@contextlib.contextmanager
def _native_stdout_captured() -> Iterator[_Captured]:
    """Capture what the C++ library prints on file descriptor 1 while compiling.

    rego-cpp prints its (readable) compile errors to the process's stdout, which would corrupt the
    JSON gatekeeper prints there; the captured text becomes the PolicyLoadError message instead.
    """
    captured = _Captured()
    # Serialised: file descriptor 1 is shared by the whole process, and two threads redirecting it
    # at once would each restore the other's redirection.
    with _STDOUT_REDIRECTION, tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
        finally:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


_STDOUT_REDIRECTION = threading.Lock()

# A string may hold a lone surrogate (from a JSON "\ud800" escape), which UTF-8 cannot carry to
# rego-cpp. OPA's JSON decoder turns each into U+FFFD; so does this engine, and both decide alike.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _flush_c_stdio() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


class EmbeddedEngine:
    """PolicyEngine backed by rego-cpp, no server needed."""

    name = "embedded"

    def __init__(
        self, policy_dir: str | os.PathLike[str] | None = None, *, timeout_s: float | None = DEFAULT_TIMEOUT_S
    ) -> None:
        """``timeout_s``: the evaluation deadline, after which the call is denied; None for none."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, not {timeout_s!r}")
        self._policy_dir = policy_dir
        source = load_policy_source(policy_dir)
        compiled = _Compiled(source)  # fail now, not at the first call
        self._source = source
        self._lock = threading.Lock()
        self._local = threading.local()
        self._local.compiled = compiled
        self.timeout_s = timeout_s
        self._overdue = 0
        # The runners of the threads that called; retired by close(), or when the engine is collected.
        self._runners: set[_Runner] = set()
        weakref.finalize(self, _retire, self._runners)

    @property
    def revision(self) -> str | None:
        return self._source.revision

    @property
    def source(self) -> PolicySource:
        return self._source

    def reload(self) -> PolicySource:
        """Re-read and compile the policies; on failure raise PolicyLoadError and keep the old ones."""
        source = load_policy_source(self._policy_dir)
        if source.revision == self._source.revision:
            return source
        compiled = _Compiled(source)
        with self._lock:
            self._source = source
        self._local.compiled = compiled
        return source

    def prepare(self) -> None:
        """Compile the calling thread's copy of the current policies now, not at its first call."""
        self._compiled()

    def evaluate(self, document: dict[str, Any]) -> Any:
        compiled = self._compiled()
        try:
            # As JSON text: rego-cpp then keeps strings in their escaped form and writes them back
            # escaped, so quotes, backslashes and newlines from commands survive into the result.
            # (Given a dict, it stores them raw and prints them raw, which is not JSON.)
            # A session's history as JSON text, which lib.session unmarshals: rego-cpp takes a long
            # input in time that grows faster than its term count (a 64-call history added about
            # 27 ms per call to the pack), json.unmarshal in linear time (about 1 ms).
            session = document.get("session")
            if isinstance(session, dict) and session.get("history"):
                document = {**document, "session": json.dumps(session, ensure_ascii=False)}
            term = _LONE_SURROGATE.sub("\ufffd", json.dumps(document, ensure_ascii=False))
        except (TypeError, ValueError) as error:
            raise EngineError(f"input not encodable for the embedded engine: {error}") from error
        ok, text = self._query(compiled, term)
        if not ok or text.lstrip().startswith("(error"):
            # A builtin failing at evaluation time (rego-cpp reports it as an ok output).
            raise EngineError(f"embedded engine failed: {_rego_error_message(text)}")
        if text == "undefined":
            return UNDEFINED
        try:
            output = json.loads(text)
        except json.JSONDecodeError as error:
            if "(errormsg" in text:  # an error report nested inside the result
                raise EngineError(f"embedded engine failed: {_rego_error_message(text)}") from error
            raise EngineResultError(
                f"embedded engine returned unreadable output: {text[:200]}", code=ErrorCode.MALFORMED_RESULT
            ) from error
        if isinstance(output, list):  # one entry per result; the entrypoint has one
            output = output[0] if output else {}
        expressions = output.get("expressions") if isinstance(output, dict) else None
        if not isinstance(expressions, list) or not expressions:
            return UNDEFINED
        return expressions[0]

    @property
    def overdue(self) -> int:
        """Queries past their deadline that are still running."""
        with self._lock:
            return self._overdue

    def close(self) -> None:
        self._local = threading.local()
        _retire(self._runners)

    def _query(self, compiled: _Compiled, term: str) -> tuple[bool, str]:
        """rego-cpp's answer to ``term``: (ok, text), within the deadline."""
        if self.timeout_s is None:
            return _run_query(compiled, term)
        with self._lock:
            if self._overdue >= MAX_OVERDUE:
                raise EngineTimeout(
                    f"the embedded engine still runs {self._overdue} evaluations past their "
                    f"{self.timeout_s:g}s deadline; denying until one ends"
                )
        runner = self._runner()
        query = _Query(compiled, term, self._lock, self._query_ended)
        runner.run(query)
        if not query.done.wait(self.timeout_s):
            with self._lock:
                if not query.finished:  # else it ended just now: its answer stands
                    query.overdue = True
                    self._overdue += 1
                    self._runners.discard(runner)
            if query.overdue:
                # Both stay with the query: this thread gets a new runner and compiles anew.
                self._local.runner = None
                if getattr(self._local, "compiled", None) is compiled:
                    self._local.compiled = None
                runner.retire()
                raise EngineTimeout(f"the embedded engine did not decide within {self.timeout_s:g}s")
        return query.answer()

    def _runner(self) -> _Runner:
        runner: _Runner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._local.runner = _Runner()
            with self._lock:
                self._runners.add(runner)
        return runner

    def _query_ended(self, query: _Query) -> None:
        """Called with the lock held when a query ends."""
        if query.overdue:
            self._overdue -= 1

    def _compiled(self) -> _Compiled:
        compiled: _Compiled | None = getattr(self._local, "compiled", None)
        source = self._source
        if compiled is None or compiled.revision != source.revision:
            compiled = _Compiled(source, verified=True)  # this revision compiled in __init__/reload
            self._local.compiled = compiled
        return compiled


class _Runner:
    """A daemon thread running one calling thread's queries, one at a time, so that a query past its
    deadline can be left to run on. A daemon: it must not keep the process from exiting
    (``gatekeeper check`` is done once it has denied). One per calling thread rather than one per
    query: starting a thread for each query cost about 0.2-1 ms of a 13 ms evaluation."""

    def __init__(self) -> None:
        self._queries: queue.SimpleQueue[_Query | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="gk-rego", daemon=True).start()

    def run(self, query: _Query) -> None:
        self._queries.put(query)

    def retire(self) -> None:
        """End the thread once its current query, if any, is done."""
        self._queries.put(None)

    def _serve(self) -> None:
        while (query := self._queries.get()) is not None:
            query.run()


def _retire(runners: set[_Runner]) -> None:
    for runner in list(runners):
        runner.retire()
    runners.clear()


class _Query:
    """One query and its answer, handed from the calling thread to its runner."""

    def __init__(
        self, compiled: _Compiled, term: str, lock: threading.Lock, on_end: Callable[[_Query], None]
    ) -> None:
        self.done = threading.Event()
        self.finished = False  # under ``lock``, like ``overdue``
        self.overdue = False
        self._compiled = compiled
        self._term = term
        self._lock = lock
        self._on_end = on_end
        self._answer: tuple[bool, str] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._answer = _run_query(self._compiled, self._term)
        except BaseException as error:  # noqa: BLE001 - handed to the caller by answer()
            self._error = error
        finally:
            with self._lock:
                self.finished = True
                self._on_end(self)
            self.done.set()

    def answer(self) -> tuple[bool, str]:
        if self._error is not None:
            raise self._error
        assert self._answer is not None  # noqa: S101 - set before done
        return self._answer


def _run_query(compiled: _Compiled, term: str) -> tuple[bool, str]:
    """Query the decision entrypoint with ``term`` as the input: (ok, rego-cpp's output text)."""
    try:
        compiled.interpreter.set_input_term(term)
        # The low-level call: regopy's Output parses the text itself and hides rego-cpp's error
        # report (an S-expression) behind a JSON error.
        handle = rego_bundle_query_entrypoint(compiled.interpreter._impl, compiled.bundle._impl, ENTRYPOINT)
    except regopy.RegoError as error:
        raise EngineError(f"embedded engine failed: {_first_lines(error)}") from error
    try:
        return bool(rego_output_ok(handle)), str(rego_output_string(handle))
    finally:
        rego_free_output(handle)


def _rego_error_message(text: str) -> str:
    """The messages of a rego-cpp error report (``(errormsg 23:Invalid escape sequence)``)."""
    messages = [match.group(1) for match in _ERRORMSG.finditer(text)]
    if messages:
        return "; ".join(messages)
    if text.strip() == "<error>":
        return _NO_REASON
    return text.strip()[:300]


# rego-cpp's whole answer for some very large calls (400 operands of one `cp`; docs/opa.md).
_NO_REASON = "rego-cpp failed without giving a reason (<error>), as it does on some very large calls"


_ERRORMSG = re.compile(r"\(errormsg \d+:([^)]*)\)")


def _first_lines(error: Exception, limit: int = 6) -> str:
    return " | ".join(line.strip() for line in str(error).splitlines()[:limit] if line.strip())
