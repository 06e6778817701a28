"""Fail closed with a real OPA: every way OPA can fail to give a decision is a deny that names it.

Each case runs a real ``opa`` process (stopped, killed, paused, locked, or given a policy whose answer
is unusable), decides a call with the OPA engine, and checks the decision, its reason and the audit
record. Every case runs with both of the engine's clients: ``Gatekeeper.decide`` (blocking) and the
service's way for a new call, OPA awaited on an event loop. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper, answer_of_async
from gatekeeper.errors import ErrorCode
from gatekeeper.models import Outcome
from gatekeeper.policy.opa_process import ManagedOpa, OpaProcess
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.testing import capture_audit, shell_call

pytestmark = [pytest.mark.opa, pytest.mark.usefixtures("no_opa_left")]

ALLOW = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}
ALLOW_POLICY = f"package gatekeeper\n\ndecision := {json.dumps(ALLOW)}\n"
TIMEOUT_S = 0.3


def gatekeeper_for(url: str) -> Gatekeeper:
    config = Config(engine="opa", opa_url=url, opa_timeout_s=TIMEOUT_S, home="/home/agent")
    return Gatekeeper(config, engine=OpaServerEngine(url, timeout_s=TIMEOUT_S))


# Which of the engine's clients asks OPA: set for each test by the `opa_client` fixture.
CLIENT = "blocking"


@pytest.fixture(autouse=True, params=["blocking", "awaited"])
def opa_client(request, monkeypatch):
    """Every case twice: through OpaClient (requests; `gatekeeper check`, the deciding threads) and
    through AsyncOpaClient (aiohttp; the service awaits OPA on its event loop)."""
    monkeypatch.setattr(sys.modules[__name__], "CLIENT", request.param)
    return request.param


async def decide_awaiting_opa(gatekeeper: Gatekeeper, call):
    """What the service does for a new call: the steps up to OPA, OPA awaited, then the rest."""
    engine = gatekeeper.engine
    try:
        pending = gatekeeper.start(call)
        assert pending.document is not None
        recorded = pending.finish(await answer_of_async(engine, pending.document))
    finally:
        await engine.aclose()
    assert recorded is not None
    return recorded[0]


def decide_and_audit(gatekeeper: Gatekeeper, command: str = "ls /tmp"):
    call = shell_call(command, id="c1", cwd="/home/agent")
    with capture_audit(gatekeeper) as records:
        started = time.monotonic()
        if CLIENT == "blocking":
            decision = gatekeeper.decide(call)
        else:
            decision = asyncio.run(decide_awaiting_opa(gatekeeper, call))
        elapsed = time.monotonic() - started
    assert len(records) == 1
    return decision, records[0], elapsed


def assert_denied(decision, record, code: ErrorCode, *words: str) -> None:
    """A deny with the failure's code and a reason naming it, recorded as such in the audit log."""
    assert decision.decision is Outcome.DENY
    assert decision.blocked
    assert decision.error is not None
    assert decision.error.code == code
    for word in words:
        assert word in decision.error.message, decision.error.message
    assert decision.violations == []
    assert record["decision"] == "deny"
    assert record["call_id"] == "c1"
    assert record["error"] == {"code": code.value, "message": decision.error.message}
    assert record["labels"]["engine"] == "opa"


@pytest.fixture
def served(opa_binary, write_policies):
    """A healthy gatekeeper-managed OPA with a policy that allows everything, and a Gatekeeper on it."""
    opa = ManagedOpa(write_policies(ALLOW_POLICY), binary=opa_binary).start()
    gatekeeper = gatekeeper_for(opa.url)
    yield opa, gatekeeper
    gatekeeper.close()
    opa.close()


def constant_policy(answer: object) -> str:
    return f"package gatekeeper\n\ndecision := {json.dumps(answer)}\n"


def serve(opa_binary, write_policies, rego: str):
    opa = ManagedOpa(write_policies(rego), binary=opa_binary).start()
    return opa, gatekeeper_for(opa.url)


# -- OPA is not there ---------------------------------------------------------------------------


def test_opa_never_started_connection_refused_is_denied(loopback_port):
    with gatekeeper_for(f"http://127.0.0.1:{loopback_port}") as gatekeeper:
        decision, record, _ = decide_and_audit(gatekeeper)
    assert_denied(decision, record, ErrorCode.ENGINE_UNAVAILABLE, "unreachable", "connection refused")


def test_opa_stopped_after_answering_is_denied(served):
    opa, gatekeeper = served
    first, _, _ = decide_and_audit(gatekeeper)
    assert first.decision is Outcome.ALLOW
    assert first.policy_revision == opa.revision
    opa.stop()
    decision, record, _ = decide_and_audit(gatekeeper)
    assert_denied(decision, record, ErrorCode.ENGINE_UNAVAILABLE, "connection refused")


def test_opa_killed_is_denied(served):
    opa, gatekeeper = served
    assert decide_and_audit(gatekeeper)[0].decision is Outcome.ALLOW
    os.kill(opa.pid, signal.SIGKILL)
    opa.process.wait(timeout_s=5)
    decision, record, _ = decide_and_audit(gatekeeper)
    assert_denied(decision, record, ErrorCode.ENGINE_UNAVAILABLE, "unreachable")


