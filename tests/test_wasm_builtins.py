"""The Wasm engine's host builtins (regex.replace, regex.split, sprintf) must answer exactly as OPA does.

Every row of CASES is checked twice: against the answer written in the row, and against the real opa
evaluating the same call (one ``opa eval`` for the whole table, operands passed through an input file so
that strings and number texts arrive exactly as written). A row holding a Rego set or a non-string object
key cannot travel as JSON, so that operand is written into the policy as a Rego literal instead.

Operands reach the builtins as the engine reads them from Wasm memory: ``value`` is the JSON dump, and
``rego_text()`` prints what the module's ``opa_value_dump`` prints (sets as ``{..}``, strings with JSON
escapes; sets and objects in the order given, which, like the module's hash order, is not Go's sorted
order). The Go-ordered, Go-quoted text sprintf needs is rebuilt from that.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from gatekeeper.policy.wasm_builtins import HOST_BUILTINS, UNDEFINED_RESULT, call_host_builtin

UNDEFINED = UNDEFINED_RESULT


@dataclass(frozen=True)
class Num:
    """A number as written in the input (``1.0``, ``1e400``): OPA keeps the text, JSON decoding does not."""

    text: str


@dataclass(frozen=True)
class RegoSet:
    """A Rego set, in the (unsorted) order the Wasm module happens to hold it."""

    items: tuple[Any, ...]


@dataclass(frozen=True)
class RegoObject:
    """An object whose keys need not be strings (``{1: "a", true: 4}``), in insertion order."""

    items: tuple[tuple[Any, Any], ...]


def json_value(arg: Any) -> Any:
    """What the engine's ``value`` holds: the module's opa_json_dump, decoded by Python's json."""
    if isinstance(arg, Num):
        return json.loads(arg.text)
    if isinstance(arg, RegoSet):
        return [json_value(item) for item in arg.items]
    if isinstance(arg, RegoObject):
        return {_json_key(key): json_value(value) for key, value in arg.items}
    if isinstance(arg, list):
        return [json_value(item) for item in arg]
    if isinstance(arg, dict):
        return {key: json_value(value) for key, value in arg.items()}
    return arg


def _json_key(key: Any) -> str:
    return key if isinstance(key, str) else wasm_dump(key)


def _wasm_string(s: str) -> str:
    # opa_value_dump escapes ", \ and control characters (\n \r \t by name, others as \u00XX); the
    # rest, including DEL, C1 controls and U+2028, is written raw.
    named = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = (named.get(ch) or (f"\\u{ord(ch):04x}" if ch < " " else ch) for ch in s)
    return '"' + "".join(out) + '"'


def wasm_dump(arg: Any) -> str:
    """What opa_value_dump prints for the value (checked against a compiled module's real output)."""
    if arg is None:
        return "null"
    if isinstance(arg, bool):
        return "true" if arg else "false"
    if isinstance(arg, Num):
        return arg.text
    if isinstance(arg, int | float):
        return json.dumps(arg)
    if isinstance(arg, str):
        return _wasm_string(arg)
    if isinstance(arg, RegoSet):
        return "{" + ", ".join(map(wasm_dump, arg.items)) + "}" if arg.items else "set()"
    if isinstance(arg, list):
        return "[" + ", ".join(map(wasm_dump, arg)) + "]"
    pairs = arg.items if isinstance(arg, RegoObject) else tuple(arg.items())
    return "{" + ", ".join(f"{wasm_dump(key)}: {wasm_dump(value)}" for key, value in pairs) + "}"


class WasmOperand:
    """Test double for wasm_builtins.Operand; counts rego_text() calls, which are costly in the engine."""

    def __init__(self, arg: Any) -> None:
        self.arg = arg
        self.value = json_value(arg)
        self.dumps = 0

    def rego_text(self) -> str:
        self.dumps += 1
        return wasm_dump(self.arg)


class Case(NamedTuple):
    note: str
    builtin: str
    args: tuple[Any, ...]
    want: Any


def case(note: str, builtin: str, *args: Any, want: Any) -> Case:
    return Case(note, builtin, args, want)


BIG = Num("9223372036854775808")  # 2**63, one past int64

