"""The shell state the analyser follows through a call: variables, working directory, functions.

Only what is certain is known: a variable assigned a literal value earlier in the same call, the
directory after a literal ``cd``. Anything else (the caller's environment, a value read at run time, an
assignment in a branch that may not run) is unknown, and words that use it keep their source text.
Subshells, pipelines members, background jobs and substitutions work on a copy; branches of ``if``,
``case``, loops and ``||`` are merged back so that a value differing between paths becomes unknown.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from tree_sitter import Node

# A variable bound to UNKNOWN was assigned something that cannot be known; unassigned names are unknown too.
UNKNOWN = None
DEFAULT_IFS = " \t\n"


@dataclass(slots=True)
class FunctionDef:
    """A shell function defined in the call: its body is analysed where it is called."""

    name: str
    body: Node
    src: bytes


@dataclass(slots=True)
class Scope:
    variables: dict[str, str | None] = field(default_factory=dict)
    cwd: str | None = None
    oldpwd: str | None = None
    dirstack: list[str | None] = field(default_factory=list)
    functions: dict[str, FunctionDef] = field(default_factory=dict)
    home: str | None = None
    exported: set[str] = field(default_factory=set)

    def copy(self) -> Scope:
        """The state of a subshell: everything inherited, changes not visible to the parent."""
        return Scope(
            dict(self.variables),
            self.cwd,
            self.oldpwd,
            list(self.dirstack),
            dict(self.functions),
            self.home,
            set(self.exported),
        )

    def child(self, env: dict[str, str] | None = None) -> Scope:
        """The state of a new shell process (``bash -c``): only exported variables and ``env`` are known.

        A variable assigned here but not exported may still be exported from the caller's environment,
        so it is unknown in the child rather than empty.
        """
        # a new bash resets IFS whatever its environment says
        variables = {
            name: value for name, value in self.variables.items() if name in self.exported and name != "IFS"
        }
        scope = Scope(variables, self.cwd, None, [], {}, self.home, set(self.exported))
        for name, value in (env or {}).items():
            scope.variables[name] = value
            scope.exported.add(name)
        return scope

    def lookup(self, name: str) -> str | None:
        """A variable's value, or None when it cannot be known statically."""
        if name in self.variables:
            return self.variables[name]
        if name == "HOME":
            return self.home
        if name == "PWD":
            return self.cwd
        if name == "OLDPWD":
            return self.oldpwd
        return UNKNOWN

    def ifs(self) -> str | None:
        """The field separators: bash's default unless IFS was assigned in the call (bash does not take
        IFS from its environment); None when it was assigned a value that cannot be known."""
        return self.variables.get("IFS", DEFAULT_IFS)

    def assign(self, name: str, value: str | None) -> None:
        self.variables[name] = value

    def change_directory(self, target: str | None) -> None:
        """Follow ``cd TARGET`` (``None``: a target that cannot be known)."""
        previous = self.cwd
        self.cwd = resolve_directory(target, self.cwd)
        self.oldpwd = previous

    def merge(self, branches: list[Scope]) -> None:
        """After a construct whose branches may or may not run: keep only what every path agrees on."""
        for branch in branches:
            for name in set(self.variables) | set(branch.variables):
                if self.variables.get(name, "\0unset") != branch.variables.get(name, "\0unset"):
                    self.variables[name] = UNKNOWN
            if branch.cwd != self.cwd:
                self.cwd = None
            if branch.oldpwd != self.oldpwd:
                self.oldpwd = None
            if branch.dirstack != self.dirstack:
                self.dirstack = [None] * len(self.dirstack)
            for name, definition in branch.functions.items():
                self.functions.setdefault(name, definition)


def resolve_directory(target: str | None, cwd: str | None) -> str | None:
    """The absolute normalised directory ``target`` names from ``cwd``, or None when unknown."""
    if target is None:
        return None
    if target.startswith("/"):
        return normalise(target)
    if cwd is None:
        return None
    return normalise(posixpath.join(cwd, target))


def normalise(path: str) -> str:
    normal = posixpath.normpath(path)
    # POSIX keeps a leading "//"; for matching paths it is the same directory as "/".
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal
