"""Edges of the analyser: every tool type, and bad input that must never raise.

``analyse_call`` is the last line before the policies: whatever it is given (random bytes, unbalanced
quotes, huge or deeply nested text, arguments of the wrong type), it returns Facts, and input it cannot
analyse is described by an ``opaque`` fact rather than silently dropped.
"""

from __future__ import annotations

import dataclasses
import random
import string
from typing import Any

import pytest
from golden import load_cases

from gatekeeper.analysis import AnalysisOptions, Facts, analyse_call, facts_to_dict
from gatekeeper.models import ToolCall

OPTIONS = AnalysisOptions(home="/home/agent")


def call(tool: str, arguments: dict[str, Any], cwd: str | None = "/home/agent") -> ToolCall:
    # model_construct: the analyser must cope with calls that skipped validation too
    return ToolCall.model_construct(tool=tool, arguments=arguments, cwd=cwd)


def shell(command: str) -> Facts:
    return analyse_call(call("shell", {"command": command}), OPTIONS)


def reasons(facts: Facts) -> list[str]:
    return [o.reason for o in facts.opaque]


# -- each tool type ---------------------------------------------------------------------------------


def test_shell_tool_yields_commands_in_order() -> None:
    facts = shell("cd /tmp && kill -9 1")
    assert [c.argv for c in facts.commands] == [["cd", "/tmp"], ["kill", "-9", "1"]]
    assert facts.commands[1].cwd == "/tmp"
    assert facts.tool == "shell"


def test_a_layer_names_the_command_that_opened_it() -> None:
    facts = shell("find /a -exec sh -c 'cp {} /b' \\; ; sudo bash -c 'ls $(pwd)'; trap 'rm x' EXIT")
    layers = [(c.index, c.name, [(v.kind, v.command) for v in c.via]) for c in facts.commands]
    assert layers == [
        (0, "find", []),
        (1, "sh", [("find_exec", 0)]),
        (2, "cp", [("find_exec", 0), ("shell", 1)]),
        (3, "sudo", []),
        (4, "bash", [("wrapper", 3)]),
        (5, "pwd", [("wrapper", 3), ("shell", 4), ("substitution", None)]),
        (6, "ls", [("wrapper", 3), ("shell", 4)]),
        (7, "trap", []),
        (8, "rm", [("trap", 7)]),
    ]
    first_layer = facts_to_dict(facts)["commands"][2]["via"][0]
    assert first_layer == {"kind": "find_exec", "name": "find -exec", "command": 0}


def test_python_tool_yields_api_calls_and_commands() -> None:
    facts = analyse_call(call("python", {"code": "import os\nos.system('pkill x')\nos.kill(1, 9)"}), OPTIONS)
    assert [a.function for a in facts.api_calls] == ["os.system", "os.kill"]
    assert [(c.argv, c.language) for c in facts.commands] == [(["pkill", "x"], "python")]


def test_python_tool_syntax_error_runs_nothing() -> None:
    facts = analyse_call(call("python", {"code": "import os\nos.kill(1, 9"}), OPTIONS)
    assert facts.api_calls == [] and facts.commands == []
    assert len(facts.syntax_errors) == 1


def test_file_write_and_read_paths_are_absolute() -> None:
    written = analyse_call(call("file_write", {"path": "a/../b.txt", "content": "x"}), OPTIONS)
    read = analyse_call(call("file_read", {"path": "~/.ssh/id_rsa"}), OPTIONS)
    assert written.writes == ["/home/agent/b.txt"]
    assert read.reads == ["/home/agent/.ssh/id_rsa"]


def test_file_tools_without_a_path_are_opaque() -> None:
    for tool in ("file_write", "file_read"):
        for arguments in ({}, {"path": ""}, {"path": 3}):
            assert reasons(analyse_call(call(tool, arguments), OPTIONS)) == ["parse_error"]


def test_http_tool_reports_its_url() -> None:
    facts = analyse_call(call("http", {"method": "POST", "url": "http://127.0.0.1:9/x"}), OPTIONS)
    assert facts.urls == ["http://127.0.0.1:9/x"]
    assert reasons(analyse_call(call("http", {"url": None}), OPTIONS)) == ["parse_error"]