CASES = [
    # -- regex.replace: Go's ReplaceAllString ------------------------------------------------------------
    case("replace every match", "regex.replace", "a-b-c", "-", "+", want="a+b+c"),
    case("replace without a match returns the input", "regex.replace", "abc", "x", "y", want="abc"),
    case("replace empty matches as Go does", "regex.replace", "baaac", "a*", "X", want="XbXcX"),
    case("replace skips an empty match right after a match", "regex.replace", "xa", "x*", "-", want="-a-"),
    case("replace with an empty pattern inserts between runes", "regex.replace", "hé", "", "-", want="-h-é-"),
    case("replace ^ anchors at the text start only", "regex.replace", "aaa", "^a", "b", want="baa"),
    case("replace (?m)^ anchors at every line", "regex.replace", "a\na", "(?m)^a", "b", want="b\nb"),
    case("replace $1 and ${2}", "regex.replace", "key=value", r"(\w+)=(\w+)", "${2}:$1", want="value:key"),
    case("replace $1x names a group called 1x", "regex.replace", "ab", "(a)", "[$1x]", want="[]b"),
    case("replace ${1}x is group 1 then x", "regex.replace", "ab", "(a)", "${1}x", want="axb"),
    case("replace $$ is a dollar", "regex.replace", "ab", "a", "$$", want="$b"),
    case("replace $name and ${name}", "regex.replace", "2024-05", r"(?P<y>\d+)-(?<m>\d+)", "$m/${y}",
         want="05/2024"),
    case("replace unknown groups expand to nothing", "regex.replace", "ab", "a", "[$2][$zz]", want="[][]b"),
    case("replace lone $ and unclosed ${ stay literal", "regex.replace", "ab", "a", "$ ${x", want="$ ${xb"),
    case("replace $01 names a group called 01", "regex.replace", "ab", "(a)", "[$01]", want="[]b"),
    case("replace duplicate names take the first that matched", "regex.replace", "b", "(?P<x>a)|(?P<x>b)",
         "[$x]", want="[b]"),
    case("replace normalises a path as the policy pack does", "regex.replace", "/a/b/../c", r"/[^/]+/\.\./",
         "/", want="/a/c"),
    case("replace \\B only between runes", "regex.replace", "é😀ab", r"\B", "|", want="|é|😀a|b"),
    case("replace (?i) folds the Kelvin sign", "regex.replace", "K k \u212a", "(?i)k", "x", want="x x x"),
    case("replace \\p{greek} ignores case as Go 1.26 does", "regex.replace", "\u03b1\u03b2c", r"\p{greek}+",
         "G", want="Gc"),
    case("replace \\p{Letter} is a category alias", "regex.replace", "a1b", r"\p{Letter}", "L", want="L1L"),
    case("replace \\P{Ascii}", "regex.replace", "aé😀b", r"\P{Ascii}", "?", want="a??b"),
    case("replace [^\\P{Ascii}] under (?i) keeps the folds", "regex.replace", "s\u017fk", r"(?i)[^\P{Ascii}]",
         "-", want="---"),
    case("replace \\Q..\\E quotes metacharacters", "regex.replace", "a.*b", r"\Q.*\E", "-", want="a-b"),
    case("replace (?U) makes repetition lazy", "regex.replace", "aaa", "(?U)a+", "x", want="xxx"),
    case("replace with an invalid pattern is undefined", "regex.replace", "a", "(", "x", want=UNDEFINED),
    case("replace with RE2's \\C is undefined", "regex.replace", "ab", r"\C", "x", want=UNDEFINED),
    case("replace with a non-ASCII group name is undefined", "regex.replace", "a", "(?P<é>a)", "x",
         want=UNDEFINED),
    case("replace with \\p{Old_Italic} is undefined in Go 1.26", "regex.replace", "a", r"\p{Old_Italic}",
         "x", want=UNDEFINED),
    case("replace with a repeat above 1000 is undefined", "regex.replace", "a", "a{1001}", "x",
         want=UNDEFINED),
    case("replace of a number is undefined", "regex.replace", 5, "a", "b", want=UNDEFINED),
    case("replace with an array template is undefined", "regex.replace", "a", "a", ["x"], want=UNDEFINED),
    # -- regex.split: Go's Split(s, -1) ------------------------------------------------------------------
    case("split on a separator", "regex.split", r"\s*,\s*", "a , b,c", want=["a", "b", "c"]),
    case("split keeps empty ends", "regex.split", ",", ",a,", want=["", "a", ""]),
    case("split on an empty pattern gives runes", "regex.split", "", "hé😀", want=["h", "é", "😀"]),
    case("split of an empty string on an empty pattern is empty", "regex.split", "", "", want=[]),
    case("split of an empty string is one empty string", "regex.split", "a", "", want=[""]),
    case("split drops the tail after a final empty match", "regex.split", "x*", "axbxxc",
         want=["a", "b", "c"]),
    case("split on a* as Go does", "regex.split", "a*", "baaac", want=["b", "c"]),
    case("split without a match", "regex.split", "z", "abc", want=["abc"]),
    case("split words as the policy pack does", "regex.split", r"""[\s;'"]+""", "cp -r 'a b';ls",
         want=["cp", "-r", "a", "b", "ls"]),
    case("split on \\B only between runes", "regex.split", r"\B", "é😀ab", want=["é", "😀a", "b"]),
    case("split with an invalid pattern is undefined", "regex.split", "[", "a", want=UNDEFINED),
    case("split of an array is undefined", "regex.split", "a", ["a"], want=UNDEFINED),
    # -- sprintf: OPA's operand conversion ---------------------------------------------------------------
    case("sprintf %s and %d", "sprintf", "%s has %d items", ["cart", 3], want="cart has 3 items"),
    case("sprintf %d of one integer", "sprintf", "%d", [42], want="42"),
    case("sprintf %v of string, int and float", "sprintf", "%v|%v|%v", ["a", 1, Num("1.5")], want="a|1|1.5"),
    case("sprintf 1.0 is a float64", "sprintf", "%v|%d", [Num("1.0"), Num("1.0")], want="1|%!d(float64=1)"),
    case("sprintf -0.0 is a float, -0 an int", "sprintf", "%v %v", [Num("-0.0"), Num("-0")], want="-0 0"),
    case("sprintf int64 limits", "sprintf", "%d %x", [Num("-9223372036854775808"),
         Num("9223372036854775807")], want="-9223372036854775808 7fffffffffffffff"),
    case("sprintf integers beyond int64 print exactly", "sprintf", "%d %v",
         [Num("123456789012345678901234567890"), Num("-9223372036854775809")],
         want="123456789012345678901234567890 -9223372036854775809"),
    case("sprintf a number beyond float64 is its text", "sprintf", "%v %T %d", [Num("1e400")] * 3,
         want="1e400 string %!d(string=1e400)"),
    case("sprintf %T names the Go type", "sprintf", "%T %T %T %T %T", [1, Num("1.5"), "s", True, BIG],
         want="int64 float64 string string *big.Int"),
    case("sprintf booleans and null are their Rego text", "sprintf", "%v %v %s %d %t",
         [True, None, False, True, True], want="true null false %!d(string=true) %!t(string=true)"),
    case("sprintf an object: sorted keys, Go quoting, numbers as written", "sprintf", "%v",
         [{"b": 1, "a": ["x\u0001", Num("1.0")]}], want='{"a": ["x\\x01", 1.0], "b": 1}'),
    case("sprintf a set: sorted elements", "sprintf", "%v", [RegoSet(("b", 3, "a", 1))],
         want='{1, 3, "a", "b"}'),
    case("sprintf empty set, array and object", "sprintf", "%v|%v|%v", [RegoSet(()), [], {}],
         want="set()|[]|{}"),
    case("sprintf a set orders types null<bool<number<string<array<object<set", "sprintf", "%v",
         [RegoSet(({"k": 1}, RegoSet((1,)), [1], "s", 2, True, None))],
         want='{null, true, 2, "s", [1], {"k": 1}, {1}}'),
    case("sprintf object keys of any type", "sprintf", "%v",
         [RegoObject((([1], 3), ("b", 2), (1, "a"), (True, 4)))], want='{true: 4, 1: "a", "b": 2, [1]: 3}'),
    case("sprintf sets of objects compare key by key", "sprintf", "%v",
         [RegoSet(({"b": 1}, {"a": 2}, {"b": 0, "a": 1}))], want='{{"a": 1, "b": 0}, {"a": 2}, {"b": 1}}'),
    case("sprintf sets of arrays compare element-wise, then by length", "sprintf", "%v",
         [RegoSet(([2], [1, 2], [1]))], want="{[1], [1, 2], [2]}"),
    case("sprintf numbers keep their text inside composites", "sprintf", "%v",
         [[Num("1.0"), Num("1e3"), Num("2.50"), RegoSet((Num("10"), Num("9.5")))]],
         want="[1.0, 1e3, 2.50, {9.5, 10}]"),
    case("sprintf %s of an array of strings", "sprintf", "%s", [["a", "é\n"]], want='["a", "é\\n"]'),
    # -- sprintf: Go's fmt -------------------------------------------------------------------------------
    case("sprintf missing operand", "sprintf", "%s and %s", ["a"], want="a and %!s(MISSING)"),
    case("sprintf extra operands", "sprintf", "%s", ["a", "b", 1, BIG],
         want="a%!(EXTRA string=b, int64=1, *big.Int=9223372036854775808)"),
    case("sprintf wrong type", "sprintf", "%d|%s", ["abc", 5], want="%!d(string=abc)|%!s(int64=5)"),
    case("sprintf bad verb keeps the width", "sprintf", "%z|%5d", [1, "ab"],
         want="%!z(int64=1)|%!d(string=   ab)"),
    case("sprintf no verb", "sprintf", "%", [1], want="%!(NOVERB)%!(EXTRA int64=1)"),
    case("sprintf %% takes no operand and ignores width", "sprintf", "100%%|%5%", [], want="100%|%"),
    case("sprintf %v of floats is shortest %g (exponent from 1e+06)", "sprintf", "%v %v %v %v %v %v",
         [Num("1234567.5"), Num("123456.0"), Num("1e21"), Num("1e20"), Num("0.00001"), Num("0.0001")],
         want="1.2345675e+06 123456 1e+21 1e+20 1e-05 0.0001"),
    case("sprintf %f %e %g %G with precision", "sprintf", "%.2f|%.3e|%.3g|%g|%G|%e",
         [Num("3.14159"), Num("123456.789"), Num("1234.5678"), Num("1e-7"), Num("1e-7"), Num("0.0")],
         want="3.14|1.235e+05|1.23e+03|1e-07|1E-07|0.000000e+00"),
    case("sprintf %.0f rounds half to even", "sprintf", "%.0f %.0f %.0f %.1f",
         [Num("0.5"), Num("1.5"), Num("2.5"), Num("0.25")], want="0 2 2 0.2"),
    case("sprintf %F is %f", "sprintf", "%F|%.1F", [Num("1.5"), Num("1.25")], want="1.500000|1.2"),
    case("sprintf %x %b of floats", "sprintf", "%x|%.3x|%X|%b", [Num("1.5"), Num("0.1"), Num("-255.75"),
         Num("1.0")], want="0x1.8p+00|0x1.99ap-04|-0X1.FF8P+07|4503599627370496p-52"),
    case("sprintf # on floats", "sprintf", "%#g|%#.0f|%#x|%#X|%#.0e", [Num("1.0")] * 4 + [Num("2.0")],
         want="1.00000|1.|0x1.0000p+00|0X1.P+00|2.e+00"),
    case("sprintf integer bases and # prefixes", "sprintf", "%x %X %o %O %b %#x %#o %#b %x",
         [255, 255, 8, 8, 5, 255, 8, 5, -255], want="ff FF 10 0o10 101 0xff 010 0b101 -ff"),
    case("sprintf %c %q %U of code points", "sprintf", "%c|%q|%U|%#U|%c|%q|%U",
         [65, 128512, 128512, 128512, 55296, -1, -1],
         want="A|'😀'|U+1F600|U+1F600 '😀'|\ufffd|'\ufffd'|U+FFFFFFFFFFFFFFFF"),
    case("sprintf %x of a string is its UTF-8 bytes", "sprintf", "%x|% x|%# X|%.1x", ["hé", "ab", "ab", "ab"],
         want="68c3a9|61 62|0X61 0X62|61"),
    case("sprintf %q escapes as strconv.Quote", "sprintf", "%q",
         ["é\u00ad\u0001\x7f\x80\"\\\n\t\u2028\u00a0x"],
         want='"é\\u00ad\\x01\\x7f\\u0080\\"\\\\\\n\\t\\u2028\\u00a0x"'),
    case("sprintf %+q is ASCII, %#q backquotes when it can", "sprintf", "%+q|%#q|%#q|%#q",
         ["é😀", "a`b", "a\tb", "\ufeff"], want='"\\u00e9\\U0001f600"|"a`b"|`a\tb`|"\\ufeff"'),
    case("sprintf %q follows Go's Unicode 15.0 tables", "sprintf", "%q|%q|%q", ["🫨", "\u2ffc", "\U0001fae9"],
         want='"🫨"|"\\u2ffc"|"\\U0001fae9"'),
    case("sprintf a lone surrogate reads as U+FFFD", "sprintf", "%q", ["\ud800x"], want='"\ufffdx"'),
    case("sprintf width, precision and flags", "sprintf", "[%5d|%-5d|%05d|%+d|% d|%5.1f|%-8s|%.2s|%6.2s]",
         [42, 42, -42, 42, 42, Num("3.14159"), "ab", "abc", "abc"],
         want="[   42|42   |-0042|+42| 42|  3.1|ab      |ab|    ab]"),
    case("sprintf zero padding applies to strings too", "sprintf", "%06s|%08q|%05c", ["ab", "ab", 65],
         want='0000ab|0000"ab"|0000A'),
    case("sprintf zero padding puts the sign first", "sprintf", "%08.2f|%+08.2f|%-08d|%.3d|%08.3d|%.0d|",
         [Num("-1.5"), Num("1.5"), 5, 7, 7, 0], want="-0001.50|+0001.50|5       |007|     007||"),
    case("sprintf width and precision from operands", "sprintf", "%*d|%-*d|%.*f|%*d",
         [5, 1, 5, 1, 2, Num("3.14159"), -3, 1], want="    1|1    |3.14|1  "),
    case("sprintf bad * width and precision", "sprintf", "%*d|%.*d", ["x", 1, 1000001, 2],
         want="%!(BADWIDTH)1|%!(BADPREC)2"),
    case("sprintf explicit argument indexes", "sprintf", "%[2]d %[1]d %d|%[2]*[1]d", [1, 2],
         want="2 1 2| 1"),
    case("sprintf a bad index; no EXTRA once reordered", "sprintf", "%[3]d|%[0]d|%d", [1, 2],
         want="%!d(BADINDEX)|%!d(BADINDEX)|1"),
    case("sprintf %#v quotes strings; %+v shows no sign", "sprintf", "%#v|%+v|%+d|%#v|% v",
         ["a", 5, 5, Num("1.5"), 5], want='"a"|5|+5|1.5| 5'),
    case("sprintf big.Int formats itself", "sprintf", "%q|%x|%#o|%025d|%+v|%.1d|%-22d|",
         [BIG] * 7, want="%!q(big.Int=9223372036854775808)|8000000000000000|01000000000000000000000"
         "|0000009223372036854775808|+9223372036854775808|9223372036854775808|9223372036854775808   |"),
    case("sprintf %w is a bad verb; a big.Int shows its fields", "sprintf", "%w|%w|%+w", [1, BIG,
         Num("36893488147419103232")], want="%!w(int64=1)|%!w(*big.Int=&{false [9223372036854775808]})"
         "|%!w(*big.Int=&{neg:false abs:[0 2]})"),
    case("sprintf %p of a number is a bad verb", "sprintf", "%p", [1], want="%!p(int64=1)"),
    case("sprintf format not a string is undefined", "sprintf", 5, [1], want=UNDEFINED),
    case("sprintf values not an array is undefined", "sprintf", "%v", "abc", want=UNDEFINED),
    case("sprintf values an object is undefined", "sprintf", "%v", {"a": 1}, want=UNDEFINED),
]  # fmt: skip

