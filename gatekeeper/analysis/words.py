"""Words: what bash turns a word of source text into before a program sees it.

Quote removal and concatenation (``k'i'll`` → ``kill``, ``"/usr/bin/pk""ill"`` → ``/usr/bin/pkill``,
``\\kill`` → ``kill``), ANSI-C strings with every escape bash knows (``$'\\x6b\\151ll'`` → ``kill``),
parameter expansion of variables whose value is known (``$K``, ``${K}``, ``${K:-default}``), field
splitting of unquoted expansions, tilde expansion when the home directory is known. A value that cannot
be known statically keeps its source text and is marked unknown; command substitutions are handed to a
callback that analyses them and may know their output. Brace expansion and globbing are left literal
(globs are flagged).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tree_sitter import Node

GLOB_CHARS = frozenset("*?[")
IFS_WHITESPACE = frozenset(" \t\n")
# Word nesting beyond this (strings in expansions in strings...) is left unknown rather than recursed into.
MAX_WORD_DEPTH = 40

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_SPECIAL_PARAMETER = re.compile(r"(?<!\\)\$[0-9@*#?$!-]")
# Commands that print where a program is: their output run as a command runs that program.
_LOOKUPS = frozenset({("which",), ("command", "-v"), ("type", "-p"), ("type", "-P")})
_PROGRAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")


@dataclass(slots=True)
class Output:
    """What a command substitution, process substitution or pipe producer would print, as far as known.

    ``data`` is the output when it can be known statically. ``steps`` names the producer then each
    decoder applied (``["echo", "base64"]``). ``remote`` names a network fetcher the data came from.
    ``problem`` says why the data is unknown; ``undecodable`` when a decoding step failed or is not
    understood although its input was known.
    """

    data: bytes | None = None
    steps: list[str] = field(default_factory=list)
    remote: str | None = None
    problem: str | None = None
    undecodable: bool = False

    @property
    def text(self) -> str | None:
        return None if self.data is None else self.data.decode("utf-8", errors="replace")


@dataclass(slots=True)
class Arg:
    """One word after expansion. ``start``/``end`` are byte offsets in the source it came from.

    ``known`` is false when the value cannot be known statically (then ``value`` is the source text).
    ``glob`` marks unquoted pattern characters, expanded against the file system at run time.
    ``origin`` is set when the word is exactly one command or process substitution.
    ``remote`` is true when any part of the word comes from a network fetcher.
    ``item`` is the placeholder (``{}`` of ``find -exec``, the ``xargs -I`` string) that makes an
    otherwise literal word unknown: the word holds a file name or input item there at run time.
    """

    value: str
    known: bool = True
    start: int = -1
    end: int = -1
    glob: bool = False
    origin: Output | None = None
    remote: bool = False
    item: str | None = None


def literal(value: str) -> Arg:
    """A word whose value is known and has no source position (built from data, not parsed)."""
    return Arg(value)


@dataclass(slots=True)
class _Piece:
    text: str
    quoted: bool
    known: bool = True
    split: bool = False  # an unquoted expansion result: subject to field splitting
    glob: bool = False
    word: bool = False  # an unquoted literal from the source (tilde expansion applies at a word start)
    origin: Output | None = None
    remote: bool = False


Lookup = Callable[[str], "str | None"]
Substitute = Callable[[Node], Output]
Scan = Callable[[Node], None]


def real_start(node: Node) -> int:
    """Start byte of ``node`` without the blanks tree-sitter-bash sometimes folds into a leading token."""
    current = node
    for _ in range(8):
        if current.child_count == 0:
            if not current.is_named and current.type.strip() and len(current.type) <= current.end_byte:
                return max(current.start_byte, current.end_byte - len(current.type))
            return current.start_byte
        current = current.child(0)
    return node.start_byte


def is_locale_dollar(node: Node, following: Node | None) -> bool:
    """The ``$`` of a locale string ``$"text"`` (tree-sitter-bash leaves it as a separate token); it
    expands to the text (no translation catalogue is assumed)."""
    return (
        node.type == "$"
        and not node.is_named
        and following is not None
        and following.type == "string"
        and following.start_byte == node.end_byte
    )


def unescape_unquoted(text: str) -> tuple[str, bool]:
    """Quote removal of an unquoted literal: drop backslashes (and backslash-newline); flag globs."""
    if "\\" not in text:
        return text, any(ch in GLOB_CHARS for ch in text)
    out: list[str] = []
    glob = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        if ch in GLOB_CHARS:
            glob = True
        out.append(ch)
        i += 1
    return "".join(out), glob


def unescape_double_quoted(text: str, *, heredoc: bool = False) -> str:
    """Backslash removal inside double quotes (or an unquoted heredoc body, where ``"`` is not special)."""
    if "\\" not in text:
        return text
    special = "$`\\\n" if heredoc else '$`"\\\n'
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in special:
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _take(text: str, start: int, allowed: frozenset[str], limit: int) -> str:
    end = start
    while end < len(text) and end - start < limit and text[end] in allowed:
        end += 1
    return text[start:end]


def _code_point(value: int) -> str:
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return "\ufffd"
    return chr(value)


def decode_escapes(body: str, mode: str = "ansi_c", *, byte_escapes: bool = False) -> tuple[str, bool]:
    """Decode backslash escapes as ``$'...'`` (mode ``ansi_c``), ``echo -e``/``printf %b`` (``echo``) or a
    printf format (``printf``) do.

    Returns the text and whether ``\\c`` (echo: stop all output) was seen. Handles ``\\xHH``, octal
    (``\\nnn``; ``\\0nnn`` for echo), ``\\uHHHH``, ``\\UHHHHHHHH``, ``\\cX`` control characters in
    ``$'...'``, and the one-letter escapes. A NUL ends the string, as in bash. With ``byte_escapes``,
    hex and octal escapes above 0x7f stand for raw bytes (as ``surrogateescape`` characters), so that
    ``.encode("utf-8", "surrogateescape")`` gives the exact bytes a payload decoder would see.
    """

    def byte(value: int) -> str:
        return chr(0xDC00 + value) if byte_escapes and value >= 0x80 else chr(value)

    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        code = body[i + 1]
        i += 2
        if code in _SIMPLE_ESCAPES and (mode != "echo" or code not in "'?\""):
            out.append(_SIMPLE_ESCAPES[code])
        elif code == "x":
            digits = _take(body, i, _HEX, 2)
            out.append(byte(int(digits, 16)) if digits else "\\x")
            i += len(digits)
        elif code in "uU":
            digits = _take(body, i, _HEX, 4 if code == "u" else 8)
            out.append(_code_point(int(digits, 16)) if digits else "\\" + code)
            i += len(digits)
        elif code == "0" and mode == "echo":
            digits = _take(body, i, _OCTAL, 3)
            out.append(byte(int(digits or "0", 8) & 0xFF))
            i += len(digits)
        elif code in _OCTAL and mode != "echo":
            digits = _take(body, i - 1, _OCTAL, 3)
            out.append(byte(int(digits, 8) & 0xFF))
            i += len(digits) - 1
        elif code == "c" and mode == "ansi_c" and i < n:
            out.append(chr(ord(body[i]) & 0x1F))
            i += 1
        elif code == "c" and mode == "echo":
            return _until_nul("".join(out)), True
        else:
            out.append("\\" + code)
    return _until_nul("".join(out)), False


def _until_nul(text: str) -> str:
    nul = text.find("\0")
    return text[:nul] if nul >= 0 else text


def _whole_substitution(node: Node) -> bool:
    """``$(...)``, `` `...` `` or ``"$(...)"``: a word that is one command substitution and nothing else."""
    if node.type == "string" and node.named_children and len(node.named_children) == 1:
        inner = node.named_children[0]
        return (
            inner.type == "command_substitution"
            and inner.start_byte == node.start_byte + 1
            and inner.end_byte == node.end_byte - 1
        )
    return node.type == "command_substitution"


def decode_ansi_c(body: str) -> str:
    """The value of ``$'body'``."""
    return decode_escapes(body, "ansi_c")[0]


class WordExpander:
    """Expands word nodes of one parsed source against the current variables.

    ``lookup(name)`` gives a variable's value or None when unknown; ``substitute(node)`` analyses a
    ``$(...)``, backtick or ``<(...)`` node (its commands run too) and returns what it prints;
    ``scan(node)`` analyses substitutions hidden in constructs whose value is not computed (arithmetic).
    ``item`` is the placeholder a ``find -exec``/``xargs -I`` program substitutes into this source
    text: every word holding it is unknown (see :attr:`Arg.item`).
    """

    def __init__(
        self,
        src: bytes,
        lookup: Lookup,
        home: str | None,
        substitute: Substitute,
        scan: Scan,
        ifs: str | None = " \t\n",
        item: str | None = None,
    ) -> None:
        # ifs: the field separators (None: assigned a value that cannot be known)
        self.ifs = ifs
        self.item = item
        self._program = False
        self.src = src
        self.lookup = lookup
        self.home = home
        self.substitute = substitute
        self.scan = scan

    def source(self, node: Node) -> str:
        return self.src[real_start(node) : node.end_byte].decode("utf-8", errors="replace")

    def _slice(self, start: int, end: int) -> str:
        return self.src[start:end].decode("utf-8", errors="replace")

    # -- public ---------------------------------------------------------------------------------------

    def fields(self, node: Node, *, program: bool = False) -> list[Arg]:
        """The words a command argument becomes: quote removal, expansion, field splitting.

        ``program``: the node is the command name, where ``$(which NAME)`` is the program NAME.
        """
        pieces = self._tilde(self._word_pieces(node, program=program))
        start, end = real_start(node), node.end_byte
        if len(pieces) == 1 and not pieces[0].split:  # most words: what the loop below makes of one
            piece = pieces[0]
            if not (piece.quoted or piece.text or not piece.known):
                return []  # an unquoted word that expands to nothing is no word
            arg = Arg(piece.text, piece.known, start, end, piece.glob, piece.origin, piece.remote)
            return [self._placed(arg)]
        return self._split_fields(pieces, start, end)

    def _split_fields(self, pieces: list[_Piece], start: int, end: int) -> list[Arg]:
        """The fields ``pieces`` make: joined, and split where expansion results hold IFS."""
        result: list[Arg] = []
        text: list[str] = []
        known = True
        glob = False
        remote = False
        exists = False
        origins: list[Output | None] = []

        def flush() -> None:
            nonlocal text, known, glob, remote, exists, origins
            if exists:
                origin = origins[0] if len(origins) == 1 and len(pieces) == 1 else None
                result.append(self._placed(Arg("".join(text), known, start, end, glob, origin, remote)))
            text, known, glob, remote, exists, origins = [], True, False, False, False, []

        ifs = self.ifs
        for piece in pieces:
            if piece.split and piece.known and ifs is None and piece.text:
                # split on separators that cannot be known: the fields cannot be known either
                text.append(piece.text)
                exists, known = True, False
                continue
            if piece.split and piece.known and ifs is not None:
                # bash: IFS whitespace runs separate fields; each other IFS character ends one, even
                # an empty one ("a::b" with IFS=: gives "a", "", "b"), and absorbs whitespace around it
                after_blank = False
                for ch in piece.text:
                    if ch in ifs and ch in IFS_WHITESPACE:
                        flush()
                        after_blank = True
                    elif ch in ifs:
                        if not after_blank:
                            exists = True
                            flush()
                        after_blank = False
                    else:
                        text.append(ch)
                        exists = True
                        after_blank = False
                        glob = glob or ch in GLOB_CHARS
                if piece.origin is not None:
                    origins.append(piece.origin)
                remote = remote or piece.remote
                continue
            text.append(piece.text)
            exists = exists or piece.quoted or bool(piece.text) or not piece.known
            known = known and piece.known
            glob = glob or piece.glob
            remote = remote or piece.remote
            if piece.origin is not None:
                origins.append(piece.origin)
        flush()
        if len(result) == 1 and len(pieces) == 1 and pieces[0].origin is not None:
            result[0].origin = pieces[0].origin
        return result

    def _word_pieces(self, node: Node, *, program: bool) -> list[_Piece]:
        self._program = program and _whole_substitution(node)
        try:
            return self._pieces(node, quoted=False, depth=0)
        finally:
            self._program = False

    def single(self, node: Node) -> Arg:
        """One word without field splitting (assignment values, here-strings, redirection targets)."""
        pieces = self._tilde(self._pieces(node, quoted=False, depth=0))
        origin = pieces[0].origin if len(pieces) == 1 else None
        return self._placed(
            Arg(
                "".join(p.text for p in pieces),
                all(p.known for p in pieces),
                real_start(node),
                node.end_byte,
                any(p.glob for p in pieces),
                origin,
                any(p.remote for p in pieces),
            )
        )

    def heredoc(self, body: Node, *, expand: bool, strip_tabs: bool) -> Arg:
        """A heredoc body: literal when the delimiter was quoted, else expanded like a "string"."""
        if not expand:
            text = self._slice(body.start_byte, body.end_byte)
            pieces = [_Piece(text, quoted=True)]
        else:
            pieces = self._quoted_region(body, body.start_byte, body.end_byte, depth=0, heredoc=True)
        text = "".join(p.text for p in pieces)
        # tree-sitter-bash leaves $1, $@, $? ... as plain text in a heredoc body: still expansions
        special = expand and _SPECIAL_PARAMETER.search(self._slice(body.start_byte, body.end_byte))
        if strip_tabs:
            text = "\n".join(line.lstrip("\t") for line in text.split("\n"))
        return self._placed(
            Arg(
                text,
                all(p.known for p in pieces) and not special,
                body.start_byte,
                body.end_byte,
                remote=any(p.remote for p in pieces),
            )
        )

    def _placed(self, arg: Arg) -> Arg:
        """A literal word holding the find/xargs placeholder is unknown: an item is put there."""
        if self.item is not None and arg.known and self.item in arg.value:
            arg.known = False
            arg.item = self.item
        return arg

    # -- pieces ---------------------------------------------------------------------------------------

    def _tilde(self, pieces: list[_Piece]) -> list[_Piece]:
        if not pieces or not pieces[0].word or not pieces[0].text.startswith("~"):
            return pieces
        first = pieces[0]
        prefix, slash, rest = first.text.partition("/")
        if prefix == "~" and self.home is not None:
            expanded = _Piece(self.home + slash + rest, quoted=False, word=True, glob=first.glob)
        else:
            expanded = _Piece(first.text, quoted=False, known=False, word=True)
        return [expanded, *pieces[1:]]

    def _pieces(self, node: Node, *, quoted: bool, depth: int) -> list[_Piece]:
        kind = node.type
        if depth > MAX_WORD_DEPTH:
            return [_Piece(self.source(node), quoted, known=False)]
        if kind in ("word", "number", "extglob_pattern", "special_variable_name", "variable_name"):
            raw = self._slice(node.start_byte, node.end_byte)
            if quoted:
                return [_Piece(unescape_double_quoted(raw), quoted=True)]
            text, glob = unescape_unquoted(raw)
            return [_Piece(text, quoted=False, glob=glob, word=kind == "word")]
        if kind == "raw_string":
            return [_Piece(self._slice(node.start_byte + 1, node.end_byte - 1), quoted=True)]
        if kind == "string":
            return self._quoted_region(node, node.start_byte + 1, node.end_byte - 1, depth, heredoc=False)
        if kind == "ansi_c_string":
            return [_Piece(decode_ansi_c(self._slice(node.start_byte + 2, node.end_byte - 1)), quoted=True)]
        if kind == "concatenation":
            pieces: list[_Piece] = []
            children = node.children
            for index, child in enumerate(children):
                if is_locale_dollar(child, children[index + 1] if index + 1 < len(children) else None):
                    continue
                pieces.extend(self._pieces(child, quoted=quoted, depth=depth + 1))
            return pieces
        if kind == "translated_string":
            return [p for c in node.named_children for p in self._pieces(c, quoted=quoted, depth=depth + 1)]
        if kind == "simple_expansion":
            return [self._variable(node, self._expansion_name(node), quoted)]
        if kind == "expansion":
            return [self._braced(node, quoted, depth)]
        if kind in ("command_substitution", "process_substitution"):
            output = self.substitute(node)
            value = output.text
            lookup = self._program and kind == "command_substitution" and value is None
            looked_up = self._looked_up(node) if lookup else None
            if looked_up is not None:
                # `which python` x.py runs the program python names: the lookup prints its path
                return [_Piece(looked_up, quoted)]
            if kind == "command_substitution" and value is not None:
                return [
                    _Piece(
                        value.rstrip("\n"),
                        quoted,
                        split=not quoted,
                        origin=output,
                        remote=output.remote is not None,
                    )
                ]
            return [
                _Piece(
                    self.source(node), quoted, known=False, origin=output, remote=output.remote is not None
                )
            ]
        if kind == "brace_expression":
            return [_Piece(self._slice(node.start_byte, node.end_byte), quoted, glob=False)]
        if not node.is_named:
            # anonymous tokens that stand as words ("$" alone, "{" in a concatenation)
            return [_Piece(node.type if node.type.strip() else "", quoted)]
        self.scan(node)
        return [_Piece(self.source(node), quoted, known=False)]

    def _looked_up(self, node: Node) -> str | None:
        """NAME when ``node`` is ``$(which NAME)``, ``$(command -v NAME)`` or ``$(type -p NAME)``."""
        commands = node.named_children
        if len(commands) != 1 or commands[0].type != "command":
            return None
        words: list[str] = []
        for child in commands[0].named_children:
            part = child.named_children[0] if child.type == "command_name" and child.named_children else child
            if part.type != "word":
                return None
            words.append(self._slice(part.start_byte, part.end_byte))
        if len(words) < 2 or tuple(words[:-1]) not in _LOOKUPS or not _PROGRAM_NAME.match(words[-1]):
            return None
        return words[-1]

    def _quoted_region(self, node: Node, start: int, end: int, depth: int, *, heredoc: bool) -> list[_Piece]:
        # tree-sitter-bash folds blanks into the tokens of expansions inside strings, so the literal
        # text is taken from the gaps between the real starts of the expansion nodes.
        pieces: list[_Piece] = []
        cursor = start
        for child in node.children:
            if not child.is_named or child.type in ("string_content", "heredoc_content"):
                continue
            child_start = real_start(child)
            if child_start > cursor:
                pieces.append(
                    _Piece(unescape_double_quoted(self._slice(cursor, child_start), heredoc=heredoc), True)
                )
            pieces.extend(self._pieces(child, quoted=True, depth=depth + 1))
            cursor = max(cursor, child.end_byte)
        if end > cursor:
            pieces.append(_Piece(unescape_double_quoted(self._slice(cursor, end), heredoc=heredoc), True))
        return pieces

    def _expansion_name(self, node: Node) -> str | None:
        for child in node.children:
            if child.type in ("variable_name", "special_variable_name"):
                return self._slice(child.start_byte, child.end_byte)
        return None

    def _variable(self, node: Node, name: str | None, quoted: bool) -> _Piece:
        value = self.lookup(name) if name is not None else None
        if value is None:
            return _Piece(self.source(node), quoted, known=False)
        return _Piece(value, quoted, split=not quoted)

    def _braced(self, node: Node, quoted: bool, depth: int) -> _Piece:
        named = [c for c in node.children if c.is_named]
        operators = [c.type for c in node.children if not c.is_named and c.type not in ("${", "}")]
        if len(named) == 1 and not operators and named[0].type == "variable_name":
            return self._variable(node, self._slice(named[0].start_byte, named[0].end_byte), quoted)
        # ${NAME:-word} / ${NAME-word}: the default when NAME is (empty or) unset
        if (
            named
            and named[0].type == "variable_name"
            and len(operators) == 1
            and operators[0] in (":-", "-", ":=", "=")
        ):
            value = self.lookup(self._slice(named[0].start_byte, named[0].end_byte))
            if value is not None and (value or operators[0] in ("-", "=")):
                return _Piece(value, quoted, split=not quoted)
            if value is not None:
                default = [
                    p for child in named[1:] for p in self._pieces(child, quoted=True, depth=depth + 1)
                ]
                if all(p.known for p in default):
                    return _Piece("".join(p.text for p in default), quoted, split=not quoted)
        for child in named:
            self.scan(child)
        return _Piece(self.source(node), quoted, known=False)
