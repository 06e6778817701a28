"""Shell source → simple commands, in execution order, with the structure around them.

tree-sitter-bash parses the text; :class:`Walker` visits the tree and hands every simple command (argv
after expansion, prefix assignments, redirections, standard input, background ``&``, pipeline position)
to a :class:`Runner`, which turns it into facts. The walker follows the shell state (:mod:`scope`):
literal variables, ``cd``, function definitions, subshell isolation, branches.

tree-sitter-bash quirks handled here (each checked against ``str(tree.root_node)``):

- ``a && b > f`` parses as ``redirected_statement(body: list(a, b), redirect)``; in bash the
  redirection belongs to the last command of the list (likewise for a pipeline body).
- The ``&`` that backgrounds a statement is an anonymous sibling token after it.
- After a heredoc start, the rest of the line is nested inside ``heredoc_redirect``: a ``pipeline``
  continuation (``cat <<EOF | sh``), ``operator``/``right`` fields (``cat <<EOF && x``), more redirects,
  and a trailing ``&`` as an ``ERROR`` node.
- Blanks before ``$x`` inside double quotes are folded into the ``$`` token (see :mod:`words`).
- Left-recursive ``list`` nodes (``a && b && c``) are flattened iteratively, never recursed into.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Tree

from gatekeeper.analysis.facts import Command, Pipeline, Redirect, Via
from gatekeeper.analysis.paths import absolute
from gatekeeper.analysis.programs import program_name
from gatekeeper.analysis.scope import UNKNOWN, FunctionDef, Scope
from gatekeeper.analysis.words import (
    Arg,
    Output,
    WordExpander,
    is_locale_dollar,
    real_start,
    unescape_unquoted,
)

_LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()

# Statement nesting (across every nested text of one analysis) beyond which the walker stops.
MAX_NESTING = 120

INPUT_OPS = frozenset({"<", "<&", "<>"})
WRITE_OPS = frozenset({">", ">>", "&>", "&>>", ">|", "<>", ">&"})
_STATEMENT_TYPES = frozenset(
    {
        "command",
        "list",
        "pipeline",
        "redirected_statement",
        "subshell",
        "compound_statement",
        "if_statement",
        "while_statement",
        "until_statement",
        "for_statement",
        "c_style_for_statement",
        "case_statement",
        "function_definition",
        "negated_command",
        "test_command",
        "declaration_command",
        "unset_command",
        "variable_assignment",
        "variable_assignments",
    }
)


def parse(src: bytes) -> Tree:
    """Parse bash source with a parser created once per thread."""
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = Parser(_LANGUAGE)
        _local.parser = parser
    return parser.parse(src)


# A word without quotes, expansions or operators (see Walker._dropped_words).
_PLAIN_WORD = re.compile(rb"[^\s'\"$`;&|<>()\\]+")
_HEREDOC_START = re.compile(rb"<<(-?)\s*(['\"]?)([A-Za-z0-9_.-]+)\2")


def parse_repaired(src: bytes) -> Tree:
    """Parse as bash does, working around tree-sitter-bash where it parses otherwise.

    Texts that fail to parse are rewritten to an equivalent text, used only when that parses cleanly:
    ``cmd <<EOF; next`` (see :func:`_heredoc_semicolon`), a backslash ending the text (bash keeps it
    as a literal ``\\``), a heredoc the text ends in (bash reads its body up to the end: empty).
    Then a ``$`` followed by a blank, which bash keeps as a literal ``$`` (``$ ls -l`` runs the program
    ``$``; ``x=$ kill 1`` runs ``kill``), is escaped: tree-sitter-bash reads it as an expansion of the
    next word.
    """
    tree = parse(src)
    if tree.root_node.has_error:
        for repair in (_heredoc_semicolon, _trailing_backslash, _unterminated_heredoc, _unquoted_literals):
            repaired = repair(src)
            if repaired is not None and repaired != src:
                candidate = parse(repaired)
                if not candidate.root_node.has_error:
                    tree = candidate
                    break
    return _literal_dollars(tree)


_DOLLAR_BLANK = re.compile(rb"\$\s")


def _literal_dollars(tree: Tree) -> Tree:
    src = tree.root_node.text or b""
    if _DOLLAR_BLANK.search(src) is None:
        return tree
    positions: list[int] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        children = node.children
        if node.type == "simple_expansion" and len(children) >= 2 and children[0].type == "$":
            dollar = children[0].end_byte - 1
            if src[dollar + 1 : dollar + 2].isspace():
                positions.append(dollar)
            continue
        stack.extend(children)
    if not positions:
        return tree
    text = bytearray(src)
    for position in sorted(positions, reverse=True):
        text[position:position] = b"\\"
    repaired = parse(bytes(text))
    return tree if repaired.root_node.has_error and not tree.root_node.has_error else repaired


# A `$` that starts no expansion in bash (`grep total$.`, `sed s/x$//`): literal.
_LITERAL_DOLLAR = re.compile(rb"\$(?=[\s/.,:;|&)%=+^~\]}>]|$)")
# `for NAME do` (no `in` list, no separator): bash accepts it, tree-sitter-bash does not.
_FOR_DO = re.compile(rb"\bfor(\s+[A-Za-z_][A-Za-z0-9_]*)(\s+do\b)")
# `fi done`: a compound command closed right before its enclosing one, without a separator.
_KEYWORD_RUN = re.compile(rb"\b(fi|done|esac)(?=[ \t]+(?:done|fi|esac)\b)")
# `user@host` as a command word: tree-sitter-bash fails on a name followed by `@` (not `@(`, an
# extglob pattern).
_NAME_AT = re.compile(rb"(?<![^\s;&|(`])([A-Za-z_][A-Za-z0-9_]*)@(?!\()")


def _unquoted_literals(src: bytes) -> bytes | None:
    """Escape what bash reads literally where tree-sitter-bash fails: a ``$`` that starts no
    expansion, the ``@`` after a name at a word start; and give ``for NAME do`` and ``fi done`` their
    ``;``. Only text
    outside single quotes, comments and heredocs is touched (a heredoc leaves the text alone)."""
    if b"<<" in src:
        return None
    quoted = _single_quoted(src)
    edits: list[tuple[int, bytes]] = []
    # (pattern, insert after its first group rather than before the match, text to insert)
    for pattern, after_group, insert in (
        (_LITERAL_DOLLAR, False, b"\\"),
        (_NAME_AT, True, b"\\"),
        (_FOR_DO, True, b";"),
        (_KEYWORD_RUN, True, b";"),
    ):
        for match in pattern.finditer(src):
            if not quoted[match.start()]:
                edits.append((match.end(1) if after_group else match.start(), insert))
    if not edits:
        return None
    text = bytearray(src)
    for position, insert in sorted(edits, reverse=True):
        text[position:position] = insert
    return bytes(text)


def _single_quoted(src: bytes) -> list[bool]:
    """For each byte: inside single quotes (or ``$'...'``) or a comment, where a backslash is text."""
    flags = [False] * (len(src) + 1)
    index, double = 0, False
    while index < len(src):
        byte = src[index : index + 1]
        if byte == b"\\":
            index += 2
            continue
        if byte == b'"':
            double = not double
        elif not double and (byte == b"'" or src[index : index + 2] == b"$'"):
            ansi = byte == b"$"
            end = index + (2 if ansi else 1)
            while end < len(src) and src[end : end + 1] != b"'":
                end += 2 if ansi and src[end : end + 1] == b"\\" else 1
            for position in range(index, min(end + 1, len(src))):
                flags[position] = True
            index = end + 1
            continue
        elif not double and byte == b"#" and (index == 0 or src[index - 1 : index].isspace()):
            end = src.find(b"\n", index)
            end = len(src) if end < 0 else end
            for position in range(index, end):
                flags[position] = True
            index = end
            continue
        index += 1
    return flags


def _trailing_backslash(src: bytes) -> bytes | None:
    """``nl -ba file \\`` at the very end: bash reads a final backslash as a literal one."""
    stripped = src.rstrip(b"\\")
    if (len(src) - len(stripped)) % 2 == 0:
        return None
    return src[:-1] + b"'\\'"


_HEREDOC_ANY = re.compile(rb"<<(-?)\s*(['\"]?)\\?([A-Za-z0-9_.-]+)\2")


def _unterminated_heredoc(src: bytes) -> bytes | None:
    """``ssh host <<'EOF'`` and nothing after: bash runs it with the rest of the text (none) as body."""
    starts = list(_HEREDOC_ANY.finditer(src))
    if not starts:
        return None
    match = starts[-1]
    delimiter = match.group(3)
    rest = src[match.end() :].split(b"\n")[1:]
    if any(line.lstrip(b"\t") == delimiter for line in rest):
        return None
    return src + b"\n" + delimiter


def _heredoc_semicolon(src: bytes) -> bytes | None:
    """tree-sitter-bash fails on ``cmd <<EOF; next`` (a ``;`` after a heredoc start): the text after the
    ``;`` is moved after the heredoc's terminator line, which runs it in the same order."""
    if b"<<" not in src:
        return None
    lines = src.split(b"\n")
    changed = False
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _HEREDOC_START.search(line)
        semicolon = line.find(b";", match.end()) if match else -1
        if match is None or semicolon < 0 or line[match.end() : semicolon].count(b"'") % 2:
            index += 1
            continue
        delimiter, strip = match.group(3), bool(match.group(1))
        for end in range(index + 1, len(lines)):
            candidate = lines[end].lstrip(b"\t") if strip else lines[end]
            if candidate == delimiter:
                lines.insert(end + 1, line[semicolon + 1 :])
                lines[index] = line[:semicolon]
                changed = True
                break
        index += 1
    return b"\n".join(lines) if changed else None


