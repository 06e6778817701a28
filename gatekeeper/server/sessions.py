"""What the service remembers of each session, so policies can see sequences (``input.session``).

Each decided call appends one entry to its session's history, most recent last::

    {"id": "c7", "decision_id": "…", "decision": "allow", "tool": "shell",
     "commands": [{"name": "cp", "argv": [...], "paths": [...], "cwd": "/home/agent"}], "writes": []}

A command also carries its ``via`` layers and its ``pipeline`` place when it has them (as in the
facts), so that policies can tell what an earlier call's ``find -exec`` or ``xargs`` handed it.

Memory is bounded three ways: entries per session (``max_history``), bytes per session
(``max_session_bytes``, oldest entries dropped first) and sessions/bytes in total (``max_sessions``,
``max_total_bytes``, least recently used sessions dropped first); a session idle for ``idle_ttl_s`` is
forgotten. Sizes are the entries' JSON lengths, an honest proxy for what the policies receive; the
total also counts each session's id, which the caller chooses.

Calls of one session are decided one at a time (:meth:`SessionStore.hold`, or
:meth:`SessionStore.acquire` when the call ends on another thread), so a call always sees every earlier
call of its session, even when an agent sends them concurrently.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.analysis import Facts
from gatekeeper.jsonout import PreEncoded
from gatekeeper.models import Decision, ToolCall
from gatekeeper.server.config import SessionSettings

# Per-entry caps keep one huge call from evicting a whole history; a capped entry says so.
MAX_COMMANDS_PER_ENTRY = 32
MAX_WORDS_PER_COMMAND = 64
MAX_PATHS_PER_COMMAND = 32
MAX_LAYERS_PER_COMMAND = 16
MAX_STRING_CHARS = 4096


@dataclass(slots=True)
class _Session:
    id: str
    created: float
    last_seen: float
    entries: deque[tuple[dict[str, Any], str]] = field(default_factory=deque)  # entry, its JSON
    size: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Bounded, thread-safe store of per-session histories."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._total_bytes = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, session_id: str) -> Iterator[SessionHandle]:
        """Serialise calls of ``session_id``: yields its history snapshot and a way to record the call."""
        handle = self.acquire(session_id)
        try:
            yield handle
        finally:
            handle.release()

    def try_acquire(self, session_id: str) -> SessionHandle | None:
        """:meth:`acquire` if the session is free now, else None (for the event loop, which must not
        wait)."""
        session = self._touch(session_id)
        return SessionHandle(self, session) if session.lock.acquire(blocking=False) else None

    def acquire(self, session_id: str) -> SessionHandle:
        """:meth:`hold` for a call that ends on another thread than it began: blocks until the
        session's earlier calls are done. The handle must be released exactly once, from any thread
        (a ``threading.Lock`` may be released by a thread that did not acquire it)."""
        session = self._touch(session_id)
        session.lock.acquire()
        return SessionHandle(self, session)

    def snapshot(self, session_id: str) -> dict[str, Any] | None:
        """The session as ``GET /v1/sessions/{id}`` shows it, or ``None`` when unknown or expired."""
        with self._lock:
            self._expire(time.monotonic())
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now_wall, now = time.time(), time.monotonic()
            return {
                "id": session.id,
                "calls": session.calls,
                "history_bytes": session.size,
                "idle_s": round(now - session.last_seen, 3),
                "created_at": now_wall - (now - session.created),
                "history": [entry for entry, _text in session.entries],
            }

    def stats(self) -> tuple[int, int]:
        with self._lock:
            return len(self._sessions), self._total_bytes

    # -- internals ---------------------------------------------------------------------------------

    def _touch(self, session_id: str) -> _Session:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(session_id)
            if session is None:
                session = _Session(id=session_id, created=now, last_seen=now)
                self._sessions[session_id] = session
                # The id counts against the total too: ids are the caller's, up to a request long.
                self._total_bytes += len(session_id)
                while len(self._sessions) > self.settings.max_sessions:
                    self._evict_oldest(keep=session_id)
                while self._total_bytes > self.settings.max_total_bytes and len(self._sessions) > 1:
                    self._evict_oldest(keep=session_id)
            else:
                session.last_seen = now
                self._sessions.move_to_end(session_id)
            return session

    def _append(self, session: _Session, entry: dict[str, Any]) -> None:
        # Encoded once, here: the text goes to OPA with every later call of the session (see
        # policy_input), and its length is the entry's size. ASCII, so any string survives.
        text = json.dumps(entry, separators=(",", ":"), default=str)
        size = len(text)
        limits = self.settings
        with self._lock:
            if self._sessions.get(session.id) is not session:
                return  # evicted while the call was being decided; its history is gone anyway
            session.entries.append((entry, text))
            session.size += size
            session.calls += 1
            self._total_bytes += size
            while session.entries and (
                len(session.entries) > limits.max_history or session.size > limits.max_session_bytes
            ):
                _old, old_text = session.entries.popleft()
                old_size = len(old_text)
                session.size -= old_size
                self._total_bytes -= old_size
            while self._total_bytes > limits.max_total_bytes and len(self._sessions) > 1:
                self._evict_oldest(keep=session.id)

    def _evict_oldest(self, keep: str | None = None) -> None:
        for session_id in self._sessions:
            if session_id != keep:
                evicted = self._sessions.pop(session_id)
                self._total_bytes -= evicted.size + len(evicted.id)
                return

    def _expire(self, now: float) -> None:
        cutoff = now - self.settings.idle_ttl_s
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_seen >= cutoff:
                return
            self._sessions.popitem(last=False)
            self._total_bytes -= oldest.size + len(oldest.id)


class SessionHandle:
    """One call's view of its session while the session is held."""

    __slots__ = ("_session", "_store")

    def __init__(self, store: SessionStore, session: _Session) -> None:
        self._store = store
        self._session = session

    @property
    def policy_input(self) -> dict[str, Any]:
        """``input.session``: the id and the history of earlier calls, most recent last."""
        entries = self._session.entries
        text = "[" + ",".join(entry_text for _entry, entry_text in entries) + "]"
        history = PreEncoded([entry for entry, _text in entries], text)
        return {"id": self._session.id, "history": history}

    def record(self, call: ToolCall, decision: Decision, facts: Facts | None) -> None:
        self._store._append(self._session, history_entry(call, decision, facts))

    def release(self) -> None:
        """Let the session's next call go ahead."""
        self._session.lock.release()


