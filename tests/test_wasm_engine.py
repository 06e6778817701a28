"""The wasm engine: the pack compiled by ``opa build -t wasm`` and run in process by wasmtime.

Decisions agree with OPA's on the whole corpus (tests/test_parity.py); these tests cover what is
the engine's own: compiling and refusing packs, the deadline, memory, errors, threads, reload, and
the front ends that choose it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import wasmtime

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper, build_engine
from gatekeeper.errors import BudgetExceeded, EngineError, ErrorCode, PolicyLoadError
from gatekeeper.models import Outcome
from gatekeeper.policy import wasm
from gatekeeper.policy.engine import UNDEFINED
from gatekeeper.policy.loader import default_policy_dir, load_policy_source
from gatekeeper.policy.reload import InProcessReloader, reloader_for
from gatekeeper.policy.wasm import WasmEngine
from gatekeeper.policy.wasm_layout import data_end
from gatekeeper.testing import FAST_COMMAND, SLOW_COMMAND, capture_audit, shell_call, write_slow_policy

pytestmark = pytest.mark.opa

ALLOW = 'decision := {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}\n'


@pytest.fixture(autouse=True)
def _needs_opa(opa_binary):
    """The engine compiles with opa: skipped without it, except under CI=true (see conftest)."""


@pytest.fixture
def open_wasm():
    """``WasmEngine(...)``, closed when the test ends."""
    engines: list[WasmEngine] = []

    def open_engine(*args, **kwargs) -> WasmEngine:
        engine = WasmEngine(*args, **kwargs)
        engines.append(engine)
        return engine

    yield open_engine
    for engine in engines:
        engine.close()


@pytest.fixture(scope="module")
def pack_engine():
    engine = WasmEngine(default_policy_dir())
    yield engine
    engine.close()


def decide(engine, command, **fields):
    return Gatekeeper(Config(decision_cache_size=0), engine=engine).decide(shell_call(command, **fields))


def test_the_pack_denies_a_weights_copy_and_allows_ordinary_work(pack_engine):
    denied = decide(pack_engine, "cp -r /models/llama /tmp/x")
    assert denied.decision is Outcome.DENY
    [violation] = denied.violations
    assert violation.rule == "weights.copy"
    assert violation.message == "cp copies model weights /models/llama to /tmp/x"  # sprintf, by the host
    assert decide(pack_engine, "git status").decision is Outcome.ALLOW
    assert denied.policy_revision == pack_engine.revision


def test_config_and_cli_choose_the_wasm_engine(tmp_path):
    engine = build_engine(Config(engine="wasm"))
    try:
        assert isinstance(engine, WasmEngine)
    finally:
        engine.close()
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "check", "--engine", "wasm", "--compact", "kill -9 1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    decision = json.loads(done.stdout)
    assert decision["decision"] == "deny"
    assert {v["family"] for v in decision["violations"]} == {"processes"}


def test_an_undefined_decision_is_undefined(open_wasm, write_policies):
    engine = open_wasm(write_policies("package gatekeeper\n\ndecision := 1 if input.never\n"))
    assert engine.evaluate({"call": {}}) is UNDEFINED
    denied = decide(engine, "ls")
    assert denied.decision is Outcome.DENY
    assert denied.error is not None and denied.error.code == ErrorCode.UNDEFINED_RESULT


def test_a_pack_whose_data_ends_past_the_memory_opa_declares_starts_and_decides(
    open_wasm, write_policies, monkeypatch
):
    # opa sizes the module's memory import from its data but can come up a few bytes short; a
    # constant long enough to end the data just past a page boundary shows it.
    def policies(padding: int):
        decision = ALLOW.replace("\n", " if not input.padding == pad\n")  # pad must be used to be kept
        rego = f'package gatekeeper\n\npad := "{"x" * padding}"\n\n{decision}'
        return write_policies(rego, name=f"padded-{padding}")

    def compiled(directory) -> bytes:
        return wasm.compile_to_wasm(load_policy_source(directory))

    before_padding = data_end(compiled(policies(1000))) - 1000
    padded = policies(1000 + (-(before_padding + 1000) % 65536) + 5)
    padded_wasm = compiled(padded)
    module = wasmtime.Module(wasmtime.Engine(), padded_wasm)
    declared = next(item.type.limits.min for item in module.imports if item.name == "memory")
    assert data_end(padded_wasm) > declared * 65536, "opa declares enough memory: no longer reproduces"
    assert decide(open_wasm(padded), "ls").decision is Outcome.ALLOW
    # Sized as opa declares it, the module traps as it starts: a refused pack, not a crash.
    monkeypatch.setattr(wasm, "data_end", lambda _wasm: 0)
    with pytest.raises(PolicyLoadError, match=r"cannot start: .*out of bounds memory access"):
        open_wasm(padded)


def test_a_pack_that_does_not_compile_is_refused_with_opas_message(write_policies):
    with pytest.raises(PolicyLoadError, match=r"do not compile to wasm:\n.*gatekeeper/main\.rego:3"):
        WasmEngine(write_policies("package gatekeeper\n\ndecision if { input.a = }\n"))


def test_a_pack_that_needs_a_builtin_the_engine_lacks_is_refused(write_policies):
    rego = 'package gatekeeper\n\ndecision := http.send({"method": "get", "url": input.url})\n'
    with pytest.raises(PolicyLoadError, match=r"builtins the wasm engine does not provide: http\.send"):
        WasmEngine(write_policies(rego))


def test_without_the_opa_binary_the_engine_does_not_start(tmp_path):
    with pytest.raises(PolicyLoadError, match="cannot compile the policies to wasm"):
        WasmEngine(default_policy_dir(), opa_binary=tmp_path / "no-opa")


def test_a_runtime_error_in_the_policy_is_an_engine_error(open_wasm, write_policies):
    # Two values for one complete rule: OPA answers with an error, the module aborts.
    rego = "package gatekeeper\n\ndecision := 1 if input.a\n\ndecision := 2 if input.b\n"
    engine = open_wasm(write_policies(rego))
    with pytest.raises(EngineError, match="policy evaluation failed"):
        engine.evaluate({"a": True, "b": True})
    assert engine.evaluate({"a": True}) == 1  # the thread's next call has a fresh instance


def test_a_builtin_error_makes_its_expression_undefined_as_in_opa(open_wasm, write_policies):
    rego = (
        "package gatekeeper\n\n"
        'decision := {"replaced": r} if r := regex.replace("abc", input.pattern, "x")\n\n'
        'decision := {"replaced": "none"} if not regex.replace("abc", input.pattern, "x")\n'
    )
    engine = open_wasm(write_policies(rego))
    assert engine.evaluate({"pattern": "b"}) == {"replaced": "axc"}
    assert engine.evaluate({"pattern": "("}) == {"replaced": "none"}  # an invalid regex


def test_a_call_past_the_deadline_is_denied_at_once_and_nothing_runs_on(open_wasm, tmp_path):
    engine = open_wasm(write_slow_policy(tmp_path / "slow"), timeout_s=0.1)
    gatekeeper = Gatekeeper(Config(decision_cache_size=0), engine=engine)
    started = time.monotonic()
    with capture_audit(gatekeeper) as records:
        denied = gatekeeper.decide(shell_call(SLOW_COMMAND, id="slow"))
    elapsed = time.monotonic() - started
    assert denied.decision is Outcome.DENY
    assert denied.error is not None and denied.error.code == ErrorCode.ENGINE_TIMEOUT
    assert "within 0.1s" in denied.error.message
    assert records[0]["error"]["code"] == "engine_timeout"
    # Interrupted, not abandoned: the thread decides again right away, on a fresh instance.
    assert elapsed < 5, f"the deny took {elapsed:.2f}s"
    assert gatekeeper.decide(shell_call(FAST_COMMAND)).decision is Outcome.ALLOW


def test_without_a_deadline_a_slow_call_is_decided(open_wasm, tmp_path):
    engine = open_wasm(write_slow_policy(tmp_path / "slow"), timeout_s=None)
    assert engine.evaluate({"call": {"arguments": {"command": SLOW_COMMAND}}})["work"] == 800


def test_a_call_that_needs_more_memory_than_allowed_is_an_engine_error(
    open_wasm, monkeypatch, write_policies
):
    monkeypatch.setattr(wasm, "MAX_MEMORY_BYTES", 4 << 20)
    engine = open_wasm(write_policies("package gatekeeper\n\ndecision := count(input.items)\n"))
    assert engine.evaluate({"items": list(range(10))}) == 10
    with pytest.raises(EngineError):
        engine.evaluate({"items": ["x" * 1000] * 8000})  # 8 MB of input
    assert engine.evaluate({"items": list(range(3))}) == 3


def test_an_instance_that_grew_large_is_not_kept(open_wasm, monkeypatch, write_policies):
    monkeypatch.setattr(wasm, "KEPT_MEMORY_BYTES", 4 << 20)
    engine = open_wasm(write_policies("package gatekeeper\n\ndecision := count(input.items)\n"))
    engine.evaluate({"items": [1]})
    small = engine._local.instance
    engine.evaluate({"items": [1]})
    assert engine._local.instance is small  # kept between ordinary calls
    assert engine.evaluate({"items": ["x" * 1000] * 8000}) == 8000
    assert engine._local.instance is None  # dropped after the call that made it grow
    assert engine.evaluate({"items": [1, 2]}) == 2


def test_threads_decide_side_by_side_with_their_own_instances(pack_engine):
    commands = ["cp -r /models/llama /tmp/x", "git status", "kill -9 1", "ls -la", "python -m http.server"]
    expected = {command: decide(pack_engine, command).decision for command in commands}
    seen: list[tuple[str, Outcome]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                for command in commands:
                    seen.append((command, decide(pack_engine, command).decision))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == 4 * 20 * len(commands)
    assert all(decision is expected[command] for command, decision in seen)


def test_reload_swaps_in_a_new_pack_and_keeps_the_old_one_when_the_new_one_fails(open_wasm, write_policies):
    directory = write_policies("package gatekeeper\n\n" + ALLOW)
    engine = open_wasm(directory)
    reloader = reloader_for(engine)
    assert isinstance(reloader, InProcessReloader) and reloader.name == "wasm"
    first = engine.revision
    assert decide(engine, "ls").decision is Outcome.ALLOW

    main = directory / "gatekeeper" / "main.rego"
    main.write_text(main.read_text().replace('"allow"', '"deny"', 2), encoding="utf-8")
    second = reloader.reload()
    assert second != first
    assert decide(engine, "ls").decision is Outcome.DENY

    main.write_text("package gatekeeper\n\ndecision if {\n", encoding="utf-8")
    with pytest.raises(PolicyLoadError):
        reloader.reload()
    assert engine.revision == second
    assert decide(engine, "ls").decision is Outcome.DENY


def test_lone_surrogates_reach_the_policies_as_replacement_characters(open_wasm, write_policies):
    engine = open_wasm(write_policies("package gatekeeper\n\ndecision := input.text\n"))
    assert (
        engine.evaluate({"text": "caf\udce9 \ud800 \ud83d\ude00 \\ud800"})
        == "caf\ufffd \ufffd \U0001f600 \\ud800"
    )


def test_an_input_python_cannot_encode_is_an_engine_error(pack_engine):
    with pytest.raises(EngineError, match="not encodable"):
        pack_engine.evaluate({"call": {"x": object()}})


def test_a_trap_in_the_module_is_an_engine_error_not_a_crash(pack_engine, monkeypatch):
    instance = pack_engine._instance()
    monkeypatch.setattr(instance.program, "entrypoint", 99)  # no such entrypoint: the module traps
    with pytest.raises(EngineError):
        pack_engine.evaluate({"call": {}})
    monkeypatch.undo()
    assert decide(pack_engine, "ls").decision is Outcome.ALLOW


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        WasmEngine(default_policy_dir(), timeout_s=0)


def test_calls_through_the_c_api_answer_as_wasmtimes_own_calls(open_wasm, pack_engine, monkeypatch):
    # The pinned wasmtime-py has the bindings the direct calls use; without them the engine would
    # fall back to Func.__call__ (slower, same answers).
    assert wasm._wasmtime_ffi is not None
    monkeypatch.setattr(wasm, "DIRECT_CALLS", False)
    public = open_wasm(default_policy_dir())
    commands = [
        "cp -r /models/llama /tmp/x",  # a deny whose message sprintf makes (a host builtin)
        "git status",
        "python -m http.server 8000 & disown",
        "cat /home/agent/../../models/x.safetensors > /tmp/y",  # regex.replace normalises the path
        "kill -9 1",
    ]
    for command in commands:
        mine, theirs = decide(pack_engine, command), decide(public, command)
        assert (mine.decision, mine.violations) == (theirs.decision, theirs.violations), command


def test_a_host_builtin_that_fails_is_an_engine_error_and_the_next_call_decides(pack_engine, monkeypatch):
    def broken(name, operands):
        raise RuntimeError(f"{name} is broken")

    monkeypatch.setattr(wasm, "call_host_builtin", broken)
    denied = decide(pack_engine, "cp -r /models/llama /tmp/x")  # its message needs sprintf
    assert denied.decision is Outcome.DENY
    assert denied.error is not None and denied.error.code == ErrorCode.ENGINE_ERROR
    assert "sprintf is broken" in denied.error.message
    monkeypatch.undo()
    assert decide(pack_engine, "cp -r /models/llama /tmp/x").violations[0].rule == "weights.copy"


def test_a_string_that_runs_to_the_end_of_memory_is_an_error_not_a_crash(open_wasm, write_policies):
    engine = open_wasm(write_policies("package gatekeeper\n\ndecision := 1\n"))
    instance = engine._instance()
    end = instance.memory_bytes
    instance.memory.write(instance.store, b"x" * 10, end - 10)  # no NUL before the end
    with pytest.raises(EngineError, match="does not end within its memory"):
        instance._string_at(end - 10)
    instance.memory.write(instance.store, b"ok\0", end - 3)
    assert instance._string_at(end - 3) == b"ok"
    assert engine.evaluate({}) == 1


def test_a_budget_shorter_than_the_deadline_stops_the_evaluation_for_another_try(open_wasm, tmp_path):
    engine = open_wasm(write_slow_policy(tmp_path / "slow"), timeout_s=30)
    slow = {"call": {"arguments": {"command": SLOW_COMMAND}}}
    with pytest.raises(BudgetExceeded):
        engine.evaluate_briefly(slow, 0.02)
    assert engine.evaluate_briefly({"call": {"arguments": {"command": FAST_COMMAND}}}, 0.02)["work"] == 10
    assert engine.evaluate(slow)["work"] == int(SLOW_COMMAND)  # the whole deadline
    assert engine.evaluate_briefly(slow, 60)["work"] == int(SLOW_COMMAND)  # past the deadline: no budget