# Stands for a find/xargs placeholder while checking where it occurs: a plain word to the parser.
_ITEM_SENTINEL = "__gatekeeper_item__"
# Tree nodes holding literal text that a substituted item only ever is an argument value in.
_VALUE_NODES = frozenset({"word", "string_content", "raw_string"})


def items_in_arguments(code: str, item: str) -> bool:
    """Whether every ``item`` in shell ``code`` is (part of) an argument value, never a program name.

    ``find . -exec sh -c 'gzip < {} > {}.gz' \\;`` and ``xargs -I % sh -c 'echo %'`` put a file name
    or an input item into the code text. Where it only ever lands in argument words, what runs is
    known apart from that word; in a command name, a keyword, a variable name or an arithmetic
    expression (or when the code does not parse) it could be any code. A file name that is itself a
    command line would have to be created first by a call that contains it literally.
    """
    if not item or item not in code:
        return False
    src = code.replace(item, _ITEM_SENTINEL).encode("utf-8", errors="surrogateescape")
    root = parse(src).root_node
    if root.has_error:
        return False
    sentinel = _ITEM_SENTINEL.encode()
    start = src.find(sentinel)
    while start >= 0:
        node = root.descendant_for_byte_range(start, start + len(sentinel))
        if node is None or node.type not in _VALUE_NODES or _in_program_name(node):
            return False
        start = src.find(sentinel, start + len(sentinel))
    return True


