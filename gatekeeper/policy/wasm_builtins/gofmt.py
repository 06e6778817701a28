"""Go's ``fmt.Sprintf``, for OPA's ``sprintf``.

OPA turns each value into a Go ``int64``, ``*big.Int``, ``float64`` or ``string`` (anything else becomes its
Rego text, see ``regovalues``: sorted sets and object keys, Go-quoted strings, numbers as written), then
calls ``fmt.Sprintf``. ``sprintf`` makes that conversion; ``_GoPrinter`` ports Go's ``pp.doPrintf`` and the
parts of fmt and math/big those four types reach (``gostrconv`` holds the strconv parts), error forms
like ``%!d(string=x)`` and ``%!(EXTRA ...)`` included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, TypeAlias

from gatekeeper.policy.wasm_builtins.gostrconv import can_backquote, format_float, is_print, quote
from gatekeeper.policy.wasm_builtins.regovalues import Node, Number, go_string, rego_text, values_nodes

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

_GoValue: TypeAlias = int | float | str  # Go int64 / *big.Int (outside int64) / float64 / string


def sprintf(fmt: object, values: object, values_dump: Callable[[], str]) -> str | None:
    """OPA's ``sprintf(fmt, values)``, or None where OPA is undefined (operands of the wrong type).

    ``values_dump`` returns the Rego text of ``values`` (``Operand.rego_text``), called only when a value is
    neither a string, a boolean, null nor a float64-sized number.
    """
    if not isinstance(fmt, str) or not isinstance(values, list):
        return None
    args: list[_GoValue] = []
    nodes: list[Node] | None = None
    for index, value in enumerate(values):
        if isinstance(value, str):
            args.append(go_string(value))
        elif isinstance(value, bool):  # before int: bool is an int in Python
            args.append("true" if value else "false")
        elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            args.append(value)
        elif value is None:
            args.append("null")
        else:
            # Composite (OPA prints its Rego text) or a number beyond float64 (OPA passes its text):
            # both need the text as written, with sets told apart from arrays, so read the Rego dump.
            if nodes is None:
                nodes = values_nodes(values_dump, values)
            node = nodes[index]
            args.append(node.text if isinstance(node, Number) else rego_text(node))
    return _GoPrinter().sprintf(go_string(fmt), args)


# -- fmt.Sprintf for int64, *big.Int, float64 and string -----------------------------------------------


def _type_name(arg: _GoValue) -> str:
    if isinstance(arg, str):
        return "string"
    if isinstance(arg, float):
        return "float64"
    return "int64" if _INT64_MIN <= arg <= _INT64_MAX else "*big.Int"


def _too_large(n: int) -> bool:
    return n > 1_000_000 or n < -1_000_000


def _parse_number(fmt: str, start: int, end: int) -> tuple[int, bool, int]:
    """Go fmt's parsenum: the decimal number at ``start``, whether there was one, and where it ends."""
    if start >= end:
        return 0, False, end
    num, present, i = 0, False, start
    while i < end and "0" <= fmt[i] <= "9":
        if _too_large(num):
            return 0, False, end
        num = num * 10 + ord(fmt[i]) - 48
        present = True
        i += 1
    return num, present, i


