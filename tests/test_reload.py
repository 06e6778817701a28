"""Hot reload for both engines: an edit under the policy directory takes effect without a restart.

Each scenario runs the real watcher (watchfiles) over a copy of a small policy directory in
``tmp_path``; the OPA variant runs a real ``opa`` serving a gatekeeper-managed bundle.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import ErrorCode
from gatekeeper.models import Outcome
from gatekeeper.policy.bundle import bundle_bytes, replace_atomically
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.loader import load_policy_source
from gatekeeper.policy.opa_process import ManagedOpa
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.policy.reload import (
    InProcessReloader,
    OpaBundleReloader,
    PolicyWatcher,
    ReloadResult,
    active_bundle_revisions,
    reloader_for,
    watch_engine,
)
from gatekeeper.testing import capture_audit, shell_call

ALLOW = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}
DENY = {**ALLOW, "decision": "deny", "policy_decision": "deny"}


def policy(denied: str) -> str:
    """A pack that denies exactly the shell command ``denied`` (listed in data.json)."""
    return (
        "package gatekeeper\n\n"
        f"default decision := {json.dumps(ALLOW)}\n\n"
        f"DENY := {json.dumps(DENY)}\n\n"
        'decision := object.union(DENY, {"violations": [v]}) if {\n'
        f'    input.call.arguments.command == "{denied}"\n'
        '    v := {"rule": "test.listed", "family": "processes", "action": "deny", "message": "listed"}\n'
        "}\n"
    )


BROKEN = "package gatekeeper\n\ndecision := {\n"


@dataclass
class Setup:
    gatekeeper: Gatekeeper
    watcher: PolicyWatcher
    policies: Path
    staging: Path

    def edit(self, text: str, name: str = "gatekeeper/main.rego") -> None:
        """Replace a file in one step, as editors do (a reload never sees half a file)."""
        staged = self.staging / "edit.tmp"
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, self.policies / name)

    def decide(self, command: str):
        with capture_audit(self.gatekeeper) as records:
            decision = self.gatekeeper.decide(shell_call(command, id="c1", cwd="/home/agent"))
        return decision, records[0]

    def wait(self, done: Callable[[list[ReloadResult]], bool], timeout_s: float = 15.0) -> list[ReloadResult]:
        deadline = time.monotonic() + timeout_s
        generation = self.watcher.generation
        while time.monotonic() < deadline:
            results = self.watcher.wait_for_reload(generation, timeout_s=deadline - time.monotonic())
            if results is None:
                break
            generation = self.watcher.generation
            if done(results):
                return results
        pytest.fail(f"no reload matched within {timeout_s:g}s; last results: {self.watcher.last_results}")


@pytest.fixture(params=["embedded", pytest.param("opa", marks=pytest.mark.opa)])
def setup(request, tmp_path) -> Iterator[Setup]:
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    (policies / "gatekeeper" / "main.rego").write_text(policy("reboot"), encoding="utf-8")
    staging = tmp_path / "staging"
    staging.mkdir()
    config = Config(home="/home/agent")
    if request.param == "embedded":
        engine = EmbeddedEngine(policies)
        reloader = InProcessReloader(engine)
        opa = None
    else:
        request.getfixturevalue("no_opa_left")
        opa = ManagedOpa(policies, watch=True, binary=request.getfixturevalue("opa_binary")).start()
        engine = OpaServerEngine(opa.url)
        reloader = OpaBundleReloader(opa)
    gatekeeper = Gatekeeper(config, engine=engine)
    watcher = PolicyWatcher(policies, [reloader]).start()
    try:
        yield Setup(gatekeeper, watcher, policies, staging)
    finally:
        watcher.stop()
        gatekeeper.close()
        if opa is not None:
            opa.close()


def changed(results: list[ReloadResult]) -> bool:
    return all(r.changed for r in results)


def failed(results: list[ReloadResult]) -> bool:
    return all(r.error is not None for r in results)


def test_edit_takes_effect_with_a_new_revision(setup):
    before, record_before = setup.decide("shutdown now")
    assert before.decision is Outcome.ALLOW
    old_revision = before.policy_revision
    assert old_revision == load_policy_source(setup.policies).revision

    setup.edit(policy("shutdown now"))
    setup.wait(changed)

    after, record_after = setup.decide("shutdown now")
    assert after.decision is Outcome.DENY
    assert [v.rule for v in after.violations] == ["test.listed"]
    assert after.policy_revision == load_policy_source(setup.policies).revision != old_revision
    assert record_before["bundles"]["gatekeeper"]["revision"] == old_revision
    assert record_after["bundles"]["gatekeeper"]["revision"] == after.policy_revision


def test_data_edit_is_a_new_revision(setup):
    old_revision = setup.decide("ls")[0].policy_revision
    setup.edit(json.dumps({"gatekeeper": {"note": "site data changed"}}), name="data.json")
    setup.wait(changed)
    assert setup.decide("ls")[0].policy_revision not in (None, old_revision)


def test_broken_policy_is_rejected_and_the_last_good_revision_answers(setup):
    good = setup.decide("reboot")[0]
    assert good.decision is Outcome.DENY

    with capture_logs() as logs:
        setup.edit(BROKEN)
        results = setup.wait(failed)

    error = results[0].error
    assert error.code == ErrorCode.POLICY_LOAD_ERROR
    assert "main.rego" in error.message
    assert results[0].revision == good.policy_revision
    failures = [entry for entry in logs if entry["event"] == "policy_reload_failed"]
    assert failures and failures[-1]["log_level"] == "error"
    assert failures[-1]["active_revision"] == good.policy_revision
    assert "main.rego" in failures[-1]["error"]

    still, record = setup.decide("reboot")
    assert still.decision is Outcome.DENY
    assert still.error is None
    assert still.policy_revision == good.policy_revision
    assert record["bundles"]["gatekeeper"]["revision"] == good.policy_revision


def test_fixed_policy_after_a_broken_one_gets_a_new_revision(setup):
    good = setup.decide("reboot")[0]
    setup.edit(BROKEN)
    setup.wait(failed)

    with capture_logs() as logs:
        setup.edit(policy("halt"))
        setup.wait(changed)
    assert any(entry["event"] == "policy_reloaded" for entry in logs)

    fixed = setup.decide("halt")[0]
    assert fixed.decision is Outcome.DENY
    assert setup.decide("reboot")[0].decision is Outcome.ALLOW
    assert fixed.policy_revision == load_policy_source(setup.policies).revision
    assert fixed.policy_revision != good.policy_revision


def test_editing_a_policy_test_file_changes_nothing(tmp_path):
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    (policies / "gatekeeper" / "main.rego").write_text(policy("reboot"), encoding="utf-8")
    engine = EmbeddedEngine(policies)
    watcher = PolicyWatcher(policies, [InProcessReloader(engine)])
    (policies / "gatekeeper" / "main_test.rego").write_text("package x_test\n\ntest_a if true\n")
    [result] = watcher.reload()
    assert result.ok
    assert not result.changed


@pytest.mark.opa
@pytest.mark.usefixtures("no_opa_left")
def test_opa_keeps_its_revision_when_given_a_bundle_that_does_not_load(tmp_path, opa_binary):
    """Even a bundle that skipped gatekeeper's check never becomes the revision OPA answers with."""
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    (policies / "gatekeeper" / "main.rego").write_text(policy("reboot"), encoding="utf-8")
    broken = tmp_path / "broken"
    (broken / "gatekeeper").mkdir(parents=True)
    (broken / "gatekeeper" / "main.rego").write_text("package gatekeeper\n\ndecision := y\n")
    broken_source = load_policy_source(broken)

    with ManagedOpa(policies, watch=True, binary=opa_binary, log_level="info") as opa:
        engine = OpaServerEngine(opa.url)
        assert engine.evaluate({"call": {"arguments": {"command": "reboot"}}})["decision"] == "deny"
        replace_atomically(opa.bundle_path, bundle_bytes(broken_source), staging_dir=opa.staging_dir)
        deadline = time.monotonic() + 10
        while "rego_unsafe_var_error" not in opa.process.log_tail() and time.monotonic() < deadline:
            time.sleep(0.02)
        # OPA saw the new file and refused it ("Processed file watch event" with the compile error).
        assert "rego_unsafe_var_error" in opa.process.log_tail()
        assert active_bundle_revisions(opa.url) == [opa.revision]
        assert engine.evaluate({"call": {"arguments": {"command": "reboot"}}})["decision"] == "deny"
        assert engine.revision == opa.revision != broken_source.revision
        engine.close()


