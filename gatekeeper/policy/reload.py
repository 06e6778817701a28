"""Hot reload: edits under ``policies/`` take effect without a restart, for every engine.

A :class:`PolicyWatcher` watches the policy directory (watchfiles) and, after each burst of changes,
asks every reloader to bring its engine to the policies on disk. A reload is all or nothing: the new
policies are compiled first, and only a pack that compiles replaces the active one. A pack that does
not compile is rejected with a clear error (logged as ``policy_reload_failed``, returned by
:meth:`PolicyWatcher.reload`) and the last good revision keeps answering.

- :class:`InProcessReloader` calls the ``reload`` of an in-process engine: :meth:`EmbeddedEngine.reload`
  compiles with rego-cpp, :meth:`WasmEngine.reload` with ``opa build -t wasm``, before either swaps
  the new pack in.
- :class:`OpaBundleReloader` serves a gatekeeper-managed OPA (:class:`ManagedOpa`, started with
  ``--bundle FILE --watch``). It builds the new bundle in a staging directory, has the same ``opa``
  binary check it (``opa check --bundle``: parse, compile, roots), renames it over the served file,
  then waits until OPA reports the new manifest revision in ``data.system.bundles``. OPA activates a
  bundle in one storage transaction and keeps the old one when activation fails; if OPA does not
  confirm in time, the last good bundle file is put back. The revision in each OPA decision comes
  from that decision's own provenance (:class:`OpaServerEngine`), so it changes exactly when OPA
  answers with the new policies, never before.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
import watchfiles

from gatekeeper.errors import GatekeeperError, PolicyLoadError
from gatekeeper.policy.bundle import bundle_bytes, check_with_opa, replace_atomically
from gatekeeper.policy.engine import IN_PROCESS_ENGINES
from gatekeeper.policy.loader import load_policy_source, resolve_policy_dir
from gatekeeper.policy.opa_process import ManagedOpa

if TYPE_CHECKING:
    from gatekeeper.policy.engine import PolicyEngine
    from gatekeeper.policy.loader import PolicySource

_log = structlog.get_logger("gatekeeper.policy.reload")


class Reloader(Protocol):
    """Brings one engine to the policies on disk; raises PolicyLoadError and changes nothing if it can't."""

    name: str

    @property
    def revision(self) -> str | None:
        """The revision this engine answers with now."""
        ...

    def reload(self) -> str | None:
        """Load the current policies if they changed; returns the active revision."""
        ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    engine: str
    revision: str | None
    previous: str | None
    error: GatekeeperError | None = None

    @property
    def changed(self) -> bool:
        return self.error is None and self.revision != self.previous

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """One human line (plus the compiler's own lines on failure) for a terminal."""
        if self.error is not None:
            return (
                f"{self.engine}: policy reload rejected, still serving {self.revision}:\n{self.error.message}"
            )
        if self.changed:
            return f"{self.engine}: policies reloaded, now serving {self.revision}"
        return f"{self.engine}: policies unchanged ({self.revision})"


class InProcessEngine(Protocol):
    """What :class:`InProcessReloader` needs of an engine (EmbeddedEngine, WasmEngine)."""

    name: str

    @property
    def revision(self) -> str | None: ...

    @property
    def source(self) -> PolicySource: ...

    def reload(self) -> PolicySource: ...


class InProcessReloader:
    """Reloads an engine that compiles the policies in this process."""

    def __init__(self, engine: InProcessEngine) -> None:
        self.engine = engine
        self.name = engine.name

    @property
    def revision(self) -> str | None:
        return self.engine.revision

    def reload(self) -> str | None:
        return self.engine.reload().revision