class _GoPrinter:
    """Go's fmt pp/fmt state for one Sprintf call: flags, width and precision of the current verb."""

    __slots__ = (
        "arg", "buf", "erroring", "good_arg_num", "minus", "plus", "plus_v", "prec", "prec_present",
        "reordered", "sharp", "sharp_v", "space", "wid", "wid_present", "zero",
    )  # fmt: skip

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.arg: _GoValue = ""
        self.erroring = self.reordered = self.good_arg_num = False
        self.clear_flags()

    def clear_flags(self) -> None:
        self.wid = self.prec = 0
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = self.plus_v = self.sharp_v = False

    # padding ---------------------------------------------------------------------------------------

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)  # runes, as utf8.RuneCountInString
        if self.minus:
            self.buf.append(s)
            self.write_padding(width)
        else:
            self.write_padding(width)
            self.buf.append(s)

    def pad_spaces(self, s: str) -> None:
        zero, self.zero = self.zero, False
        self.pad(s)
        self.zero = zero

    # verbs -----------------------------------------------------------------------------------------

    def print_arg(self, arg: _GoValue, verb: str) -> None:
        self.arg = arg
        if verb == "T":
            self.fmt_s(_type_name(arg))
        elif isinstance(arg, str):
            if verb == "s" or (verb == "v" and not self.sharp_v):
                self.fmt_s(arg)
            elif verb == "v":
                self.fmt_q(arg)
            elif verb in "xX":
                self.fmt_sx(arg.encode(), verb)
            elif verb == "q":
                self.fmt_q(arg)
            else:
                self.bad_verb(verb)
        elif isinstance(arg, float):
            if verb == "v":
                self.fmt_float(arg, "g", -1)
            elif verb in "bgGxX":
                self.fmt_float(arg, verb, -1)
            elif verb in "feEF":
                self.fmt_float(arg, "f" if verb == "F" else verb, 6)
            else:
                self.bad_verb(verb)
        elif _INT64_MIN <= arg <= _INT64_MAX:
            self.fmt_int64(arg, verb)
        elif verb == "p":
            self.buf.append(f"%!p(*big.Int={arg})")  # Go prints the pointer's address: unknowable here
        elif self.erroring or verb == "w":
            self.fmt_big_struct(arg, verb)
        else:
            self.fmt_big(arg, verb)

    def bad_verb(self, verb: str) -> None:
        self.erroring = True
        self.buf.append(f"%!{verb}({_type_name(self.arg)}=")
        self.print_arg(self.arg, "v")
        self.buf.append(")")
        self.erroring = False

    def fmt_int64(self, v: int, verb: str) -> None:
        if verb in "vd":
            self.fmt_integer(v, 10, verb)
        elif verb == "b":
            self.fmt_integer(v, 2, verb)
        elif verb in "oO":
            self.fmt_integer(v, 8, verb)
        elif verb in "xX":
            self.fmt_integer(v, 16, verb)
        elif verb in "cqU":
            u = v & ((1 << 64) - 1)  # Go converts to uint64 first
            if verb == "U":
                self.fmt_unicode(u)
                return
            rune = u if u <= 0x10FFFF and not 0xD800 <= u <= 0xDFFF else 0xFFFD
            self.pad(chr(rune) if verb == "c" else quote(chr(rune), "'", self.plus))
        else:
            self.bad_verb(verb)

    def fmt_integer(self, v: int, base: int, verb: str) -> None:
        negative = v < 0
        u = -v if negative else v
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:  # "%.0d" of 0 prints nothing but the padding
                zero, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = zero
                return
        elif self.zero and self.wid_present:
            prec = self.wid - (1 if negative or self.plus or self.space else 0)
        digits = str(u) if base == 10 else format(u, {2: "b", 8: "o", 16: "X" if verb == "X" else "x"}[base])
        digits = digits.rjust(prec, "0")
        if self.sharp:
            if base == 2:
                digits = "0b" + digits
            elif base == 8 and digits[0] != "0":
                digits = "0" + digits
            elif base == 16:
                digits = ("0X" if verb == "X" else "0x") + digits
        if verb == "O":
            digits = "0o" + digits
        if negative:
            digits = "-" + digits
        elif self.plus:
            digits = "+" + digits
        elif self.space:
            digits = " " + digits
        self.pad_spaces(digits)

    def fmt_unicode(self, u: int) -> None:
        prec = self.prec if self.prec_present and self.prec > 4 else 4
        text = "U+" + format(u, "X").rjust(prec, "0")
        if self.sharp and u <= 0x10FFFF and is_print(u):
            text += f" '{chr(u)}'"
        self.pad_spaces(text)

    def fmt_big(self, v: int, verb: str) -> None:
        """math/big's (*Int).Format, which fmt calls for a *big.Int instead of formatting it itself."""
        bases = {"b": 2, "o": 8, "O": 8, "d": 10, "s": 10, "v": 10, "x": 16, "X": 16}
        if verb not in bases:
            self.buf.append(f"%!{verb}(big.Int={v})")
            return
        sign = "-" if v < 0 else "+" if self.plus or self.plus_v else " " if self.space else ""
        prefix = ""
        if self.sharp or self.sharp_v:
            prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "")
        if verb == "O":
            prefix = "0o"
        base = bases[verb]
        digits = str(abs(v)) if base == 10 else format(abs(v), {2: "b", 8: "o", 16: "x"}[base])
        if verb == "X":
            digits = digits.upper()
        zeros = left = right = 0
        if self.prec_present and len(digits) < self.prec:
            zeros = self.prec - len(digits)
        length = len(sign) + len(prefix) + zeros + len(digits)
        if self.wid_present and length < self.wid:
            if self.minus:
                right = self.wid - length
            elif self.zero and not self.prec_present:
                zeros = self.wid - length
            else:
                left = self.wid - length
        self.buf.append(" " * left + sign + prefix + "0" * zeros + digits + " " * right)

    def fmt_big_struct(self, v: int, verb: str) -> None:
        """A *big.Int printed field by field, as fmt does for %w (and its error text) via reflection."""
        if verb == "w" and not self.erroring:
            self.bad_verb(verb)
            return
        words = []
        magnitude = abs(v)
        while magnitude:
            words.append(magnitude & ((1 << 64) - 1))
            magnitude >>= 64
        negative = "true" if v < 0 else "false"
        if self.sharp_v:
            self.buf.append("&big.Int{neg:")
            self.pad(negative)
            self.buf.append(", abs:big.nat{")
            for index, word in enumerate(words):
                self.buf.append(", " if index else "")
                sharp, self.sharp = self.sharp, True
                self.fmt_integer(word, 16, "v")
                self.sharp = sharp
            self.buf.append("}}")
            return
        self.buf.append("&{neg:" if self.plus_v else "&{")
        self.pad(negative)
        self.buf.append(" abs:[" if self.plus_v else " [")
        for index, word in enumerate(words):
            self.buf.append(" " if index else "")
            self.fmt_integer(word, 10, "v")
        self.buf.append("]}")

    def fmt_s(self, s: str) -> None:
        self.pad(s[: self.prec] if self.prec_present else s)

    def fmt_sx(self, data: bytes, verb: str) -> None:
        length = min(len(data), self.prec) if self.prec_present else len(data)
        width = 2 * length
        if width == 0:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.space:
            width = (width * 2 if self.sharp else width) + length - 1
        elif self.sharp:
            width += 2
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        prefix = "0X" if verb == "X" else "0x"
        separator = " " + (prefix if self.sharp else "") if self.space else ""
        text = separator.join(format(byte, "02X" if verb == "X" else "02x") for byte in data[:length])
        self.buf.append((prefix if self.sharp else "") + text)
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        if self.prec_present:
            s = s[: self.prec]
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
        else:
            self.pad(quote(s, '"', self.plus))

    def fmt_float(self, v: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = format_float(v, verb, prec)
        num = num if num[0] in "+-" else "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":  # Inf and NaN are never zero padded; NaN has no sign unless asked for
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad_spaces(num)
            return
        if self.sharp and verb != "b":
            num = self.sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            if self.zero and self.wid_present and self.wid > len(num):  # sign before the zeros
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    @staticmethod
    def sharp_float(num: str, verb: str, prec: int) -> str:
        """The # flag: always a decimal point, and %g keeps trailing zeros up to its precision."""
        digits = (6 if prec == -1 else prec) if verb in "gGx" else 0
        tail = ""
        has_point = saw_nonzero = False
        i = 1
        while i < len(num):
            c = num[i]
            if c == ".":
                has_point = True
            elif c in "pP" or (c in "eE" and verb not in "xX"):
                tail, num = num[i:], num[:i]
                break
            else:
                saw_nonzero = saw_nonzero or c != "0"
                if saw_nonzero:  # counts significant digits (Go also counts the x of 0x)
                    digits -= 1
            i += 1
        if not has_point:
            if len(num) == 2 and num[1] == "0":
                digits -= 1
            num += "."
        return num + "0" * max(digits, 0) + tail

    # the format string ------------------------------------------------------------------------------

    def arg_number(self, arg_num: int, fmt: str, i: int, num_args: int) -> tuple[int, int, bool]:
        """An explicit ``[n]`` argument index at ``i``: (argument, next i, whether one was found)."""
        if i >= len(fmt) or fmt[i] != "[":
            return arg_num, i, False
        self.reordered = True
        index, width, ok = -1, 1, False
        if len(fmt) - i >= 3:
            close = fmt.find("]", i + 1)
            if close >= 0:
                number, present, stop = _parse_number(fmt, i + 1, close)
                width = close - i + 1
                if present and stop == close:
                    index, ok = number - 1, True
        if ok and 0 <= index < num_args:
            return index, i + width, True
        self.good_arg_num = False
        return arg_num, i + width, ok

    def sprintf(self, fmt: str, args: list[_GoValue]) -> str:
        """Port of Go's pp.doPrintf, with its error forms (%!d(string=x), %!(EXTRA ...), ...)."""
        end, arg_num, i = len(fmt), 0, 0
        while i < end:
            self.good_arg_num = True
            percent = fmt.find("%", i)
            if percent < 0:
                self.buf.append(fmt[i:])
                break
            self.buf.append(fmt[i:percent])
            i = self.parse_flags(fmt, percent + 1)
            if i < end and "a" <= fmt[i] <= "z" and arg_num < len(args):  # Go's fast path: flags, verb
                self.print_verb(fmt[i], args[arg_num])
                arg_num, i = arg_num + 1, i + 1
                continue
            arg_num, i = self.parse_width_precision(fmt, i, args, arg_num)
            if i >= end:
                self.buf.append("%!(NOVERB)")
                break
            verb, i = fmt[i], i + 1
            if verb == "%":  # takes no operand and ignores width and precision
                self.buf.append("%")
            elif not self.good_arg_num:
                self.buf.append(f"%!{verb}(BADINDEX)")
            elif arg_num >= len(args):
                self.buf.append(f"%!{verb}(MISSING)")
            else:
                self.print_verb(verb, args[arg_num])
                arg_num += 1
        if not self.reordered and arg_num < len(args):
            self.clear_flags()
            self.buf.append("%!(EXTRA ")
            for index, arg in enumerate(args[arg_num:]):
                self.buf.append(f"{', ' if index else ''}{_type_name(arg)}=")
                self.print_arg(arg, "v")
            self.buf.append(")")
        return "".join(self.buf)

    def parse_flags(self, fmt: str, i: int) -> int:
        self.clear_flags()
        while i < len(fmt):
            c = fmt[i]
            if c == "#":
                self.sharp = True
            elif c == "0":
                self.zero = not self.minus  # zero padding only to the left
            elif c == "+":
                self.plus = True
            elif c == "-":
                self.minus, self.zero = True, False
            elif c == " ":
                self.space = True
            else:
                break
            i += 1
        return i

    def parse_width_precision(self, fmt: str, i: int, args: list[_GoValue], arg_num: int) -> tuple[int, int]:
        """Argument indexes, ``*`` or decimal width and precision; returns (argument, index of the verb)."""
        end = len(fmt)
        arg_num, i, after_index = self.arg_number(arg_num, fmt, i, len(args))
        if i < end and fmt[i] == "*":
            self.wid, self.wid_present, arg_num = _int_from_arg(args, arg_num)
            i += 1
            if not self.wid_present:
                self.buf.append("%!(BADWIDTH)")
            if self.wid < 0:
                self.wid, self.minus, self.zero = -self.wid, True, False
            after_index = False
        else:
            self.wid, self.wid_present, i = _parse_number(fmt, i, end)
            if after_index and self.wid_present:  # "%[3]2d"
                self.good_arg_num = False
        if i + 1 < end and fmt[i] == ".":
            if after_index:  # "%[3].2d"
                self.good_arg_num = False
            arg_num, i, after_index = self.arg_number(arg_num, fmt, i + 1, len(args))
            if i < end and fmt[i] == "*":
                self.prec, self.prec_present, arg_num = _int_from_arg(args, arg_num)
                i += 1
                if self.prec < 0:
                    self.prec, self.prec_present = 0, False
                if not self.prec_present:
                    self.buf.append("%!(BADPREC)")
                after_index = False
            else:
                self.prec, self.prec_present, i = _parse_number(fmt, i, end)
                self.prec_present = True  # "%.d" is precision 0
        if not after_index:
            arg_num, i, after_index = self.arg_number(arg_num, fmt, i, len(args))
        return arg_num, i

    def print_verb(self, verb: str, arg: _GoValue) -> None:
        if verb in "vw":  # %#v and %+v are their own formats: Go moves the flags aside
            self.sharp_v, self.sharp, self.plus_v, self.plus = self.sharp, False, self.plus, False
        self.print_arg(arg, verb)


def _int_from_arg(args: list[_GoValue], arg_num: int) -> tuple[int, bool, int]:
    """Go fmt's intFromArg for a ``*`` width or precision: only an int64 within ±1e6 counts."""
    if arg_num >= len(args):
        return 0, False, arg_num
    arg = args[arg_num]
    if isinstance(arg, int) and _INT64_MIN <= arg <= _INT64_MAX and not _too_large(arg):
        return arg, True, arg_num + 1
    return 0, False, arg_num + 1