def _in_program_name(node: Node) -> bool:
    current: Node | None = node
    while current is not None:
        parent = current.parent
        if current.type == "command_name" or (
            parent is not None and parent.type == "function_definition" and current.type == "word"
        ):
            return True
        current = parent
    return False


@dataclass(frozen=True, slots=True)
class Context:
    """Where the text being walked was found: the via layers, its language, whether a candidate, and
    the placeholder (``item``) a ``find -exec``/``xargs -I`` program substitutes into it."""

    via: tuple[Via, ...] = ()
    language: str = "shell"
    candidate: bool = False
    item: str | None = None

    def enter(
        self, kind: str, name: str, language: str | None = None, *, command: int | None = None
    ) -> Context:
        """One layer deeper, opened by the command with index ``command`` if one did; code found
        through a shell layer is shell code again."""
        if language is None:
            language = "shell" if kind in ("shell", "remote", "trap") else self.language
        return Context((*self.via, Via(kind, name, command)), language, self.candidate, self.item)

    def with_item(self, item: str) -> Context:
        """The same place, in text where ``item`` stands for a file name or input item."""
        return replace(self, item=item)


@dataclass(slots=True)
class Produced:
    """A pipeline member seen as the producer of the next member's standard input."""

    name: str | None
    args: list[Arg]
    stdin: Stdin | None


@dataclass(slots=True)
class Stdin:
    """What a command reads on standard input: ``heredoc``/``herestring`` (``body``), ``pipe``
    (``producers``, nearest last), or ``file`` (``path``, possibly a process substitution)."""

    kind: str
    body: Arg | None = None
    producers: list[Produced | None] = field(default_factory=list)
    path: Arg | None = None


@dataclass(slots=True)
class SimpleCommand:
    """One simple command as the walker found it, words expanded, before facts are made of it."""

    args: list[Arg]
    assignments: list[tuple[str, Arg]]
    redirects: list[Redirect]
    stdin: Stdin | None
    background: bool
    pipeline: Pipeline | None
    src: bytes
    start: int
    end: int
    affects_scope: bool

    @property
    def text(self) -> str:
        return self.src[self.start : self.end].decode("utf-8", errors="replace")


class Runner(Protocol):
    """What the walker needs from the analysis it works for."""

    def run_simple(self, command: SimpleCommand, scope: Scope, ctx: Context) -> Command | None: ...

    def run_substitution(self, node: Node, src: bytes, scope: Scope, ctx: Context) -> Output: ...

    def run_function(self, definition: FunctionDef, scope: Scope, ctx: Context) -> None: ...

    def next_pipeline_id(self) -> int: ...

    def enter_nesting(self, text: str, ctx: Context) -> bool: ...

    def leave_nesting(self) -> None: ...

    def report_parse_error(self, detail: str, text: str, ctx: Context) -> None: ...

    def report_too_deep(self, detail: str, text: str, ctx: Context) -> None: ...


@dataclass(slots=True)
class _Exec:
    """How a statement runs: in the background, in a pipeline, with inherited redirections."""

    background: bool = False
    pipeline: Pipeline | None = None
    redirects: tuple[Redirect, ...] = ()
    stdin: Stdin | None = None
    affects_scope: bool = True


@dataclass(slots=True)
class _Redirected:
    """A statement plus redirection nodes that tree-sitter attached somewhere else."""

    node: Node
    redirects: list[Node]


@dataclass(slots=True)
class _VirtualPipeline:
    members: list[Node | _Redirected]


@dataclass(slots=True)
class _VirtualList:
    items: list[tuple[str | None, Item]]


Item = Node | _Redirected | _VirtualPipeline | _VirtualList


