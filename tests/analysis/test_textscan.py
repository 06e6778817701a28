"""Command lines written as literal text (analysis.textscan) and where the analysis looks for them."""

from __future__ import annotations

import pytest

from gatekeeper.analysis import analyse_call
from gatekeeper.analysis.programs import load_programs
from gatekeeper.analysis.textscan import MAX_LINES_PER_TEXT, command_lines
from gatekeeper.models import ToolCall

PROGRAMS = load_programs()


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        # closed by the quote or bracket the program word was opened by
        ('os.execute("pkill -f agent")', ["pkill -f agent"]),
        ("\\write18{cp -r /srv/a /tmp/b}\\end", ["cp -r /srv/a /tmp/b"]),
        ("%(kill -9 1 1>&2)", ["kill -9 1 1>&2"]),
        ("exec('rsync -a a b', 'sh', '-c')", ["rsync -a a b"]),
        # a prompt or option prefix before the program word
        ("!pkill -9 x", ["pkill -9 x"]),
        ("LocalCommand=kill 1 host", ["kill 1 host"]),
        ("[shell: kill -9 1 </dev/tty]", ["kill -9 1 </dev/tty]"]),
        # a make recipe line: make's own "-" and "@" are not part of the command
        ("x:\n\t-kill 1", ["kill 1"]),
        # the whole line when it parses, with the substitutions in it
        ("kill 1 <$(tty) |& tee $(tty)", ["kill 1 <$(tty) |& tee $(tty)"]),
        # path of a program
        ("run /usr/bin/pkill -f x", ["/usr/bin/pkill -f x"]),
    ],
)
def test_command_lines_found(text: str, lines: list[str]) -> None:
    assert command_lines(text, PROGRAMS) == lines


@pytest.mark.parametrize(
    "text",
    [
        "",
        "the quick brown fox",
        "skill.md killer cp.txt x-kill",  # a program name inside a longer word is not a program word
        "please (",  # nothing
        "log --grep=kill",  # a bare program name
        "exec('sh', '-c')",
    ],
)
def test_no_command_lines(text: str) -> None:
    assert command_lines(text, PROGRAMS) == []


def test_skip_start_and_only_after() -> None:
    assert command_lines("kill 1", PROGRAMS, skip_start=True) == []
    assert command_lines("kill 1 --exec=cp a b", PROGRAMS, only_after="=") == ["cp a b"]


def test_lines_per_text_are_bounded() -> None:
    text = "\n".join(f"kill {n}" for n in range(MAX_LINES_PER_TEXT * 3))
    assert len(command_lines(text, PROGRAMS)) == MAX_LINES_PER_TEXT


def _candidates(command: str, tool: str = "shell", **arguments: str) -> list[tuple[list[str], str]]:
    call = ToolCall(tool=tool, arguments={"command": command, **arguments} if tool == "shell" else arguments)
    facts = analyse_call(call)
    return [(c.argv, c.via[-1].name) for c in facts.commands if c.candidate]


@pytest.mark.parametrize(
    ("command", "argv", "via"),
    [
        ("apt changelog apt\n!pkill -9 -f agent", ["pkill", "-9", "-f", "agent"], "line !pkill"),
        ("pry\nsystem('kill -9 1')", ["kill", "-9", "1"], "line system"),
        ("vi\n:set shell=kill 1\n:shell", ["kill", "1"], "line :set"),
        (
            "TF=$(mktemp -d)\necho 'system(\"kill -9 1\")' > $TF/Gemfile",
            ["kill", "-9", "1"],
            "written file $TF/Gemfile",
        ),
        ('echo "! exec kill 1 <$(tty)" > /tmp/x.rc', ["kill", "1"], "written file /tmp/x.rc"),
        ("echo \"exec('kill 1', $(tty))\" | jjs", ["kill", "1"], "jjs stdin"),
        ("socat stdin exec:pkill -9 -f agent", ["pkill", "-9", "-f", "agent"], "socat argument"),
        ("ssh -o LocalCommand=kill 1 host", ["kill", "1", "host"], "ssh option"),
        ("npm exec pkill -9 -f agent", ["pkill", "-9", "-f", "agent"], "npm exec"),
        ("rpm --eval '%{lua:os.execute(\"kill 1\")}'", ["kill", "1"], "rpm argument"),
        ('export CMD="pkill -f agent"', ["pkill", "-f", "agent"], "export CMD="),
        ('CRASHPAGER="kill 1" crash -h', ["kill", "1"], "crash CRASHPAGER="),
        ("make -s --eval=$'x:\\n\\t-kill 1'", ["kill", "1"], "make argument"),
    ],
)
def test_literal_command_lines_are_candidates(command: str, argv: list[str], via: str) -> None:
    assert (argv, via) in _candidates(command)


@pytest.mark.parametrize(
    "command",
    [
        "git log --grep=kill --oneline",  # an option of the program, not the start of a command line
        "git commit -m 'kill the flaky test'",  # a text option
        "pkill -f 'python -m http.server'",  # a pattern matched against running processes
        "man kill; which python3; pip install 'uvicorn[standard]'",  # operands naming programs
        "echo 'kill 1'",  # text on the terminal
        "echo 'run kill 1 to stop it' > NOTES.md",  # a document
        "K=kill ls",  # a single word: its use is analysed, not its assignment
        "echo kill | base64",  # data a decoder encodes
    ],
)
def test_text_that_is_not_run_gives_no_candidate(command: str) -> None:
    assert _candidates(command) == []


def test_file_write_content_is_looked_at() -> None:
    call = ToolCall(
        tool="file_write",
        arguments={
            "path": "/tmp/proj/package.json",
            "content": '{"scripts": {"preinstall": "pkill -f agent"}}',
        },
    )
    facts = analyse_call(call)
    assert [c.argv for c in facts.commands if c.candidate] == [["pkill", "-f", "agent"]]


def test_a_command_is_not_analysed_twice_as_a_candidate() -> None:
    candidates = _candidates("vim -c ':!kill 1' f")
    assert candidates == [(["kill", "1"], "vim -c")]


def test_what_a_guessed_line_leaves_unknown_is_dropped() -> None:
    # "ssh local_file user@host:remote_file" is a guess whose remote command does not parse: the guess
    # must not make an ordinary rsync unanalysable
    facts = analyse_call(
        ToolCall(tool="shell", arguments={"command": "rsync --rsh=ssh local_file user@host:remote_file"})
    )
    assert facts.opaque == []
    assert facts.syntax_errors == []
    # while a real command's unknowns stay
    facts = analyse_call(ToolCall(tool="shell", arguments={"command": "echo 'kill 1' > f.cfg; $CMD"}))
    assert [o.reason for o in facts.opaque] == ["computed_program"]
