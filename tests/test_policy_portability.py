"""The pack avoids a construct rego-cpp evaluates differently from OPA, without any error.

rego-cpp does not enumerate an index variable whose first use is inside a function call:
``some i; f(args[i])`` and ``some i; g(args, i)`` never hold there, while OPA tries every index.
Three rules of the pack were written that way and decided differently on the two engines until the
element was bound first (``some i; a := args[i]; f(a)``); see docs/opa.md. The parity test only
covers the corpus, so this test reads the pack's source for the pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatekeeper.policy.loader import default_policy_dir

SOME_INDEX = re.compile(r"^(\s*)some ([A-Za-z_][A-Za-z0-9_]*)\s*(#.*)?$")
CALL_OPEN = re.compile(r"[A-Za-z0-9_.]\($")


def index_first_used_in_a_call(source: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of each ``some X`` whose X is first used inside a call's arguments."""
    lines = source.splitlines()
    findings = []
    for number, line in enumerate(lines):
        declared = SOME_INDEX.match(line)
        if declared is None:
            continue
        indent, name = declared.group(1), declared.group(2)
        for later in lines[number + 1 :]:
            closes = later.strip()[:1] in ("}", "]") and len(later) - len(later.lstrip()) < len(indent)
            if later.strip() == "" or closes:
                break
            code = later.split("#", 1)[0]
            use = re.search(rf"\b{re.escape(name)}\b", code)
            if use is None:
                continue
            if _inside_a_call(code, use.start()):
                findings.append((number + 1, line.strip() + " ... " + later.strip()))
            break
    return findings


def _inside_a_call(code: str, position: int) -> bool:
    depth_of_calls: list[bool] = []
    for index, char in enumerate(code[:position]):
        if char == "(":
            depth_of_calls.append(bool(CALL_OPEN.search(code[: index + 1])))
        elif char == ")" and depth_of_calls:
            depth_of_calls.pop()
    return any(depth_of_calls)


@pytest.mark.parametrize(
    "body",
    [
        "\tsome j\n\tlib.is_remote_spec(ops[j])\n\tj < i\n",
        "\tsome i\n\ttar_file_value(c.args, i)\n",
        "\tstarts := {i |\n\t\tsome i\n\t\tfind_expression_word(args[i])\n\t}\n",
    ],
)
def test_the_detector_finds_the_forms_that_diverged(body):
    assert index_first_used_in_a_call(f"f(x) if {{\n{body}}}\n")


@pytest.mark.parametrize(
    "body",
    [
        "\tsome j\n\top := ops[j]\n\tlib.is_remote_spec(op)\n",
        "\tsome i\n\tvalue := c.args[i]\n\ttar_file_value(c.args, i)\n",
        '\tsome i\n\targs[i] == "--"\n',
        "\tsome k in numbers.range(1, 3)\n\tf(k)\n",
    ],
)
def test_the_detector_accepts_an_index_bound_first(body):
    assert index_first_used_in_a_call(f"f(x) if {{\n{body}}}\n") == []


# The _test.rego files run on OPA only (`opa test`).
POLICY_FILES = sorted(p for p in default_policy_dir().rglob("*.rego") if not p.name.endswith("_test.rego"))


def test_the_policy_files_are_found():
    assert {p.name for p in POLICY_FILES} >= {"lib.rego", "weights.rego", "replication.rego"}


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_no_policy_first_uses_an_index_inside_a_call(path: Path):
    findings = index_first_used_in_a_call(path.read_text(encoding="utf-8"))
    assert findings == [], f"{path.name}: bind the element before the call (see docs/opa.md): {findings}"