# Where this implementation knowingly differs from OPA; each must keep failing (xfail_strict) until fixed.
DIVERGENCES = [
    pytest.param(case("%p of a big.Int", "sprintf", "%p", [BIG], want=None), id="Go prints a memory address"),
    pytest.param(case("[\\p{Cn}]", "regex.split", r"[\p{Cn}a]", "a\u0378", want=None),
                 id="RE2 cannot say unassigned code points inside a class"),
]  # fmt: skip


def evaluate(builtin: str, args: tuple[Any, ...]) -> Any:
    return call_host_builtin(builtin, [WasmOperand(arg) for arg in args])


@pytest.mark.parametrize("row", CASES, ids=[row.note for row in CASES])
def test_builtin_gives_the_expected_answer(row: Case) -> None:
    assert evaluate(row.builtin, row.args) == row.want


@pytest.mark.opa
@pytest.mark.parametrize("row", CASES, ids=[row.note for row in CASES])
def test_opa_gives_the_same_answer(row: Case, opa_answers: dict[str, Any]) -> None:
    assert opa_answers[row.note] == row.want


@pytest.mark.opa
@pytest.mark.xfail(strict=True, reason="known divergence, see the module docstring of wasm_builtins")
@pytest.mark.parametrize("row", DIVERGENCES)
def test_known_divergences_still_differ(row: Case, opa_binary, tmp_path) -> None:
    assert evaluate(row.builtin, row.args) == run_opa(opa_binary, tmp_path, [row])[row.note]


