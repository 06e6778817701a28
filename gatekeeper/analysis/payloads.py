"""What a pipeline or substitution prints, when it can be computed from literals.

``echo a2lsbCAx | base64 -d | sh`` runs ``kill 1``: the producer (``echo``, ``printf``, a heredoc or
here-string fed to ``cat`` or a decoder) prints literal data, and each decoder (``base64 -d``,
``xxd -r -p``, ``rev``, ``tr``, ``gzip -d``, ... listed in ``programs.json``) transforms it. The result
is an :class:`~gatekeeper.analysis.words.Output`: the bytes when known, the steps taken, the network
fetcher when the data comes from one (``curl ... | sh``), or why it is unknown. Pure functions only.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import lzma
import zlib
from collections.abc import Callable

from gatekeeper.analysis.programs import DecoderSpec, Programs
from gatekeeper.analysis.shell import Produced, Stdin
from gatekeeper.analysis.words import Arg, Output, decode_escapes

# Decoded or decompressed payloads larger than this are not computed.
MAX_PAYLOAD = 1024 * 1024


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def pipe_output(producers: list[Produced | None], programs: Programs) -> Output:
    """The data the last member of ``producers`` writes to the pipe (earlier members feed it)."""
    output: Output | None = None
    for produced in producers:
        output = command_output(produced, output, programs)
    return output if output is not None else Output(problem="nothing is piped")


def stdin_output(stdin: Stdin | None, piped: Output | None) -> Output | None:
    """What a command reads on standard input, when it comes from the command line itself."""
    if stdin is None:
        return piped
    if stdin.kind in ("heredoc", "herestring") and stdin.body is not None:
        suffix = "\n" if stdin.kind == "herestring" else ""
        if not stdin.body.known:
            return Output(problem=f"{stdin.kind} with unknown expansions", remote=_remote(stdin.body))
        return Output(encode(stdin.body.value + suffix), ["<<<" if suffix else "<<"])
    if stdin.kind == "file" and stdin.path is not None:
        if stdin.path.origin is not None:
            return stdin.path.origin
        return Output(problem=f"reads the file {stdin.path.value}")
    return piped


def stdin_data(stdin: Stdin, programs: Programs) -> Output | None:
    """What a command reads on standard input: the pipe's data, or what the command line gives it."""
    if stdin.kind == "pipe":
        return pipe_output(stdin.producers, programs)
    return stdin_output(stdin, None)


def _remote(arg: Arg) -> str | None:
    if arg.origin is not None and arg.origin.remote is not None:
        return arg.origin.remote
    return "a substitution" if arg.remote else None


def command_output(produced: Produced | None, piped: Output | None, programs: Programs) -> Output:
    """What one command prints given what it reads (``piped``), as far as it can be computed."""
    if produced is None:
        return Output(problem="output of a compound command")
    name = produced.name
    if name is None:
        return Output(problem="output of a computed program")
    if name in programs.network_fetchers:
        return Output(steps=[name], remote=name, problem=f"{name} output comes from the network")
    if any(not arg.known for arg in produced.args[1:]):
        remote = next((r for arg in produced.args if (r := _remote(arg))), None)
        return Output(problem=f"{name} has arguments that are not known", remote=remote)
    words: list[str] = [arg.value for arg in produced.args[1:]]
    producer = programs.producers.get(name)
    if producer is not None:
        printed = echo_output(words) if producer == "echo" else printf_output(words)
        if printed is None:
            return Output(problem=f"{name} arguments are not understood")
        if spelled_out(printed, words):
            return Output(encode(printed), [name])
        # Escapes or format directives built words that the command line does not show.
        return Output(encode(printed), [name, f"{name} escapes"])
    decoder = programs.decoders.get(name)
    if decoder is None:
        return Output(problem=f"output of {name} is not known")
    source = stdin_output(produced.stdin, piped)
    operands = [w for w in words if not w.startswith("-") or w == "-"]
    if decoder.codec != "tr" and any(w != "-" for w in operands):
        return Output(problem=f"{name} reads files")
    if source is None:
        return Output(problem=f"{name} reads an unknown input")
    if source.data is None:
        return Output(steps=[*source.steps, name], remote=source.remote, problem=source.problem)
    data = decode(name, decoder, words, source.data)
    if data is None:
        return Output(
            steps=[*source.steps, name], undecodable=True, problem=f"{name} could not decode its input"
        )
    return Output(data, [*source.steps, name])