def _depth_exceeds(root: Node, limit: int) -> bool:
    """Whether the tree under ``root`` is deeper than ``limit`` (iteratively: the tree may be very deep)."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in node.named_children)
    return False


def _missing_program(node: Node) -> bool:
    """``g=$(md5sum f) > f.md5``: assignments and a redirection with no command are valid bash, but
    tree-sitter-bash expects a command name after the redirection and inserts a missing one."""
    parent = node.parent
    command = parent.parent if parent is not None else None
    return (
        node.is_missing
        and parent is not None
        and parent.type == "command_name"
        and command is not None
        and any(c.type == "variable_assignment" for c in command.children)
    )


def is_background_token(node: Node) -> bool:
    return node.type == "&" or (node.type == "ERROR" and any(c.type == "&" for c in node.children))


class Walker:
    """Walks one parsed source (``src``) in a context, reporting simple commands to the runner."""

    def __init__(self, runner: Runner, src: bytes, ctx: Context, home: str | None) -> None:
        self.runner = runner
        self.src = src
        self.ctx = ctx
        self.home = home

    # -- entry points ---------------------------------------------------------------------------------

    def walk(self, root: Node, scope: Scope) -> None:
        self.report_errors(root)
        self._block(root, scope, _Exec())

    def walk_function_body(self, body: Node, scope: Scope) -> None:
        if body.type == "compound_statement":
            self._block(body, scope, _Exec())
        else:
            self._statement(body, scope, _Exec())

    def report_errors(self, root: Node) -> None:
        if not root.has_error:
            return
        stack = [root]
        while stack:
            node = stack.pop()
            if node.is_missing and not _missing_program(node):
                detail = f"missing {node.type!r} at byte {node.start_byte}"
                self.runner.report_parse_error(detail, self._text(root), self.ctx)
                return
            if node.type == "ERROR" and not (
                node.parent is not None
                and node.parent.type == "heredoc_redirect"
                and all(c.type == "&" for c in node.children)
            ):
                snippet = self._text(node)[:60]
                detail = f"syntax error at byte {node.start_byte} near {snippet!r}"
                self.runner.report_parse_error(detail, self._text(root), self.ctx)
                return
            if node.has_error:
                stack.extend(reversed(node.children))

    # -- statements -----------------------------------------------------------------------------------

    def _text(self, node: Node) -> str:
        return self.src[real_start(node) : node.end_byte].decode("utf-8", errors="replace")

    def _block(self, parent: Node, scope: Scope, ex: _Exec) -> None:
        """The statements of a program, group, subshell or body, each possibly backgrounded by ``&``."""
        children = parent.children
        for index, child in enumerate(children):
            if not child.is_named or child.type == "comment":
                continue
            if child.type == "ERROR":
                if not all(c.type == "&" for c in child.children):
                    self._error_children(child, scope, ex)
                continue
            background = any(is_background_token(nxt) for nxt in self._following_tokens(children, index))
            if background:
                # a background job runs in a subshell: its own copy of the state, cd followed inside it
                self._statement(child, scope.copy(), replace(ex, background=True))
            else:
                self._statement(child, scope, ex)

    @staticmethod
    def _following_tokens(children: list[Node], index: int) -> Iterator[Node]:
        for nxt in children[index + 1 :]:
            if nxt.type == "comment":
                continue
            if nxt.is_named and nxt.type != "ERROR":
                return
            yield nxt
            if nxt.type in (";", "&", "\n", ";;"):
                return

    def _error_children(self, node: Node, scope: Scope, ex: _Exec) -> None:
        for child in node.children:
            if child.type in _STATEMENT_TYPES:
                self._statement(child, scope, ex)
            elif child.type == "ERROR":
                self._error_children(child, scope, ex)

    def _statement(self, item: Item, scope: Scope, ex: _Exec) -> None:
        text = self._text(item) if isinstance(item, Node) else ""
        if not self.runner.enter_nesting(text, self.ctx):
            return
        try:
            self._dispatch(item, scope, ex)
        finally:
            self.runner.leave_nesting()

    def _dispatch(self, item: Item, scope: Scope, ex: _Exec) -> None:
        if isinstance(item, _Redirected):
            self._redirected(item.node, item.redirects, scope, ex)
            return
        if isinstance(item, _VirtualPipeline):
            self._pipeline(item.members, scope, ex)
            return
        if isinstance(item, _VirtualList):
            self._list(item.items, scope, ex)
            return
        node = item
        kind = node.type
        if kind == "command":
            self._simple(node, [], scope, ex)
        elif kind in ("declaration_command", "unset_command"):
            self._declaration(node, scope, ex)
        elif kind == "variable_assignment":
            self._assign(node, scope, ex)
        elif kind == "variable_assignments":
            for child in node.named_children:
                if child.type == "variable_assignment":
                    self._assign(child, scope, ex)
        elif kind == "list":
            self._list(self._flatten_list(node), scope, ex)
        elif kind == "pipeline":
            self._pipeline(self._pipeline_members(node), scope, ex)
        elif kind == "redirected_statement":
            self._redirected_statement(node, scope, ex)
        elif kind == "subshell":
            self._nested_block(node, scope.copy(), ex, "subshell", "( )")
        elif kind == "compound_statement" and node.children and node.children[0].type == "((":
            # tree-sitter-bash parses the arithmetic command (( ... )) as a compound statement
            if _depth_exceeds(node, MAX_NESTING):
                detail = f"arithmetic nested deeper than {MAX_NESTING} is not analysed"
                self.runner.report_too_deep(detail, self._text(node)[:200], self.ctx)
                return
            self.scan(node, scope, ex)
        elif kind == "compound_statement":
            self._nested_block(node, scope, ex, "group", "{ }")
        elif kind in ("if_statement", "case_statement", "while_statement", "until_statement"):
            self._conditional(node, scope, ex)
        elif kind in ("for_statement", "c_style_for_statement", "select_statement"):
            self._loop(node, scope, ex)
        elif kind == "function_definition":
            self._define_function(node, scope)
        elif kind == "negated_command":
            for child in node.named_children:
                self._statement(child, scope, ex)
        elif kind == "ERROR":
            self._error_children(node, scope, ex)
        elif kind in ("comment", "heredoc_body", "heredoc_end"):
            return
        else:
            # test_command, arithmetic and anything else: only substitutions inside can run commands
            self.scan(node, scope, ex)

    def _nested_block(self, node: Node, scope: Scope, ex: _Exec, kind: str, name: str) -> None:
        walker = Walker(self.runner, self.src, self.ctx.enter(kind, name), self.home)
        walker._block(node, scope, ex)

    def _flatten_list(self, node: Node) -> list[tuple[str | None, Item]]:
        items: list[tuple[str | None, Item]] = []
        current = node
        while current.type == "list" and current.child_count >= 3:
            children = current.children
            items.append((children[1].type, children[2]))
            current = children[0]
        items.append((None, current))
        items.reverse()
        return items

    def _list(self, items: list[tuple[str | None, Item]], scope: Scope, ex: _Exec) -> None:
        # && runs on; what follows || runs only when the left side failed, so it is a branch.
        for operator, item in items:
            if operator == "||":
                branch = scope.copy()
                self._statement(item, branch, ex)
                scope.merge([branch])
            else:
                self._statement(item, scope, ex)

    def _pipeline_members(self, node: Node) -> list[Node | _Redirected]:
        members: list[Node | _Redirected] = []
        for child in node.named_children:
            if child.type == "comment":
                continue
            if child.type == "pipeline":
                members.extend(self._pipeline_members(child))
            else:
                members.append(child)
        return members

    def walk_substitution(self, node: Node, scope: Scope) -> list[Produced | None]:
        """Walk the statements of a ``$(...)``/``<(...)``; when it is one simple command or pipeline,
        return its members as producers so that the caller can compute what it prints."""
        statements = [c for c in node.named_children if c.type != "comment"]
        ex = _Exec(affects_scope=False)
        chain: list[Produced | None] = []
        if len(statements) == 1 and statements[0].type in ("command", "pipeline", "redirected_statement"):
            statement = statements[0]
            members: list[Node | _Redirected] = (
                self._pipeline_members(statement) if statement.type == "pipeline" else [statement]
            )
            if len(members) == 1:
                produced: list[Produced] = []
                self._member(members[0], scope, ex, produced)
                return [produced[0]] if len(produced) == 1 else [None]
            self._pipeline(members, scope, ex, chain)
            return chain
        self._block(node, scope, ex)
        return [None]

    def _pipeline(
        self,
        members: list[Node | _Redirected],
        scope: Scope,
        ex: _Exec,
        capture: list[Produced | None] | None = None,
    ) -> None:
        if len(members) == 1:
            self._statement(members[0], scope, ex)
            return
        pipeline_id = self.runner.next_pipeline_id()
        producers: list[Produced | None] = []
        for position, member in enumerate(members):
            stdin = Stdin("pipe", producers=list(producers)) if position else ex.stdin
            member_ex = replace(
                ex,
                pipeline=Pipeline(pipeline_id, position, len(members)),
                stdin=stdin,
                affects_scope=False,
            )
            produced: list[Produced] = []
            self._member(member, scope.copy(), member_ex, produced)
            producers.append(produced[0] if len(produced) == 1 else None)
        if capture is not None:
            capture.extend(producers)

    def _member(self, member: Node | _Redirected, scope: Scope, ex: _Exec, produced: list[Produced]) -> None:
        node = member.node if isinstance(member, _Redirected) else member
        extra = member.redirects if isinstance(member, _Redirected) else []
        if node.type == "command":
            if self.runner.enter_nesting("", self.ctx):
                try:
                    self._simple(node, extra, scope, ex, produced)
                finally:
                    self.runner.leave_nesting()
        elif node.type == "redirected_statement" and not extra:
            body = node.child_by_field_name("body")
            redirects = [c for c in node.children if c.type.endswith("_redirect")]
            if body is not None and body.type == "command" and not self._has_continuation(redirects):
                self._member(_Redirected(body, redirects), scope, ex, produced)
            else:
                self._statement(node, scope, ex)
        else:
            self._statement(member, scope, ex)

    # -- redirections ---------------------------------------------------------------------------------

    @staticmethod
    def _has_continuation(redirects: list[Node]) -> bool:
        for redirect in redirects:
            if redirect.type == "heredoc_redirect":
                for child in redirect.children:
                    if child.type in ("pipeline", "&&", "||", "ERROR") or child.type.endswith("_redirect"):
                        return True
        return False

    def _redirected_statement(self, node: Node, scope: Scope, ex: _Exec) -> None:
        body = node.child_by_field_name("body")
        redirects = [c for c in node.children if c.type.endswith("_redirect")]
        if body is None:
            self.scan(node, scope, ex)
            return
        # tree-sitter nests the rest of the line after a heredoc start inside the heredoc redirect
        pipeline_rest: Node | None = None
        list_rest: list[tuple[str | None, Item]] = []
        background = False
        for redirect in redirects:
            if redirect.type != "heredoc_redirect":
                continue
            pending_operator: str | None = None
            for child in redirect.children:
                if child.type == "pipeline":
                    pipeline_rest = child
                elif child.type in ("&&", "||"):
                    pending_operator = child.type
                elif pending_operator is not None and child.is_named and child.type != "heredoc_body":
                    list_rest.append((pending_operator, child))
                    pending_operator = None
                elif child.type == "ERROR" and any(c.type == "&" for c in child.children):
                    background = True
                elif child.type.endswith("_redirect"):
                    redirects.append(child)
        if background:
            scope = scope.copy()
            ex = replace(ex, background=True)
        core: Item = _Redirected(body, redirects)
        if pipeline_rest is not None:
            members: list[Node | _Redirected] = [_Redirected(body, redirects)]
            rest = [c for c in pipeline_rest.named_children if c.type != "comment"]
            if len(rest) == 1 and rest[0].type == "list":
                flattened = self._flatten_list(rest[0])
                first = flattened[0][1]
                members.extend(self._as_members(first) if isinstance(first, Node) else [])
                core = _VirtualPipeline(members)
                list_rest = flattened[1:] + list_rest
            else:
                for child in rest:
                    members.extend(self._as_members(child))
                core = _VirtualPipeline(members)
        if list_rest:
            self._list([(None, core), *list_rest], scope, ex)
        else:
            self._statement(core, scope, ex)

    def _as_members(self, node: Node) -> list[Node | _Redirected]:
        if node.type == "pipeline":
            return self._pipeline_members(node)
        if node.type == "redirected_statement":
            body = node.child_by_field_name("body")
            redirects = [c for c in node.children if c.type.endswith("_redirect")]
            if body is not None and body.type == "pipeline":
                members = self._pipeline_members(body)
                last = members[-1]
                last_node = last.node if isinstance(last, _Redirected) else last
                members[-1] = _Redirected(last_node, redirects)
                return members
        return [node]

    def _redirected(self, node: Node, redirect_nodes: list[Node], scope: Scope, ex: _Exec) -> None:
        """A statement with redirections: they belong to a simple command, the last command of a list
        or pipeline, or are inherited by every command of a compound statement."""
        if node.type == "command":
            self._simple(node, redirect_nodes, scope, ex)
        elif node.type == "list":
            items = self._flatten_list(node)
            operator, last = items[-1]
            if isinstance(last, Node):
                items[-1] = (operator, _Redirected(last, redirect_nodes))
            self._list(items, scope, ex)
        elif node.type == "pipeline":
            members = self._pipeline_members(node)
            last_member = members[-1]
            last_node = last_member.node if isinstance(last_member, _Redirected) else last_member
            members[-1] = _Redirected(last_node, redirect_nodes)
            self._pipeline(members, scope, ex)
        elif node.type == "redirected_statement":
            body = node.child_by_field_name("body")
            inner = [c for c in node.children if c.type.endswith("_redirect")]
            if body is not None:
                self._redirected(body, inner + redirect_nodes, scope, ex)
        else:
            redirects, stdin = self._redirections(redirect_nodes, scope, ex)
            inherited = replace(ex, redirects=ex.redirects + tuple(redirects), stdin=stdin or ex.stdin)
            self._statement(node, scope, inherited)

    def _redirections(
        self, nodes: list[Node], scope: Scope, ex: _Exec
    ) -> tuple[list[Redirect], Stdin | None]:
        redirects: list[Redirect] = []
        stdin: Stdin | None = None
        expander = self.expander(scope, ex)
        for node in nodes:
            redirect, node_stdin = self._redirection(node, expander, scope)
            if redirect is not None:
                redirects.append(redirect)
            if node_stdin is not None:
                stdin = node_stdin
        return redirects, stdin

    def _redirection(
        self, node: Node, expander: WordExpander, scope: Scope
    ) -> tuple[Redirect | None, Stdin | None]:
        fd: int | None = None
        operator: str | None = None
        target: Arg | None = None
        for child in node.children:
            if child.type == "file_descriptor":
                digits = self.src[child.start_byte : child.end_byte]
                fd = int(digits) if digits.isdigit() and len(digits) < 6 else None
            elif not child.is_named and operator is None and child.type not in ("ERROR",):
                operator = child.type
            elif (
                child.is_named
                and child.type not in ("heredoc_start", "heredoc_body", "heredoc_end")
                and target is None
                and node.type != "heredoc_redirect"
            ):
                target = expander.single(child)
        if node.type == "heredoc_redirect":
            return self._heredoc(node, operator or "<<", fd, expander)
        if node.type == "herestring_redirect":
            body = target or Arg("")
            return Redirect("<<<", fd=fd, body=body.value), Stdin("herestring", body=body)
        operator = operator or ">"
        value = target.value if target is not None else None
        target_abs: str | None = None
        is_fd = value is not None and (value.isdigit() or value == "-") and operator in (">&", "<&")
        if value is not None and target is not None and target.known and not is_fd:
            target_abs = absolute(value, scope.cwd, self.home)
        redirect = Redirect(operator, target=value, target_abs=target_abs, fd=fd)
        stdin: Stdin | None = None
        if operator in ("<", "<>") and fd in (None, 0) and target is not None:
            stdin = Stdin("file", path=target)
        return redirect, stdin

    def _heredoc(
        self, node: Node, operator: str, fd: int | None, expander: WordExpander
    ) -> tuple[Redirect, Stdin]:
        delimiter = ""
        body_node: Node | None = None
        for child in node.children:
            if child.type == "heredoc_start":
                delimiter = self.src[child.start_byte : child.end_byte].decode("utf-8", errors="replace")
            elif child.type == "heredoc_body":
                body_node = child
        quoted = any(ch in delimiter for ch in "'\"\\")
        if body_node is None:
            body = Arg("")
        else:
            body = expander.heredoc(body_node, expand=not quoted, strip_tabs=operator == "<<-")
        return Redirect(operator, fd=fd, body=body.value), Stdin("heredoc", body=body)

    # -- simple commands ------------------------------------------------------------------------------

    def expander(self, scope: Scope, ex: _Exec) -> WordExpander:
        return WordExpander(
            self.src,
            scope.lookup,
            self.home,
            lambda node: self.runner.run_substitution(node, self.src, scope, self.ctx),
            lambda node: self.scan(node, scope, ex),
            scope.ifs(),
            self.ctx.item,
        )

    def _simple(
        self,
        node: Node,
        extra_redirects: list[Node],
        scope: Scope,
        ex: _Exec,
        produced: list[Produced] | None = None,
    ) -> None:
        expander = self.expander(scope, ex)
        args: list[Arg] = []
        assignments: list[tuple[str, Arg]] = []
        redirect_nodes: list[Node] = []
        children = node.children
        for index, child in enumerate(children):
            kind = child.type
            if is_locale_dollar(child, children[index + 1] if index + 1 < len(children) else None):
                continue
            if kind == "variable_assignment":
                assignment = self._assignment(child, expander)
                if assignment is not None:
                    assignments.append(assignment)
            elif kind == "command_name":
                for part in child.named_children:
                    if not _missing_program(part):
                        args.extend(expander.fields(part, program=True))
            elif kind.endswith("_redirect"):
                redirect_nodes.append(child)
            elif node.field_name_for_child(index) == "argument":
                args.extend(expander.fields(child))
            elif kind == "comment":
                continue
        args.extend(self._dropped_words(node, extra_redirects))
        args.extend(self._redirect_operands(redirect_nodes + extra_redirects, expander))
        redirects, stdin = self._redirections(redirect_nodes + extra_redirects, scope, ex)
        if not args:
            for name, value in assignments:
                scope.assign(name, value.value if value.known else UNKNOWN)
            return
        command = SimpleCommand(
            args=args,
            assignments=assignments,
            redirects=list(ex.redirects) + redirects,
            stdin=stdin or ex.stdin,
            background=ex.background,
            pipeline=ex.pipeline,
            src=self.src,
            start=real_start(node),
            end=node.end_byte,
            affects_scope=ex.affects_scope,
        )
        if produced is not None:
            program = program_name(args[0].value) if args[0].known else None
            produced.append(Produced(program, args, command.stdin))
        self.runner.run_simple(command, scope, self.ctx)

    @staticmethod
    def _redirect_operands(redirects: list[Node], expander: WordExpander) -> list[Arg]:
        """Words after a redirection's target, which bash gives the command as arguments.

        ``nc < f -l -p 80`` runs ``nc -l -p 80`` and ``cp <<EOF -r a b`` runs ``cp -r a b``, but
        tree-sitter-bash files the words under the redirection (more ``destination`` fields of a
        ``file_redirect``, ``argument`` fields of a ``heredoc_redirect``)."""
        words: list[Arg] = []
        for redirect in redirects:
            if redirect.type == "file_redirect":
                operands = redirect.children_by_field_name("destination")[1:]
            elif redirect.type == "heredoc_redirect":
                operands = redirect.children_by_field_name("argument")
            else:
                continue
            for operand in operands:
                words.extend(expander.fields(operand))
        return words

    def _dropped_words(self, node: Node, redirects: list[Node]) -> list[Arg]:
        """Words tree-sitter-bash leaves out of the tree without an error: in ``python3 - <<EOF`` and
        ``cat - 2>/dev/null <<EOF`` the ``-`` before the redirections is in no node. They are the text
        between the command and its first redirection; anything but plain words there is reported."""
        following = [r.start_byte for r in redirects if r.start_byte >= node.end_byte]
        if not following:
            return []
        start, end = node.end_byte, min(following)
        gap = self.src[start:end].replace(b"\\\n", b"  ")
        if not gap.strip():
            return []
        words: list[Arg] = []
        for match in _PLAIN_WORD.finditer(gap):
            value, glob = unescape_unquoted(match.group().decode("utf-8", errors="replace"))
            words.append(Arg(value, start=start + match.start(), end=start + match.end(), glob=glob))
        if _PLAIN_WORD.sub(b"", gap).strip():
            text = self.src[start:end].decode("utf-8", errors="replace")
            self.runner.report_parse_error(f"text the parser dropped: {text.strip()!r}", text, self.ctx)
        return words

    def _assignment(self, node: Node, expander: WordExpander) -> tuple[str, Arg] | None:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        if name_node is None:
            return None
        name = self.src[name_node.start_byte : name_node.end_byte].decode("utf-8", errors="replace")
        append = any(c.type == "+=" for c in node.children)
        if name_node.type != "variable_name":
            if value_node is not None:
                expander.scan(value_node)
            return name, Arg(self._text(node), known=False)
        if value_node is None:
            value = Arg("")
        elif value_node.type == "array":
            expander.scan(value_node)
            value = Arg(self._text(value_node), known=False)
        else:
            value = expander.single(value_node)
        if append:
            previous = expander.lookup(name)
            value = Arg((previous or "") + value.value, value.known and previous is not None)
        return name, value

    def _assign(self, node: Node, scope: Scope, ex: _Exec) -> None:
        assignment = self._assignment(node, self.expander(scope, ex))
        if assignment is not None:
            name, value = assignment
            scope.assign(name, value.value if value.known else UNKNOWN)

    def _declaration(self, node: Node, scope: Scope, ex: _Exec) -> None:
        """``export``/``declare``/``local``/``readonly``/``unset``: a command that also sets variables."""
        expander = self.expander(scope, ex)
        keyword = node.children[0].type if node.children else "declare"
        args = [Arg(keyword, start=real_start(node), end=node.end_byte)]
        exporting = keyword == "export"
        for child in node.children[1:]:
            if child.type == "variable_assignment":
                assignment = self._assignment(child, expander)
                if assignment is None:
                    continue
                name, value = assignment
                scope.assign(name, value.value if value.known else UNKNOWN)
                if exporting:
                    scope.exported.add(name)
                args.append(Arg(f"{name}={value.value}", value.known))
            elif child.type == "variable_name":
                name = self.src[child.start_byte : child.end_byte].decode("utf-8", errors="replace")
                args.append(Arg(name))
                if keyword == "unset":
                    scope.assign(name, "")
                elif exporting:
                    scope.exported.add(name)
            elif child.is_named:
                words = expander.fields(child)
                exporting = exporting or any(w.value.startswith("-") and "x" in w.value for w in words)
                args.extend(words)
        command = SimpleCommand(
            args=args,
            assignments=[],
            redirects=list(ex.redirects),
            stdin=ex.stdin,
            background=ex.background,
            pipeline=ex.pipeline,
            src=self.src,
            start=real_start(node),
            end=node.end_byte,
            affects_scope=ex.affects_scope,
        )
        self.runner.run_simple(command, scope, self.ctx)

    # -- compound statements --------------------------------------------------------------------------

    def _conditional(self, node: Node, scope: Scope, ex: _Exec) -> None:
        """``if``/``case``/``while``/``until``: the first condition always runs; every body is a
        branch that may or may not run."""
        branches: list[Scope] = []
        condition_done = False
        for index, child in enumerate(node.children):
            if not child.is_named or child.type == "comment":
                continue
            field = node.field_name_for_child(index)
            if node.type == "case_statement" and field == "value":
                self.scan(child, scope, ex)
                continue
            if field == "condition" and not condition_done:
                self._statement(child, scope, ex)
                continue
            if (
                node.type == "if_statement"
                and field is None
                and child.type
                not in (
                    "elif_clause",
                    "else_clause",
                )
            ):
                # statements of the first "then" body
                if not branches:
                    branches.append(scope.copy())
                self._statement(child, branches[0], ex)
                continue
            condition_done = True
            branch = scope.copy()
            if child.type in ("elif_clause", "else_clause", "case_item", "do_group"):
                self._clause(child, branch, ex)
            else:
                self._statement(child, branch, ex)
            branches.append(branch)
        scope.merge(branches)

    def _clause(self, node: Node, scope: Scope, ex: _Exec) -> None:
        for index, child in enumerate(node.children):
            if not child.is_named or child.type == "comment":
                continue
            if node.type == "case_item" and node.field_name_for_child(index) == "value":
                self.scan(child, scope, ex)
            else:
                self._statement(child, scope, ex)

    def _loop(self, node: Node, scope: Scope, ex: _Exec) -> None:
        variable = node.child_by_field_name("variable")
        for child in node.children:
            if not child.is_named or child is variable or child.type == "comment":
                continue
            if child.type == "do_group":
                branch = scope.copy()
                if variable is not None:
                    branch.assign(self._text(variable), UNKNOWN)
                self._clause(child, branch, ex)
                scope.merge([branch])
            else:
                self.scan(child, scope, ex)
        if variable is not None:
            scope.assign(self._text(variable), UNKNOWN)

    def _define_function(self, node: Node, scope: Scope) -> None:
        name_node = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name_node is not None and body is not None:
            name = self.src[name_node.start_byte : name_node.end_byte].decode("utf-8", errors="replace")
            scope.functions[name] = FunctionDef(name, body, self.src)

    # -- substitutions anywhere -----------------------------------------------------------------------

    def scan(self, node: Node, scope: Scope, ex: _Exec) -> None:
        """Run the command and process substitutions found anywhere under ``node`` (iteratively)."""
        stack = [node]
        while stack:
            current = stack.pop()
            if current.type in ("command_substitution", "process_substitution"):
                self.runner.run_substitution(current, self.src, scope, self.ctx)
                continue
            if (
                current.type in _STATEMENT_TYPES
                and current is not node
                and current.type != "variable_assignment"
            ):
                self._statement(current, scope.copy(), replace(ex, affects_scope=False))
                continue
            stack.extend(reversed(current.children))