class OpaBundleReloader:
    """Publishes new policy revisions to a :class:`ManagedOpa` started with ``watch=True``."""

    name = "opa"

    def __init__(self, opa: ManagedOpa, *, confirm_timeout_s: float = 10.0) -> None:
        if not opa.watch:
            raise ValueError("OpaBundleReloader needs a ManagedOpa started with watch=True")
        self.opa = opa
        self.confirm_timeout_s = confirm_timeout_s

    @property
    def revision(self) -> str | None:
        return self.opa.revision

    def reload(self) -> str | None:
        source = load_policy_source(self.opa.policy_dir)
        if source.revision == self.opa.revision:
            return self.opa.revision
        body = bundle_bytes(source)
        staged = self.opa.staging_dir / f"{source.revision.replace(':', '-')}.tar.gz"
        staged.write_bytes(body)
        try:
            check_with_opa(self.opa.binary, staged, label=f"the policies in {source.directory}")
        finally:
            staged.unlink(missing_ok=True)
        previous_body = self.opa.bundle_path.read_bytes()
        replace_atomically(self.opa.bundle_path, body, staging_dir=self.opa.staging_dir)
        try:
            self._wait_until_active(source.revision)
        except PolicyLoadError:
            # Keep the file OPA serves equal to what it answers with (and what a restart would load).
            replace_atomically(self.opa.bundle_path, previous_body, staging_dir=self.opa.staging_dir)
            raise
        self.opa.revision = source.revision
        return source.revision

    def _wait_until_active(self, revision: str) -> None:
        deadline = time.monotonic() + self.confirm_timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            seen = active_bundle_revisions(self.opa.url)
            if revision in seen:
                return
            time.sleep(0.02)
        raise PolicyLoadError(
            f"OPA at {self.opa.url} did not activate revision {revision} within "
            f"{self.confirm_timeout_s:g}s; it still serves {', '.join(seen) or 'no bundle'}"
        )


def active_bundle_revisions(url: str, *, timeout_s: float = 1.0) -> list[str]:
    """The manifest revisions OPA has activated, from ``GET /v1/data/system/bundles``."""
    try:
        with urllib.request.urlopen(f"{url}/v1/data/system/bundles", timeout=timeout_s) as response:  # noqa: S310
            body: Any = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return []
    bundles = body.get("result") if isinstance(body, dict) else None
    if not isinstance(bundles, dict):
        return []
    revisions = []
    for info in bundles.values():
        manifest = info.get("manifest") if isinstance(info, dict) else None
        if isinstance(manifest, dict) and manifest.get("revision"):
            revisions.append(str(manifest["revision"]))
    return sorted(revisions)


def reloader_for(
    engine: PolicyEngine, *, policy_dir: str | os.PathLike[str] | None = None
) -> Reloader | None:
    """The reloader that brings ``engine`` to the policies on disk, or None if gatekeeper can't.

    Engines that wrap another one (``engine.inner``, as the service's layers do) are unwrapped. An
    in-process engine (embedded, wasm) reloads in process. An OPA that gatekeeper does not manage
    reloads itself (``gatekeeper opa run --watch``, or its bundle service): None.
    """
    seen = 0
    while not _in_process(engine) and hasattr(engine, "inner") and seen < 8:
        engine, seen = engine.inner, seen + 1
    if _in_process(engine):
        in_process: InProcessEngine = engine  # type: ignore[assignment]
        if policy_dir is not None and resolve_policy_dir(policy_dir) != in_process.source.directory:
            raise ValueError(f"the engine serves {in_process.source.directory}, not {policy_dir}")
        return InProcessReloader(in_process)
    return None


def _in_process(engine: object) -> bool:
    # The engine itself, not a layer around it: layers share its name and may pass reload() on.
    return (
        getattr(engine, "name", None) in IN_PROCESS_ENGINES
        and not hasattr(engine, "inner")
        and hasattr(engine, "source")
        and callable(getattr(engine, "reload", None))
    )


def watch_engine(
    engine: PolicyEngine,
    *,
    on_reload: Callable[[list[ReloadResult]], None] | None = None,
    debounce_ms: int = 150,
) -> PolicyWatcher | None:
    """Start watching the policy directory of ``engine`` (see :func:`reloader_for`); None if it
    cannot be reloaded by gatekeeper. Stop the returned watcher when the engine is closed."""
    reloader = reloader_for(engine)
    if not isinstance(reloader, InProcessReloader):
        return None
    watcher = PolicyWatcher(
        reloader.engine.source.directory, [reloader], debounce_ms=debounce_ms, on_reload=on_reload
    )
    return watcher.start()


