"""The wasm engine: the policy pack compiled to WebAssembly by OPA and run in-process by wasmtime.

``opa build -t wasm`` compiles the pack into one module that evaluates the decision itself; the
engine writes each input into the module's memory, calls its ``opa_eval`` export and reads the JSON
answer back. Everything runs inside gatekeeper's process, with no server, and about as fast as OPA's
own evaluation without the HTTP round trip (docs/opa.md has the figures).

- **Compiling** needs the ``opa`` binary, once per revision: the engine hands it the non-test
  modules of the current :class:`PolicySource` and reads ``policy.wasm`` out of the bundle it builds.
  A pack that does not compile, or that calls a builtin neither the module nor
  :mod:`gatekeeper.policy.wasm_builtins` provides (``http.send``, say), is a PolicyLoadError.
- **Threads**: a wasmtime store is not safe to share, so each thread keeps its own instance of the
  one compiled module, with the policy data parsed into it once. The call into Wasm releases the GIL.
- **Memory**: each evaluation starts from the heap as it was after the data was parsed, so nothing
  accumulates. An instance's memory may not grow past :data:`MAX_MEMORY_BYTES` (past it the call
  is denied), and an instance that grew past :data:`KEPT_MEMORY_BYTES` is dropped after its call.
- **Deadline**: unlike rego-cpp, Wasm can be interrupted. A ticker thread advances wasmtime's epoch
  every :data:`EPOCH_TICK_S`; an evaluation still running at its deadline traps, the call is denied
  (``engine_timeout``) and the instance is dropped. Nothing runs on past the deadline.
- **Builtin errors** make the builtin's expression undefined, as in OPA's default (non-strict) mode,
  so both engines built from OPA answer alike.
"""

from __future__ import annotations

import ctypes
import io
import json
import math
import os
import re
import subprocess
import tarfile
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime

from gatekeeper.errors import (
    BudgetExceeded,
    EngineError,
    EngineResultError,
    EngineTimeout,
    ErrorCode,
    PolicyLoadError,
)
from gatekeeper.jsonout import policy_input_json
from gatekeeper.policy.engine import UNDEFINED
from gatekeeper.policy.loader import ENTRYPOINT, PolicySource, load_policy_source
from gatekeeper.policy.opa_binary import find_opa
from gatekeeper.policy.wasm_builtins import HOST_BUILTINS, UNDEFINED_RESULT, call_host_builtin
from gatekeeper.policy.wasm_layout import data_end

_wasmtime_ffi: Any
try:  # wasmtime-py's own bindings of the C API, for _direct_caller
    from wasmtime import _ffi as _wasmtime_ffi
    from wasmtime._func import enter_wasm as _enter_wasm
except ImportError:  # pragma: no cover - another wasmtime-py layout: the public (slower) calls
    _wasmtime_ffi = None

DEFAULT_TIMEOUT_S = 10.0
# Whether exports are called through wasmtime's C API directly (see _direct_caller).
DIRECT_CALLS = True
# How often the deadline is looked at; an evaluation may overrun its deadline by up to this much.
EPOCH_TICK_S = 0.01
# One instance's linear memory. The pack needs a few MiB for a typical call; a call that needs more
# than this is denied rather than allowed to take the machine's memory.
MAX_MEMORY_BYTES = 1 << 30
# Wasm memory never shrinks: an instance that grew past this for one large call is dropped after it.
KEPT_MEMORY_BYTES = 64 << 20
# ``opa build`` of the pack takes well under a second; a hung build must not hang gatekeeper's start.
BUILD_TIMEOUT_S = 120.0
# Outside an evaluation the store has no deadline to speak of (wasmtime's deadline is never off).
_NO_DEADLINE = 2**62
_WASM_PAGE = 65536
_STRING_CHUNK = 4096  # most answers fit in one
_JSON_FORMAT = 0  # opa_eval's output format: JSON text

_INSTALL_HINT = (
    "the wasm engine compiles the policies with the opa binary; install it with ./scripts/setup.sh "
    "(or set GATEKEEPER_OPA), or use the embedded engine"
)