def history_entry(call: ToolCall, decision: Decision, facts: Facts | None) -> dict[str, Any]:
    """The session-history form of one decided call (docs/facts.md, "The policy input")."""
    commands: list[dict[str, Any]] = []
    writes: list[str] = []
    truncated = False
    if facts is not None:
        truncated = len(facts.commands) > MAX_COMMANDS_PER_ENTRY
        for command in facts.commands[:MAX_COMMANDS_PER_ENTRY]:
            truncated |= len(command.argv) > MAX_WORDS_PER_COMMAND
            truncated |= len(command.paths) > MAX_PATHS_PER_COMMAND
            truncated |= len(command.via) > MAX_LAYERS_PER_COMMAND
            entry_command: dict[str, Any] = {
                "name": _cap(command.name),
                "argv": [_cap(word) for word in command.argv[:MAX_WORDS_PER_COMMAND]],
                "paths": [_cap(path) for path in command.paths[:MAX_PATHS_PER_COMMAND]],
                "cwd": _cap(command.cwd) if command.cwd is not None else None,
            }
            # Where its files came from (the find of `find -exec`, the stages before an xargs):
            # only when there is something to say, since most commands have neither.
            if command.via:
                entry_command["via"] = [
                    {"kind": layer.kind, "name": _cap(layer.name), "command": layer.command}
                    for layer in command.via[:MAX_LAYERS_PER_COMMAND]
                ]
            if command.pipeline is not None:
                entry_command["pipeline"] = {
                    "id": command.pipeline.id,
                    "position": command.pipeline.position,
                    "length": command.pipeline.length,
                }
            commands.append(entry_command)
        writes = [_cap(path) for path in facts.writes[:MAX_PATHS_PER_COMMAND]]
    entry: dict[str, Any] = {
        "id": call.id if call.id is not None else decision.decision_id,
        "decision_id": decision.decision_id,
        "decision": decision.decision.value,
        "tool": call.tool,
        "commands": commands,
        "writes": writes,
    }
    if truncated:
        entry["truncated"] = True
    return entry


def _cap(text: str) -> str:
    return text if len(text) <= MAX_STRING_CHARS else text[:MAX_STRING_CHARS]
