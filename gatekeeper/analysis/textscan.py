"""Command lines written as literal text: in an argument, an assignment, a file or a line typed at a prompt.

Many programs run text they were given as data: a Gemfile or a YAML playbook they load, a value after
``--on-download-error=``, a line typed at their own prompt (``apt changelog apt`` then ``!cmd``), a
string in code they evaluate (``exec "cmd"``, ``os.execute("cmd")``, ``\\write18{cmd}``). No list of
programs and options can be complete, so besides the specific extractors of :mod:`candidates`, the
analysis looks for the command lines themselves: wherever the name of a program that matters (the
``known_programs`` of ``programs.json``: ``kill``, ``cp``, ``rsync``, ``python3``, ``uvicorn``, ...)
starts a word in such a text, the text from there to the end of its line, cut back to the nearest
quote, bracket or comma where that is needed to parse cleanly, is a candidate command line. A bare
program name (``--grep=kill``, ``'sh'``) names a program and is not taken as a command line.

Candidates are facts about what *may* run; the policies turn a candidate that matters into an ``ask``
(``evasion.embedded_command``), never into a silent allow or a deny of ordinary text.
"""

from __future__ import annotations

import re

from gatekeeper.analysis.payloads import encode
from gatekeeper.analysis.programs import Programs
from gatekeeper.analysis.shell import parse

# A word that can name a program, as it may appear after a prompt character or inside other syntax.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_./+~@%-])[A-Za-z0-9_./+~-]+")
_PROGRAM_WORD = re.compile(r"^[A-Za-z0-9_./+~-]*[A-Za-z][A-Za-z0-9_./+~-]*$")
# Where a command line embedded in other syntax ends: a closing quote or bracket, a separator of a list.
_TERMINATORS = frozenset("'\"`)]},")
_CLOSERS = {"'": "'", '"': '"', "`": "`", "(": ")", "[": "]", "{": "}"}
# Bounds per text, so that a large argument or file cannot make the analysis slow.
MAX_LINES_PER_TEXT = 16
MAX_ENDS_TRIED = 8
MAX_LINE_CHARS = 4096


def command_lines(
    text: str, programs: Programs, *, skip_start: bool = False, only_after: str = ""
) -> list[str]:
    """Candidate command lines in ``text``, in order, each once.

    ``skip_start`` leaves out a program word at the very start of ``text`` (the text of a command
    whose program is analysed already); with ``only_after``, only program words right after one of
    its characters count (``=``: an option's value).
    """
    found: list[str] = []
    if not text:
        return found
    known = programs.candidates.known_programs
    for match in _TOKEN.finditer(text):
        start, word = match.start(), match.group(0)
        if word[0] in "-@+" and start > 0 and text[start - 1] == "\t":
            # a make recipe line: "-", "@" and "+" before the command are make's, not the command's
            stripped = word.lstrip("-@+")
            start, word = start + len(word) - len(stripped), stripped
        if (skip_start and start == 0) or (only_after and (start == 0 or text[start - 1] not in only_after)):
            continue
        if word.rsplit("/", 1)[-1] not in known:
            continue
        line = _cut(text, start)
        if line is not None and line not in found:
            found.append(line)
            if len(found) >= MAX_LINES_PER_TEXT:
                break
    return found


def _cut(text: str, start: int) -> str | None:
    """The command line from ``start``: up to what closes the quote or bracket the program word was
    opened by (``"cmd"``, ``{cmd}``, ``(cmd)``), else to the end of the line, cut back to the last
    quote, bracket or comma that leaves a line which parses cleanly."""
    end_of_line = text.find("\n", start)
    if end_of_line < 0:
        end_of_line = len(text)
    end_of_line = min(end_of_line, start + MAX_LINE_CHARS)
    ends = []
    closer = _CLOSERS.get(text[start - 1]) if start > 0 else None
    if closer is not None:
        closing = _closing(text, start, end_of_line, text[start - 1], closer)
        if closing is not None:
            ends.append(closing)
    ends.append(end_of_line)
    for index in range(end_of_line - 1, start, -1):
        if text[index] in _TERMINATORS:
            ends.append(index)
            if len(ends) >= MAX_ENDS_TRIED:
                break
    for end in ends:
        line = text[start:end].strip().rstrip(";&|").strip()
        # a bare program name in text (--grep=kill, 'sh') names a program; it is not a command line
        if len(line.split(None, 1)) > 1 and looks_like_command(line):
            return line
    return None


def _closing(text: str, start: int, stop: int, opener: str, closer: str) -> int | None:
    """Index of the ``closer`` that ends the quote or bracket opened just before ``start``."""
    depth = 0
    index = start
    while index < stop:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == closer and depth == 0:
            return index
        if opener != closer:
            if char == opener:
                depth += 1
            elif char == closer:
                depth -= 1
        index += 1
    return None


def looks_like_command(text: str) -> bool:
    """A candidate is kept when it parses cleanly and starts with a word that can name a program."""
    if len(text) > MAX_LINE_CHARS:
        return False
    tree = parse(encode(text))
    root = tree.root_node
    if root.has_error:
        return False
    statements = [c for c in root.named_children if c.type != "comment"]
    if not statements:
        return False
    node = statements[0]
    for _ in range(8):
        if node.type == "command":
            break
        body = node.child_by_field_name("body") if node.type == "redirected_statement" else None
        if body is not None:
            node = body
        elif node.type in ("list", "pipeline") and node.named_children:
            node = node.named_children[0]
        else:
            return False
    name = node.child_by_field_name("name")
    if name is None or name.text is None:
        return False
    word = name.text.decode("utf-8", errors="replace")
    return bool(_PROGRAM_WORD.match(word))


def plausible_program(word: str) -> bool:
    """Whether ``word`` can be a program name at all (``!pkill``, ``:set``, ``a b`` cannot)."""
    return bool(_PROGRAM_WORD.match(word))
