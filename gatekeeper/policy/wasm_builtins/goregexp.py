"""Go's ``regexp`` on RE2, for OPA's ``regex.replace`` and ``regex.split``.

OPA runs both builtins on Go's ``regexp``, whose syntax is RE2's, so patterns run here on RE2
(``google-re2``). Go differs from RE2 C++ in a few places, which ``_to_re2`` rewrites or rejects: ``\\C``,
non-ASCII group names, and ``\\p{...}`` names (Go matches them case- and ``_``-insensitively, knows aliases
like ``Letter`` and ``Ascii``). RE2 also runs on bytes where Go steps by runes, and has no ``$name``
templates, so the match loops are ports of Go's ``ReplaceAllString``, ``Expand`` and ``Split``. Compiled
patterns are cached, rejected ones included, as OPA caches them.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final, NamedTuple, TypeAlias

# google-re2 ships no type information; the unused-ignore code keeps mypy quiet if pyproject's
# ignore_missing_imports override later lists re2.
import re2  # type: ignore[import-untyped,unused-ignore]

from gatekeeper.policy.wasm_builtins.regovalues import go_string


class _Compiled(NamedTuple):
    regex: Any  # re2._Regexp
    group_names: tuple[str, ...]  # index 0 is the whole match; "" for unnamed groups, as Go's SubexpNames


class _NotGoSyntax(Exception):
    """The pattern is not valid Go regexp syntax (or has no RE2 equivalent)."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print every invalid policy pattern to stderr


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> _Compiled | None:
    """The compiled pattern, or None when Go's regexp.Compile rejects it (cached either way, like OPA)."""
    try:
        translated, group_names = _to_re2(pattern)
        regex = re2.compile(translated, _RE2_OPTIONS)
    except (_NotGoSyntax, re2.error):
        return None
    if regex.groups != len(group_names) - 1:  # _to_re2 miscounted the groups: trust RE2's names
        names = [""] * (regex.groups + 1)
        for group_name, index in regex.groupindex.items():
            names[index] = group_name
        group_names = tuple(names)
    return _Compiled(regex, group_names)


# Go's regexp/syntax looks \p{Name} up by a canonical name (first letter upper, the rest lower, no "_- "),
# in unicode.Categories, then unicode.Scripts, then unicode.CategoryAliases. RE2 wants exact names.
_CATEGORIES: Final = frozenset({
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd", "Nl",
    "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs",
})  # fmt: skip
_CATEGORY_ALIASES: Final = {
    "Other": "C", "Control": "Cc", "Cntrl": "Cc", "Format": "Cf", "Unassigned": "Cn", "Privateuse": "Co",
    "Surrogate": "Cs", "Letter": "L", "Casedletter": "Lc", "Lowercaseletter": "Ll", "Modifierletter": "Lm",
    "Otherletter": "Lo", "Titlecaseletter": "Lt", "Uppercaseletter": "Lu", "Mark": "M", "Combiningmark": "M",
    "Spacingmark": "Mc", "Enclosingmark": "Me", "Nonspacingmark": "Mn", "Number": "N", "Decimalnumber": "Nd",
    "Digit": "Nd", "Letternumber": "Nl", "Othernumber": "No", "Punctuation": "P", "Punct": "P",
    "Connectorpunctuation": "Pc", "Dashpunctuation": "Pd", "Closepunctuation": "Pe",
    "Finalpunctuation": "Pf", "Initialpunctuation": "Pi", "Otherpunctuation": "Po",
    "Openpunctuation": "Ps", "Symbol": "S", "Currencysymbol": "Sc", "Modifiersymbol": "Sk",
    "Mathsymbol": "Sm", "Othersymbol": "So", "Separator": "Z", "Lineseparator": "Zl",
    "Paragraphseparator": "Zp", "Spaceseparator": "Zs",
}  # fmt: skip
_ASSIGNED: Final = r"\p{L}\p{M}\p{N}\p{P}\p{S}\p{Z}\p{C}"  # RE2's C has no unassigned code points
# canonical name -> (RE2 class body when positive, when negated); None where RE2 cannot say it in a class
_SPECIAL_CLASSES: Final[dict[str, tuple[str | None, str | None]]] = {
    "Any": (r"\p{Any}", r"\P{Any}"),
    "Ascii": ("[:ascii:]", "[:^ascii:]"),  # folds, then negates, as Go does under (?i)
    "Lc": (r"\p{Lu}\p{Ll}\p{Lt}", None),
    "Cn": (None, _ASSIGNED),
    "Assigned": (_ASSIGNED, None),
}
_CAPTURE_NAME = re.compile(r"[A-Za-z0-9_]+")


def _canonical_class_name(name: str) -> str:
    """Go's canonicalName: drop "_", "-" and " ", then ASCII first letter upper and the rest lower."""
    letters = [c for c in name if c not in "_- "]
    head = [c.upper() if "a" <= c <= "z" else c for c in letters[:1]]
    tail = [c.lower() if "A" <= c <= "Z" else c for c in letters[1:]]
    return "".join(head + tail)