def spelled_out(printed: str, words: list[str]) -> bool:
    """Whether every word ``printed`` holds is written out in ``words``.

    ``printf 'ls\\n'`` and ``printf '%s\\n' ls`` only lay out words the command line shows;
    ``printf '\\x6b\\x69\\x6c\\x6c'`` and ``printf 'k%sll' i`` make up a word that is nowhere in it.
    """
    source = " ".join(words)
    return all(token in source for token in printed.split())


def _has_option(words: list[str], options: frozenset[str]) -> bool:
    for word in words:
        if word in options:
            return True
        if (
            word.startswith("-")
            and not word.startswith("--")
            and any(f"-{letter}" in options for letter in word[1:])
        ):
            return True
    return False


def decode(name: str, spec: DecoderSpec, words: list[str], data: bytes) -> bytes | None:
    """Apply a decoder to ``data``; None when the data or the options are not understood."""
    decoding = not spec.decode_options or _has_option(words, spec.decode_options)
    codec = _CODECS.get(spec.codec)
    if codec is None:
        return None
    if not decoding:
        return _ENCODERS[spec.codec](words, data) if spec.codec in _ENCODERS else None
    try:
        return codec(words, data)
    except (ValueError, binascii.Error, OSError, EOFError, lzma.LZMAError, zlib.error):
        return None


def _strip_blanks(data: bytes) -> bytes:
    return bytes(b for b in data if b not in b" \t\r\n")


def _base64(words: list[str], data: bytes) -> bytes:
    compact = _strip_blanks(data)
    if _has_option(words, frozenset({"-i", "--ignore-garbage"})):
        compact = bytes(
            b for b in compact if b in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
        )
    compact = compact.rstrip(b"=")
    return base64.b64decode(compact + b"=" * (-len(compact) % 4), validate=True)


def _base32(words: list[str], data: bytes) -> bytes:
    compact = _strip_blanks(data).rstrip(b"=")
    return base64.b32decode(compact + b"=" * (-len(compact) % 8))


def _basenc(words: list[str], data: bytes) -> bytes:
    compact = _strip_blanks(data)
    if "--base64url" in words:
        return base64.urlsafe_b64decode(compact + b"=" * (-len(compact.rstrip(b"=")) % 4))
    if "--base64" in words:
        return _base64(words, data)
    if "--base32" in words:
        return _base32(words, data)
    if "--base16" in words:
        return base64.b16decode(compact, casefold=True)
    raise ValueError("basenc encoding not understood")


def _hex(words: list[str], data: bytes) -> bytes:
    plain = _has_option(words, frozenset({"-p", "-ps", "-plain", "-postscript"}))
    if plain:
        digits = _strip_blanks(data)
    else:
        # xxd dump lines: "00000000: 6b69 6c6c 2031  kill 1"
        parts = []
        for line in data.split(b"\n"):
            _, colon, rest = line.partition(b":")
            if not colon:
                continue
            parts.append(_strip_blanks(rest.strip().split(b"  ")[0]))
        digits = b"".join(parts)
    if len(digits) % 2:
        digits = digits[:-1]
    return binascii.unhexlify(digits)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _rev(words: list[str], data: bytes) -> bytes:
    text = data.decode("utf-8", errors="surrogateescape")
    return encode("\n".join(line[::-1] for line in text.split("\n")))


def _tac(words: list[str], data: bytes) -> bytes:
    lines = data.split(b"\n")
    trailing = lines[-1] == b""
    body = lines[:-1] if trailing else lines
    return b"\n".join(reversed(body)) + (b"\n" if trailing else b"")


def _identity(words: list[str], data: bytes) -> bytes:
    return data


def _expand_set(spec: str) -> str:
    classes = {
        "[:lower:]": "abcdefghijklmnopqrstuvwxyz",
        "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "[:digit:]": "0123456789",
        "[:space:]": " \t\n\r\f\v",
        "[:blank:]": " \t",
    }
    for name, members in classes.items():
        spec = spec.replace(name, members)
    spec = decode_escapes(spec, "printf")[0]
    out: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-" and ord(spec[i]) <= ord(spec[i + 2]):
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def _tr(words: list[str], data: bytes) -> bytes:
    options = [w for w in words if w.startswith("-") and len(w) > 1]
    sets = [w for w in words if not (w.startswith("-") and len(w) > 1)]
    text = data.decode("utf-8", errors="surrogateescape")
    if options == ["-d"] and len(sets) == 1:
        removed = set(_expand_set(sets[0]))
        return encode("".join(ch for ch in text if ch not in removed))
    if options or len(sets) != 2:
        raise ValueError("tr options not understood")
    source, target = _expand_set(sets[0]), _expand_set(sets[1])
    if not target:
        raise ValueError("empty tr target set")
    target = target + target[-1] * max(0, len(source) - len(target))
    table = {ord(a): b for a, b in zip(source, target, strict=False)}
    return encode(text.translate(table))