class PolicyWatcher:
    """Watches a policy directory and reloads every engine after each burst of changes.

    :meth:`reload` reloads synchronously (also usable without the watch thread); :meth:`start`
    begins watching and returns once the watch is armed, after a first catch-up reload, so no edit
    made after ``start`` returns can be missed. Each finished reload increments :attr:`generation`;
    :meth:`wait_for_reload` blocks until the next one.
    """

    def __init__(
        self,
        policy_dir: str | os.PathLike[str] | None,
        reloaders: Sequence[Reloader],
        *,
        debounce_ms: int = 150,
        on_reload: Callable[[list[ReloadResult]], None] | None = None,
    ) -> None:
        self.policy_dir: Path = resolve_policy_dir(policy_dir)
        self.reloaders = list(reloaders)
        self.debounce_ms = debounce_ms
        self.on_reload = on_reload
        self.last_results: list[ReloadResult] = []
        self.generation = 0
        self._reload_lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._armed = threading.Event()
        self._thread: threading.Thread | None = None
        self.watch_error: str | None = None

    def reload(self) -> list[ReloadResult]:
        """Reload every engine now; failures are returned (and logged), never raised."""
        with self._reload_lock:
            results = [self._reload_one(reloader) for reloader in self.reloaders]
            with self._changed:
                self.last_results = results
                self.generation += 1
                self._changed.notify_all()
        if self.on_reload is not None:
            try:
                self.on_reload(results)
            except Exception as error:  # noqa: BLE001 - a listener's failure must not stop reloads
                _log.error("policy_reload_listener_failed", error=f"{type(error).__name__}: {error}")
        return results

    @staticmethod
    def _reload_one(reloader: Reloader) -> ReloadResult:
        previous = reloader.revision
        try:
            revision = reloader.reload()
        except Exception as caught:  # noqa: BLE001 - a watcher thread must survive any reload failure
            error = (
                caught
                if isinstance(caught, GatekeeperError)
                else PolicyLoadError(f"reload failed: {type(caught).__name__}: {caught}")
            )
            _log.error(
                "policy_reload_failed",
                engine=reloader.name,
                code=error.code.value,
                error=error.message,
                active_revision=reloader.revision,
            )
            return ReloadResult(reloader.name, reloader.revision, previous, error)
        if revision != previous:
            _log.info("policy_reloaded", engine=reloader.name, revision=revision, previous=previous)
        return ReloadResult(reloader.name, revision, previous)

    def wait_for_reload(self, after_generation: int, timeout_s: float = 10.0) -> list[ReloadResult] | None:
        """The results of the first reload after ``after_generation``, or None on timeout."""
        with self._changed:
            done = self._changed.wait_for(lambda: self.generation > after_generation, timeout=timeout_s)
            return list(self.last_results) if done else None

    # -- the watch thread ------------------------------------------------------------------------

    def start(self, *, ready_timeout_s: float = 10.0) -> PolicyWatcher:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._armed.clear()
        self._thread = threading.Thread(target=self._run, name="gatekeeper-policy-watcher", daemon=True)
        self._thread.start()
        armed = self._armed.wait(ready_timeout_s)
        if not armed or self.watch_error is not None:
            self.stop()
            raise PolicyLoadError(f"cannot watch {self.policy_dir}: {self.watch_error or 'timed out'}")
        return self

    def _run(self) -> None:
        # yield_on_timeout: the first (empty) yield proves the watch is armed; reload once then, to
        # catch edits made between the engines' start and the watch.
        try:
            for changes in watchfiles.watch(
                self.policy_dir,
                debounce=self.debounce_ms,
                step=25,
                rust_timeout=200,
                yield_on_timeout=True,
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                if not self._armed.is_set():
                    self.reload()
                    self._armed.set()
                elif changes:
                    self.reload()
        except Exception as error:  # noqa: BLE001 - report, don't kill the process from a thread
            self.watch_error = f"{type(error).__name__}: {error}"
            _log.error("policy_watch_failed", directory=str(self.policy_dir), error=self.watch_error)
        finally:
            self._armed.set()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> PolicyWatcher:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