def _unicode_class(name: str, negated: bool, in_class: bool) -> str:
    """RE2 spelling of Go's ``\\p{name}`` (``negated`` for ``\\P``), inside or outside ``[...]``."""
    if name.startswith("^"):
        name, negated = name[1:], not negated
    canonical = _canonical_class_name(name)
    if canonical not in _CATEGORIES:
        canonical = _CATEGORY_ALIASES.get(canonical, canonical)
    if canonical in _SPECIAL_CLASSES:
        positive, negative = _SPECIAL_CLASSES[canonical]
        if in_class:
            body = negative if negated else positive
            if body is None:
                raise _NotGoSyntax(name)
            return body
        if positive is not None:
            return f"[{'^' if negated else ''}{positive}]"
        return f"[{'' if negated else '^'}{negative}]"
    # A category, or a script whose Go name is canonical already ("Greek"; Go 1.26 cannot reach
    # "Old_Italic" or "SignWriting" at all). RE2 rejects any other name, as Go does.
    return f"\\{'P' if negated else 'p'}{{{canonical}}}"


def _to_re2(pattern: str) -> tuple[str, tuple[str, ...]]:
    """The pattern in RE2's dialect, and Go's SubexpNames; raises _NotGoSyntax where Go's parser would fail.

    Only the constructs where Go and RE2 disagree are touched; RE2 validates everything else.
    """
    out: list[str] = []
    names = [""]
    i, end, in_class = 0, len(pattern), False
    while i < end:
        c = pattern[i]
        if c == "\\" and i + 1 < end:
            text, i = _translate_escape(pattern, i, in_class)
        elif in_class:
            in_class = c != "]"
            text, i = c, i + 1
            if pattern.startswith("[:", i - 1):  # [:alpha:] as a whole, so its ] does not end the class
                close = pattern.find(":]", i + 1)
                if close >= 0:
                    text, i = pattern[i - 1 : close + 2], close + 2
        elif c == "[":
            start, i, in_class = i, i + 1, True
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):  # a leading ] is a literal
                i += 1
            text = pattern[start:i]
        else:
            if c == "(":
                _record_group(pattern, i, names)
            text, i = c, i + 1
        out.append(text)
    return "".join(out), tuple(names)


def _translate_escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The RE2 text for the escape at ``pattern[i]`` (a backslash), and where the escape ends."""
    escaped = pattern[i + 1]
    if escaped == "C":  # RE2's "any byte"; Go has no such escape
        raise _NotGoSyntax(pattern)
    if escaped == "Q" and not in_class:  # literal text up to \E, copied as is
        close = pattern.find("\\E", i + 2)
        stop = len(pattern) if close < 0 else close + 2
        return pattern[i:stop], stop
    if escaped in "pP" and i + 2 < len(pattern):
        if pattern[i + 2] == "{":
            close = pattern.find("}", i + 3)
            if close < 0:
                raise _NotGoSyntax(pattern)
            name, stop = pattern[i + 3 : close], close + 1
        else:
            name, stop = pattern[i + 2], i + 3
        return _unicode_class(name, escaped == "P", in_class), stop
    return pattern[i : i + 2], i + 2


def _record_group(pattern: str, i: int, names: list[str]) -> None:
    """Appends the name of the capturing group opened at ``pattern[i]`` ("" if unnamed)."""
    if pattern.startswith("(?P<", i) or pattern.startswith("(?<", i):
        name_start = i + (4 if pattern[i + 2] == "P" else 3)
        close = pattern.find(">", name_start)
        if close < 0 or not _CAPTURE_NAME.fullmatch(pattern, name_start, close):
            raise _NotGoSyntax(pattern)  # Go allows ASCII word names only; RE2 any word characters
        names.append(pattern[name_start:close])
    elif not pattern.startswith("(?", i):
        names.append("")


def _search(regex: Any, data: bytes, pos: int) -> Any:
    """The leftmost match at or after ``pos`` that starts between runes, as Go's regexp finds it.

    RE2 runs on bytes, so an empty ``\\B`` can match inside a multibyte character, where Go never looks.
    A match starting between runes consumes whole runes, so retrying from the next rune start is exact.
    """
    while True:
        match = regex.search(data, pos)
        if match is None:
            return None
        start = match.start()
        if start >= len(data) or data[start] & 0xC0 != 0x80:
            return match
        pos = start + 1
        while pos < len(data) and data[pos] & 0xC0 == 0x80:
            pos += 1


def _rune_width(data: bytes, pos: int) -> int:
    """Length of the UTF-8 sequence starting at ``pos`` (0 at the end), as utf8.DecodeRune reports it."""
    if pos >= len(data):
        return 0
    lead = data[pos]
    return 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


_TemplatePiece: TypeAlias = "bytes | tuple[int, ...]"  # literal text, or the groups a $reference may take


def _template_pieces(template: str, compiled: _Compiled) -> list[_TemplatePiece]:
    """Go's Regexp.Expand template, parsed once per call: literal bytes and group references."""
    pieces: list[_TemplatePiece] = []
    literal: list[str] = []
    i = 0
    while True:
        dollar = template.find("$", i)
        if dollar < 0:
            literal.append(template[i:])
            break
        literal.append(template[i:dollar])
        i = dollar + 1
        if template.startswith("$", i):  # $$ is a literal $
            literal.append("$")
            i += 1
            continue
        name, i_after = _template_name(template, i)
        if name is None:  # malformed: the $ is literal text
            literal.append("$")
            continue
        i = i_after
        pieces.append("".join(literal).encode())
        literal = []
        number = int(name) if name.isascii() and name.isdigit() and len(name) <= 9 else -1
        if name.startswith("0") and len(name) > 1:
            number = -1  # Go: no leading zeros, so "$01" names a group called "01"
        if number >= 0:
            pieces.append((number,) if number < len(compiled.group_names) else ())
        else:  # Go takes the first group of that name that took part in the match
            pieces.append(tuple(index for index, group in enumerate(compiled.group_names) if group == name))
    pieces.append("".join(literal).encode())
    return pieces