def compile_to_wasm(source: PolicySource, binary: str | os.PathLike[str] | None = None) -> bytes:
    """The Wasm module ``opa build -t wasm`` makes of ``source``'s decision entrypoint."""
    opa = Path(binary) if binary is not None else find_opa()
    if opa is None:
        raise PolicyLoadError(_INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="gatekeeper-wasm-") as work:
        # Exactly the modules the revision was computed from (no tests); data comes at evaluation.
        modules = Path(work, "modules")
        for name, text in source.modules.items():
            path = modules / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        bundle = Path(work, "bundle.tar.gz")
        argv = [str(opa), "build", "-t", "wasm", "-e", ENTRYPOINT, "-o", str(bundle), str(modules)]
        try:
            built = subprocess.run(
                argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, cwd=work
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PolicyLoadError(f"cannot compile the policies to wasm with {opa}: {error}") from error
        if built.returncode != 0:
            detail = (built.stderr or built.stdout).strip().replace(str(modules) + os.sep, "")
            raise PolicyLoadError(f"policies in {source.directory} do not compile to wasm:\n{detail}")
        return _policy_wasm(bundle.read_bytes())


def _policy_wasm(bundle: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name.lstrip("/") == "policy.wasm":
                extracted = archive.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise PolicyLoadError("opa build -t wasm produced no policy.wasm")


class _Program:
    """One revision compiled: the wasmtime module, its decision entrypoint and its host builtins."""

    __slots__ = ("builtins", "engine", "entrypoint", "memory_pages", "module", "source")

    def __init__(self, engine: wasmtime.Engine, source: PolicySource, wasm: bytes) -> None:
        self.engine = engine
        self.source = source
        # At least what the data segments fill: opa's declared minimum can be a page short.
        self.memory_pages = max(2, -(-data_end(wasm) // _WASM_PAGE))
        try:
            self.module = wasmtime.Module(engine, wasm)
        except wasmtime.WasmtimeError as error:
            raise PolicyLoadError(f"wasmtime cannot load the compiled policies: {error}") from error
        self.builtins: dict[int, str] = {}
        self.entrypoint = 0
        # A first instance reads what the module needs, and proves it can start.
        try:
            probe = _Instance(self)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
            raise PolicyLoadError(f"the compiled policies cannot start: {error}") from error
        needed = probe.exported_json("builtins")
        entrypoints = probe.exported_json("entrypoints")
        missing = sorted(set(needed) - HOST_BUILTINS)
        if missing:
            raise PolicyLoadError(
                f"policies in {source.directory} call builtins the wasm engine does not provide: "
                f"{', '.join(missing)}; use the embedded or opa engine"
            )
        if ENTRYPOINT not in entrypoints:
            raise PolicyLoadError(f"the compiled policies have no {ENTRYPOINT} entrypoint")
        self.builtins = {int(number): name for name, number in needed.items()}
        self.entrypoint = int(entrypoints[ENTRYPOINT])


class _Aborted(Exception):
    """The module called opa_abort (a runtime error in the policy, such as conflicting outputs)."""


class _Operand:
    """A builtin's argument: read from the module's memory only as far as the builtin asks."""

    __slots__ = ("_address", "_instance")

    def __init__(self, instance: _Instance, address: int) -> None:
        self._instance = instance
        self._address = address

    @property
    def value(self) -> Any:
        return json.loads(self._instance.dump(self._address, "opa_json_dump"))

    def rego_text(self) -> str:
        return self._instance.dump(self._address, "opa_value_dump")


class _Instance:
    """One thread's instance of a program: its store, memory, and the policy data parsed into it."""

    def __init__(self, program: _Program) -> None:
        self.program = program
        self.store = wasmtime.Store(program.engine)
        self.store.set_limits(memory_size=MAX_MEMORY_BYTES)
        self.store.set_epoch_deadline(_NO_DEADLINE)
        self._exports: dict[str, Callable[..., int]] = {}
        self.memory = self._instantiate()
        self._data = self._parse(json.dumps(program.source.data).encode())
        self._heap_base = self._call("opa_heap_ptr_get")

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, text: bytes, deadline_ticks: int | None) -> bytes:
        """The module's JSON answer to the input JSON ``text`` (``[{"result": ...}]`` or ``[]``),
        interrupted after ``deadline_ticks`` epochs (None: never)."""
        base = self._heap_base
        self._reserve(base + len(text))
        self._write(text, base)
        # Only opa_eval runs under the deadline: the instance calls nothing else between evaluations.
        self.store.set_epoch_deadline(_NO_DEADLINE if deadline_ticks is None else deadline_ticks)
        result = self._call(
            "opa_eval",
            0,
            self.program.entrypoint,
            self._data,
            base,
            len(text),
            base + len(text),
            _JSON_FORMAT,
        )
        return self._string_at(result)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory.data_len(self.store))

    # -- the module's exports and imports --------------------------------------------------------

    def exported_json(self, export: str) -> Any:
        return json.loads(self.dump(self._call(export), "opa_json_dump"))

    def dump(self, address: int, how: str) -> str:
        return self._string_at(self._call(how, address)).decode("utf-8", "replace")

    def _instantiate(self) -> wasmtime.Memory:
        module = self.program.module
        i32 = wasmtime.ValType.i32()
        linker = wasmtime.Linker(self.program.engine)
        memory: wasmtime.Memory | None = None
        for item in module.imports:
            name = item.name or ""
            if item.module != "env":
                raise PolicyLoadError(
                    f"the compiled policies import {item.module}.{name}, unknown to gatekeeper"
                )
            if name == "memory":
                assert isinstance(item.type, wasmtime.MemoryType)  # noqa: S101 - OPA's ABI
                minimum = max(item.type.limits.min, self.program.memory_pages)
                memory = wasmtime.Memory(self.store, wasmtime.MemoryType(wasmtime.Limits(minimum, None)))
                linker.define(self.store, "env", name, memory)
            elif name.startswith("opa_builtin") and name[len("opa_builtin") :].isdigit():
                arity = int(name[len("opa_builtin") :])
                kind = wasmtime.FuncType([i32] * (arity + 2), [i32])
                linker.define(self.store, "env", name, wasmtime.Func(self.store, kind, self._builtin))
            elif name == "opa_abort":
                kind = wasmtime.FuncType([i32], [])
                linker.define(self.store, "env", name, wasmtime.Func(self.store, kind, self._abort))
            elif name == "opa_println":  # `print` in a policy: OPA drops it unless asked to show it
                kind = wasmtime.FuncType([i32], [])
                linker.define(self.store, "env", name, wasmtime.Func(self.store, kind, lambda _address: None))
            else:
                raise PolicyLoadError(f"the compiled policies import env.{name}, unknown to gatekeeper")
        if memory is None:
            raise PolicyLoadError("the compiled policies import no memory (not an OPA wasm module)")
        instance = linker.instantiate(self.store, module)
        for name, export in instance.exports(self.store).items():
            if isinstance(export, wasmtime.Func) and _takes_and_gives_i32(export.type(self.store)):
                self._exports[name] = _caller(self.store, export)
        return memory

    def _builtin(self, number: int, _context: int, *addresses: int) -> int:
        name = self.program.builtins.get(number)
        if name is None:
            raise _Aborted(f"the policies called unknown host builtin number {number}")
        result = call_host_builtin(name, [_Operand(self, address) for address in addresses])
        if result is UNDEFINED_RESULT:
            return 0  # OPA's ABI: no value, the expression is undefined
        return self._parse(json.dumps(result).encode())

    def _abort(self, address: int) -> None:
        raise _Aborted(self._string_at(address).decode("utf-8", "replace"))

    def _call(self, export: str, *arguments: int) -> int:
        function = self._exports.get(export)
        if function is None:
            raise PolicyLoadError(f"the compiled policies do not export {export} (not an OPA wasm module)")
        return function(*arguments)

    def _parse(self, raw: bytes) -> int:
        address = self._call("opa_malloc", len(raw))
        self._write(raw, address)
        parsed = self._call("opa_json_parse", address, len(raw))
        if parsed == 0:
            raise EngineError("the policy module could not parse a JSON value gatekeeper gave it")
        return parsed

    def _write(self, raw: bytes, address: int) -> None:
        """Copy ``raw`` into the module's memory at ``address`` (wasmtime-py's Memory.write copies it
        twice more and asks for the memory's size and address separately)."""
        if address < 0 or address + len(raw) > self.memory_bytes:
            raise EngineError(f"{len(raw)} bytes at {address} do not fit in the module's memory")
        ctypes.memmove(self._address() + address, raw, len(raw))

    def _address(self) -> int:
        """Where the module's memory starts in this process (it may move when the memory grows)."""
        base = ctypes.cast(self.memory.data_ptr(self.store), ctypes.c_void_p).value
        assert base is not None  # noqa: S101 - an instantiated memory has an address
        return base

    def _reserve(self, end: int) -> None:
        missing = end - self.memory_bytes
        if missing > 0:
            self.memory.grow(self.store, -(-missing // _WASM_PAGE))

    def _string_at(self, address: int) -> bytes:
        """The NUL-terminated string at ``address`` in the module's memory, read in chunks that
        never pass the memory's end: past it lie pages that are not mapped, and reading them would
        crash the process, not fail the call."""
        end = self.memory_bytes
        if address <= 0 or address >= end:
            raise EngineError(f"the policy module returned an address outside its memory ({address})")
        base = self._address()
        pieces: list[bytes] = []
        start = address
        while start < end:
            piece = ctypes.string_at(base + start, min(_STRING_CHUNK, end - start))
            stop = piece.find(b"\0")
            if stop >= 0:
                pieces.append(piece[:stop])
                return b"".join(pieces)
            pieces.append(piece)
            start += len(piece)
        raise EngineError("the policy module returned a string that does not end within its memory")


def _takes_and_gives_i32(kind: wasmtime.FuncType) -> bool:
    """OPA's ABI: every export gatekeeper calls takes i32s and gives one i32."""
    i32 = wasmtime.ValType.i32()
    return all(param == i32 for param in kind.params) and [str(r) for r in kind.results] == [str(i32)]


def _caller(store: wasmtime.Store, function: wasmtime.Func) -> Callable[..., int]:
    if _wasmtime_ffi is None or not DIRECT_CALLS:
        return lambda *arguments: int(function(store, *arguments))
    return _direct_caller(store, function)


def _direct_caller(store: wasmtime.Store, function: wasmtime.Func) -> Callable[..., int]:
    """Calls ``function`` (i32s in, one i32 out) through wasmtime's C API as wasmtime-py does, less
    what a known signature makes needless: wasmtime-py's ``Func.__call__`` builds and frees the
    function's type and a value per argument on every call, about 25 foreign calls, each releasing
    and taking back the GIL. That cost as much as the evaluation itself, and in the service, where
    other threads wait for the GIL, each hand-over made it several times more (docs/opa.md).
    A trap raises wasmtime.Trap, and an exception raised in a host function is raised again, as
    with ``Func.__call__``. wasmtime-py keeps that exception in one process-wide slot until it is
    raised again, so two threads whose host functions fail at the same moment may swap their
    messages; both calls are denied all the same."""
    ffi: Any = _wasmtime_ffi
    i32_kind = ffi.WASMTIME_I32.value
    call_function = ffi.wasmtime_func_call
    context = store._context()  # wasmtime-py's handle of the store, as its calls use
    handle = ctypes.byref(function._func)
    value_array = ffi.wasmtime_val_t

    def call(*arguments: int) -> int:
        params = (value_array * len(arguments))()
        for index, argument in enumerate(arguments):
            params[index].kind = i32_kind
            params[index].of.i32 = argument
        results = (value_array * 1)()
        with _enter_wasm(store) as trap:
            error = call_function(context, handle, params, len(arguments), results, 1, trap)
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
        return int(results[0].of.i32) & 0xFFFFFFFF

    return call


class _Ticker:
    """Advances a wasmtime engine's epoch every EPOCH_TICK_S until stopped; a daemon thread."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(engine, self._stop), name="gk-wasm-epoch", daemon=True
        )
        thread.start()

    def stop(self) -> None:
        self._stop.set()

    @staticmethod
    def _run(engine: wasmtime.Engine, stop: threading.Event) -> None:
        while not stop.wait(EPOCH_TICK_S):
            engine.increment_epoch()


class WasmEngine:
    """PolicyEngine backed by OPA's Wasm compilation of the pack, run by wasmtime in this process."""

    name = "wasm"

    def __init__(
        self,
        policy_dir: str | os.PathLike[str] | None = None,
        *,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        opa_binary: str | os.PathLike[str] | None = None,
    ) -> None:
        """``timeout_s``: the evaluation deadline, after which the call is denied; None for none."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, not {timeout_s!r}")
        self.timeout_s = timeout_s
        self._policy_dir = policy_dir
        self._opa_binary = opa_binary
        config = wasmtime.Config()
        config.epoch_interruption = True
        self._engine = wasmtime.Engine(config)
        self._deadline_ticks = None if timeout_s is None else _ticks(timeout_s)
        self._local = threading.local()
        self._program = self._compile(load_policy_source(policy_dir))
        # Always ticking: evaluate_briefly sets a deadline even when the engine has none.
        self._ticker = _Ticker(self._engine)
        weakref.finalize(self, self._ticker.stop)

    @property
    def revision(self) -> str | None:
        return self._program.source.revision

    @property
    def source(self) -> PolicySource:
        return self._program.source

    def reload(self) -> PolicySource:
        """Re-read and compile the policies; on failure raise PolicyLoadError and keep the old ones."""
        source = load_policy_source(self._policy_dir)
        if source.revision == self._program.source.revision:
            return source
        self._program = self._compile(source)  # one assignment: threads see the old or the new
        return source

    def prepare(self) -> None:
        """Start the calling thread's instance now, not at its first call."""
        self._instance()

    can_evaluate_inline = True

    def evaluate(self, document: dict[str, Any]) -> Any:
        return self._evaluate(document, self._deadline_ticks, self.timeout_s)

    def evaluate_briefly(self, document: dict[str, Any], budget_s: float) -> Any:
        """:meth:`evaluate`, interrupted after ``budget_s`` (when that is sooner than the deadline)
        with BudgetExceeded, for a caller that will evaluate again with the whole deadline."""
        if self.timeout_s is not None and budget_s >= self.timeout_s:
            return self.evaluate(document)
        return self._evaluate(document, _ticks(budget_s), None)

    def _evaluate(self, document: dict[str, Any], ticks: int | None, timeout_s: float | None) -> Any:
        """The evaluation, interrupted after ``ticks``: an EngineTimeout for ``timeout_s`` (the
        engine's deadline), else BudgetExceeded (a budget smaller than the deadline)."""
        try:
            text = _without_lone_surrogates(policy_input_json(document)).encode("ascii")
        except (TypeError, ValueError) as error:
            raise EngineError(f"input not encodable for the wasm engine: {error}") from error
        try:
            instance = self._instance()
            answer = instance.evaluate(text, ticks)
        except Exception as error:  # noqa: BLE001 - every failure is this call's deny (see _failure)
            self._local.instance = None  # its memory and stack are in an unknown state
            raise _failure(error, timeout_s) from None
        if instance.memory_bytes > KEPT_MEMORY_BYTES:  # the call made it grow: let it go
            self._local.instance = None
        return _result(answer)

    def close(self) -> None:
        self._local = threading.local()
        self._ticker.stop()

    def _compile(self, source: PolicySource) -> _Program:
        return _Program(self._engine, source, compile_to_wasm(source, self._opa_binary))

    def _instance(self) -> _Instance:
        instance: _Instance | None = getattr(self._local, "instance", None)
        program = self._program
        if instance is None or instance.program is not program:
            instance = self._local.instance = _Instance(program)
        return instance


def _failure(error: Exception, timeout_s: float | None) -> EngineError:
    """The EngineError an evaluation that raised ``error`` ends in. An interrupt is the deadline
    (``timeout_s``) or, when that is None, a budget the caller set (BudgetExceeded); any other
    exception, a host builtin's bug raised again through the module included, is an engine error."""
    if isinstance(error, wasmtime.Trap):
        if error.trap_code == wasmtime.TrapCode.INTERRUPT:
            if timeout_s is None:
                return BudgetExceeded("the wasm engine needs more than its budget")
            return EngineTimeout(f"the wasm engine did not decide within {timeout_s:g}s")
        return EngineError(f"the policy module trapped: {_first_line(error.message)}")
    if isinstance(error, _Aborted):
        return EngineError(f"policy evaluation failed: {error}")
    if isinstance(error, (wasmtime.WasmtimeError, EngineError)):
        return EngineError(f"the wasm engine failed: {_first_line(str(error))}")
    return EngineError(f"the wasm engine failed: {type(error).__name__}: {error}")


# In JSON text: an escaped backslash (skipped whole, so that what follows it is not read as an
# escape), or a surrogate escape with, for a high one, the low one that may follow it.
_SURROGATE_ESCAPE = re.compile(r"(\\\\)|\\u(d[89ab][0-9a-f]{2})(\\ud[c-f][0-9a-f]{2})?|\\ud[c-f][0-9a-f]{2}")


def _without_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate escape made U+FFFD, as OPA's JSON decoder does; the module's
    own decoder rejects the whole input over one (json.dumps writes pairs and lone ones alike)."""
    if "\\ud" not in text:
        return text
    return _SURROGATE_ESCAPE.sub(_keep_pairs, text)


def _keep_pairs(match: re.Match[str]) -> str:
    escaped_backslash, high, low = match.groups()
    if escaped_backslash or (high and low):
        return match.group(0)
    return "\\ufffd"


def _ticks(seconds: float) -> int:
    return max(1, math.ceil(seconds / EPOCH_TICK_S))


def _result(answer: bytes) -> Any:
    try:
        results = json.loads(answer)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EngineResultError(
            f"the wasm engine returned unreadable output: {answer[:200]!r}", code=ErrorCode.MALFORMED_RESULT
        ) from error
    if not isinstance(results, list):
        raise EngineResultError(f"the wasm engine returned {type(results).__name__}, not a result set")
    if not results:
        return UNDEFINED
    first = results[0]
    if not isinstance(first, dict) or "result" not in first:
        return UNDEFINED
    return first["result"]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"