def test_opa_slowed_past_the_timeout_is_denied_promptly_then_recovers(served):
    opa, gatekeeper = served
    assert decide_and_audit(gatekeeper)[0].decision is Outcome.ALLOW
    # SIGSTOP: the kernel still accepts the connection, but OPA never answers.
    os.kill(opa.pid, signal.SIGSTOP)
    try:
        decision, record, elapsed = decide_and_audit(gatekeeper)
    finally:
        os.kill(opa.pid, signal.SIGCONT)
    assert_denied(decision, record, ErrorCode.ENGINE_TIMEOUT, "did not answer within 0.3s")
    assert elapsed < TIMEOUT_S + 1.5
    again, _, _ = decide_and_audit(gatekeeper)
    assert again.decision is Outcome.ALLOW


# -- OPA answers with an HTTP error ---------------------------------------------------------------


def test_opa_http_4xx_is_denied(opa_binary, write_policies, tmp_path):
    """OPA with authorization on and a system.authz policy that admits only health checks: 401."""
    pack = write_policies(ALLOW_POLICY)
    authz = tmp_path / "authz"
    (authz / "system").mkdir(parents=True)
    (authz / ".manifest").write_text(json.dumps({"roots": ["system/authz"]}), encoding="utf-8")
    (authz / "system" / "authz.rego").write_text(
        'package system.authz\n\ndefault allow := false\n\nallow if input.path == ["health"]\n',
        encoding="utf-8",
    )
    from gatekeeper.policy.bundle import build_bundle  # noqa: PLC0415

    bundle = build_bundle(pack, tmp_path / "gatekeeper.tar.gz").path
    extra = ["--authentication=token", "--authorization=basic"]
    with (
        OpaProcess([bundle, authz], binary=opa_binary, extra_args=extra) as opa,
        gatekeeper_for(opa.url) as gatekeeper,
    ):
        decision, record, _ = decide_and_audit(gatekeeper)
    assert_denied(decision, record, ErrorCode.ENGINE_HTTP_ERROR, "HTTP 401", "unauthorized")


def test_opa_http_5xx_is_denied(opa_binary, write_policies):
    """Two complete definitions of the decision that disagree: OPA's eval_conflict_error, HTTP 500."""
    deny = {**ALLOW, "decision": "deny", "policy_decision": "deny"}
    rego = (
        "package gatekeeper\n\n"
        f"decision := {json.dumps(ALLOW)} if input.call\n\n"
        f"decision := {json.dumps(deny)} if input.call\n"
    )
    opa, gatekeeper = serve(opa_binary, write_policies, rego)
    try:
        decision, record, _ = decide_and_audit(gatekeeper)
    finally:
        gatekeeper.close()
        opa.close()
    assert_denied(decision, record, ErrorCode.ENGINE_HTTP_ERROR, "HTTP 500", "eval_conflict_error")


# -- OPA answers, but not with a decision ---------------------------------------------------------


def test_opa_undefined_result_is_denied(opa_binary, write_policies):
    """The decision is defined only for another tool: OPA answers {} with no result."""
    rego = f'package gatekeeper\n\ndecision := {json.dumps(ALLOW)} if input.call.tool == "file_read"\n'
    opa, gatekeeper = serve(opa_binary, write_policies, rego)
    try:
        decision, record, _ = decide_and_audit(gatekeeper)
    finally:
        gatekeeper.close()
        opa.close()
    assert_denied(decision, record, ErrorCode.UNDEFINED_RESULT, "undefined")
    assert record["result"] is None


def test_opa_without_the_gatekeeper_policy_is_denied(opa_binary, tmp_path):
    """No policy loaded under data.gatekeeper at all (an empty bundle): undefined, so deny."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".manifest").write_text(json.dumps({"revision": "empty", "roots": ["gatekeeper"]}))
    with OpaProcess([empty], binary=opa_binary) as opa, gatekeeper_for(opa.url) as gatekeeper:
        decision, record, _ = decide_and_audit(gatekeeper)
    assert_denied(decision, record, ErrorCode.UNDEFINED_RESULT, "no decision")


def test_opa_result_that_is_not_an_object_is_denied(opa_binary, write_policies):
    opa, gatekeeper = serve(opa_binary, write_policies, 'package gatekeeper\n\ndecision := "allow"\n')
    try:
        decision, record, _ = decide_and_audit(gatekeeper)
    finally:
        gatekeeper.close()
        opa.close()
    assert_denied(decision, record, ErrorCode.MALFORMED_RESULT, "not an object")
    assert record["result"] is None


def test_opa_result_that_does_not_match_the_decision_schema_is_denied(opa_binary, write_policies):
    answer = {"decision": "maybe", "violations": [{"rule": "x"}]}
    opa, gatekeeper = serve(
        opa_binary, write_policies, f"package gatekeeper\n\ndecision := {json.dumps(answer)}\n"
    )
    try:
        decision, record, _ = decide_and_audit(gatekeeper)
    finally:
        gatekeeper.close()
        opa.close()
    assert_denied(decision, record, ErrorCode.MALFORMED_RESULT, "does not match the Decision schema")
    # The audit record keeps what OPA actually said, for the investigation.
    assert record["result"] == answer


def test_opa_violation_missing_fields_is_denied(opa_binary, write_policies):
    answer = {**ALLOW, "decision": "deny", "policy_decision": "deny", "violations": [{"rule": "r"}]}
    opa, gatekeeper = serve(
        opa_binary, write_policies, f"package gatekeeper\n\ndecision := {json.dumps(answer)}\n"
    )
    try:
        decision, record, _ = decide_and_audit(gatekeeper)
    finally:
        gatekeeper.close()
        opa.close()
    assert_denied(decision, record, ErrorCode.MALFORMED_RESULT, "Decision schema")