def test_mcp_tool_analyses_command_and_code_arguments() -> None:
    inner = {"cmd": "pkill x", "code": "import os; os.kill(1, 9)"}
    arguments = {"server": "s", "name": "t", "arguments": inner}
    facts = analyse_call(call("mcp", arguments), OPTIONS)
    assert [c.argv for c in facts.commands] == [["pkill", "x"]]
    assert [a.function for a in facts.api_calls] == ["os.kill"]


def test_mcp_tool_with_odd_arguments_yields_no_commands() -> None:
    for inner in (None, "kill 1", ["kill 1"], {"command": 5}, {"other": "kill 1"}):
        facts = analyse_call(call("mcp", {"arguments": inner}), OPTIONS)
        assert facts.commands == []


def test_facts_to_dict_is_asdict() -> None:
    """The policies' ``input.facts`` is exactly the dataclasses' fields, copied deeply."""
    cases = [case["command"] for case in load_cases() if "command" in case]
    code = "import os, shutil\nos.kill(1, 9)\nshutil.copytree('a', 'b', ignore=('x', ['y']))"
    python_facts = analyse_call(call("python", {"code": code}), OPTIONS)
    facts_list = [shell(command) for command in cases] + [python_facts]
    for facts in facts_list:
        assert facts_to_dict(facts) == dataclasses.asdict(facts)
    python = facts_to_dict(python_facts)
    assert python["api_calls"][1]["kwargs"]["ignore"] == ["x", ["y"]]
    python["api_calls"][1]["kwargs"]["ignore"][1].append("changed")
    assert python_facts.api_calls[1].kwargs["ignore"] == ["x", ["y"]]


def test_unknown_tool_yields_empty_facts() -> None:
    facts = analyse_call(call("teleport", {"to": "x"}), OPTIONS)
    assert facts_to_dict(facts) == facts_to_dict(Facts(tool="teleport"))


@pytest.mark.parametrize("value", [None, 5, ["ls"], {"a": 1}, b"ls"])
def test_shell_command_that_is_not_a_string_is_opaque(value: object) -> None:
    facts = analyse_call(call("shell", {"command": value}), OPTIONS)
    assert facts.commands == []
    assert reasons(facts) == ["parse_error"]


# -- limits -----------------------------------------------------------------------------------------


def test_one_megabyte_is_too_large_and_not_parsed() -> None:
    facts = shell("kill 1; echo " + "a" * (1 << 20))
    assert facts.commands == []
    assert reasons(facts) == ["too_large"]


def test_a_smaller_limit_is_honoured() -> None:
    facts = analyse_call(call("shell", {"command": "kill 1; " * 20}), AnalysisOptions(max_bytes=64))
    assert reasons(facts) == ["too_large"]


def test_2000_nested_substitutions_are_too_deep_and_fast_enough_to_return() -> None:
    command = "echo " + "$(" * 2000 + "kill 1" + ")" * 2000
    facts = shell(command)
    assert "too_deep" in reasons(facts)
    # every command the analyser did reach is reported with the layers it was found through
    assert all(len(c.via) <= OPTIONS.max_depth for c in facts.commands)
    assert facts.commands[-1].argv[0] == "echo"


def test_shells_nested_through_heredocs_are_too_deep() -> None:
    depth = 40
    command = "".join(f"bash <<E{i}\n" for i in range(depth)) + "kill 1\n"
    command += "".join(f"E{i}\n" for i in reversed(range(depth)))
    facts = shell(command)
    assert "too_deep" in reasons(facts)
    assert max(len(c.via) for c in facts.commands) == OPTIONS.max_depth


def test_deep_subshells_and_groups_are_too_deep() -> None:
    assert reasons(shell("( " * 3000 + "ls" + " )" * 3000)) == ["too_deep"]
    assert reasons(shell("{ " * 500 + "ls;" + " };" * 500)) == ["too_deep"]


def test_many_commands_stop_at_the_budget() -> None:
    facts = shell("ls; " * 6000)
    assert len(facts.commands) == 5000
    assert reasons(facts) == ["too_large"]


# -- encoding ---------------------------------------------------------------------------------------


def test_nul_byte_cuts_the_text_and_is_reported() -> None:
    facts = shell("ls\x00; kill 1")
    assert [c.argv for c in facts.commands] == [["ls"]]
    assert reasons(facts) == ["invalid_encoding"]


def test_lone_surrogate_is_reported_and_the_rest_analysed() -> None:
    facts = shell("echo caf\udce9 && rm -rf /")
    assert [c.name for c in facts.commands] == ["echo", "rm"]
    assert reasons(facts) == ["invalid_encoding"]


