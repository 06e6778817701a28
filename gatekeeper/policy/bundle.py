"""Build an OPA bundle (``.tar.gz``) from the policy pack, for a local or fleet OPA.

The bundle holds exactly what the embedded engine loads (every non-test ``.rego`` module under its
relative path, and ``data.json`` at the root), plus a ``.manifest``::

    {"revision": "sha256:…", "roots": ["gatekeeper"], "rego_version": 1,
     "metadata": {"built_by": "gatekeeper 0.1.0"}}

``revision`` is :attr:`PolicySource.revision`, so a decision from OPA (whose provenance names the
bundle revision) and one from the embedded engine carry the same revision for the same policies.
``roots`` declares that the bundle owns ``data.gatekeeper`` only, so OPA can hold other policies too.

Builds are reproducible: entries are sorted and carry fixed owners, modes and times, so the same
policies always give the same bytes (and the same ETag when served).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper._version import __version__
from gatekeeper.errors import PolicyLoadError
from gatekeeper.policy.loader import DATA_FILE, PolicySource, load_policy_source

MANIFEST = ".manifest"
DEFAULT_ROOTS: tuple[str, ...] = ("gatekeeper",)
DEFAULT_BUNDLE_NAME = "gatekeeper-bundle.tar.gz"

_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([A-Za-z_][\w.]*)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BundleInfo:
    path: Path
    revision: str
    files: tuple[str, ...]
    size: int


def manifest_for(source: PolicySource, roots: Sequence[str] = DEFAULT_ROOTS) -> dict[str, Any]:
    return {
        "revision": source.revision,
        "roots": list(roots),
        "rego_version": 1,
        "metadata": {"built_by": f"gatekeeper {__version__}"},
    }


def check_roots(source: PolicySource, roots: Sequence[str] = DEFAULT_ROOTS) -> None:
    """Every package and top-level data key must lie under ``roots`` (OPA would reject the bundle)."""
    prefixes = [tuple(root.split("/")) for root in roots if root]
    if not prefixes:
        return  # the root "" owns everything

    def owned(path: tuple[str, ...]) -> bool:
        return any(path[: len(prefix)] == prefix for prefix in prefixes)

    problems = []
    for name, text in source.modules.items():
        match = _PACKAGE.search(text)
        if match and not owned(tuple(match.group(1).split("."))):
            problems.append(f"module {name} declares package {match.group(1)}")
    for key in source.data:
        if not owned((key,)):
            problems.append(f"{DATA_FILE} has top-level key {key!r}")
    if problems:
        raise PolicyLoadError(
            f"policies in {source.directory} reach outside the bundle roots {list(roots)}: "
            + "; ".join(problems)
        )


def bundle_bytes(source: PolicySource, roots: Sequence[str] = DEFAULT_ROOTS) -> bytes:
    """The bundle as gzip bytes, reproducible for the same ``source``."""
    check_roots(source, roots)
    entries: dict[str, bytes] = {
        MANIFEST: _json_bytes(manifest_for(source, roots)),
    }
    if source.data:
        entries[DATA_FILE] = _json_bytes(source.data)
    for name, text in source.modules.items():
        entries[name] = text.encode("utf-8")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(entries):
            body = entries[name]
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(body))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_bundle(
    source: PolicySource,
    output: str | os.PathLike[str],
    roots: Sequence[str] = DEFAULT_ROOTS,
    *,
    opa_binary: str | os.PathLike[str] | None = None,
) -> BundleInfo:
    """Write the bundle atomically (a reader, OPA included, sees the old file or the new one).

    With ``opa_binary`` the new bundle is first checked by that ``opa``; if OPA rejects it the
    existing file is left untouched.
    """
    body = bundle_bytes(source, roots)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    if opa_binary is None:
        replace_atomically(target, body)
    else:
        staged = target.with_name(f".{target.name}.{os.getpid()}.check.tar.gz")
        try:
            staged.write_bytes(body)
            check_with_opa(opa_binary, staged, label=f"the policies in {source.directory}")
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
    files = (MANIFEST, *((DATA_FILE,) if source.data else ()), *sorted(source.modules))
    return BundleInfo(path=target, revision=source.revision, files=files, size=len(body))


def build_bundle(
    policy_dir: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    roots: Sequence[str] = DEFAULT_ROOTS,
    compile_check: bool = True,
    opa_binary: str | os.PathLike[str] | None = None,
) -> BundleInfo:
    """``gatekeeper policies build``: read, check and write the bundle of ``policy_dir``.

    With ``compile_check`` the policies are compiled first by rego-cpp (as the embedded engine
    does); with ``opa_binary`` OPA checks the bundle too. A bundle that fails either is not written.
    """
    source = load_policy_source(policy_dir)
    if compile_check:
        from gatekeeper.policy.embedded import compile_bundle  # noqa: PLC0415 - regopy only when asked

        compile_bundle(source)
    return write_bundle(source, output, roots, opa_binary=opa_binary)


def check_with_opa(
    binary: str | os.PathLike[str], bundle: str | os.PathLike[str], *, label: str | None = None
) -> None:
    """``opa check --bundle``: parse, compile and check roots as OPA will; PolicyLoadError if not."""
    try:
        result = subprocess.run(
            [str(binary), "check", "--bundle", str(bundle)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PolicyLoadError(f"cannot run {binary} check: {error}") from error
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        # OPA names the bundle file; a staged file's name means nothing to the reader.
        detail = detail.replace(f"bundle {bundle}: ", "")
        raise PolicyLoadError(f"OPA rejects {label or f'the bundle {bundle}'}:\n{detail}")


def read_manifest(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``.manifest`` of a bundle file (an empty dict when it has none)."""
    with tarfile.open(bundle, mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name.removeprefix("./").removeprefix("/") == MANIFEST:
                handle = archive.extractfile(member)
                value = json.loads(handle.read()) if handle is not None else {}
                break
        else:
            return {}
    return value if isinstance(value, dict) else {}


def replace_atomically(target: Path, body: bytes, *, staging_dir: Path | None = None) -> None:
    """Write ``body`` to a temporary file, fsync it, then rename it over ``target``.

    ``staging_dir`` (same file system as ``target``) keeps the temporary file out of a directory
    that someone watches; by default it is ``target``'s own directory.
    """
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed, not closed, on success
        dir=staging_dir or target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
