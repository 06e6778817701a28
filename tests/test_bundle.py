"""`gatekeeper policies build`: an OPA bundle with the pack's revision, loaded into real OPA to check it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from loopback_http import loopback_http_server

from gatekeeper.errors import PolicyLoadError
from gatekeeper.policy.bundle import (
    build_bundle,
    bundle_bytes,
    check_with_opa,
    read_manifest,
    replace_atomically,
)
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.loader import load_policy_source
from gatekeeper.policy.opa_process import OpaProcess
from gatekeeper.policy.opa_server import OpaServerEngine

DECIDE = """package gatekeeper

import rego.v1

default decision := {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}

decision := {"decision": "deny", "policy_decision": "deny", "mode": "enforce", "violations": [v]} if {
    some program in data.gatekeeper.blocked
    input.call.arguments.command == program
    v := {"rule": "test.blocked", "family": "processes", "action": "deny", "message": program}
}
"""
DATA = {"gatekeeper": {"blocked": ["reboot"]}}


@pytest.fixture
def pack(write_policies):
    root = write_policies(DECIDE, data=DATA)
    # Tests beside the policy are not part of the bundle (nor of the embedded engine's pack).
    (root / "gatekeeper" / "main_test.rego").write_text(
        "package gatekeeper_test\n\ntest_x if true\n", encoding="utf-8"
    )
    return root


def names(path: Path) -> list[str]:
    with tarfile.open(path, "r:gz") as archive:
        return sorted(member.name for member in archive.getmembers())


def test_bundle_holds_the_modules_the_data_and_a_manifest_with_the_revision(pack, tmp_path):
    info = build_bundle(pack, tmp_path / "out" / "bundle.tar.gz")
    source = load_policy_source(pack)
    assert names(info.path) == [".manifest", "data.json", "gatekeeper/main.rego"]
    manifest = read_manifest(info.path)
    assert manifest["revision"] == source.revision == info.revision
    assert manifest["roots"] == ["gatekeeper"]
    assert manifest["rego_version"] == 1


def test_bundle_bytes_are_reproducible(pack):
    source = load_policy_source(pack)
    assert bundle_bytes(source) == bundle_bytes(load_policy_source(pack))


def test_policy_outside_the_roots_is_refused(write_policies):
    root = write_policies(DECIDE, data=DATA)
    (root / "gatekeeper" / "other.rego").write_text("package site.extra\n\nx := 1\n", encoding="utf-8")
    with pytest.raises(PolicyLoadError, match=r"other\.rego declares package site\.extra"):
        bundle_bytes(load_policy_source(root))


def test_data_outside_the_roots_is_refused(write_policies):
    root = write_policies(DECIDE, data={**DATA, "site": {}})
    with pytest.raises(PolicyLoadError, match=r"top-level key 'site'"):
        bundle_bytes(load_policy_source(root))


def test_policy_that_does_not_compile_writes_nothing_and_keeps_the_old_bundle(write_policies, tmp_path):
    output = tmp_path / "bundle.tar.gz"
    build_bundle(write_policies(DECIDE, data=DATA, name="good"), output)
    before = output.read_bytes()
    broken = write_policies("package gatekeeper\n\ndecision := {\n", name="broken")
    with pytest.raises(PolicyLoadError, match=r"main\.rego"):
        build_bundle(broken, output)
    assert output.read_bytes() == before


@pytest.mark.opa
def test_opa_check_accepts_the_bundle_and_rejects_a_broken_one(pack, tmp_path, opa_binary):
    info = build_bundle(pack, tmp_path / "bundle.tar.gz", opa_binary=opa_binary)
    check_with_opa(opa_binary, info.path)
    broken = tmp_path / "broken"
    (broken / "gatekeeper").mkdir(parents=True)
    (broken / "gatekeeper" / "main.rego").write_text("package gatekeeper\n\nx := y\n", encoding="utf-8")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bundle_bytes(load_policy_source(broken)))
    with pytest.raises(PolicyLoadError, match=r"rego_unsafe_var_error"):
        check_with_opa(opa_binary, bad)


@pytest.mark.opa
@pytest.mark.usefixtures("no_opa_left")
def test_real_opa_loads_the_bundle_and_decides_like_the_embedded_engine(pack, tmp_path, opa_binary):
    info = build_bundle(pack, tmp_path / "bundle.tar.gz")
    embedded = EmbeddedEngine(pack)
    with OpaProcess([info.path], binary=opa_binary) as opa:
        engine = OpaServerEngine(opa.url)
        for command in ("reboot", "ls"):
            document = {"call": {"tool": "shell", "arguments": {"command": command}}}
            assert engine.evaluate(document) == embedded.evaluate(document)
        # OPA reports the manifest revision as the decision's provenance: the same revision.
        assert engine.revision == embedded.revision == info.revision
        engine.close()


@pytest.mark.opa
@pytest.mark.usefixtures("no_opa_left")
def test_bundle_leaves_other_roots_to_other_sources(pack, tmp_path, opa_binary):
    info = build_bundle(pack, tmp_path / "bundle.tar.gz")
    other = tmp_path / "site"
    other.mkdir()
    (other / ".manifest").write_text(json.dumps({"roots": ["site"]}), encoding="utf-8")
    (other / "site.rego").write_text("package site\n\nanswer := 42\n", encoding="utf-8")
    with OpaProcess([info.path, other], binary=opa_binary) as opa:
        engine = OpaServerEngine(opa.url)
        assert engine.evaluate({"call": {"arguments": {"command": "reboot"}}})["decision"] == "deny"
        engine.close()


@pytest.mark.opa
def test_policies_build_command_writes_a_checked_bundle(pack, tmp_path, opa_binary):
    output = tmp_path / "fleet" / "gatekeeper.tar.gz"
    gatekeeper = str(Path(sys.executable).parent / "gatekeeper")
    result = subprocess.run(
        [gatekeeper, "policies", "build", "--policies", str(pack), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GATEKEEPER_OPA": str(opa_binary)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    revision = load_policy_source(pack).revision
    assert f"revision {revision}" in result.stdout
    assert "checked by" in result.stdout
    assert read_manifest(output)["revision"] == revision


def test_policies_build_command_fails_clearly_on_a_broken_policy(write_policies, tmp_path):
    broken = write_policies("package gatekeeper\n\ndecision := {\n")
    output = tmp_path / "out.tar.gz"
    gatekeeper = str(Path(sys.executable).parent / "gatekeeper")
    result = subprocess.run(
        [gatekeeper, "policies", "build", "--policies", str(broken), "-o", str(output), "--no-opa-check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "policy_load_error" in result.stderr
    assert "main.rego" in result.stderr
    assert not output.exists()


@pytest.fixture
def bundle_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP bundle server on loopback, serving ``tmp_path/served`` (as a fleet's would)."""
    served = tmp_path / "served"
    served.mkdir()
    with loopback_http_server(functools.partial(QuietHandler, directory=str(served))) as url:
        yield url, served


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.opa
@pytest.mark.usefixtures("no_opa_left")
def test_an_opa_fleet_member_polls_the_built_bundle_and_keeps_the_last_good_one(
    write_policies, tmp_path, opa_binary, bundle_server
):
    """`policies build` output served over HTTP to an OPA configured with a bundle service."""
    url, served = bundle_server
    target = served / "bundles" / "gatekeeper.tar.gz"
    first = build_bundle(write_policies(DECIDE, data=DATA, name="v1"), target, opa_binary=opa_binary)
    config = tmp_path / "opa.yaml"
    config.write_text(
        "services:\n"
        f"  fleet:\n    url: {url}\n"
        "bundles:\n"
        "  gatekeeper:\n"
        "    service: fleet\n"
        "    resource: bundles/gatekeeper.tar.gz\n"
        "    polling:\n      min_delay_seconds: 1\n      max_delay_seconds: 1\n",
        encoding="utf-8",
    )
    halt = {"call": {"tool": "shell", "arguments": {"command": "halt"}}}
    # /health?bundles answers 200 only once the configured bundle is activated.
    with OpaProcess([], binary=opa_binary, extra_args=["--config-file", str(config)]) as opa:
        engine = OpaServerEngine(opa.url, timeout_s=5)
        assert engine.evaluate(halt)["decision"] == "allow"
        assert engine.revision == first.revision

        second = build_bundle(
            write_policies(DECIDE, data={"gatekeeper": {"blocked": ["reboot", "halt"]}}, name="v2"),
            target,
            opa_binary=opa_binary,
        )
        assert wait_for(lambda: engine.evaluate(halt)["decision"] == "deny"), "OPA never polled v2"
        assert engine.revision == second.revision != first.revision

        # A bundle that does not compile (published without `policies build`'s check) is refused.
        broken = write_policies("package gatekeeper\n\ndecision := y\n", name="broken")
        replace_atomically(target, bundle_bytes(load_policy_source(broken)))
        assert wait_for(lambda: "rego_unsafe_var_error" in opa.log_tail()), opa.log_tail()
        assert engine.evaluate(halt)["decision"] == "deny"
        assert engine.revision == second.revision
        engine.close()