def test_notes_are_unique() -> None:
    notes = [row.note for row in CASES]
    assert len(notes) == len(set(notes))


def test_host_builtins_are_the_three_the_policy_pack_needs() -> None:
    assert frozenset({"regex.replace", "regex.split", "sprintf"}) == HOST_BUILTINS


def test_unknown_builtin_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        call_host_builtin("http.send", [WasmOperand({})])


def test_wrong_operand_count_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="takes 2 operands"):
        call_host_builtin("sprintf", [WasmOperand("%v")])


def test_rego_text_is_read_only_for_composites_and_at_most_once() -> None:
    scalars = WasmOperand(["a", 1, Num("1.5"), True, None])
    call_host_builtin("sprintf", [WasmOperand("%v"), scalars])
    composites = WasmOperand([RegoSet((1,)), {"a": 1}, Num("1e400")])
    call_host_builtin("sprintf", [WasmOperand("%v %v %v"), composites])
    assert (scalars.dumps, composites.dumps) == (0, 1)


# -- the real opa --------------------------------------------------------------------------------------


def _needs_rego_literal(arg: Any) -> bool:
    if isinstance(arg, RegoSet | RegoObject):
        return True
    if isinstance(arg, list):
        return any(map(_needs_rego_literal, arg))
    if isinstance(arg, dict):
        return any(map(_needs_rego_literal, arg.values()))
    return False