def _template_name(template: str, i: int) -> tuple[str | None, int]:
    """Go's extract(): a name of letters, digits and _ after $, optionally in braces."""
    brace = template.startswith("{", i)
    start = i + 1 if brace else i
    stop = start
    while stop < len(template) and (
        template[stop].isalpha() or template[stop].isdecimal() or template[stop] == "_"
    ):
        stop += 1
    if stop == start:
        return None, i
    name = template[start:stop]
    if brace:
        if not template.startswith("}", stop):
            return None, i
        stop += 1
    return name, stop


def _expand(pieces: list[_TemplatePiece], data: bytes, match: Any, out: list[bytes]) -> None:
    for piece in pieces:
        if isinstance(piece, bytes):
            out.append(piece)
            continue
        for group in piece:
            start, stop = match.span(group)
            if start >= 0:  # the group took part in the match
                out.append(data[start:stop])
                break


def regex_replace(s: object, pattern: object, value: object) -> str | None:
    """OPA's ``regex.replace(s, pattern, value)``; None where OPA is undefined (non-strings, bad pattern)."""
    if not (isinstance(s, str) and isinstance(pattern, str) and isinstance(value, str)):
        return None
    compiled = _compile(go_string(pattern))
    if compiled is None:
        return None
    data = go_string(s).encode()
    pieces: list[_TemplatePiece] = [go_string(value).encode()]
    if "$" in value:
        pieces = _template_pieces(go_string(value), compiled)
    out: list[bytes] = []
    # Port of Go's Regexp.replaceAll: an empty match right after a match is not replaced, and the
    # search always moves on by at least one character.
    last_match_end = search_pos = 0
    end = len(data)
    while search_pos <= end:
        match = _search(compiled.regex, data, search_pos)
        if match is None:
            break
        start, stop = match.span()
        out.append(data[last_match_end:start])
        if stop > last_match_end or start == 0:
            _expand(pieces, data, match, out)
        last_match_end = stop
        width = _rune_width(data, search_pos)
        if search_pos + width > stop:
            search_pos += width
        elif search_pos + 1 > stop:
            search_pos += 1
        else:
            search_pos = stop
    out.append(data[last_match_end:])
    return b"".join(out).decode()


def regex_split(pattern: object, s: object) -> list[str] | None:
    """OPA's ``regex.split(pattern, s)``, or None where OPA is undefined (as for regex_replace)."""
    if not (isinstance(pattern, str) and isinstance(s, str)):
        return None
    compiled = _compile(go_string(pattern))
    if compiled is None:
        return None
    if pattern and not s:
        return [""]
    data = go_string(s).encode()
    # Port of Go's Regexp.Split(s, -1) over FindAllStringIndex (which skips an empty match that
    # directly follows a match), including its quirk of dropping the tail after a match at the very end.
    parts: list[str] = []
    beg = last_start = 0
    pos, prev_match_end, end = 0, -1, len(data)
    while pos <= end:
        match = _search(compiled.regex, data, pos)
        if match is None:
            break
        start, stop = match.span()
        accept = True
        if stop == pos:
            accept = start != prev_match_end
            width = _rune_width(data, pos)
            pos = pos + width if width > 0 else end + 1
        else:
            pos = stop
        prev_match_end = stop
        if accept:
            last_start = start
            if stop != 0:
                parts.append(data[beg:start].decode())
            beg = stop
    if last_start != end:
        parts.append(data[beg:].decode())
    return parts