class Layer:
    """An engine layer wrapping another one, as the service wraps its engine."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def revision(self):
        return self.inner.revision

    def evaluate(self, document):
        return self.inner.evaluate(document)

    def close(self) -> None:
        self.inner.close()


def test_watch_engine_reloads_an_embedded_engine_behind_a_layer(tmp_path):
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    (policies / "gatekeeper" / "main.rego").write_text(policy("reboot"), encoding="utf-8")
    engine = Layer(EmbeddedEngine(policies))
    gatekeeper = Gatekeeper(Config(home="/home/agent"), engine=engine)
    seen: list[list[ReloadResult]] = []
    watcher = watch_engine(engine, on_reload=seen.append)
    assert watcher is not None
    try:
        generation = watcher.generation
        staged = tmp_path / "edit.tmp"
        staged.write_text(policy("halt"), encoding="utf-8")
        os.replace(staged, policies / "gatekeeper" / "main.rego")
        results = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            results = watcher.wait_for_reload(generation, timeout_s=deadline - time.monotonic())
            if results is None or changed(results):
                break
            generation = watcher.generation
        assert results is not None and changed(results), watcher.last_results
        assert gatekeeper.decide(shell_call("halt")).decision is Outcome.DENY
        assert seen and seen[-1] == results
        assert "policies reloaded, now serving sha256:" in results[0].describe()
    finally:
        watcher.stop()
        gatekeeper.close()


def test_an_opa_that_gatekeeper_does_not_manage_is_not_reloaded_by_gatekeeper():
    engine = OpaServerEngine("http://127.0.0.1:9")
    assert reloader_for(Layer(engine)) is None
    assert watch_engine(engine) is None
    engine.close()


def test_a_failed_reload_is_described_with_the_compiler_message(tmp_path):
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    (policies / "gatekeeper" / "main.rego").write_text(policy("reboot"), encoding="utf-8")
    engine = EmbeddedEngine(policies)
    reloader = reloader_for(engine, policy_dir=policies)
    assert isinstance(reloader, InProcessReloader)
    (policies / "gatekeeper" / "main.rego").write_text(BROKEN, encoding="utf-8")
    [result] = PolicyWatcher(policies, [reloader]).reload()
    assert not result.ok
    text = result.describe()
    assert text.startswith(f"embedded: policy reload rejected, still serving {engine.revision}:\n")
    assert "main.rego" in text