def _json_text(arg: Any) -> str:
    """The operand as JSON text, numbers exactly as written (``json.dumps`` would turn 1e3 into 1000.0)."""
    if isinstance(arg, Num):
        return arg.text
    if isinstance(arg, list):
        return "[" + ", ".join(map(_json_text, arg)) + "]"
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {_json_text(value)}" for key, value in arg.items()) + "}"
    return json.dumps(arg)  # ASCII escapes keep every string exact, lone surrogates included


def _rego_literal(arg: Any) -> str:
    if isinstance(arg, RegoSet):
        return "{" + ", ".join(map(_rego_literal, arg.items)) + "}" if arg.items else "set()"
    if isinstance(arg, list):
        return "[" + ", ".join(map(_rego_literal, arg)) + "]"
    if isinstance(arg, RegoObject | dict):
        pairs = arg.items if isinstance(arg, RegoObject) else tuple(arg.items())
        return "{" + ", ".join(f"{_rego_literal(key)}: {_rego_literal(value)}" for key, value in pairs) + "}"
    return _json_text(arg)


def run_opa(binary, tmp_path, rows: list[Case]) -> dict[str, Any]:
    """Evaluates every row in one ``opa eval``; an undefined call is missing from the result."""
    rules, operands = ["package cases", ""], []
    for index, row in enumerate(rows):
        call = []
        for position, arg in enumerate(row.args):
            if _needs_rego_literal(arg):
                call.append(_rego_literal(arg))
            else:
                call.append(f"input.c{index}[{position}]")
        json_args = ("null" if _needs_rego_literal(arg) else _json_text(arg) for arg in row.args)
        operands.append(f'"c{index}": [{", ".join(json_args)}]')
        rules.append(f"c{index} := {row.builtin}({', '.join(call)})")
    policy, data = tmp_path / "cases.rego", tmp_path / "input.json"
    policy.write_text("\n".join(rules) + "\n", encoding="utf-8")
    data.write_text("{" + ",\n".join(operands) + "}", encoding="utf-8")
    result = subprocess.run(
        [str(binary), "eval", "--format", "json", "--data", str(policy), "--input", str(data), "data.cases"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)["result"][0]["expressions"][0]["value"]
    return {row.note: answers.get(f"c{index}", UNDEFINED) for index, row in enumerate(rows)}


@pytest.fixture(scope="module")
def opa_answers(opa_binary, tmp_path_factory) -> dict[str, Any]:
    return run_opa(opa_binary, tmp_path_factory.mktemp("wasm_builtins"), CASES)
