"""Go's ``strconv`` text of strings and floats: ``Quote``, ``IsPrint``, ``CanBackquote``, ``FormatFloat``.

Both Go's fmt (``%q``, ``%e``, ``%g``, ...) and OPA's printing of Rego strings call these, so they live apart
from either, as in Go. ``IsPrint`` must follow Go 1.26's Unicode 15.0 tables while Python's
``unicodedata`` may be another version: the code points whose printability differs are patched per
version (CPython 3.11 to 3.13).
"""

from __future__ import annotations

import bisect
import math
import struct
import unicodedata
from typing import Final

# -- Quote and IsPrint -------------------------------------------------------------------------------------

# Go 1.26 prints by Unicode 15.0; Python's unicodedata may be another version. Code points whose
# printability differs, per version (computed from CPython 3.11, 3.12 and 3.13's unicodedata).
_PRINTABLE_FIXES: Final[dict[str, tuple[bool, tuple[tuple[int, int], ...]]]] = {
    "14.0.0": (True, (
        (0xCF3, 0xCF3), (0xECE, 0xECE), (0x10EFD, 0x10EFF), (0x1123F, 0x11241), (0x11B00, 0x11B09),
        (0x11F00, 0x11F10), (0x11F12, 0x11F3A), (0x11F3E, 0x11F59), (0x1342F, 0x1342F),
        (0x13440, 0x13455), (0x1B132, 0x1B132), (0x1B155, 0x1B155), (0x1D2C0, 0x1D2D3),
        (0x1DF25, 0x1DF2A), (0x1E030, 0x1E06D), (0x1E08F, 0x1E08F), (0x1E4D0, 0x1E4F9),
        (0x1F6DC, 0x1F6DC), (0x1F774, 0x1F776), (0x1F77B, 0x1F77F), (0x1F7D9, 0x1F7D9),
        (0x1FA75, 0x1FA77), (0x1FA87, 0x1FA88), (0x1FAAD, 0x1FAAF), (0x1FABB, 0x1FABD),
        (0x1FABF, 0x1FABF), (0x1FACE, 0x1FACF), (0x1FADA, 0x1FADB), (0x1FAE8, 0x1FAE8),
        (0x1FAF7, 0x1FAF8), (0x2B739, 0x2B739), (0x31350, 0x323AF),
    )),
    "15.1.0": (False, ((0x2FFC, 0x2FFF), (0x31EF, 0x31EF), (0x2EBF0, 0x2EE5D))),
}  # fmt: skip
_FIX_PRINTABLE, _FIX_RANGES = _PRINTABLE_FIXES.get(unicodedata.unidata_version, (False, ()))
_FIX_STARTS: Final = [start for start, _ in _FIX_RANGES]
_ESCAPES: Final = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def is_print(code: int) -> bool:
    """Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    if code < 0x80:
        return 0x20 <= code < 0x7F
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return False
    slot = bisect.bisect_right(_FIX_STARTS, code) - 1
    if slot >= 0 and code <= _FIX_RANGES[slot][1]:
        return _FIX_PRINTABLE
    return chr(code).isprintable()


def quote(s: str, quote: str = '"', ascii_only: bool = False) -> str:
    """Go's strconv.Quote (QuoteToASCII with ``ascii_only``; QuoteRune's escaping with ``quote="'"``)."""
    if s.isascii() and s.isprintable() and quote not in s and "\\" not in s:
        return quote + s + quote
    out = [quote]
    for ch in s:
        code = ord(ch)
        if ch in (quote, "\\"):
            out.append("\\" + ch)
        elif (code < 0x80 or not ascii_only) and is_print(code):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


def can_backquote(s: str) -> bool:
    """Go's strconv.CanBackquote: no control characters but tab, no backquote, no BOM."""
    return not any(ch in "\ufeff`\x7f" or (ch < " " and ch != "\t") for ch in s)


# -- FormatFloat --------------------------------------------------------------------------------------------


def _float_bits(v: float) -> tuple[bool, int, int]:
    """Sign, mantissa (with the implicit bit) and unbiased binary exponent, as strconv's genericFtoa."""
    bits = struct.unpack("<Q", struct.pack("<d", v))[0]
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp = 1
    else:
        mant |= 1 << 52
    return bool(bits >> 63), mant, exp - 1023


def _shortest_digits(v: float) -> tuple[str, int]:
    """Shortest decimal digits that round-trip, and the decimal point position (0.DIGITS x 10^dp)."""
    mantissa, _, exponent = repr(abs(v)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    dp = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(stripped))
    stripped = stripped.rstrip("0")
    return stripped, (dp if stripped else 0)


def _format_e(digits: str, dp: int, prec: int, e: str) -> str:
    text = digits[:1] or "0"
    if prec > 0:
        text += "." + digits[1 : 1 + prec].ljust(prec, "0")
    exp = dp - 1 if digits else 0
    return f"{text}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _format_f(digits: str, dp: int, prec: int) -> str:
    text = digits[:dp].ljust(dp, "0") if dp > 0 else "0"
    if prec > 0:
        text += "." + "".join(digits[dp + k] if 0 <= dp + k < len(digits) else "0" for k in range(prec))
    return text


def _format_hex(v: float, verb: str, prec: int) -> str:
    negative, mant, exp = _float_bits(v)
    if mant == 0:
        exp = 0
    mant <<= 60 - 52
    while mant and not mant & (1 << 60):
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:  # round half to even
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    hex_digits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
    text = ("-" if negative else "") + "0" + verb + str((mant >> 60) & 1)
    mant = (mant << 4) & ((1 << 64) - 1)
    if (prec < 0 and mant) or prec > 0:
        text += "."
        count = 0
        while (prec < 0 and mant) or (prec >= 0 and count < prec):
            text += hex_digits[(mant >> 60) & 15]
            mant = (mant << 4) & ((1 << 64) - 1)
            count += 1
    return f"{text}{'p' if verb == 'x' else 'P'}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_float(v: float, verb: str, prec: int) -> str:
    """strconv.FormatFloat(v, verb, prec, 64), signed as strconv signs it (``+Inf``, ``-0``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if verb in "xX":
        return _format_hex(v, verb, prec)
    if verb == "b":
        negative, mant, exp = _float_bits(v)
        exp -= 52
        return f"{'-' if negative else ''}{mant}p{'+' if exp >= 0 else ''}{exp}"
    if prec >= 0:
        return format(v, f".{prec}{verb}")  # correctly rounded, half to even, as strconv
    sign = "-" if math.copysign(1.0, v) < 0 else ""
    digits, dp = _shortest_digits(v)
    if verb in "eE":
        return sign + _format_e(digits, dp, len(digits) - 1, verb)
    if verb == "f":
        return sign + _format_f(digits, dp, max(len(digits) - dp, 0))
    exp = dp - 1  # shortest %g: exponent form when exp < -4 || exp >= 6 (eprec is 6 when shortest)
    if exp < -4 or exp >= 6:
        return sign + _format_e(digits, dp, len(digits) - 1, "e" if verb == "g" else "E")
    return sign + _format_f(digits, dp, max(len(digits) - dp, 0))