def _gzip(words: list[str], data: bytes) -> bytes:
    return zlib.decompressobj(wbits=47).decompress(data, MAX_PAYLOAD)


def _bzip2(words: list[str], data: bytes) -> bytes:
    return bz2.BZ2Decompressor().decompress(data, MAX_PAYLOAD)


def _xz(words: list[str], data: bytes) -> bytes:
    return lzma.LZMADecompressor().decompress(data, MAX_PAYLOAD)


def _base64_encode(words: list[str], data: bytes) -> bytes:
    return base64.b64encode(data) + b"\n"


_CODECS: dict[str, Callable[[list[str], bytes], bytes]] = {
    "base64": _base64,
    "base32": _base32,
    "basenc": _basenc,
    "hex": _hex,
    "rev": _rev,
    "tac": _tac,
    "identity": _identity,
    "tr": _tr,
    "gzip": _gzip,
    "bzip2": _bzip2,
    "xz": _xz,
}
_ENCODERS: dict[str, Callable[[list[str], bytes], bytes]] = {"base64": _base64_encode}


def echo_output(words: list[str]) -> str | None:
    """What bash's ``echo`` prints: leading ``-n``/``-e``/``-E`` options, words joined by spaces."""
    newline, escapes = True, False
    index = 0
    while index < len(words) and len(words[index]) > 1 and words[index][0] == "-":
        letters = words[index][1:]
        if not all(ch in "neE" for ch in letters):
            break
        for ch in letters:
            newline = newline and ch != "n"
            escapes = True if ch == "e" else False if ch == "E" else escapes
        index += 1
    text = " ".join(words[index:])
    if escapes:
        text, stop = decode_escapes(text, "echo", byte_escapes=True)
        if stop:
            return text
    return text + ("\n" if newline else "")


def printf_output(words: list[str]) -> str | None:
    """What ``printf FORMAT ARGS...`` prints (``%s %b %c %d %i %u %x %X %o %f %e %g %q %%``)."""
    if words and words[0] == "--":
        words = words[1:]
    if not words or words[0] == "-v":
        return "" if words else None
    fmt, args = decode_escapes(words[0], "printf", byte_escapes=True)[0], words[1:]
    out: list[str] = []
    position = 0
    while True:
        consumed_before = position
        i = 0
        while i < len(fmt):
            ch = fmt[i]
            if ch != "%":
                out.append(ch)
                i += 1
                continue
            j = i + 1
            while j < len(fmt) and fmt[j] in "-+ #0123456789.":
                j += 1
            if j >= len(fmt):
                return None
            conversion, flags = fmt[j], fmt[i + 1 : j]
            i = j + 1
            if conversion == "%":
                out.append("%")
                continue
            arg = args[position] if position < len(args) else ""
            position += 1
            piece = _printf_conversion(conversion, flags, arg)
            if piece is None:
                return None
            out.append(piece)
            if conversion == "b" and "\\c" in arg:
                return "".join(out)
        if position >= len(args) or position == consumed_before:
            break
    return "".join(out)


def _printf_conversion(conversion: str, flags: str, arg: str) -> str | None:
    try:
        if conversion == "s":
            return ("%" + flags + "s") % arg
        if conversion == "b":
            return ("%" + flags + "s") % decode_escapes(arg, "echo", byte_escapes=True)[0]
        if conversion == "q":
            return arg
        if conversion == "c":
            return arg[:1]
        if conversion in "diouxX":
            number = ord(arg[1]) if arg[:1] in ("'", '"') and len(arg) > 1 else int(arg or "0", 0)
            return ("%" + flags + ("d" if conversion in "iu" else conversion)) % number
        if conversion in "feEgG":
            return ("%" + flags + conversion) % float(arg or "0")
    except (ValueError, TypeError, OverflowError):
        return None
    return None