# -- nothing raises ---------------------------------------------------------------------------------

SHELL_ALPHABET = string.ascii_letters + string.digits + " \t\n;&|()<>{}[]$`'\"\\!#*?~=%-+.,:/@^"
FRAGMENTS = [
    "$(",
    ")",
    "`",
    "'",
    '"',
    "<<EOF\n",
    "EOF\n",
    "<<<",
    "${",
    "}",
    "((",
    "))",
    "[[",
    "]]",
    "case x in",
    "esac",
    "if",
    "then",
    "fi",
    "for i in",
    "do",
    "done",
    "function f",
    "f() {",
    "bash -c ",
    "eval ",
    "python3 -c ",
    "base64 -d | sh",
    "| ",
    "&& ",
    "; ",
    "& ",
    "\\",
    "$'\\x",
    "kill 1",
    "sudo ",
    "env -S ",
    "xargs ",
    "find . -exec ",
    "awk 'BEGIN{system(",
    "perl -e '",
    "\x00",
    "\udcff",
    "\u202e",
]


def nasty_inputs(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test input, not cryptography
    inputs: list[str] = []
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            inputs.append(raw.decode("utf-8", errors="surrogateescape"))
        elif kind == 1:
            inputs.append("".join(rng.choice(SHELL_ALPHABET) for _ in range(rng.randrange(1, 200))))
        else:
            inputs.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(1, 40))))
    return inputs


def check_facts(facts: Facts) -> None:
    document = facts_to_dict(facts)
    assert isinstance(document["commands"], list)
    for command in facts.commands:
        assert command.argv and command.argv[0] == command.program
        assert command.depth == len(command.via)
    for opaque in facts.opaque:
        # an internal failure is turned into a fact too, but it is a bug in the analyser
        assert not opaque.detail.startswith("the analyser failed"), opaque
        assert opaque.reason in {
            "parse_error",
            "computed_program",
            "dynamic_eval",
            "remote_code",
            "exec_written_file",
            "undecodable_payload",
            "dynamic_interpreter_code",
            "too_deep",
            "too_large",
            "invalid_encoding",
        }


def test_random_shell_input_never_raises() -> None:
    for text in nasty_inputs(seed=1, count=400):
        check_facts(shell(text))


def test_random_python_input_never_raises() -> None:
    for text in nasty_inputs(seed=2, count=200):
        check_facts(analyse_call(call("python", {"code": text}), OPTIONS))


def test_random_input_to_every_tool_never_raises() -> None:
    rng = random.Random(3)  # noqa: S311 - reproducible test input, not cryptography
    values: list[Any] = [None, 0, -1, 2**80, 1.5, float("nan"), True, [], {}, ["a"], {"command": "ls"}, b"x"]
    values += nasty_inputs(seed=4, count=30)
    for tool in ("shell", "python", "file_write", "file_read", "http", "mcp", "", "x" * 1000):
        for _ in range(40):
            keys = rng.sample(["command", "code", "path", "url", "arguments"], 3)
            arguments = {key: rng.choice(values) for key in keys}
            cwd = rng.choice([None, "/home/agent", "relative", "", "\x00", "/a/../../.."])
            check_facts(analyse_call(call(tool, arguments, cwd), OPTIONS))


def test_unbalanced_quotes_are_parse_errors() -> None:
    unbalanced = ["echo 'a", 'echo "a', "echo $(ls", "echo `ls", "echo ${a"]
    unbalanced += ["if true; then ls"]
    for text in unbalanced:
        facts = shell(text)
        assert "parse_error" in reasons(facts), text


def test_a_heredoc_the_text_ends_in_reads_up_to_the_end() -> None:
    # bash warns and runs it: the body is the rest of the text, so a shell reading it runs that
    facts = shell("sh <<EOF\npkill -9 python")
    assert reasons(facts) == []
    assert [c.argv for c in facts.commands] == [["sh"], ["pkill", "-9", "python"]]
    assert facts.commands[1].via[-1].kind == "shell"


def test_huge_inputs_below_the_limit_are_analysed() -> None:
    long_word = "echo " + "a" * 200_000
    many_quotes = "echo " + "'x' " * 20_000
    for text in (long_word, many_quotes, "a | " * 3000 + "b", "a && " * 3000 + "b"):
        check_facts(shell(text))
